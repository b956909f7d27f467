//! Parameter-holding primitives (Conv2d, GroupNorm, Linear) with the seed's
//! `_initialize_weights`: conv kaiming-normal (fan_out, relu) and zero bias, GroupNorm
//! weight 1 / bias 0, Linear N(0, 0.01) and zero bias. Parameter names are PyTorch's
//! (`weight`, `bias`) so that VarStore paths equal `state_dict()` keys.

use crate::error::Result;
use tch::{nn, nn::Init, Tensor};

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

    /// `conv2d(x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv2d(&self.weight, self.bias.as_ref(), [self.stride], [self.padding], [1], 1)?)
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

    /// `group_norm(x)`; `x` is `[N, C, *]` (2-D input is allowed, as in PyTorch).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_group_norm(self.groups, Some(&self.weight), Some(&self.bias), GN_EPS, false)?)
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
