//! `conv1`: GroupNorm(1, in) → Conv 7x7/2 → GroupNorm → ReLU → MaxPool 3/2 (the seed's
//! initial block; the first GroupNorm is hard-coded to one group).

use super::groups::get_groups;
use super::kernels::{Kernel, Kernels};
use super::layers::{Conv2d, GroupNorm, GN_EPS};
use super::layout::to_channels_last;
use crate::error::Result;
use tch::{nn, Device, Tensor};

/// Input size (H·W) from which the stem's conv runs in channels-last order without a graph.
const CHANNELS_LAST_MIN_INPUT: i64 = 64 * 64;

/// The initial convolution block (`conv1.{0,1,2}`).
#[derive(Debug)]
pub struct Stem {
    gn_in: GroupNorm,
    conv: Conv2d,
    gn: GroupNorm,
    kernels: Kernels,
}

impl Stem {
    /// Builds `conv1` for `c_in` input channels and `c_out` output channels.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernels: &Kernels) -> Result<Self> {
        Ok(Self {
            gn_in: GroupNorm::new(&(p / 0), 1, c_in, kernels)?,
            conv: Conv2d::new(&(p / 1), c_in, c_out, 7, 2, 3, false, kernels)?,
            gn: GroupNorm::new(&(p / 2), get_groups(c_out), c_out, kernels)?,
            kernels: kernels.clone(),
        })
    }

    /// `[N, c_in, H, W]` → `[N, c_out, H/4, W/4]` (rounded as PyTorch does).
    ///
    /// With `conv_rewrites`, the seed's GN → ReLU → MaxPool runs as GN → MaxPool → ReLU: ReLU is
    /// monotonic, so `relu(max(window)) = max(relu(window))` (the padding is -inf, every window
    /// holds a real pixel), and the gradients agree too (both are zero wherever the window's
    /// maximum is ≤ 0). The ReLU and its backward then touch a quarter of the data.
    ///
    /// With `channels_last` and without a graph, the pool runs in channels-last order, where the
    /// CPU kernel vectorises across channels (with a graph its backward is slower, so training
    /// keeps NCHW). The result stays channels-last: the dense block picks its own layout.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.gn.forward(&self.input_conv(x)?)?;
        let x = if self.kernels.take(Kernel::ChannelsLast, !x.requires_grad() && x.device() == Device::Cpu) {
            to_channels_last(&x)?
        } else {
            x
        };
        if self.kernels.take(Kernel::ConvRewrites, true) {
            return Ok(x.f_max_pool2d([3], [2], [1], [1], false)?.f_relu_()?);
        }
        Ok(x.f_relu()?.f_max_pool2d([3], [2], [1], [1], false)?)
    }

    /// `conv(GN(x))`. With `conv_rewrites`, when training on the CPU it is computed as
    /// `conv(x̂, W·γ) + conv(β, W)` (x̂ the normalised input, γ/β the GroupNorm's scale and shift
    /// per input channel): the same function, since a convolution is linear in its input and
    /// scaling input channel c equals scaling the kernel's slice c. The seed's form needs the
    /// gradient with respect to the full-size image only to reach γ and β; this one reaches them
    /// through the kernel and a batch-of-one shift image, which halves the stem's backward.
    ///
    /// With `channels_last`, without a graph and from 64x64 inputs on, the conv runs in
    /// channels-last order: its output, the GroupNorm and the pool follow the input's layout, and
    /// the big activation is never transposed (at 32 px this order was slower).
    pub(crate) fn input_conv(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let cpu_4d = x.device() == Device::Cpu && size.len() == 4;
        if cpu_4d && self.kernels.on(Kernel::ConvRewrites) {
            let c = size[1];
            let scaled = self.conv.weight.f_mul(&self.gn_in.weight.f_view([1, c, 1, 1])?)?;
            // Without a graph (eval, cRT) the plain form is cheaper.
            if scaled.requires_grad() {
                self.kernels.ran(Kernel::ConvRewrites);
                let xhat = x.f_group_norm(1, None::<Tensor>, None::<Tensor>, GN_EPS, false)?;
                let main = self.conv.forward_with(&xhat, &scaled)?;
                let shift_image = self.gn_in.bias.f_view([1, c, 1, 1])?.f_expand([1, c, size[2], size[3]], false)?;
                let shift = self.conv.forward_with(&shift_image.f_contiguous()?, &self.conv.weight)?;
                return Ok(main.f_add(&shift)?);
            }
        }
        let normed = self.gn_in.forward(x)?;
        let big = cpu_4d && size[2] * size[3] >= CHANNELS_LAST_MIN_INPUT;
        if self.kernels.take(Kernel::ChannelsLast, big && !normed.requires_grad()) {
            return self.conv.forward(&to_channels_last(&normed)?);
        }
        self.conv.forward(&normed)
    }
}
