//! Native losses over logits `[N, C]` and integer targets `[N]`, mean over the batch:
//! focal `mean_i(-alpha_t (1 - p_t)^gamma log p_t)` and cross-entropy (focal with gamma 0).
//! An optional class mask sets excluded classes' logits to -inf before `log_softmax`, so they
//! are left out of the softmax (their gradient is 0).

use crate::error::{Error, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

/// Which loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// `-alpha_t log p_t`.
    CrossEntropy,
    /// `-alpha_t (1 - p_t)^gamma log p_t`.
    Focal,
}

fn default_gamma() -> f64 {
    1.0
}

/// Loss configuration, as sent by `hn_trainer_set_loss` / `hn_loss_eval`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Loss kind.
    pub kind: LossKind,
    /// Focusing exponent (focal only; ignored for cross-entropy). Default 1.0 (the seed).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Optional per-class weight `alpha[C]`; the loss of sample i is scaled by `alpha[t_i]`.
    #[serde(default)]
    pub alpha: Option<Vec<f64>>,
    /// Optional per-class 0/1 mask `[C]`; classes with 0 are excluded from the softmax.
    #[serde(default)]
    pub class_mask: Option<Vec<u8>>,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self { kind: LossKind::CrossEntropy, gamma: 1.0, alpha: None, class_mask: None }
    }
}

