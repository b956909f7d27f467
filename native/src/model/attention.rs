//! `MultiScaleAttention`: channel attention (one MLP shared by the avg- and max-pooled
//! vectors) followed by spatial attention (7x7 conv, 2 → 1 channels, with bias).

use super::kernels::Kernels;
use super::layers::{Conv2d, Linear};
use crate::error::Result;
use tch::{nn, Tensor};

/// The attention module (`attention.channel_mlp.{0,2}`, `attention.spatial_conv`).
#[derive(Debug)]
pub struct MultiScaleAttention {
    mlp1: Linear,
    mlp2: Linear,
    spatial_conv: Conv2d,
}

impl MultiScaleAttention {
    /// Builds the module for `channels` channels (hidden width `channels / 16`).
    pub fn new(p: &nn::Path, channels: i64, kernels: &Kernels) -> Result<Self> {
        let pm = p / "channel_mlp";
        Ok(Self {
            mlp1: Linear::new(&(&pm / 0), channels, channels / 16)?,
            mlp2: Linear::new(&(&pm / 2), channels / 16, channels)?,
            spatial_conv: Conv2d::new(&(p / "spatial_conv"), 2, 1, 7, 1, 3, true, kernels)?,
        })
    }

    fn mlp(&self, v: &Tensor) -> Result<Tensor> {
        self.mlp2.forward(&self.mlp1.forward(v)?.f_relu()?)
    }

    /// `[N, C, H, W]` → same shape, reweighted per channel and per position.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.size().first().copied().unwrap_or(0);
        let avg = x.f_adaptive_avg_pool2d([1, 1])?.f_view([n, -1])?;
        let (max, _) = x.f_adaptive_max_pool2d([1, 1])?;
        let max = max.f_view([n, -1])?;
        let channel_att = self.mlp(&avg)?.f_add(&self.mlp(&max)?)?.f_sigmoid()?.f_unsqueeze(2)?.f_unsqueeze(3)?;
        let x = x.f_mul(&channel_att)?;
        let avg_out = x.f_mean_dim([1i64].as_slice(), true, None::<tch::Kind>)?;
        let (max_out, _) = x.f_max_dim(1, true)?;
        let spatial = Tensor::f_cat(&[avg_out, max_out], 1)?;
        let spatial_att = self.spatial_conv.forward(&spatial)?.f_sigmoid()?;
        Ok(x.f_mul(&spatial_att)?)
    }
}
