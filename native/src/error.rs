//! The crate's one error type, and its mapping to the status codes of `docs/ABI.md`.

use tch::TchError;

/// Status codes returned by every export (see `docs/ABI.md`).
pub mod status {
    /// Success.
    pub const HN_OK: i32 = 0;
    /// Bad argument: null pointer, wrong length/shape, bad JSON config, NaN input.
    pub const HN_ERR_INVALID_ARG: i32 = 1;
    /// libtorch raised an error.
    pub const HN_ERR_TORCH: i32 = 2;
    /// File missing / unreadable / unwritable.
    pub const HN_ERR_IO: i32 = 3;
    /// Checkpoint not safetensors, truncated, wrong/missing/extra tensor names or shapes.
    pub const HN_ERR_CHECKPOINT: i32 = 4;
    /// Call not valid now.
    pub const HN_ERR_STATE: i32 = 5;
    /// Output buffer too small; `out_len` holds the needed size.
    pub const HN_ERR_BUFFER_TOO_SMALL: i32 = 6;
    /// CUDA driver error.
    pub const HN_ERR_CUDA: i32 = 7;
    /// A Rust panic was caught.
    pub const HN_ERR_PANIC: i32 = 99;
}

/// Everything that can go wrong in the native core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libtorch raised an exception (a C++ error surfaced by a `f_` op).
    #[error("torch: {0}")]
    Torch(#[from] TchError),
    /// A file could not be read, written or renamed; the message names the path.
    #[error("{path}: {source}")]
    Io {
        /// The file the operation was about.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint or state file is malformed or does not match the model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A caller-supplied argument is invalid (null, wrong length, bad JSON, NaN ...).
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// The call is not valid in the current state (e.g. backward without forward).
    #[error("invalid state: {0}")]
    State(String),
    /// An output buffer is too small; holds the number of bytes needed.
    #[error("buffer too small: {0} bytes needed")]
    BufferTooSmall(usize),
    /// The CUDA driver reported an error or is unusable.
    #[error("cuda: {0}")]
    Cuda(String),
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The ABI status code for this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::Torch(_) => status::HN_ERR_TORCH,
            Error::Io { .. } => status::HN_ERR_IO,
            Error::Checkpoint(_) => status::HN_ERR_CHECKPOINT,
            Error::InvalidArg(_) => status::HN_ERR_INVALID_ARG,
            Error::State(_) => status::HN_ERR_STATE,
            Error::BufferTooSmall(_) => status::HN_ERR_BUFFER_TOO_SMALL,
            Error::Cuda(_) => status::HN_ERR_CUDA,
        }
    }

    /// Shorthand for an I/O error about `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }

    /// Shorthand for [`Error::InvalidArg`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArg(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_abi_table() {
        let cases: Vec<(Error, i32)> = vec![
            (Error::Torch(TchError::Torch("x".into())), 2),
            (Error::io("/x", std::io::Error::other("gone")), 3),
            (Error::Checkpoint("x".into()), 4),
            (Error::invalid("x"), 1),
            (Error::State("x".into()), 5),
            (Error::BufferTooSmall(3), 6),
            (Error::Cuda("x".into()), 7),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
        assert!(Error::io("/tmp/a.st", std::io::Error::other("gone")).to_string().contains("/tmp/a.st"));
    }
}
