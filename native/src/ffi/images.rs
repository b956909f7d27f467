//! `HnImages` exports: build from files (NB, with an error out-parameter), wrap u8 pixels,
//! info, gather + augment (NB), raw u8 gather, free, last error; and the stateless
//! `hn_u8_to_f32_ops`.
//!
//! An `HnImages` is read-only after it is built, so its calls run concurrently with each other
//! and with model calls (it has no mutex, and does not share the model's). The handle is an
//! `Arc` (`Arc::into_raw`); each call holds its own reference while it runs.

use super::info::parse_json;
use super::{out, slice, slice_mut, write_str, ErrorSlot, HasErrorSlot};
use crate::data::{self, gather, BuildConfig, ImageSet};
use crate::error::{Error, Result};
use crate::{declare_own, ffi_fn};

/// Opaque image-set handle: decoded u8 NCHW images and the handle's last error.
#[derive(Debug)]
pub struct HnImages {
    /// The images (never mutated after the handle is made).
    pub set: ImageSet,
    last_error: ErrorSlot,
}

impl HasErrorSlot for HnImages {
    fn error_slot(&self) -> &ErrorSlot {
        &self.last_error
    }
}

impl HnImages {
    fn into_raw(set: ImageSet) -> *mut HnImages {
        super::new_shared_handle(HnImages { set, last_error: ErrorSlot::default() })
    }
}

/// Borrows the images of a retained handle (`held` is the reference taken by `shared`).
///
/// # Safety
/// `h` must be NULL or a live handle.
unsafe fn images<'a>(h: *const HnImages) -> Result<&'a ImageSet> {
    // SAFETY: per the contract; the `shared` export form holds a reference for the call.
    unsafe { super::handle(h, "images") }.map(|h| &h.set)
}

ffi_fn! {
    /// Decodes the image files of the JSON config `(cfg, cfg_len)`
    /// (`{"files":[..],"height","width","channels":1|3,"cache_path":".."|null,
    /// "on_bad_image":"error"|"skip"}`, all required, unknown fields rejected) in parallel into
    /// u8 NCHW `channels × height × width` images, or reads them from `cache_path` when its key
    /// (files in order with size and mtime, sizes, format version) matches, else writes it there
    /// atomically. NB: may run on another thread, so a failure's message is also copied into
    /// the error out-parameter: up to `err_cap` bytes of UTF-8 into `err_buf`, `*err_len` = bytes
    /// written (0 on success); `err_buf`/`err_len` may be NULL. On success `*out` (non-null)
    /// holds a handle the caller owns and frees with `hn_images_free`; on error it is NULL.
    /// Errors: `HN_ERR_INVALID_ARG` (config), `HN_ERR_IO` naming the file (unreadable or
    /// undecodable image with `"error"`, unwritable cache). `cfg` is copied.
    fn hn_images_build(
        cfg: *const u8,
        cfg_len: usize,
        out_handle: *mut *mut HnImages,
        err_buf: *mut u8,
        err_cap: usize,
        err_len: *mut usize,
    ) error_out(err_buf, err_cap, err_len) {
        // SAFETY: per this export's contract.
        let out_handle = unsafe { out(out_handle, "out") }?;
        *out_handle = std::ptr::null_mut();
        let bytes = unsafe { slice(cfg, cfg_len, "cfg") }?;
        let cfg: BuildConfig = parse_json(bytes, "images config")?;
        let set = data::build(&cfg)?;
        *out_handle = HnImages::into_raw(set);
        Ok(())
    }
}

ffi_fn! {
    /// Makes an image set from `len == n*c*h*w` u8 NCHW values at `data` (all dimensions >= 1);
    /// `data` is copied. `*out` (non-null) receives a handle the caller owns and frees with
    /// `hn_images_free`; NULL on error.
    fn hn_images_from_u8(data: *const u8, len: usize, n: u32, c: u32, h: u32, w: u32, out_handle: *mut *mut HnImages) {
        // SAFETY: per this export's contract.
        let out_handle = unsafe { out(out_handle, "out") }?;
        *out_handle = std::ptr::null_mut();
        let src = unsafe { slice(data, len, "data") }?;
        let set = ImageSet::from_u8(src.to_vec(), n as usize, c as usize, h as usize, w as usize)?;
        *out_handle = HnImages::into_raw(set);
        Ok(())
    }
}

