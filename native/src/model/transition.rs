//! `trans1`: GroupNorm → Conv1x1 (with bias) → AvgPool 2x2, between the dense block and the
//! residual stages.

use super::groups::get_groups;
use super::layers::{Conv2d, GroupNorm};
use crate::error::Result;
use tch::{nn, Tensor};

/// The transition layer (`trans1.{0,1}`).
#[derive(Debug)]
pub struct Transition {
    gn: GroupNorm,
    conv: Conv2d,
}

impl Transition {
    /// Builds the layer under `p`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Result<Self> {
        Ok(Self { gn: GroupNorm::new(&(p / 0), get_groups(c_in), c_in)?, conv: Conv2d::new(&(p / 1), c_in, c_out, 1, 1, 0, true)? })
    }

    /// `[N, c_in, H, W]` → `[N, c_out, H/2, W/2]` (no ReLU, as in the seed).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv.forward(&self.gn.forward(x)?)?;
        Ok(x.f_avg_pool2d([2], [2], [0], false, true, None::<i64>)?)
    }
}
