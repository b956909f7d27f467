//! The head: Linear 512 → GN → ReLU → Dropout → Linear 256 → GN → ReLU → Dropout → Linear C
//! (`classifier.{0,1,4,5,8}`; the other indices are parameter-free).

use super::groups::get_groups;
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
    pub fn new(p: &nn::Path, c_in: i64, num_classes: i64) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(&(p / 0), c_in, 512)?,
            gn1: GroupNorm::new(&(p / 1), get_groups(512), 512)?,
            fc2: Linear::new(&(p / 4), 512, 256)?,
            gn2: GroupNorm::new(&(p / 5), get_groups(256), 256)?,
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
