//! The C ABI of `docs/ABI.md`. Every export goes through [`ffi_fn!`]: the body runs inside
//! `catch_unwind`, `Ok` becomes `HN_OK`, an [`Error`] its status code, and a panic
//! `HN_ERR_PANIC`; the message is recorded in this thread's last error and, for the calls
//! TS declares `nonblocking` (they run on another thread), also on the handle.
//!
//! Handles are boxed ([`new_handle`]) and freed by `declare_own!` functions that accept NULL.
//! One file per handle type: [`model`], [`trainer`] (its train statistics in [`stats`]),
//! [`images`], [`info`] (library-level calls), [`loss`].
//!
//! `HnImages` handles are `Arc`s ([`new_shared_handle`]) instead: each call holds its own
//! reference (the `shared` form of [`ffi_fn!`]), so a free that races with a running call drops
//! only the handle's reference and the call finishes on live data.
//!
//! Every handle made by [`new_handle`] or [`new_shared_handle`] counts as live until its
//! `declare_own!` free function runs: `hn_live_handles` reports the count (leak checks).

// Each export documents its pointer contract (ownership, nullability, lifetime) in its doc
// comment, in rure.h / wasmtime.h wording, rather than in a `# Safety` section.
#![allow(clippy::missing_safety_doc)]

pub mod images;
pub mod info;
pub mod loss;
pub mod model;
pub mod stats;
pub mod trainer;

use crate::error::{status, Error, Result};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Version of this ABI; `ts/native/ffi.ts` refuses a library with another. Bump it whenever a
/// signature changes.
pub const ABI_VERSION: u32 = 6;

/// Handles made and not yet freed, process-wide (all handle types together).
static LIVE_HANDLES: AtomicU64 = AtomicU64::new(0);

/// How many handles are live: made by [`new_handle`] / [`new_shared_handle`] and not yet passed
/// to their free function. An `Arc` handle counts once however many calls hold references.
pub fn live_handles() -> u64 {
    LIVE_HANDLES.load(Ordering::SeqCst)
}

/// Boxes `value` into a handle the caller owns (counted live); free it with the handle type's
/// `declare_own!` function.
pub fn new_handle<T>(value: T) -> *mut T {
    LIVE_HANDLES.fetch_add(1, Ordering::SeqCst);
    Box::into_raw(Box::new(value))
}

/// Makes an `Arc` handle the caller owns (counted live); free it with the handle type's
/// `declare_own!(shared ..)` function. Calls take their own references with [`retain`].
pub fn new_shared_handle<T>(value: T) -> *mut T {
    LIVE_HANDLES.fetch_add(1, Ordering::SeqCst);
    Arc::into_raw(Arc::new(value)).cast_mut()
}

/// Counts one handle as freed (the `declare_own!` functions call it once per non-NULL free,
/// also when the destructor panics: the handle is gone either way).
#[doc(hidden)]
pub fn handle_freed() {
    // never below zero, even if a caller frees a handle this library did not count
    let _ = LIVE_HANDLES.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A handle's own last-error message (the error channel of its `nonblocking` calls).
#[derive(Debug, Default)]
pub struct ErrorSlot(Mutex<String>);

impl ErrorSlot {
    /// Replaces the message.
    pub fn set(&self, msg: &str) {
        let mut s = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.clear();
        s.push_str(msg);
    }

    /// A copy of the message (empty if no call on this handle has failed).
    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Handle types that carry an [`ErrorSlot`].
pub trait HasErrorSlot {
    /// The handle's slot.
    fn error_slot(&self) -> &ErrorSlot;
}

/// The slot of a handle pointer, if it is non-null.
///
/// # Safety
/// `ptr` must be NULL or a live handle.
pub unsafe fn slot_of<'a, T: HasErrorSlot + 'a>(ptr: *const T) -> Option<&'a ErrorSlot> {
    // SAFETY: per the contract, non-null means live.
    unsafe { ptr.as_ref() }.map(HasErrorSlot::error_slot)
}

/// This thread's last error message.
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().clone())
}

