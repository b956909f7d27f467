//! Rust side of `csrc/cuda_ops.cpp`: autocast with a device type and bfloat16 (an RAII guard
//! around the forward and the loss), the process-wide TF32 switch, and the multi-tensor
//! gradient norm / clip and fused Adam step used for CUDA parameters.

use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CStr};
use tch::{Device, Tensor};

extern "C" {
    fn hn_autocast_set(kind: i32, enabled: i32, was_enabled: *mut i32) -> *mut c_char;
    fn hn_cuda_set_tf32(on: i32) -> *mut c_char;
    fn hn_foreach_clip(grads: *const *const c_void, n: i64, max_norm: f64, out_norm: *mut *mut c_void) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn hn_fused_adam_step(
        params: *const *const c_void,
        grads: *const *const c_void,
        exp_avgs: *const *const c_void,
        exp_avg_sqs: *const *const c_void,
        steps: *const *const c_void,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        adamw: i32,
    ) -> *mut c_char;
    fn hn_fused_free_message(msg: *mut c_char);
}

/// Turns a message returned by the shim into an error (and frees it).
fn check(msg: *mut c_char, what: &str) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a malloc'd NUL-terminated string owned by us.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
    unsafe { hn_fused_free_message(msg) };
    Err(Error::Torch(tch::TchError::Torch(format!("{what}: {text}"))))
}

fn ptrs(ts: &[&Tensor]) -> Vec<*const c_void> {
    ts.iter().map(|t| t.as_ptr() as *const c_void).collect()
}

/// bfloat16 autocast on one device type while alive (`torch.autocast(device, torch.bfloat16)`);
/// dropping it restores the previous enabled flag.
#[derive(Debug)]
pub struct Autocast {
    kind: i32,
    was_enabled: i32,
}

impl Autocast {
    /// Enables bfloat16 autocast for `device`'s type (CPU or CUDA).
    pub fn bf16(device: Device) -> Result<Self> {
        let kind = i32::from(device.is_cuda());
        let mut was_enabled = 0;
        // SAFETY: `was_enabled` is a valid out-parameter.
        check(unsafe { hn_autocast_set(kind, 1, &mut was_enabled) }, "autocast")?;
        Ok(Self { kind, was_enabled })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: as in `bf16`. An error here cannot be reported from drop; the call only sets
        // thread-local flags and clears a cache, which do not throw in practice.
        let _ = check(unsafe { hn_autocast_set(self.kind, self.was_enabled, &mut ignored) }, "autocast");
    }
}

/// TF32 in cuBLAS matmuls and cuDNN convolutions, process-wide (default off).
pub fn set_tf32(on: bool) -> Result<()> {
    // SAFETY: plain flag setters.
    check(unsafe { hn_cuda_set_tf32(i32::from(on)) }, "set_tf32")
}

/// Total L2 norm of `grads` (one `_foreach_norm` pass), then with `max_norm` the in-place clip
/// by `min(1, max_norm / (norm + 1e-6))` computed on the device. Returns the norm as a 0-d
/// tensor on the gradients' device (no host sync here).
pub fn foreach_clip(grads: &[&Tensor], max_norm: Option<f64>) -> Result<Tensor> {
    let p = ptrs(grads);
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: every pointer is a live `at::Tensor*` for the call; on success `out` is a new
    // heap `at::Tensor*` whose ownership passes to the returned Tensor.
    check(unsafe { hn_foreach_clip(p.as_ptr(), p.len() as i64, max_norm.unwrap_or(0.0), &mut out) }, "foreach_clip")?;
    if out.is_null() {
        return Err(Error::State("foreach_clip returned no tensor".into()));
    }
    Ok(unsafe { Tensor::from_ptr(out as *mut _) })
}

/// Hyper-parameters of one fused Adam/AdamW call.
#[derive(Debug, Clone, Copy)]
pub struct AdamArgs {
    /// Learning rate.
    pub lr: f64,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Epsilon.
    pub eps: f64,
    /// AdamW (decoupled decay) rather than Adam.
    pub adamw: bool,
}

/// One `_fused_adam_` / `_fused_adamw_` update. All lists have the same length; `steps` holds
/// each parameter's step count after this update (float tensors on the parameters' device).
pub fn fused_adam_step(params: &[&Tensor], grads: &[&Tensor], m: &[&Tensor], v: &[&Tensor], steps: &[&Tensor], a: AdamArgs) -> Result<()> {
    let n = params.len();
    if [grads.len(), m.len(), v.len(), steps.len()].iter().any(|&l| l != n) {
        return Err(Error::State("fused_adam_step: lists of different lengths".into()));
    }
    let (p, g, m, v, s) = (ptrs(params), ptrs(grads), ptrs(m), ptrs(v), ptrs(steps));
    // SAFETY: every pointer is a live `at::Tensor*` for the duration of the call.
    let msg = unsafe {
        hn_fused_adam_step(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n as i64,
            a.lr,
            a.betas.0,
            a.betas.1,
            a.weight_decay,
            a.eps,
            i32::from(a.adamw),
        )
    };
    check(msg, "fused_adam_step")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn autocast_bf16_on_cpu_runs_matmuls_in_bf16_and_restores() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        {
            let _g = Autocast::bf16(Device::Cpu).unwrap();
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
        }
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
    }

    #[test]
    fn foreach_clip_matches_the_norm_and_scales() {
        let g1 = Tensor::from_slice(&[3f32, 0.0]);
        let g2 = Tensor::from_slice(&[4f32]);
        let norm = foreach_clip(&[&g1, &g2], Some(1.0)).unwrap();
        assert!((norm.double_value(&[]) - 5.0).abs() < 1e-6);
        assert!((g1.double_value(&[0]) - 3.0 / (5.0 + 1e-6)).abs() < 1e-6);
        assert!((g2.double_value(&[0]) - 4.0 / (5.0 + 1e-6)).abs() < 1e-6);
    }

    #[test]
    fn fused_adam_first_step_moves_by_lr_times_sign() {
        // ATen's fused Adam runs on CPU too; the first step is lr * sign(g) (as in optim.rs).
        let p = Tensor::from_slice(&[1f32, -2.0]);
        let g = Tensor::from_slice(&[0.5f32, -3.0]);
        let (m, v) = (p.zeros_like(), p.zeros_like());
        let s = Tensor::from_slice(&[1f32]).view([]);
        let args = AdamArgs { lr: 0.1, betas: (0.9, 0.999), weight_decay: 0.0, eps: 1e-8, adamw: false };
        fused_adam_step(&[&p], &[&g], &[&m], &[&v], &[&s], args).unwrap();
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6, "{got:?}");
    }
}
