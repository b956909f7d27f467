//! `DenseBlock`: layers of GN → ReLU → Conv1x1(4g) → GN → ReLU → Conv3x3(g), each fed the
//! concatenation of the block input and all previous layer outputs.

use super::groups::get_groups;
use super::kernels::{Kernel, Kernels};
use super::layers::{Conv2d, GroupNorm};
use super::layout::to_channels_last;
use crate::error::Result;
use tch::{nn, Device, Tensor};

/// Feature-map size (H·W) from which the block runs in channels-last order.
const CHANNELS_LAST_MIN_PIXELS: i64 = 32 * 32;

/// One dense layer (`layers.{i}.{0,2,3,5}`; indices 1 and 4 are the parameter-free ReLUs).
#[derive(Debug)]
struct DenseLayer {
    gn1: GroupNorm,
    conv1: Conv2d,
    gn2: GroupNorm,
    conv2: Conv2d,
}

impl DenseLayer {
    fn new(p: &nn::Path, c_in: i64, growth: i64, kernels: &Kernels) -> Result<Self> {
        let mid = 4 * growth;
        Ok(Self {
            gn1: GroupNorm::new(&(p / 0), get_groups(c_in), c_in, kernels)?,
            conv1: Conv2d::new(&(p / 2), c_in, mid, 1, 1, 0, false, kernels)?,
            gn2: GroupNorm::new(&(p / 3), get_groups(mid), mid, kernels)?,
            conv2: Conv2d::new(&(p / 5), mid, growth, 3, 1, 1, false, kernels)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(&self.gn1.forward_relu(x)?)?;
        self.conv2.forward(&self.gn2.forward_relu(&x)?)
    }
}

/// A dense block with `num_layers` layers of growth rate `growth`.
#[derive(Debug)]
pub struct DenseBlock {
    layers: Vec<DenseLayer>,
    kernels: Kernels,
}

impl DenseBlock {
    /// Builds the block under `p` (layers live at `p.layers.{i}`).
    pub fn new(p: &nn::Path, c_in: i64, growth: i64, num_layers: i64, kernels: &Kernels) -> Result<Self> {
        let pl = p / "layers";
        let layers =
            (0..num_layers).map(|i| DenseLayer::new(&(&pl / i), c_in + i * growth, growth, kernels)).collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, kernels: kernels.clone() })
    }

    /// Output channel count for an input of `c_in` channels.
    pub fn out_channels(c_in: i64, growth: i64, num_layers: i64) -> i64 {
        c_in + growth * num_layers
    }

    /// `[N, c_in, H, W]` → `[N, c_in + growth * num_layers, H, W]`.
    ///
    /// With `channels_last`, on CPU maps of 32x32 and more the whole block runs in channels-last
    /// order, with a graph or without: oneDNN's convolutions then skip their reorders to and from
    /// blocked layouts, and the GroupNorms take the fused kernel's channels-last variant (ATen's
    /// own channels-last GroupNorm backward is slow, so without `fused_group_norm` this order
    /// costs time in training). On smaller maps it was slower. The stem's inference output is
    /// channels-last already (no copy); the output stays channels-last, which the transition
    /// takes as it is.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let big_maps = size.len() == 4 && size[2] * size[3] >= CHANNELS_LAST_MIN_PIXELS;
        if self.kernels.take(Kernel::ChannelsLast, big_maps && x.device() == Device::Cpu) {
            return self.concat_layers(&to_channels_last(x)?);
        }
        if x.device() != Device::Cpu && self.kernels.on(Kernel::ChannelsLast) {
            // On CUDA the layout was chosen at the upload (channels-last); cuDNN keeps it.
            return self.concat_layers(x);
        }
        self.concat_layers(&x.f_contiguous()?)
    }

    /// The layers on `x` in its layout (contiguous or channels-last); tests compare the two.
    pub(super) fn concat_layers(&self, x: &Tensor) -> Result<Tensor> {
        let mut features = vec![x.shallow_clone()];
        for layer in &self.layers {
            let out = layer.forward(&Tensor::f_cat(&features, 1)?)?;
            features.push(out);
        }
        Ok(Tensor::f_cat(&features, 1)?)
    }
}