fn record(slot: Option<&ErrorSlot>, msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(msg);
    });
    if let Some(slot) = slot {
        slot.set(msg);
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs `body` as an export: one-time runtime set-up, then `catch_unwind`; returns the
/// status code and records the message of a failure (thread-local, and `slot` if given).
pub fn guard<F: FnOnce() -> Result<()>>(slot: Option<&ErrorSlot>, body: F) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        crate::runtime::init();
        body()
    }));
    match outcome {
        Ok(Ok(())) => status::HN_OK,
        Ok(Err(e)) => {
            record(slot, &e.to_string());
            e.code()
        }
        Err(payload) => {
            record(slot, &format!("panic: {}", panic_text(payload.as_ref())));
            status::HN_ERR_PANIC
        }
    }
}

/// Defines an `extern "C"` export returning an `i32` status whose body is a
/// `Result<()>` block run through [`guard`]. With `on <handle>`, a failure is also recorded on
/// that handle argument (for `nonblocking` calls). With `shared <handle>` (an `Arc` handle), the
/// call also holds a reference to the handle until it returns. With `error_out(buf, cap, len)`,
/// the message of a failure is also copied into that out-parameter (for `nonblocking` calls
/// that have no handle yet).
#[macro_export]
macro_rules! ffi_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) on $h:ident $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> i32 {
            // SAFETY: the handle argument is NULL or live, per the export's contract.
            let slot = unsafe { $crate::ffi::slot_of($h) };
            $crate::ffi::guard(slot, move || -> $crate::error::Result<()> { $body })
        }
    };
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) shared $h:ident $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> i32 {
            // SAFETY: the handle argument is NULL or a live `Arc::into_raw` handle, per the
            // export's contract. The reference taken here lives until the status is recorded.
            let held = unsafe { $crate::ffi::retain($h) };
            let slot = held.as_deref().map($crate::ffi::HasErrorSlot::error_slot);
            $crate::ffi::guard(slot, move || -> $crate::error::Result<()> { $body })
        }
    };
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) error_out($buf:ident, $cap:ident, $len:ident) $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> i32 {
            let code = $crate::ffi::guard(None, move || -> $crate::error::Result<()> { $body });
            let msg = if code == $crate::error::status::HN_OK { String::new() } else { $crate::ffi::last_error() };
            // SAFETY: `$buf`/`$len` are NULL or writable, per the export's contract.
            unsafe { $crate::ffi::write_error_out(&msg, $buf, $cap, $len) };
            code
        }
    };
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> i32 {
            $crate::ffi::guard(None, move || -> $crate::error::Result<()> { $body })
        }
    };
}

/// Defines `fn $name(ptr: *mut $ty)` that frees a handle and counts it as no longer live; NULL
/// is a no-op. The plain form frees a [`new_handle`] box; the `shared` form drops the handle's
/// own reference to a [`new_shared_handle`] `Arc` (a call still running keeps the value alive
/// until it returns).
#[macro_export]
macro_rules! declare_own {
    ($(#[$m:meta])* $name:ident, $ty:ty) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(ptr: *mut $ty) {
            if !ptr.is_null() {
                // A destructor panic must not cross the boundary; there is no status to report it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: `ptr` came from `new_handle` (Box::into_raw) in the matching
                    // constructor, and the caller frees it at most once.
                    drop(unsafe { Box::from_raw(ptr) });
                }));
                $crate::ffi::handle_freed();
            }
        }
    };
    ($(#[$m:meta])* shared $name:ident, $ty:ty) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(ptr: *mut $ty) {
            if !ptr.is_null() {
                // A destructor panic must not cross the boundary; there is no status to report it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: `ptr` came from `new_shared_handle` (Arc::into_raw) in a
                    // constructor, and the caller frees it at most once.
                    drop(unsafe { std::sync::Arc::from_raw(ptr.cast_const()) });
                }));
                $crate::ffi::handle_freed();
            }
        }
    };
}

/// A new reference to an `Arc` handle, or `None` for NULL.
///
/// # Safety
/// `ptr` must be NULL or come from `Arc::into_raw` with at least one reference still alive.
pub unsafe fn retain<T>(ptr: *const T) -> Option<Arc<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per the contract, the Arc is alive, so its count may be incremented and the new
    // reference taken over.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Copies `msg` into the error out-parameter `(buf, cap, len)`: at most `cap` bytes, cut at a
/// UTF-8 character boundary; `*len` gets the bytes written. NULL `buf` or `len` skips it.
///
/// # Safety
/// `buf` must be NULL or point to `cap` writable bytes; `len` NULL or writable.
pub unsafe fn write_error_out(msg: &str, buf: *mut u8, cap: usize, len: *mut usize) {
    let mut n = msg.len().min(if buf.is_null() { 0 } else { cap });
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    if n > 0 {
        // SAFETY: per the contract, `buf` has `cap >= n` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), buf, n) };
    }
    // SAFETY: per the contract.
    if let Some(len) = unsafe { len.as_mut() } {
        *len = n;
    }
}

