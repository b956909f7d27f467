//! GroupNorm, and GroupNorm followed by ReLU, as one C++ autograd node (`csrc/group_norm.cpp`,
//! compiled by `build.rs` against libtorch's headers) where ATen's separate ops cost extra passes
//! over memory; gradients flow through it like through the ops it replaces. The
//! [`GroupNorm`](super::layers::GroupNorm) layer calls it when its model's
//! [`fused_group_norm`](super::kernels::KernelOptions::fused_group_norm) option is on.

use super::layout::is_channels_last;
use crate::error::{Error, Result};
use std::ffi::{c_char, c_void, CStr};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn hn_fused_group_norm(
        x: *const c_void,
        weight: *const c_void,
        bias: *const c_void,
        groups: i64,
        eps: f64,
        relu: i32,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn hn_fused_free_message(msg: *mut c_char);
}

/// Whether [`forward`] and [`forward_relu`] take `x`: a 4-D float CPU tensor, contiguous
/// or channels-last, whose channels split evenly into `groups`, with `[C]` float parameters.
pub fn supports(x: &Tensor, weight: &Tensor, bias: &Tensor, groups: i64) -> bool {
    let size = x.size();
    let c = size.get(1).copied().unwrap_or(0);
    let param_ok = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.size() == [c];
    size.len() == 4
        && groups > 0
        && c % groups == 0
        && x.numel() > 0
        && x.device() == Device::Cpu
        && x.kind() == Kind::Float
        && (x.is_contiguous() || is_channels_last(x))
        && param_ok(weight)
        && param_ok(bias)
}

/// `relu(group_norm(x, groups, weight, bias, eps))` in one pass over each (sample, group) slice
/// (and one for its backward), in `x`'s layout; the output has that layout too. The caller
/// checks [`supports`].
pub fn forward_relu(x: &Tensor, weight: &Tensor, bias: &Tensor, groups: i64, eps: f64) -> Result<Tensor> {
    fused_group_norm(x, weight, bias, groups, eps, true)
}

/// `group_norm(x, groups, weight, bias, eps)` by the same kernels as [`forward_relu`] (it
/// serves channels-last input, where ATen's GroupNorm backward is slow; see docs/perf-log.md).
pub fn forward(x: &Tensor, weight: &Tensor, bias: &Tensor, groups: i64, eps: f64) -> Result<Tensor> {
    fused_group_norm(x, weight, bias, groups, eps, false)
}

