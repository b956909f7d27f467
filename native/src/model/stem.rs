//! `conv1`: GroupNorm(1, in) → Conv 7x7/2 → GroupNorm → ReLU → MaxPool 3/2 (the seed's
//! initial block; the first GroupNorm is hard-coded to one group).

use super::groups::get_groups;
use super::layers::{Conv2d, GroupNorm};
use crate::error::Result;
use tch::{nn, Tensor};

/// The initial convolution block (`conv1.{0,1,2}`).
#[derive(Debug)]
pub struct Stem {
    gn_in: GroupNorm,
    conv: Conv2d,
    gn: GroupNorm,
}

impl Stem {
    /// Builds `conv1` for `c_in` input channels and `c_out` output channels.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Result<Self> {
        Ok(Self {
            gn_in: GroupNorm::new(&(p / 0), 1, c_in)?,
            conv: Conv2d::new(&(p / 1), c_in, c_out, 7, 2, 3, false)?,
            gn: GroupNorm::new(&(p / 2), get_groups(c_out), c_out)?,
        })
    }

    /// `[N, c_in, H, W]` → `[N, c_out, H/4, W/4]` (rounded as PyTorch does).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.gn_in.forward(x)?;
        let x = self.gn.forward(&self.conv.forward(&x)?)?.f_relu()?;
        Ok(x.f_max_pool2d([3], [2], [1], [1], false)?)
    }
}
