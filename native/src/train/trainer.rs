//! The trainer: a model reference, an optimizer, a loss and the pending graph of the two-call
//! step (`forward_train` keeps the logits with their graph; `backward_step(dlogits)` runs
//! backward with that gradient, clips, steps and zeroes the gradients), plus the one-call
//! `train_step` with the native loss and state save/load; with `ema` set, the moving average of
//! the parameters ([`super::ema`]) is updated after every step and saved with the state.

use super::clip::zero_grad;
use super::ema::{self, Ema, EmaConfig};
use super::loss::LossConfig;
use super::optim::{GradNorm, Optimizer, OptimizerConfig};
use super::stats::{BatchLoss, StatsConfig, TrainStats};
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
    /// Exponential moving average of the trained parameters; `None` (the default): off.
    #[serde(default)]
    pub ema: Option<EmaConfig>,
    /// Arithmetic of the train-mode forward (weights, gradients, optimizer state stay float32).
    #[serde(default)]
    pub precision: Precision,
}

/// The arithmetic of the train-mode forward and loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 everywhere (the default).
    #[default]
    Fp32,
    /// bfloat16 autocast on the model's device type (`torch.autocast(device, torch.bfloat16)`):
    /// convolutions and matmuls run in bfloat16, ATen keeps its float32 ops in float32; the logits
    /// come out as float32, so the loss and everything after it are float32.
    Bf16,
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
        if let Some(e) = &cfg.ema {
            e.validate()?;
        }
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
    ema: Option<Ema>,
    precision: Precision,
    /// This epoch's train statistics, counted on the model's device ([`super::stats`]).
    stats: TrainStats,
    /// The detached logits of the last `forward_train`, for [`Trainer::count_last`].
    last_logits: Option<Tensor>,
}

