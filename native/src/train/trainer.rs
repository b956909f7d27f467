//! The trainer: a model reference, an optimizer, a loss and the pending graph of the two-call
//! step (`forward_train` keeps the logits with their graph; `backward_step(dlogits)` runs
//! backward with that gradient, clips, steps and zeroes the gradients), plus the one-call
//! `train_step` with the native loss and state save/load.

use super::clip::zero_grad;
use super::loss::LossConfig;
use super::optim::{Optimizer, OptimizerConfig};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::model::{lock, SharedModel};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Kind, Tensor};

/// Trainer configuration (`hn_trainer_new` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Update rule and hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Max total gradient L2 norm; `None` disables clipping.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// If set, seeds the global torch generator (dropout masks) when the trainer is made.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Which parameters train: all, or only the classifier head (cRT: frozen features).
    #[serde(default)]
    pub trainable: Trainable,
}

/// The parameters a trainer updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trainable {
    /// Every parameter (normal training).
    #[default]
    All,
    /// Only `classifier.*`; the backbone runs without a graph and never changes.
    Head,
}

/// Prefix of the head's parameter names.
pub const HEAD_PREFIX: &str = "classifier.";

impl TrainerConfig {
    /// Parses and validates JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cfg: TrainerConfig = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("trainer config: {e}")))?;
        cfg.optimizer.validate()?;
        if let Some(c) = cfg.clip_grad_norm {
            if !c.is_finite() || c <= 0.0 {
                return Err(Error::invalid(format!("trainer config: clip_grad_norm must be > 0, got {c}")));
            }
        }
        Ok(cfg)
    }
}

/// Result of a one-call training step.
#[derive(Debug)]
pub struct StepOutput {
    /// Logits of the batch (detached), `[N, C]`.
    pub logits: Tensor,
    /// Mean loss over the batch.
    pub loss: f64,
    /// Total gradient L2 norm before clipping.
    pub grad_norm: f64,
}

/// Trains one model.
#[derive(Debug)]
pub struct Trainer {
    model: SharedModel,
    params: Vec<(String, Tensor)>,
    optimizer: Optimizer,
    clip: Option<f64>,
    loss: LossConfig,
    pending: Option<Tensor>,
    trainable: Trainable,
}

impl Trainer {
    /// A trainer for `model` (kept alive by the trainer). The loss defaults to cross-entropy.
    pub fn new(model: SharedModel, cfg: &TrainerConfig) -> Result<Self> {
        let params = lock(&model)
            .named_parameters()
            .iter()
            .filter(|(n, _)| cfg.trainable == Trainable::All || n.starts_with(HEAD_PREFIX))
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        if let Some(seed) = cfg.seed {
            tch::manual_seed(seed as i64);
        }
        Ok(Self {
            model,
            params,
            optimizer: Optimizer::new(cfg.optimizer.clone())?,
            clip: cfg.clip_grad_norm,
            loss: LossConfig::default(),
            pending: None,
            trainable: cfg.trainable,
        })
    }

    /// The model this trainer updates.
    pub fn model(&self) -> &SharedModel {
        &self.model
    }

    /// The optimizer (for its step count and config).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Sets the learning rate.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.optimizer.set_lr(lr)
    }

    /// Replaces the native loss used by [`Trainer::train_step`].
    pub fn set_loss(&mut self, loss: LossConfig) -> Result<()> {
        let c = lock(&self.model).config().num_classes as usize;
        loss.check(c, &[])?;
        self.loss = loss;
        Ok(())
    }

    /// Whether a forward is waiting for its `backward_step`.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Train-mode forward that keeps the graph for [`Trainer::backward_step`]. A previous
    /// pending graph is dropped. Returns the detached logits.
    pub fn forward_train(&mut self, x: &Tensor) -> Result<Tensor> {
        self.pending = None;
        let logits = self.forward_for_training(&lock(&self.model), x)?;
        let out = logits.f_detach()?;
        self.pending = Some(logits);
        Ok(out)
    }

    /// Backward of the pending logits with gradient `dlogits` (same length), then clip, step,
    /// zero grads. Returns the total grad norm before clipping. Without a pending forward:
    /// [`Error::State`]. A wrong length or non-finite values leave the pending graph in place.
    pub fn backward_step(&mut self, dlogits: &[f32]) -> Result<f64> {
        let Some(logits) = &self.pending else {
            return Err(Error::State("backward_step called without a pending forward_train".into()));
        };
        if dlogits.len() != logits.numel() {
            return Err(Error::invalid(format!(
                "dlogits has {} values, the logits have {} ({:?})",
                dlogits.len(),
                logits.numel(),
                logits.size()
            )));
        }
        if dlogits.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("dlogits contain NaN or Inf"));
        }
        let logits = self.pending.take().ok_or_else(|| Error::State("no pending forward".into()))?;
        let grad = Tensor::f_from_slice(dlogits)?.f_view(logits.size().as_slice())?;
        let shared = self.model.clone();
        let _model = lock(&shared);
        // d/dlogits of sum(logits * g) is exactly g: this is `logits.backward(g)`.
        let result = logits
            .f_mul(&grad)
            .and_then(|s| s.f_sum(Kind::Float))
            .and_then(|s| s.f_backward())
            .map_err(Error::from)
            .and_then(|()| self.clip_and_step());
        zero_grad(&self.params)?;
        result
    }

    /// The train-mode forward for this trainer's [`Trainable`] setting.
    fn forward_for_training(&self, model: &crate::model::HybridNet, x: &Tensor) -> Result<Tensor> {
        match self.trainable {
            Trainable::All => model.forward_t(x, true),
            Trainable::Head => model.forward_head_train(x),
        }
    }

    /// The names of the parameters this trainer updates.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn clip_and_step(&mut self) -> Result<f64> {
        self.optimizer.step_clipped(&self.params, self.clip)
    }

    /// One call: train-mode forward, native loss (mean over the batch), backward, clip, step.
    pub fn train_step(&mut self, x: &Tensor, targets: &[i32]) -> Result<StepOutput> {
        self.pending = None;
        let shared = self.model.clone();
        let model = lock(&shared);
        let n = x.size().first().copied().unwrap_or(0);
        if targets.len() as i64 != n {
            return Err(Error::invalid(format!("{} targets for a batch of {n}", targets.len())));
        }
        self.loss.check(model.config().num_classes as usize, targets)?;
        let logits = self.forward_for_training(&model, x)?;
        let result = self.loss.compute(&logits, targets).and_then(|loss| {
            loss.f_backward()?;
            let grad_norm = self.clip_and_step()?;
            Ok(StepOutput { logits: logits.f_detach()?, loss: loss.f_double_value(&[])?, grad_norm })
        });
        zero_grad(&self.params)?;
        result
    }

    /// Saves the optimizer state (moments, step counts) as safetensors, atomically.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let (tensors, meta) = self.optimizer.state_dict()?;
        checkpoint::write_file(path, &tensors, meta)
    }

    /// Loads optimizer state written by [`Trainer::save_state`] (strict; nothing changes on
    /// error).
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let file = checkpoint::read_file(path)?;
        self.optimizer.load_state_dict(&self.params, &file.tensors, &file.metadata, &path.display().to_string())
    }
}
