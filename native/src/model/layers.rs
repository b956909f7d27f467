//! Parameter-holding primitives (Conv2d, GroupNorm, Linear) with the seed's
//! `_initialize_weights`: conv kaiming-normal (fan_out, relu) and zero bias, GroupNorm
//! weight 1 / bias 0, Linear N(0, 0.01) and zero bias. Parameter names are PyTorch's
//! (`weight`, `bias`) so that VarStore paths equal `state_dict()` keys.

use super::group_norm;
use super::kernels::{Kernel, Kernels};
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
    kernels: Kernels,
}

impl Conv2d {
    /// Creates `weight` (and `bias`) under `p`; `kernels` are the model's kernel options.
    // torch.nn.Conv2d's own arguments, plus the model's kernel options.
    #[allow(clippy::too_many_arguments)]
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64, bias: bool, kernels: &Kernels) -> Result<Self> {
        // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / (c_out * k * k)).
        let fan_out = (c_out * k * k) as f64;
        let stdev = (2.0 / fan_out).sqrt();
        let weight = p.f_var("weight", &[c_out, c_in, k, k], Init::Randn { mean: 0.0, stdev })?;
        let bias = if bias { Some(p.f_var("bias", &[c_out], Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias, stride, padding, kernels: kernels.clone() })
    }

    /// A conv with this one's stride, padding and kernel options and the given tensors (tests
    /// differentiate a layer with respect to tensors of their own).
    pub fn with_params(&self, weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, stride: self.stride, padding: self.padding, kernels: self.kernels.clone() }
    }

    /// `conv2d(x)`. With the model's `conv_rewrites` option, computed on the CPU by the cheapest
    /// exact formulation for the input size (see [`ConvPlan`]); the result is the same function
    /// up to float summation order.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &self.weight)
    }

    /// [`Conv2d::forward`] with another kernel of the same shape in place of `weight` (the stem
    /// folds its input GroupNorm's scale into the kernel).
    pub fn forward_with(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let plan = match size.as_slice() {
            [_, c, h, w] if x.device() == Device::Cpu && self.kernels.on(Kernel::ConvRewrites) => {
                ConvPlan::choose(*c, *h, *w, weight.size()[2], self.stride, self.padding)
            }
            _ => ConvPlan::Direct,
        };
        if plan != ConvPlan::Direct {
            self.kernels.ran(Kernel::ConvRewrites);
        }
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
    /// pixels). Not a product per image (`[O, K] x [N, K, L]`): with L <= 4 each such product is
    /// too thin to use the cores (docs/perf-log.md).
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
/// slow on tiny feature maps with many channels, where a matrix product does the same work
/// faster: one-pixel outputs and outputs of up to 4 pixels are rewritten; from 4x4 outputs on
/// oneDNN was as fast or faster, so it keeps those (measurements in docs/perf-log.md).
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

/// `torch.nn.GroupNorm(groups, channels)` with affine parameters.
#[derive(Debug)]
pub struct GroupNorm {
    /// `[channels]`, initialised to 1.
    pub weight: Tensor,
    /// `[channels]`, initialised to 0.
    pub bias: Tensor,
    groups: i64,
    kernels: Kernels,
}

impl GroupNorm {
    /// Creates `weight` and `bias` under `p`; `kernels` are the model's kernel options.
    pub fn new(p: &nn::Path, groups: i64, channels: i64, kernels: &Kernels) -> Result<Self> {
        let weight = p.f_var("weight", &[channels], Init::Const(1.0))?;
        let bias = p.f_var("bias", &[channels], Init::Const(0.0))?;
        Ok(Self { weight, bias, groups, kernels: kernels.clone() })
    }

    /// `group_norm(x)`; `x` is `[N, C, *]` (2-D input is allowed, as in PyTorch). With the
    /// model's `fused_group_norm` option, 4-D float CPU input (NCHW or channels-last) runs the
    /// kernel of [`super::group_norm`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused(x) {
            return group_norm::forward(x, &self.weight, &self.bias, self.groups, GN_EPS);
        }
        Ok(x.f_group_norm(self.groups, Some(&self.weight), Some(&self.bias), GN_EPS, false)?)
    }

    /// `relu(group_norm(x))`: one fused kernel where [`GroupNorm::forward`] would use one, else
    /// the two ATen ops.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused(x) {
            return group_norm::forward_relu(x, &self.weight, &self.bias, self.groups, GN_EPS);
        }
        Ok(x.f_group_norm(self.groups, Some(&self.weight), Some(&self.bias), GN_EPS, false)?.f_relu_()?)
    }

    /// Whether `x` takes the fused kernel (counted when it does).
    fn fused(&self, x: &Tensor) -> bool {
        self.kernels.take(Kernel::FusedGroupNorm, group_norm::supports(x, &self.weight, &self.bias, self.groups))
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
