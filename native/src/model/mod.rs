//! HybridNet, the seed's CNN (DenseBlock + ResidualBlocks + attention + FPN + GN head), built
//! in tch with VarStore paths equal to the PyTorch `state_dict()` keys.
//!
//! One layer per file: [`stem`], [`dense`], [`transition`], [`residual`], [`attention`],
//! [`fpn`], [`classifier`], built from the primitives in [`layers`] (GroupNorm's fused kernel in
//! [`group_norm`], memory layouts in [`layout`]). The kernel choices of a model ([`kernels`])
//! are part of its config and are handed to every layer when it is built.

pub mod attention;
pub mod classifier;
pub mod dense;
pub mod fpn;
pub mod group_norm;
pub mod groups;
pub mod kernels;
pub mod layers;
pub mod layout;
pub mod residual;
pub mod stem;
pub mod transition;

pub use classifier::Dropout;
pub use groups::get_groups;
pub use kernels::{KernelCalls, KernelOptions};

use crate::error::{Error, Result};
use kernels::{Kernel, Kernels};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

/// Channel widths of the seed (`self.channels`).
pub const C_INITIAL: i64 = 64;
/// Growth rate of the dense block.
pub const GROWTH: i64 = 32;
/// Layers in the dense block.
pub const DENSE_LAYERS: i64 = 6;
/// Residual stage widths.
pub const C_STAGES: [i64; 3] = [128, 256, 512];
/// FPN output width.
pub const FPN_CHANNELS: i64 = 256;
/// Smallest input height/width the architecture survives: the stem divides by 4
/// (rounding up), and `trans1`'s 2x2 average pool needs at least 2 pixels, so 5.
pub const MIN_SPATIAL: i64 = 5;
/// Largest class count a config may ask for.
pub const MAX_CLASSES: i64 = 1_000_000;
/// Largest input channel count a config may ask for (the image data path makes 1 or 3).
pub const MAX_INPUT_CHANNELS: i64 = 4096;

/// Whether the forward computes the seed's (unused) FPN maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FpnMode {
    /// Keep the FPN parameters but skip the dead computation (same logits and gradients).
    #[default]
    Skip,
    /// Compute the FPN maps and discard them, as the seed does, but without an autograd graph
    /// (nothing differentiates through them): the seed's forward work, same logits and gradients.
    Seed,
}

/// Model hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridNetConfig {
    /// Number of output classes, in `2..=MAX_CLASSES`.
    pub num_classes: i64,
    /// Input image channels, in `1..=MAX_INPUT_CHANNELS`.
    pub input_channels: i64,
    /// Dropout probability of the head, in `[0, 1)`.
    pub dropout_rate: f64,
    /// FPN behaviour of the forward.
    pub fpn: FpnMode,
    /// Kernel and layout choices (all on by default).
    pub kernels: KernelOptions,
}

impl Default for HybridNetConfig {
    fn default() -> Self {
        Self { num_classes: 8, input_channels: 3, dropout_rate: 0.3, fpn: FpnMode::Skip, kernels: KernelOptions::default() }
    }
}

impl HybridNetConfig {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_CLASSES).contains(&self.num_classes) {
            return Err(Error::invalid(format!("num_classes must be in 2..={MAX_CLASSES}, got {}", self.num_classes)));
        }
        if !(1..=MAX_INPUT_CHANNELS).contains(&self.input_channels) {
            return Err(Error::invalid(format!("input_channels must be in 1..={MAX_INPUT_CHANNELS}, got {}", self.input_channels)));
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(Error::invalid(format!("dropout_rate must be in [0, 1), got {}", self.dropout_rate)));
        }
        Ok(())
    }
}

/// The HybridNet model: its parameters (in `state_dict()` order) and its layers.
#[derive(Debug)]
pub struct HybridNet {
    cfg: HybridNetConfig,
    device: Device,
    kernels: Kernels,
    /// Owns the variables; kept so the store outlives every layer.
    _vs: nn::VarStore,
    params: Vec<(String, Tensor)>,
    conv1: stem::Stem,
    dense1: dense::DenseBlock,
    trans1: transition::Transition,
    res_blocks: Vec<residual::ResidualBlock>,
    attention: attention::MultiScaleAttention,
    fpn: fpn::Fpn,
    classifier: classifier::Classifier,
}

impl HybridNet {
    /// Builds and initialises the model on the CPU, drawing from the global torch generator
    /// (seed it with `tch::manual_seed` first for reproducible weights).
    pub fn new(cfg: &HybridNetConfig) -> Result<Self> {
        Self::new_on(cfg, Device::Cpu)
    }

