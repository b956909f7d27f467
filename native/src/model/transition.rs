//! `trans1`: GroupNorm → Conv1x1 (with bias) → AvgPool 2x2, between the dense block and the
//! residual stages.

use super::groups::get_groups;
use super::kernels::{Kernel, Kernels};
use super::layers::{Conv2d, GroupNorm};
use crate::error::Result;
use tch::{nn, Tensor};

/// The transition layer (`trans1.{0,1}`).
#[derive(Debug)]
pub struct Transition {
    gn: GroupNorm,
    conv: Conv2d,
    kernels: Kernels,
}

impl Transition {
    /// Builds the layer under `p`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernels: &Kernels) -> Result<Self> {
        Ok(Self {
            gn: GroupNorm::new(&(p / 0), get_groups(c_in), c_in, kernels)?,
            conv: Conv2d::new(&(p / 1), c_in, c_out, 1, 1, 0, true, kernels)?,
            kernels: kernels.clone(),
        })
    }

    /// `[N, c_in, H, W]` → `[N, c_out, H/2, W/2]` (no ReLU, as in the seed).
    ///
    /// The seed convolves then pools. With `conv_rewrites` it pools first: a 1x1 convolution with
    /// bias is an affine map applied to each pixel and the 2x2 average is an affine combination
    /// of pixels, so the two commute, and pooling first is the same function on a quarter of the
    /// pixels.
    ///
    /// A channels-last input (the dense block's on maps of 32x32 and more) is processed in that
    /// layout and the output keeps it: transposing the block's output to NCHW first cost more
    /// than the layer itself.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.gn.forward(x)?;
        if self.kernels.take(Kernel::ConvRewrites, true) {
            return self.conv.forward(&Self::pool(&x)?);
        }
        Self::pool(&self.conv.forward(&x)?)
    }

    fn pool(x: &Tensor) -> Result<Tensor> {
        Ok(x.f_avg_pool2d([2], [2], [0], false, true, None::<i64>)?)
    }
}
