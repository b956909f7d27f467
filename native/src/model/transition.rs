//! `trans1`: GroupNorm → Conv1x1 (with bias) → AvgPool 2x2, between the dense block and the
//! residual stages.

use super::groups::get_groups;
use super::layers::{conv_rewrites_enabled, Conv2d, GroupNorm};
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
    ///
    /// The seed convolves then pools. A 1x1 convolution with bias is an affine map applied to
    /// each pixel and the 2x2 average is an affine combination of pixels, so the two commute:
    /// pooling first is the same function on a quarter of the pixels (trans1 forward+backward
    /// at 128 px, batch 32, 2 cores: 106 ms → 68 ms).
    ///
    /// A channels-last input (the dense block's, in inference on maps of 32x32 and more) is
    /// processed in that layout and the output keeps it: transposing the block's output to NCHW
    /// first cost more than the layer itself (171-218 ms → 61-78 ms at 128 px, batch 128).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.gn.forward(x)?;
        if conv_rewrites_enabled() {
            return self.conv.forward(&Self::pool(&x)?);
        }
        Self::pool(&self.conv.forward(&x)?)
    }

    fn pool(x: &Tensor) -> Result<Tensor> {
        Ok(x.f_avg_pool2d([2], [2], [0], false, true, None::<i64>)?)
    }
}
