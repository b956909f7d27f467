//! The stateless loss export used by the TS/native twin tests.

use super::{out, slice, slice_mut};
use crate::error::Error;
use crate::ffi_fn;
use crate::train::LossConfig;

ffi_fn! {
    /// Evaluates the loss `cfg` (as `hn_trainer_set_loss`) on `logits` (`n*c` finite floats,
    /// row-major `[n, c]`) and `targets` (`n` values in `[0, c)`): writes the mean loss to
    /// `*out_loss` and dL/dlogits (`n*c` floats) to `out_grad`. All pointers non-null; inputs
    /// are copied. Thread-safe.
    fn hn_loss_eval(cfg: *const u8, cfg_len: usize, logits: *const f32, n: usize, c: usize, targets: *const i32, out_loss: *mut f64, out_grad: *mut f32) {
        // SAFETY: per this export's contract.
        let loss = LossConfig::from_json(unsafe { slice(cfg, cfg_len, "cfg") }?)?;
        let numel = n.checked_mul(c).ok_or_else(|| Error::invalid("n*c overflows"))?;
        if n == 0 || c == 0 {
            return Err(Error::invalid(format!("n and c must be >= 1, got n={n} c={c}")));
        }
        let z = unsafe { slice(logits, numel, "logits") }?;
        let t = unsafe { slice(targets, n, "targets") }?;
        let out_loss = unsafe { out(out_loss, "out_loss") }?;
        let out_grad = unsafe { slice_mut(out_grad, numel, "out_grad") }?;
        let (value, grad) = loss.eval(z, n, c, t)?;
        *out_loss = value;
        out_grad.copy_from_slice(&grad);
        Ok(())
    }
}
