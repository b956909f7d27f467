//! libhybridnet: the native core of the HybridNet training pipeline. The seed's CNN on
//! libtorch (via `tch`), hand-written optimizers with savable state, native losses,
//! safetensors checkpoints, CUDA discovery, and the C ABI of `docs/ABI.md` that Deno loads.
//!
//! Layers: [`model`] → [`train`] / [`checkpoint`] → [`ffi`] (the only `extern "C"` code);
//! [`data`] (image decode, cache, gather + augment) → [`ffi`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod cuda;
pub mod data;
pub mod error;
pub mod ffi;
pub mod model;
pub mod runtime;
pub mod train;

pub use error::{Error, Result};
