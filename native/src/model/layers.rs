//! Parameter-holding primitives (Conv2d, GroupNorm, Linear) with the seed's
//! `_initialize_weights`: conv kaiming-normal (fan_out, relu) and zero bias, GroupNorm
//! weight 1 / bias 0, Linear N(0, 0.01) and zero bias. Parameter names are PyTorch's
//! (`weight`, `bias`) so that VarStore paths equal `state_dict()` keys.

use super::fused;
use crate::error::Result;
use tch::{nn, nn::Init, Device, Tensor};

/// Default `eps` of `torch.nn.GroupNorm`.
pub const GN_EPS: f64 = 1e-5;

/// A 2-D convolution (`torch.nn.Conv2d`, dilation 1, groups 1).
#[derive(Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: Tensor,
    /// `[out]` when the conv has a bias.
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// Creates `weight` (and `bias`) under `p`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64, bias: bool) -> Result<Self> {
        // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / (c_out * k * k)).
        let fan_out = (c_out * k * k) as f64;
        let stdev = (2.0 / fan_out).sqrt();
        let weight = p.f_var("weight", &[c_out, c_in, k, k], Init::Randn { mean: 0.0, stdev })?;
        let bias = if bias { Some(p.f_var("bias", &[c_out], Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias, stride, padding })
    }

    /// A conv with this one's stride and padding and the given tensors (tests differentiate
    /// a layer with respect to tensors of their own).
    pub fn with_params(&self, weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, stride: self.stride, padding: self.padding }
    }

    /// `conv2d(x)`, computed on the CPU by the cheapest exact formulation for the input size
    /// (see [`ConvPlan`]); the result is the same function up to float summation order.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &self.weight)
    }

    /// [`Conv2d::forward`] with another kernel of the same shape in place of `weight` (the stem
    /// folds its input GroupNorm's scale into the kernel).
    pub fn forward_with(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let plan = match size.as_slice() {
            [_, c, h, w] if x.device() == Device::Cpu && conv_rewrites_enabled() => {
                ConvPlan::choose(*c, *h, *w, weight.size()[2], self.stride, self.padding)
            }
            _ => ConvPlan::Direct,
        };
        match plan {
            ConvPlan::Direct => Ok(x.f_conv2d(weight, self.bias.as_ref(), [self.stride], [self.padding], [1], 1)?),
            ConvPlan::Window => self.window(x, weight, &size),
            ConvPlan::Unfold { ho, wo } => self.unfold(x, weight, size[0], ho, wo),
        }
    }

    /// One output pixel whose receptive field holds the whole input: a matrix product with the
    /// kernel taps that touch real pixels (the others only ever meet zero padding).
    fn window(&self, x: &Tensor, weight: &Tensor, size: &[i64]) -> Result<Tensor> {
        let (n, h, w) = (size[0], size[2], size[3]);
        let o = weight.size()[0];
        let taps = weight.f_narrow(2, self.padding, h)?.f_narrow(3, self.padding, w)?.f_reshape([o, -1])?;
        Ok(x.f_reshape([n, -1])?.f_linear(&taps, self.bias.as_ref())?.f_view([n, o, 1, 1])?)
    }

    /// im2col, then one matrix product for the whole batch: `[N·L, C·k·k] x [C·k·k, O]` (L output
    /// pixels). A product per image (`[O, K] x [N, K, L]`) was 8x slower than oneDNN in
    /// inference at batch 128: with L = 4 each product is too thin to use the cores.
    fn unfold(&self, x: &Tensor, weight: &Tensor, n: i64, ho: i64, wo: i64) -> Result<Tensor> {
        let k = weight.size()[2];
        let o = weight.size()[0];
        let l = ho * wo;
        let cols = x.f_im2col([k, k], [1, 1], [self.padding, self.padding], [self.stride, self.stride])?;
        let rows = cols.f_transpose(1, 2)?.f_reshape([n * l, -1])?;
        let out = rows.f_linear(&weight.f_reshape([o, -1])?, self.bias.as_ref())?;
        Ok(out.f_view([n, l, o])?.f_transpose(1, 2)?.f_reshape([n, o, ho, wo])?)
    }
}