// ---- argument helpers (all return HN_ERR_INVALID_ARG on a bad pointer) -----------------------

/// Borrows a handle.
///
/// # Safety
/// `ptr` must be NULL or a live handle.
pub unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: per the contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Borrows `len` input values; NULL is allowed only when `len` is 0.
///
/// # Safety
/// A non-null `ptr` must point to `len` readable values.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: per the contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` output values; NULL is allowed only when `len` is 0.
///
/// # Safety
/// A non-null `ptr` must point to `len` writable values.
pub unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Borrows one output value.
///
/// # Safety
/// `ptr` must be NULL or writable.
pub unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: per the contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Reads a UTF-8 string argument `(ptr, len)`.
///
/// # Safety
/// As [`slice`].
pub unsafe fn str_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str> {
    // SAFETY: per the contract.
    let bytes = unsafe { slice(ptr, len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| Error::invalid(format!("{what} is not UTF-8: {e}")))
}

/// Writes `s` to `(buf, cap)` and its length to `out_len`; `HN_ERR_BUFFER_TOO_SMALL` (with
/// `out_len` set) if `cap < s.len()`. No NUL terminator is written.
///
/// # Safety
/// `buf` must be NULL or point to `cap` writable bytes; `out_len` NULL or writable.
pub unsafe fn write_str(s: &str, buf: *mut u8, cap: usize, out_len: *mut usize) -> Result<()> {
    // SAFETY: per the contract.
    let out_len = unsafe { out(out_len, "out_len") }?;
    *out_len = s.len();
    if cap < s.len() {
        return Err(Error::BufferTooSmall(s.len()));
    }
    // SAFETY: per the contract.
    let dst = unsafe { slice_mut(buf, s.len(), "buf") }?;
    dst.copy_from_slice(s.as_bytes());
    Ok(())
}

/// Builds a float32 `[n, c, h, w]` tensor from `(x, x_len, shape)`, checking the pointers,
/// `x_len == n*c*h*w` and that every value is finite.
///
/// # Safety
/// `shape` must be NULL or point to 4 `i64`; `x` NULL or `x_len` floats.
pub unsafe fn input_batch(x: *const f32, x_len: usize, shape: *const i64) -> Result<tch::Tensor> {
    // SAFETY: per the contract.
    let shape = unsafe { slice(shape, 4, "shape") }?;
    if shape.iter().any(|&d| d < 0) {
        return Err(Error::invalid(format!("shape {shape:?} has a negative dimension")));
    }
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d as usize)).ok_or_else(|| Error::invalid("shape overflows"))?;
    if numel != x_len {
        return Err(Error::invalid(format!("x_len is {x_len} but shape {shape:?} needs {numel} values")));
    }
    if numel == 0 {
        return Err(Error::invalid(format!("shape {shape:?} is empty; batch size and dimensions must be >= 1")));
    }
    // SAFETY: per the contract.
    let data = unsafe { slice(x, x_len, "x") }?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("input x contains NaN or Inf (first at index {i})")));
    }
    Ok(tch::Tensor::f_from_slice(data)?.f_view(shape)?)
}

/// Copies a float32 tensor into `(out, out_len)`, which must have exactly its element count.
///
/// # Safety
/// `out` must be NULL or point to `out_len` writable floats.
pub unsafe fn write_tensor(t: &tch::Tensor, out: *mut f32, out_len: usize, what: &str) -> Result<()> {
    let numel = t.numel();
    if out_len != numel {
        return Err(Error::invalid(format!("{what} length is {out_len}, needs {numel} ({:?})", t.size())));
    }
    // SAFETY: per the contract.
    let dst = unsafe { slice_mut(out, out_len, what) }?;
    // A CUDA tensor comes to the host first (copy_data reads host memory).
    let host = if t.device() == tch::Device::Cpu { t.shallow_clone() } else { t.f_to_device(tch::Device::Cpu)? };
    host.f_to_kind(tch::Kind::Float)?.f_contiguous()?.f_copy_data(dst, numel)?;
    Ok(())
}

#[cfg(test)]
mod tests;
