//! `ResidualBlock`: Conv3x3(stride) → GN → ReLU → Conv3x3 → GN, plus a shortcut (identity, or
//! Conv1x1(stride) → GN when the stride or channel count changes), then ReLU.

use super::groups::get_groups;
use super::kernels::Kernels;
use super::layers::{Conv2d, GroupNorm};
use crate::error::Result;
use tch::{nn, Tensor};

/// A basic residual block (`res_blocks.{i}`).
#[derive(Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    gn1: GroupNorm,
    conv2: Conv2d,
    gn2: GroupNorm,
    /// `shortcut.0` (conv) and `shortcut.1` (GN); `None` is the identity.
    shortcut: Option<(Conv2d, GroupNorm)>,
}

impl ResidualBlock {
    /// Builds the block under `p`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, kernels: &Kernels) -> Result<Self> {
        let g = get_groups(c_out);
        // Creation order is state_dict order: conv1, gn1, conv2, gn2, shortcut.
        let conv1 = Conv2d::new(&(p / "conv1"), c_in, c_out, 3, stride, 1, false, kernels)?;
        let gn1 = GroupNorm::new(&(p / "gn1"), g, c_out, kernels)?;
        let conv2 = Conv2d::new(&(p / "conv2"), c_out, c_out, 3, 1, 1, false, kernels)?;
        let gn2 = GroupNorm::new(&(p / "gn2"), g, c_out, kernels)?;
        let shortcut = if stride != 1 || c_in != c_out {
            let ps = p / "shortcut";
            Some((Conv2d::new(&(&ps / 0), c_in, c_out, 1, stride, 0, false, kernels)?, GroupNorm::new(&(&ps / 1), g, c_out, kernels)?))
        } else {
            None
        };
        Ok(Self { conv1, gn1, conv2, gn2, shortcut })
    }

    /// `[N, c_in, H, W]` → `[N, c_out, ceil(H/stride), ceil(W/stride)]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.gn1.forward_relu(&self.conv1.forward(x)?)?;
        let out = self.gn2.forward(&self.conv2.forward(&out)?)?;
        let identity = match &self.shortcut {
            Some((conv, gn)) => gn.forward(&conv.forward(x)?)?,
            None => x.shallow_clone(),
        };
        Ok(out.f_add(&identity)?.f_relu_()?)
    }
}
