//! Gradient utilities: total L2 norm with optional clipping (`torch.nn.utils.clip_grad_norm_`)
//! and zeroing.

use crate::error::Result;
use tch::{Kind, Tensor};

/// Total L2 norm of all defined gradients (before clipping), as in `clip_grad_norm_`: the
/// norm of the per-tensor norms. If `max_norm` is given and the norm exceeds it, every
/// gradient is scaled by `max_norm / (norm + 1e-6)`.
pub fn clip_grad_norm(params: &[(String, Tensor)], max_norm: Option<f64>) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut grads = Vec::new();
    for (_, p) in params {
        let g = p.f_grad()?;
        if g.defined() {
            grads.push(g);
        }
    }
    if grads.is_empty() {
        return Ok(0.0);
    }
    let norms = grads.iter().map(|g| g.f_norm()).collect::<Result<Vec<_>, _>>()?;
    let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
    if let Some(max) = max_norm {
        let coef = max / (total + 1e-6);
        if coef < 1.0 {
            for g in &mut grads {
                let _ = g.f_mul_scalar_(coef)?;
            }
        }
    }
    Ok(total)
}

/// Zeroes every defined gradient in place.
pub fn zero_grad(params: &[(String, Tensor)]) -> Result<()> {
    for (_, p) in params {
        let mut g = p.f_grad()?;
        if g.defined() {
            let _ = g.f_detach_()?;
            let _ = g.f_zero_()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_and_clipping_follow_pytorch() {
        let a = Tensor::from_slice(&[1f32, 2.]).set_requires_grad(true);
        let b = Tensor::from_slice(&[2f32]).set_requires_grad(true);
        (a.shallow_clone() * Tensor::from_slice(&[3f32, 0.])).sum(Kind::Float).backward();
        (b.shallow_clone() * 4.0).sum(Kind::Float).backward();
        let params = vec![
            ("a".to_string(), a.shallow_clone()),
            ("b".to_string(), b.shallow_clone()),
            ("none".to_string(), Tensor::from_slice(&[1f32]).set_requires_grad(true)),
        ];
        let n = clip_grad_norm(&params, Some(1.0)).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        let after = clip_grad_norm(&params, None).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        zero_grad(&params).unwrap();
        assert_eq!(clip_grad_norm(&params, None).unwrap(), 0.0);
    }
}
