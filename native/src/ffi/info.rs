//! Library-level exports: ABI version, last error, build/runtime info, threads, seed, no-op,
//! live-handle count.

use super::{last_error, live_handles, write_str, ABI_VERSION};
use crate::error::{Error, Result};
use crate::ffi_fn;
use serde_json::json;

/// The ABI version of this library (`ABI_VERSION`). No status; never fails; thread-safe.
#[no_mangle]
pub extern "C" fn hn_abi_version() -> u32 {
    crate::runtime::init_quietly();
    ABI_VERSION
}

/// Length in bytes of this thread's last error message (0 if none). Thread-safe: each thread
/// has its own message.
#[no_mangle]
pub extern "C" fn hn_last_error_length() -> usize {
    last_error().len()
}

/// Copies up to `cap` bytes of this thread's last error message (UTF-8, no NUL) into `buf`
/// and returns the number of bytes written. `buf` may be NULL only when `cap` is 0. The
/// caller owns `buf`; it is not kept.
#[no_mangle]
pub unsafe extern "C" fn hn_last_error_message(buf: *mut u8, cap: usize) -> usize {
    let msg = last_error();
    let n = msg.len().min(cap);
    if n == 0 || buf.is_null() {
        return 0;
    }
    // SAFETY: the caller provides `cap` writable bytes at `buf`.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), buf, n) };
    n
}

/// Path of the loaded library file, from `dladdr` of one of its functions.
fn library_path() -> Option<String> {
    #[cfg(unix)]
    {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let addr = hn_abi_version as *const libc::c_void;
        // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-parameter.
        if unsafe { libc::dladdr(addr, &mut info) } != 0 && !info.dli_fname.is_null() {
            // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
            // dli_fname is the path as given to dlopen, which may be relative.
            return Some(std::fs::canonicalize(&name).map(|p| p.display().to_string()).unwrap_or(name));
        }
    }
    None
}

/// The info JSON: abi, torch version, threads, mkldnn, CUDA devices (via the driver) or the
/// reason there are none, the library path, the loaded libtorch (its folder, whether it is a CUDA
/// build, whether its CUDA part is loaded) and the CUDA devices a model can use, or why none.
pub fn info_json() -> String {
    use crate::cuda::torch_cuda;
    let (devices, cuda_error) = crate::cuda::list_devices();
    let lib = torch_cuda::torch_lib();
    let (usable, reason) = torch_cuda::usable_devices();
    json!({
        "abi": ABI_VERSION,
        "torch": env!("HN_TORCH_VERSION"),
        "threads": tch::get_num_threads(),
        "mkldnn": tch::utils::has_mkldnn(),
        "cuda_devices": devices,
        "cuda_error": cuda_error,
        "library_path": library_path(),
        "torch_lib": {
            "lib_dir": lib.lib_dir.map(|d| d.display().to_string()),
            "cuda_build": lib.cuda_build,
            "cuda_loaded": torch_cuda::load().is_ok(),
        },
        "cuda_usable": {"devices": usable, "reason": reason},
    })
    .to_string()
}

ffi_fn! {
    /// Writes the info JSON (`{"abi":6,"torch":"2.11.0","threads":..,"mkldnn":..,
    /// "cuda_devices":[..],"cuda_error":null|"..","library_path":"..","torch_lib":{"lib_dir":..,
    /// "cuda_build":b,"cuda_loaded":b},"cuda_usable":{"devices":[0,..],"reason":null|".."}}`) to
    /// `buf`.
    /// `out_len` (non-null) receives the needed size; `HN_ERR_BUFFER_TOO_SMALL` if `cap` is
    /// smaller. Thread-safe. The caller owns both buffers.
    fn hn_info_json(buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        unsafe { write_str(&info_json(), buf, cap, out_len) }
    }
}

ffi_fn! {
    /// Sets the number of torch intra-op threads (`n >= 1`). Process-wide.
    fn hn_set_num_threads(n: i32) {
        if n < 1 {
            return Err(Error::invalid(format!("threads must be >= 1, got {n}")));
        }
        tch::set_num_threads(n);
        Ok(())
    }
}

ffi_fn! {
    /// TF32 in cuBLAS matmuls and cuDNN convolutions on (`on != 0`) or off (the default),
    /// process-wide, for every model; no effect on the CPU. Thread-safe.
    fn hn_set_tf32(on: i32) {
        crate::cuda::ops::set_tf32(on != 0)
    }
}

ffi_fn! {
    /// Seeds torch's global generator (weight init, dropout). Process-wide.
    fn hn_manual_seed(seed: u64) {
        tch::manual_seed(seed as i64);
        Ok(())
    }
}

ffi_fn! {
    /// Does nothing, through the guard (measures the FFI overhead). Thread-safe.
    fn hn_noop() {
        Ok(())
    }
}

/// How many native handles are live in this process: models, trainers and image sets made by
/// their constructors (`hn_model_new`, `hn_trainer_new`, `hn_images_build`, `hn_images_from_u8`)
/// and not yet passed to their free function (`hn_model_free`, `hn_trainer_free`,
/// `hn_images_free`). An image set counts once until its free, whatever calls still hold it; a
/// model kept alive by a trainer after `hn_model_free` no longer counts. No status; never fails;
/// thread-safe (a snapshot: other threads may make or free handles at the same time).
#[no_mangle]
pub extern "C" fn hn_live_handles() -> u64 {
    live_handles()
}

/// Parses JSON config bytes into `T` (`deny_unknown_fields` on `T`); errors are
/// `HN_ERR_INVALID_ARG` naming `what`.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("{what}: {e}")))
}