/// How a CPU convolution is computed. oneDNN's kernels (what `conv2d` runs on the CPU) are
/// slow on tiny feature maps with many channels: measured on 2 Zen 3 cores (AVX2), forward+backward of
/// the last residual block's 512→512 3x3 conv on 1x1 maps at batch 32 took 77 ms as a
/// convolution and 9 ms as the equivalent matrix product (289 ms vs 14 ms at batch 128); for
/// 2x2 outputs im2col + one matmul was 1.3-2.8x faster for training and 1.0-1.5x for inference
/// with 128-512 channels. At 4x4 and above oneDNN is as fast or faster, so it keeps those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPlan {
    /// `conv2d` (oneDNN).
    Direct,
    /// A single output pixel that sees the whole input: a linear layer on the live taps.
    Window,
    /// im2col + matmul, for an output of `ho` x `wo` pixels.
    Unfold {
        /// Output height.
        ho: i64,
        /// Output width.
        wo: i64,
    },
}

impl ConvPlan {
    /// The plan for `c` input channels of `h` x `w` pixels and a `k` x `k` kernel.
    pub fn choose(c: i64, h: i64, w: i64, k: i64, stride: i64, padding: i64) -> Self {
        let ho = (h + 2 * padding - k) / stride + 1;
        let wo = (w + 2 * padding - k) / stride + 1;
        if ho < 1 || wo < 1 {
            return ConvPlan::Direct; // let conv2d report the bad size
        }
        if ho == 1 && wo == 1 && h + padding <= k && w + padding <= k {
            return ConvPlan::Window;
        }
        if k > 1 && ho * wo <= 4 && c >= 64 {
            return ConvPlan::Unfold { ho, wo };
        }
        ConvPlan::Direct
    }
}

/// `HN_CONV_REWRITES=0` turns the rewrites off (every conv runs as `conv2d`), for comparisons.
pub fn conv_rewrites_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("HN_CONV_REWRITES").map(|v| v.trim() != "0").unwrap_or(true))
}

/// The same `[N, C, H, W]` tensor with channels-last strides (what PyTorch's
/// `memory_format=torch.channels_last` gives; tch has no memory-format API). CPU kernels that
/// have a channels-last variant (oneDNN convolutions, GroupNorm, pooling) pick it from the
/// strides, and their outputs keep that layout. A no-op copy when `x` already has it.
pub fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

/// Whether `x` (4-D) has the strides [`to_channels_last`] gives: `[H·W·C, 1, W·C, C]`.
pub fn is_channels_last(x: &Tensor) -> bool {
    match x.size().as_slice() {
        [_, c, h, w] => x.stride() == [h * w * c, 1, w * c, *c],
        _ => false,
    }
}

/// `torch.nn.GroupNorm(groups, channels)` with affine parameters.
#[derive(Debug)]
pub struct GroupNorm {
    /// `[channels]`, initialised to 1.
    pub weight: Tensor,
    /// `[channels]`, initialised to 0.
    pub bias: Tensor,
    groups: i64,
}

impl GroupNorm {
    /// Creates `weight` and `bias` under `p`.
    pub fn new(p: &nn::Path, groups: i64, channels: i64) -> Result<Self> {
        let weight = p.f_var("weight", &[channels], Init::Const(1.0))?;
        let bias = p.f_var("bias", &[channels], Init::Const(0.0))?;
        Ok(Self { weight, bias, groups })
    }

    /// `group_norm(x)`; `x` is `[N, C, *]` (2-D input is allowed, as in PyTorch). 4-D float CPU
    /// input, NCHW or channels-last, runs the fused kernel of [`super::fused`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fusable(x) {
            return fused::group_norm(x, &self.weight, &self.bias, self.groups, GN_EPS);
        }
        Ok(x.f_group_norm(self.groups, Some(&self.weight), Some(&self.bias), GN_EPS, false)?)
    }

    /// `relu(group_norm(x))`: one fused kernel where [`GroupNorm::forward`] has one, else the
    /// two ATen ops.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if self.fusable(x) {
            return fused::group_norm_relu(x, &self.weight, &self.bias, self.groups, GN_EPS);
        }
        Ok(self.forward(x)?.f_relu_()?)
    }

    fn fusable(&self, x: &Tensor) -> bool {
        fused::fused_enabled() && fused::group_norm_supports(x, &self.weight, &self.bias, self.groups)
    }
}

/// `torch.nn.Linear(c_in, c_out)` with bias.
#[derive(Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

impl Linear {
    /// Creates `weight` and `bias` under `p`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Result<Self> {
        let weight = p.f_var("weight", &[c_out, c_in], Init::Randn { mean: 0.0, stdev: 0.01 })?;
        let bias = p.f_var("bias", &[c_out], Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }

    /// `x @ W^T + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}