impl Trainer {
    /// A trainer for `model` (kept alive by the trainer). The loss defaults to cross-entropy.
    pub fn new(model: SharedModel, cfg: &TrainerConfig) -> Result<Self> {
        let classes = lock(&model).config().num_classes;
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
            ema: cfg.ema.clone().map(Ema::new).transpose()?,
            precision: cfg.precision,
            stats: TrainStats::new(classes),
            last_logits: None,
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

    /// The moving average of the parameters, if the config has one.
    pub fn ema(&self) -> Option<&Ema> {
        self.ema.as_ref()
    }

    /// Exchanges the trained parameters' values with their EMA in place (see [`Ema::swap`]):
    /// the model then evaluates and saves with the EMA weights; a second call swaps back. Steps
    /// and state save/load are refused while swapped. [`Error::State`] without an EMA.
    pub fn swap_ema(&mut self) -> Result<()> {
        let ema = self.ema.as_mut().ok_or_else(|| Error::State("this trainer has no EMA (its config's ema is null)".into()))?;
        let _model = lock(&self.model);
        ema.swap(&self.params)
    }

    /// Refuses training while the model holds the EMA weights.
    fn check_not_swapped(&self) -> Result<()> {
        match &self.ema {
            Some(e) if e.swapped() => {
                Err(Error::State("the model holds the EMA weights (hn_trainer_swap_ema); swap them back before training".into()))
            }
            _ => Ok(()),
        }
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
        self.check_not_swapped()?;
        let logits = self.forward_for_training(&lock(&self.model), x)?;
        let out = logits.f_detach()?;
        self.pending = Some(logits);
        self.last_logits = Some(out.shallow_clone());
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
        let grad = Tensor::f_from_slice(dlogits)?.f_view(logits.size().as_slice())?.f_to_device(logits.device())?;
        let shared = self.model.clone();
        let _model = lock(&shared);
        // d/dlogits of sum(logits * g) is exactly g: this is `logits.backward(g)`.
        let result = logits
            .f_mul(&grad)
            .and_then(|s| s.f_sum(Kind::Float))
            .and_then(|s| s.f_backward())
            .map_err(Error::from)
            .and_then(|()| self.clip_and_step())
            .and_then(|norm| norm.value());
        zero_grad(&self.params)?;
        result
    }

    /// The train-mode forward for this trainer's [`Trainable`] setting.
    /// Under `bf16` it runs in an autocast region that ends with the float32 cast of the logits,
    /// so the loss (computed from them) and the backward are float32 either way.
    fn forward_for_training(&self, model: &crate::model::HybridNet, x: &Tensor) -> Result<Tensor> {
        let _autocast = match self.precision {
            Precision::Bf16 => Some(crate::cuda::ops::Autocast::bf16(model.device())?),
            Precision::Fp32 => None,
        };
        let logits = match self.trainable {
            Trainable::All => model.forward_t(x, true)?,
            Trainable::Head => model.forward_head_train(x)?,
        };
        match self.precision {
            Precision::Bf16 => Ok(logits.f_to_kind(Kind::Float)?),
            Precision::Fp32 => Ok(logits),
        }
    }

    /// The names of the parameters this trainer updates.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Clip, optimizer step, then the EMA update (its buffers are made from the weights the
    /// first step starts from).
    fn clip_and_step(&mut self) -> Result<GradNorm> {
        self.check_not_swapped()?;
        if let Some(ema) = &mut self.ema {
            ema.prepare(&self.params)?;
        }
        let norm = self.optimizer.step_clipped(&self.params, self.clip)?;
        if let Some(ema) = &mut self.ema {
            ema.update(&self.params)?;
        }
        Ok(norm)
    }

    /// One call: train-mode forward, native loss (mean over the batch), backward, clip, step.
    pub fn train_step(&mut self, x: &Tensor, targets: &[i32]) -> Result<StepOutput> {
        let (logits, loss, grad_norm) = self.step_native(x, targets)?;
        Ok(StepOutput { logits, loss: loss.f_double_value(&[])?, grad_norm: grad_norm.value()? })
    }

    /// [`Trainer::train_step`] without reading the loss back: the batch is counted in the train
    /// statistics on the device, and the loss stays a scalar tensor there.
    pub fn step_native(&mut self, x: &Tensor, targets: &[i32]) -> Result<(Tensor, Tensor, GradNorm)> {
        self.pending = None;
        self.last_logits = None;
        self.check_not_swapped()?;
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
            let (logits, loss) = (logits.f_detach()?, loss.f_detach()?);
            self.stats.add(&logits, targets, BatchLoss::Device(&loss))?;
            Ok((logits, loss, grad_norm))
        });
        zero_grad(&self.params)?;
        result
    }

    /// Starts a new epoch's train statistics, counting as `cfg` says, from `loss_sum` (see
    /// [`TrainStats::with_config`]).
    pub fn reset_stats(&mut self, cfg: StatsConfig, loss_sum: f64) -> Result<()> {
        self.stats = TrainStats::with_config(lock(&self.model).config().num_classes, cfg, loss_sum)?;
        Ok(())
    }

    /// This epoch's train statistics so far.
    pub fn stats(&self) -> &TrainStats {
        &self.stats
    }

    /// Counts the logits of the last `forward_train` against `targets` with the batch's mean
    /// `loss` from TS (the logits path), once: [`Error::State`] without such a forward.
    pub fn count_last(&mut self, targets: &[i32], loss: f64) -> Result<()> {
        let logits = self.last_logits.take().ok_or_else(|| Error::State("count_last: no forward_train to count".into()))?;
        self.stats.add(&logits, targets, BatchLoss::Host(loss))
    }

    /// Saves the optimizer state (moments, step counts) and the EMA (`ema.<param>` tensors and
    /// the `ema_updates` metadata) as safetensors, atomically. Refused while the EMA is swapped in.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let (mut tensors, mut meta) = self.optimizer.state_dict()?;
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state_tensors(&self.params)?);
            meta.insert(ema::UPDATES_KEY.to_string(), ema.updates().to_string());
        }
        checkpoint::write_file(path, &tensors, meta)
    }

    /// Loads the state written by [`Trainer::save_state`] (strict: an EMA in the file needs one
    /// in this trainer and the other way round; nothing changes on error).
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let file = checkpoint::read_file(path)?;
        let origin = path.display().to_string();
        let ck = |msg: String| Error::Checkpoint(format!("{origin}: {msg}"));
        let (ema_tensors, opt_tensors): (Vec<_>, Vec<_>) = file.tensors.into_iter().partition(|(n, _)| n.starts_with(ema::STATE_PREFIX));
        let loaded = match &self.ema {
            Some(e) => {
                let named: Vec<(&str, &checkpoint::F32Tensor)> =
                    ema_tensors.iter().map(|(n, t)| (&n[ema::STATE_PREFIX.len()..], t)).collect();
                Some(e.check_state(&self.params, &named, file.metadata.get(ema::UPDATES_KEY), &ck)?)
            }
            None if !ema_tensors.is_empty() || file.metadata.contains_key(ema::UPDATES_KEY) => {
                return Err(ck("the state has an EMA (ema.* tensors), this trainer has none (its config's ema is null)".into()));
            }
            None => None,
        };
        self.optimizer.load_state_dict(&self.params, &opt_tensors, &file.metadata, &origin)?;
        if let (Some(e), Some(loaded)) = (&mut self.ema, loaded) {
            e.commit(loaded);
        }
        Ok(())
    }
}