declare_own! {
    /// Frees an image-set handle. NULL is a no-op; call at most once per handle. A call on the
    /// handle that is already running keeps the images alive until it returns (it holds its own
    /// reference), but no call may start after the free.
    shared hn_images_free, HnImages
}

ffi_fn! {
    /// Writes `{"count","channels","height","width","from_cache","decode_seconds","cache_error",
    /// "skipped":[{"index","path","error"}..],"kept":[..]}` (`index`/`kept` are positions in
    /// the input file list) with the `HN_ERR_BUFFER_TOO_SMALL` protocol. Thread-safe.
    fn hn_images_info(h: *const HnImages, buf: *mut u8, cap: usize, out_len: *mut usize) shared h {
        // SAFETY: per this export's contract.
        let set = unsafe { images(h) }?;
        unsafe { write_str(&set.info_json(), buf, cap, out_len) }
    }
}

ffi_fn! {
    /// Gathers images `indices[0..n]` (each in `[0, count)`), applies the ops JSON
    /// `(ops, ops_len)` in order (docs/ABI.md, augment ops) with per-sample generators seeded by
    /// `(seed, position)`, and writes float32 NCHW (`/255`, then the ops) to `out`, whose
    /// `out_len` must be `n*c*h*w`. NB: errors also go to `hn_images_last_error`. Inputs are
    /// copied or only read during the call; `out` is written before return. Thread-safe:
    /// concurrent gathers and model calls are fine.
    fn hn_images_gather(
        h: *const HnImages,
        indices: *const i32,
        n: usize,
        ops: *const u8,
        ops_len: usize,
        seed: u64,
        out_values: *mut f32,
        out_len: usize,
    ) shared h {
        // SAFETY: per this export's contract.
        let set = unsafe { images(h) }?;
        let indices = unsafe { slice(indices, n, "indices") }?;
        let ops = unsafe { slice(ops, ops_len, "ops") }?;
        let dst = unsafe { slice_mut(out_values, out_len, "out") }?;
        gather::gather(set, indices, ops, seed, dst)
    }
}

ffi_fn! {
    /// Copies the raw u8 pixels of images `indices[0..n]` to `out` (`out_len == n*c*h*w`).
    /// Thread-safe.
    fn hn_images_gather_u8(h: *const HnImages, indices: *const i32, n: usize, out_values: *mut u8, out_len: usize) shared h {
        // SAFETY: per this export's contract.
        let set = unsafe { images(h) }?;
        let indices = unsafe { slice(indices, n, "indices") }?;
        let dst = unsafe { slice_mut(out_values, out_len, "out") }?;
        gather::gather_u8(set, indices, dst)
    }
}

ffi_fn! {
    /// Writes the message of the last failed call on this handle (empty if none), with the
    /// `HN_ERR_BUFFER_TOO_SMALL` protocol. Thread-safe.
    fn hn_images_last_error(h: *const HnImages, buf: *mut u8, cap: usize, out_len: *mut usize) shared h {
        // SAFETY: per this export's contract.
        let imgs = unsafe { super::handle(h, "images") }?;
        unsafe { write_str(&imgs.last_error.get(), buf, cap, out_len) }
    }
}

ffi_fn! {
    /// Applies the ops of `hn_images_gather` to a u8 NCHW batch `data` (`len == n*c*h*w`,
    /// copied) and writes float32 to `out` (`out_len == n*c*h*w`): the same result as gathering
    /// the same pixels with the same ops and seed. Stateless; thread-safe.
    fn hn_u8_to_f32_ops(
        data: *const u8,
        len: usize,
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        ops: *const u8,
        ops_len: usize,
        seed: u64,
        out_values: *mut f32,
        out_len: usize,
    ) {
        // SAFETY: per this export's contract.
        let src = unsafe { slice(data, len, "data") }?;
        let ops = unsafe { slice(ops, ops_len, "ops") }?;
        let dst = unsafe { slice_mut(out_values, out_len, "out") }?;
        let shape = [n as usize, c as usize, h as usize, w as usize];
        if shape.contains(&0) {
            return Err(Error::invalid(format!("shape {shape:?} has a zero dimension; all must be >= 1")));
        }
        gather::u8_to_f32_ops(src, shape, ops, seed, dst)
    }
}