fn fused_group_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, groups: i64, eps: f64, relu: bool) -> Result<Tensor> {
    if !supports(x, weight, bias, groups) {
        return Err(Error::invalid(format!("fused group_norm: unsupported input {:?} {:?} with {groups} groups", x.size(), x.kind())));
    }
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the three pointers are live `at::Tensor*` owned by tch for the duration of the
    // call; on success `out` receives a new heap `at::Tensor*` whose ownership passes to the
    // returned Tensor; on failure the message is a malloc'd C string freed here.
    unsafe {
        let msg = hn_fused_group_norm(
            x.as_ptr() as *const c_void,
            weight.as_ptr() as *const c_void,
            bias.as_ptr() as *const c_void,
            groups,
            eps,
            i32::from(relu),
            &mut out,
        );
        if !msg.is_null() {
            let text = CStr::from_ptr(msg).to_string_lossy().into_owned();
            hn_fused_free_message(msg);
            return Err(Error::Torch(tch::TchError::Torch(format!("fused group_norm: {text}"))));
        }
        if out.is_null() {
            return Err(Error::State("fused group_norm returned no tensor".into()));
        }
        Ok(Tensor::from_ptr(out as *mut _))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(1e-12);
        (a - b).abs().max().double_value(&[]) / scale
    }

    /// ‖a − b‖₂ / ‖b‖₂, for gradients: an input whose normalised value is within rounding of 0
    /// may be rectified in one formulation and not the other, and then that element's gradient
    /// differs by its whole upstream value while the tensor agrees to float precision.
    fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-12)
    }

    /// Values and gradients (input, weight, bias) against ATen's group_norm (+ relu), on shapes
    /// with odd pixel counts, one channel per group and whole-tensor groups, and inputs with a
    /// large mean (where a one-pass variance would lose precision), in NCHW and channels-last.
    #[test]
    fn matches_group_norm_then_relu() {
        crate::runtime::init();
        let randn = crate::model::tests::det_randn;
        let cases: [([i64; 4], i64, f64); 5] = [
            ([2, 64, 8, 8], 8, 0.0),
            ([3, 96, 5, 7], 16, 0.0),
            ([2, 8, 3, 3], 8, 0.0),
            ([4, 32, 16, 16], 1, 0.0),
            ([2, 16, 9, 9], 4, 40.0),
        ];
        for (i, (shape, groups, offset)) in cases.into_iter().enumerate() {
            let c = shape[1];
            let x = (randn(&shape, 10 * i as u64 + 1) * 2.0 + offset).set_requires_grad(true);
            let x_cl = crate::model::layout::to_channels_last(&x).unwrap();
            assert!(is_channels_last(&x_cl), "case {i}: the channels-last view");
            let w = (randn(&[c], 10 * i as u64 + 2) * 0.5 + 1.0).set_requires_grad(true);
            let b = (randn(&[c], 10 * i as u64 + 3) * 0.5).set_requires_grad(true);
            let up = randn(&shape, 10 * i as u64 + 4);
            for relu in [true, false] {
                // 0: ATen, 1: fused on NCHW, 2: fused on channels-last.
                let run = |variant: u8| {
                    let fused = |x: &Tensor| if relu { forward_relu(x, &w, &b, groups, 1e-5) } else { forward(x, &w, &b, groups, 1e-5) };
                    let y = if variant == 2 {
                        let y = fused(&x_cl).unwrap();
                        assert!(is_channels_last(&y) || y.is_contiguous(), "case {i}: output layout");
                        y
                    } else if variant == 1 {
                        fused(&x).unwrap()
                    } else {
                        let y = x.group_norm(groups, Some(&w), Some(&b), 1e-5, false);
                        if relu {
                            y.relu()
                        } else {
                            y
                        }
                    };
                    let grads = Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &[&x, &w, &b], false, false);
                    let mut out = vec![y.detach()];
                    out.extend(grads);
                    out
                };
                let reference = run(0);
                for variant in [1, 2] {
                    let ours = run(variant);
                    for (what, (a, r)) in ["output", "d x", "d weight", "d bias"].iter().zip(ours.iter().zip(&reference)) {
                        let d = if *what == "output" { rel(a, r) } else { rel_l2(a, r) };
                        assert!(d < 2e-5, "case {i} {shape:?}/{groups} relu {relu} variant {variant} {what}: {d}");
                    }
                }
                let _g = tch::no_grad_guard();
                for input in [&x, &x_cl] {
                    let y = if relu { forward_relu(input, &w, &b, groups, 1e-5) } else { forward(input, &w, &b, groups, 1e-5) };
                    let d = rel(&y.unwrap(), &reference[0]);
                    assert!(d < 2e-5, "case {i} relu {relu} no-grad output: {d}");
                }
            }
        }
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        let w = Tensor::ones([6], tch::kind::FLOAT_CPU);
        let b = Tensor::zeros([6], tch::kind::FLOAT_CPU);
        let x = Tensor::randn([2, 6, 4, 4], tch::kind::FLOAT_CPU);
        assert!(forward_relu(&x, &w, &b, 4, 1e-5).is_err(), "6 channels in 4 groups");
        assert!(forward_relu(&x.transpose(2, 3), &w, &b, 3, 1e-5).is_err(), "neither contiguous nor channels-last");
        assert!(forward_relu(&x.to_kind(Kind::Double), &w, &b, 3, 1e-5).is_err(), "double");
        assert!(forward_relu(&x.view([2, 6, 16]), &w, &b, 3, 1e-5).is_err(), "3-D");
        assert!(forward_relu(&x, &w, &b, 3, 1e-5).is_ok());
    }
}
