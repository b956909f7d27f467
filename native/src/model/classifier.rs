//! The head: Linear 512 → GN → ReLU → Dropout → Linear 256 → GN → ReLU → Dropout → Linear C
//! (`classifier.{0,1,4,5,8}`; the other indices are parameter-free).

use super::groups::get_groups;
use super::kernels::Kernels;
use super::layers::{GroupNorm, Linear};
use crate::error::{Error, Result};
use tch::{nn, Tensor};

/// How the two Dropout layers behave in a forward pass.
#[derive(Debug)]
pub enum Dropout<'a> {
    /// Identity (eval mode, or `p = 0`).
    Off,
    /// PyTorch's train-mode dropout with probability `p`: `x * bernoulli(1-p) / (1-p)`,
    /// drawn from the global torch generator.
    Random(f64),
    /// Fixed 0/1 keep masks (`[N, 512]`, `[N, 256]`) scaled by `1 / (1 - p)`: lets tests
    /// replay masks recorded from PyTorch.
    Masks { p: f64, masks: [&'a Tensor; 2] },
}

impl Dropout<'_> {
    fn apply(&self, x: &Tensor, index: usize) -> Result<Tensor> {
        match self {
            Dropout::Off => Ok(x.shallow_clone()),
            Dropout::Random(p) if *p <= 0.0 => Ok(x.shallow_clone()),
            Dropout::Random(p) => Ok(x.f_dropout(*p, true)?),
            Dropout::Masks { p, masks } => {
                let mask = masks.get(index).ok_or_else(|| Error::invalid("dropout mask index"))?;
                Ok(x.f_mul(&mask.f_div_scalar(1.0 - *p)?)?)
            }
        }
    }
}

/// The classification head.
#[derive(Debug)]
pub struct Classifier {
    fc1: Linear,
    gn1: GroupNorm,
    fc2: Linear,
    gn2: GroupNorm,
    fc3: Linear,
}

impl Classifier {
    /// Builds the head for `c_in` features and `num_classes` outputs.
    pub fn new(p: &nn::Path, c_in: i64, num_classes: i64, kernels: &Kernels) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(&(p / 0), c_in, 512)?,
            gn1: GroupNorm::new(&(p / 1), get_groups(512), 512, kernels)?,
            fc2: Linear::new(&(p / 4), 512, 256)?,
            gn2: GroupNorm::new(&(p / 5), get_groups(256), 256, kernels)?,
            fc3: Linear::new(&(p / 8), 256, num_classes)?,
        })
    }

    /// `[N, c_in]` → `[N, num_classes]` logits.
    pub fn forward(&self, x: &Tensor, dropout: &Dropout) -> Result<Tensor> {
        let x = self.gn1.forward(&self.fc1.forward(x)?)?.f_relu_()?;
        let x = dropout.apply(&x, 0)?;
        let x = self.gn2.forward(&self.fc2.forward(&x)?)?.f_relu_()?;
        let x = dropout.apply(&x, 1)?;
        self.fc3.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Random train-mode dropout drops about `p` of the values and scales the others by
    /// `1 / (1 - p)` exactly as replayed masks are scaled (the recorded-mask parity test relies
    /// on the two agreeing); `p = 0` and `Off` pass values through; a missing mask is an error.
    #[test]
    fn dropout_variants_agree_on_what_a_mask_means() {
        crate::runtime::init();
        let x = (Tensor::arange(4000, tch::kind::FLOAT_CPU) * 0.37).sin() + 2.0;
        let y = Dropout::Random(0.3).apply(&x, 0).unwrap();
        let mask = y.ne(0.0).to_kind(Kind::Float);
        let kept = mask.mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.7).abs() < 0.03, "kept {kept}, want about 0.7");
        let replayed = Dropout::Masks { p: 0.3, masks: [&mask, &mask] }.apply(&x, 1).unwrap();
        assert!(y.equal(&replayed), "random dropout and the replayed mask scale differently");
        for off in [Dropout::Off, Dropout::Random(0.0)] {
            assert!(off.apply(&x, 0).unwrap().equal(&x), "{off:?} changed the values");
        }
        assert!(Dropout::Masks { p: 0.3, masks: [&mask, &mask] }.apply(&x, 2).is_err());
    }
}