    /// Builds the model as [`HybridNet::new`] does (same weights for the same seed: they are
    /// drawn on the CPU) and moves its variables to `device`. On CUDA the CPU-only kernel
    /// options (fused GroupNorm, conv rewrites) are turned off, so cuDNN and ATen run every
    /// layer; `channels_last` then means a channels-last input (cuDNN keeps that layout).
    pub fn new_on(cfg: &HybridNetConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let mut cfg = cfg.clone();
        if device != Device::Cpu {
            cfg.kernels = KernelOptions { fused_group_norm: false, conv_rewrites: false, ..cfg.kernels };
        }
        let cfg = &cfg;
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let k = &Kernels::new(cfg.kernels);
        // Module registration order of the seed = state_dict order.
        let after_dense = dense::DenseBlock::out_channels(C_INITIAL, GROWTH, DENSE_LAYERS);
        let [s1, s2, s3] = C_STAGES;
        let conv1 = stem::Stem::new(&(&root / "conv1"), cfg.input_channels, C_INITIAL, k)?;
        let dense1 = dense::DenseBlock::new(&(&root / "dense1"), C_INITIAL, GROWTH, DENSE_LAYERS, k)?;
        let trans1 = transition::Transition::new(&(&root / "trans1"), after_dense, s1, k)?;
        let pr = &root / "res_blocks";
        let res_blocks = vec![
            residual::ResidualBlock::new(&(&pr / 0), s1, s1, 1, k)?,
            residual::ResidualBlock::new(&(&pr / 1), s1, s2, 2, k)?,
            residual::ResidualBlock::new(&(&pr / 2), s2, s3, 2, k)?,
        ];
        let attention = attention::MultiScaleAttention::new(&(&root / "attention"), s3, k)?;
        let fpn = fpn::Fpn::new(&(&root / "fpn"), s1, s2, s3, FPN_CHANNELS, k)?;
        let classifier = classifier::Classifier::new(&(&root / "classifier"), s3, cfg.num_classes, k)?;
        if device != Device::Cpu {
            let _guard = tch::no_grad_guard();
            for (_, mut var) in vs.variables() {
                let moved = var.f_to_device(device)?;
                var.f_set_data(&moved)?;
            }
        }
        let params = ordered_params(&vs)?;
        let kernels = k.clone();
        Ok(Self { cfg: cfg.clone(), device, kernels, _vs: vs, params, conv1, dense1, trans1, res_blocks, attention, fpn, classifier })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &HybridNetConfig {
        &self.cfg
    }

    /// Where the parameters live.
    pub fn device(&self) -> Device {
        self.device
    }

    /// `x` on the model's device: the tensor itself on the CPU; on CUDA an upload (non-blocking
    /// where the source allows), channels-last when that option is on.
    fn upload(&self, x: &Tensor) -> Result<Tensor> {
        if self.device == Device::Cpu {
            return Ok(x.shallow_clone());
        }
        let x = x.f_to_device_(self.device, Kind::Float, true, false)?;
        if self.kernels.take(Kernel::ChannelsLast, x.dim() == 4) {
            return layout::to_channels_last(&x);
        }
        Ok(x)
    }

    /// How many times each kernel option's path has run in this model's forwards.
    pub fn kernel_calls(&self) -> KernelCalls {
        self.kernels.calls()
    }

    /// `(name, tensor)` for every parameter, in PyTorch `state_dict()` order. The tensors
    /// share storage with the model.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Total number of parameter values.
    pub fn param_count(&self) -> u64 {
        self.params.iter().map(|(_, t)| t.numel() as u64).sum()
    }

    /// Checks that `x` is a float `[N, input_channels, H, W]` batch the network accepts.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let size = x.size();
        let [n, c, h, w] = size.as_slice() else {
            return Err(Error::invalid(format!("input must be 4-D [N, C, H, W], got shape {size:?}")));
        };
        if *n < 1 {
            return Err(Error::invalid("batch size must be >= 1"));
        }
        if *c != self.cfg.input_channels {
            return Err(Error::invalid(format!("input has {c} channels, the model expects {}", self.cfg.input_channels)));
        }
        if *h < MIN_SPATIAL || *w < MIN_SPATIAL {
            return Err(Error::invalid(format!("input is {h}x{w}; height and width must be >= {MIN_SPATIAL}")));
        }
        if x.f_kind()? != Kind::Float {
            return Err(Error::invalid(format!("input must be float32, got {:?}", x.f_kind()?)));
        }
        Ok(())
    }