impl LossConfig {
    /// Parses and validates JSON (`deny_unknown_fields`).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cfg: LossConfig = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("loss config: {e}")))?;
        if !cfg.gamma.is_finite() || cfg.gamma < 0.0 {
            return Err(Error::invalid(format!("loss config: gamma must be finite and >= 0, got {}", cfg.gamma)));
        }
        if let Some(alpha) = &cfg.alpha {
            if alpha.iter().any(|a| !a.is_finite()) {
                return Err(Error::invalid("loss config: alpha values must be finite"));
            }
        }
        if let Some(mask) = &cfg.class_mask {
            if mask.iter().any(|&m| m > 1) {
                return Err(Error::invalid("loss config: class_mask values must be 0 or 1"));
            }
            if !mask.contains(&1) {
                return Err(Error::invalid("loss config: class_mask excludes every class"));
            }
        }
        Ok(cfg)
    }

    /// Checks the per-class vectors against `c` classes and the targets against `[0, c)` and
    /// the mask.
    pub fn check(&self, c: usize, targets: &[i32]) -> Result<()> {
        if let Some(alpha) = &self.alpha {
            if alpha.len() != c {
                return Err(Error::invalid(format!("loss alpha has {} entries, the model has {c} classes", alpha.len())));
            }
        }
        if let Some(mask) = &self.class_mask {
            if mask.len() != c {
                return Err(Error::invalid(format!("loss class_mask has {} entries, the model has {c} classes", mask.len())));
            }
        }
        for (i, &t) in targets.iter().enumerate() {
            if t < 0 || t as usize >= c {
                return Err(Error::invalid(format!("target {t} at index {i} is outside [0, {c})")));
            }
            if let Some(mask) = &self.class_mask {
                if mask.get(t as usize) == Some(&0) {
                    return Err(Error::invalid(format!("target {t} at index {i} is a masked-out class")));
                }
            }
        }
        Ok(())
    }

    /// Scalar mean loss (differentiable w.r.t. `logits`) for `logits [N, C]` and `targets`.
    pub fn compute(&self, logits: &Tensor, targets: &[i32]) -> Result<Tensor> {
        let size = logits.size();
        let [n, c] = size.as_slice() else {
            return Err(Error::invalid(format!("logits must be [N, C], got {size:?}")));
        };
        if targets.len() != *n as usize {
            return Err(Error::invalid(format!("{} targets for a batch of {n}", targets.len())));
        }
        self.check(*c as usize, targets)?;
        let mut z = logits.shallow_clone();
        if let Some(mask) = &self.class_mask {
            let excluded: Vec<bool> = mask.iter().map(|&m| m == 0).collect();
            let excluded = Tensor::f_from_slice(&excluded)?.f_view([1, *c])?.f_to_device(logits.device())?;
            z = z.f_masked_fill(&excluded, f64::NEG_INFINITY)?;
        }
        let idx: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
        let idx = Tensor::f_from_slice(&idx)?.f_view([*n, 1])?.f_to_device(logits.device())?;
        let logp_t = z.f_log_softmax(1, Kind::Float)?.f_gather(1, &idx, false)?.f_view([*n])?;
        let mut per_sample = logp_t.f_neg()?;
        if self.kind == LossKind::Focal && self.gamma != 0.0 {
            let p_t = logp_t.f_exp()?;
            let modulating = p_t.f_neg()?.f_add_scalar(1.0)?.f_pow_tensor_scalar(self.gamma)?;
            per_sample = per_sample.f_mul(&modulating)?;
        }
        if let Some(alpha) = &self.alpha {
            let a: Vec<f32> = targets.iter().map(|&t| alpha.get(t as usize).copied().unwrap_or(1.0) as f32).collect();
            per_sample = per_sample.f_mul(&Tensor::f_from_slice(&a)?.f_to_device(logits.device())?)?;
        }
        Ok(per_sample.f_mean(Kind::Float)?)
    }

    /// Loss value and `dL/dlogits` for plain float buffers (`hn_loss_eval`).
    pub fn eval(&self, logits: &[f32], n: usize, c: usize, targets: &[i32]) -> Result<(f64, Vec<f32>)> {
        if n == 0 || c == 0 || logits.len() != n * c {
            return Err(Error::invalid(format!("logits length {} != n*c = {n}*{c}", logits.len())));
        }
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("logits contain NaN or Inf"));
        }
        let z = Tensor::f_from_slice(logits)?.f_view([n as i64, c as i64])?.f_set_requires_grad(true)?;
        let loss = self.compute(&z, targets)?;
        let grads = Tensor::f_run_backward(&[&loss], &[&z], false, false)?;
        let grad = grads.first().ok_or_else(|| Error::State("no gradient".into()))?;
        let mut out = vec![0f32; n * c];
        grad.f_copy_data(&mut out, n * c)?;
        Ok((loss.f_double_value(&[])?, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> LossConfig {
        LossConfig::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn focal_gamma_zero_equals_cross_entropy_and_matches_hand_value() {
        let logits = [0.1f32, -0.2, 0.3, 1.0, 0.0, -1.0];
        let (ce, gce) = cfg(r#"{"kind":"cross_entropy"}"#).eval(&logits, 2, 3, &[2, 0]).unwrap();
        let (f0, gf0) = cfg(r#"{"kind":"focal","gamma":0}"#).eval(&logits, 2, 3, &[2, 0]).unwrap();
        assert!((ce - f0).abs() < 1e-7);
        assert_eq!(gce, gf0);
        let lse = |z: &[f32]| z.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
        let want = ((lse(&logits[..3]) - 0.3) + (lse(&logits[3..]) - 1.0)) / 2.0;
        assert!((ce - want).abs() < 1e-6, "{ce} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let c = cfg(r#"{"kind":"focal","gamma":2.0,"alpha":[0.5,1.0,2.0]}"#);
        let logits = vec![0.3f32, -0.7, 1.1, 0.2, 0.4, -0.5];
        let targets = [1, 2];
        let (_, g) = c.eval(&logits, 2, 3, &targets).unwrap();
        let f = |z: &[f32]| -> f64 {
            let t = Tensor::from_slice(z).to_kind(Kind::Double).view([2, 3]);
            let lp = t.log_softmax(1, Kind::Double);
            let mut s = 0.0;
            for (i, &ti) in targets.iter().enumerate() {
                let l = lp.double_value(&[i as i64, ti as i64]);
                let a = [0.5, 1.0, 2.0][ti as usize];
                s += -a * (1.0 - l.exp()).powf(2.0) * l;
            }
            s / 2.0
        };
        for k in 0..6 {
            let h = 1e-3f32;
            let mut zp = logits.clone();
            zp[k] += h;
            let mut zm = logits.clone();
            zm[k] -= h;
            let fd = (f(&zp) - f(&zm)) / (2.0 * h as f64);
            assert!((fd - g[k] as f64).abs() < 1e-4, "k={k}: fd {fd} vs {}", g[k]);
        }
    }

    #[test]
    fn class_mask_excludes_classes_from_softmax() {
        let masked = cfg(r#"{"kind":"focal","gamma":1.0,"class_mask":[1,0,1]}"#);
        let (l, g) = masked.eval(&[0.5, 9.0, -0.5], 1, 3, &[0]).unwrap();
        let (l2, _) = cfg(r#"{"kind":"focal","gamma":1.0}"#).eval(&[0.5, -0.5], 1, 2, &[0]).unwrap();
        assert!((l - l2).abs() < 1e-6);
        assert_eq!(g[1], 0.0);
        assert_eq!(masked.eval(&[0.5, 9.0, -0.5], 1, 3, &[1]).unwrap_err().code(), 1);
    }

    #[test]
    fn bad_configs_and_inputs_are_invalid_args() {
        for bad in [
            r#"{"kind":"hinge"}"#,
            r#"{"kind":"focal","gamma":-1}"#,
            r#"{"kind":"focal","extra":1}"#,
            r#"{"kind":"focal","class_mask":[0,0]}"#,
            "not json",
        ] {
            assert_eq!(LossConfig::from_json(bad.as_bytes()).unwrap_err().code(), 1, "{bad}");
        }
        let c = cfg(r#"{"kind":"cross_entropy","alpha":[1,1]}"#);
        assert_eq!(c.eval(&[0.0; 6], 2, 3, &[0, 1]).unwrap_err().code(), 1);
        let c = LossConfig::default();
        assert_eq!(c.eval(&[0.0; 6], 2, 3, &[0, 3]).unwrap_err().code(), 1);
        assert_eq!(c.eval(&[0.0; 6], 2, 3, &[0]).unwrap_err().code(), 1);
        assert_eq!(c.eval(&[f32::NAN; 6], 2, 3, &[0, 0]).unwrap_err().code(), 1);
        assert_eq!(c.eval(&[0.0; 5], 2, 3, &[0, 0]).unwrap_err().code(), 1);
    }
}
