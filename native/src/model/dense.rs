//! `DenseBlock`: layers of GN → ReLU → Conv1x1(4g) → GN → ReLU → Conv3x3(g), each fed the
//! concatenation of the block input and all previous layer outputs.

use super::groups::get_groups;
use super::layers::{conv_rewrites_enabled, to_channels_last, Conv2d, GroupNorm};
use crate::error::Result;
use tch::{nn, Device, Tensor};

/// Feature-map size (H·W) from which inference runs the block in channels-last order.
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
    fn new(p: &nn::Path, c_in: i64, growth: i64) -> Result<Self> {
        let mid = 4 * growth;
        Ok(Self {
            gn1: GroupNorm::new(&(p / 0), get_groups(c_in), c_in)?,
            conv1: Conv2d::new(&(p / 2), c_in, mid, 1, 1, 0, false)?,
            gn2: GroupNorm::new(&(p / 3), get_groups(mid), mid)?,
            conv2: Conv2d::new(&(p / 5), mid, growth, 3, 1, 1, false)?,
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
}

impl DenseBlock {
    /// Builds the block under `p` (layers live at `p.layers.{i}`).
    pub fn new(p: &nn::Path, c_in: i64, growth: i64, num_layers: i64) -> Result<Self> {
        let pl = p / "layers";
        let layers = (0..num_layers).map(|i| DenseLayer::new(&(&pl / i), c_in + i * growth, growth)).collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// Output channel count for an input of `c_in` channels.
    pub fn out_channels(c_in: i64, growth: i64, num_layers: i64) -> i64 {
        c_in + growth * num_layers
    }

    /// `[N, c_in, H, W]` → `[N, c_in + growth * num_layers, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let big_maps = size.len() == 4 && size[2] * size[3] >= CHANNELS_LAST_MIN_PIXELS;
        if big_maps && x.device() == Device::Cpu && conv_rewrites_enabled() {
            // On maps of 32x32 and more the whole block runs in channels-last order: oneDNN's
            // convolutions then skip their reorders to and from blocked layouts, and the
            // GroupNorms run the fused kernel, which has a channels-last variant. Inference:
            // 1.18-1.24 s → 1.06-1.09 s for [128, 64, 32, 32] on 2 cores, layout changes
            // included; on 16x16 maps it was 20% slower. Training at 128 px: 3-4% faster per
            // step (ATen's own channels-last GroupNorm backward had made it slower).
            // The stem's inference output is channels-last already (no copy); the output stays
            // channels-last, which the transition takes as it is.
            return self.concat_layers(&to_channels_last(x)?);
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