    /// Forward pass with explicit dropout behaviour; records autograd if grad mode is on.
    pub fn forward_with(&self, x: &Tensor, dropout: &Dropout) -> Result<Tensor> {
        let features = self.features(x)?;
        self.classify(&features, dropout)
    }

    /// The backbone: input `[N, C, H, W]` → pooled features `[N, F]` (everything but the head).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let n = x.size().first().copied().unwrap_or(0);
        let x = &self.upload(x)?;
        let x = self.conv1.forward(x)?;
        let x = self.dense1.forward(&x)?;
        let c1 = self.stage_layout(self.trans1.forward(&x)?)?;
        let mut stages = Vec::with_capacity(self.res_blocks.len());
        let mut x = c1.shallow_clone();
        for block in &self.res_blocks {
            x = block.forward(&x)?;
            stages.push(x.shallow_clone());
        }
        if self.cfg.fpn == FpnMode::Seed {
            if let [_, c2, c3] = stages.as_slice() {
                // The seed computes these maps and never uses them. Nothing differentiates
                // through them, so no graph is kept (same values, less memory).
                let _guard = tch::no_grad_guard();
                let _maps = self.fpn.forward(&c1, c2, c3)?;
            }
        }
        let x = self.attention.forward(&x)?;
        Ok(x.f_adaptive_avg_pool2d([1, 1])?.f_view([n, -1])?)
    }

    /// The classifier head: pooled features `[N, F]` → logits `[N, num_classes]`.
    pub fn classify(&self, features: &Tensor, dropout: &Dropout) -> Result<Tensor> {
        self.classifier.forward(features, dropout)
    }

    /// Train-mode forward of the head only: the backbone runs without a graph, so a backward
    /// reaches only `classifier.*` (classifier re-training, cRT).
    pub fn forward_head_train(&self, x: &Tensor) -> Result<Tensor> {
        let features = {
            let _guard = tch::no_grad_guard();
            self.features(x)?
        };
        self.classify(&features, &Dropout::Random(self.cfg.dropout_rate))
    }

    /// `forward_t` in the tch idiom: train mode uses random dropout (and records the graph);
    /// eval mode runs without dropout under `no_grad`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            self.forward_with(x, &Dropout::Random(self.cfg.dropout_rate))
        } else {
            let _guard = tch::no_grad_guard();
            self.forward_with(x, &Dropout::Off)
        }
    }
}

/// Map size (H·W) from which the residual stages run channels-last in inference.
const CHANNELS_LAST_MIN_STAGE_PIXELS: i64 = 8 * 8;

impl HybridNet {
    /// The layout the residual stages run in. With `channels_last`, without a graph on the CPU,
    /// maps of 8x8 and more go channels-last (the residual blocks and the attention were faster
    /// so). Everything else (training, tiny maps, the option off) runs NCHW.
    fn stage_layout(&self, c1: Tensor) -> Result<Tensor> {
        let size = c1.size();
        let big_maps = size.len() == 4 && size[2] * size[3] >= CHANNELS_LAST_MIN_STAGE_PIXELS;
        if self.kernels.take(Kernel::ChannelsLast, big_maps && !c1.requires_grad() && c1.device() == Device::Cpu) {
            return layout::to_channels_last(&c1);
        }
        if c1.device() != Device::Cpu && self.kernels.on(Kernel::ChannelsLast) {
            // On CUDA the layout was chosen at the upload (channels-last); cuDNN keeps it.
            return Ok(c1);
        }
        Ok(c1.f_contiguous()?)
    }
}

/// A model shared by its FFI handle and the trainers made from it; the mutex makes sure no
/// two threads touch its tensors at once.
pub type SharedModel = std::sync::Arc<std::sync::Mutex<HybridNet>>;

/// Locks a shared model. A panic caught while the lock was held leaves the tensors valid, so
/// a poisoned lock is recovered rather than reported.
pub fn lock(model: &SharedModel) -> std::sync::MutexGuard<'_, HybridNet> {
    model.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The store's variables in creation order, named. VarStore keeps creation order only for
/// its unnamed trainable list, so names are matched back by storage address (each variable
/// has its own storage).
fn ordered_params(vs: &nn::VarStore) -> Result<Vec<(String, Tensor)>> {
    let by_ptr: HashMap<usize, String> = vs.variables().into_iter().map(|(name, t)| (t.data_ptr() as usize, name)).collect();
    vs.trainable_variables()
        .into_iter()
        .map(|t| {
            let name = by_ptr.get(&(t.data_ptr() as usize)).cloned().ok_or_else(|| Error::State("unnamed model variable".into()))?;
            Ok((name, t))
        })
        .collect()
}

#[cfg(test)]
mod tests;
