//! `HnTrainer` exports: create/free, describe, learning rate, the two-call step (forward_train +
//! backward_step, NB), loss selection, the one-call train_step (NB), step count, state
//! save/load, the EMA swap, last error.

use super::model::HnModel;
use super::{handle, input_batch, out, slice, str_arg, write_str, write_tensor, ErrorSlot, HasErrorSlot};
use crate::error::{Error, Result};
use crate::model::lock;
use crate::train::{LossConfig, Trainer, TrainerConfig};
use crate::{declare_own, ffi_fn};
use serde_json::json;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Opaque trainer handle: the trainer (holding a reference to its model), the config it was
/// made from and its last error.
#[derive(Debug)]
pub struct HnTrainer {
    trainer: Mutex<Trainer>,
    config: TrainerConfig,
    last_error: ErrorSlot,
}

impl HasErrorSlot for HnTrainer {
    fn error_slot(&self) -> &ErrorSlot {
        &self.last_error
    }
}

impl HnTrainer {
    pub(super) fn lock(&self) -> MutexGuard<'_, Trainer> {
        self.trainer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The describe JSON: the `hn_trainer_new` config as decoded, the optimizer steps taken, how
    /// many of them took the fused Adam pass, and the EMA's updates (fused ones) and swap state.
    pub fn describe(&self) -> Result<String> {
        let config = serde_json::to_value(&self.config).map_err(|e| Error::State(format!("describe: {e}")))?;
        let t = self.lock();
        let opt = t.optimizer();
        let ema = t.ema().map(|e| json!({"updates": e.updates(), "fused_updates": e.fused_updates(), "swapped": e.swapped()}));
        Ok(json!({"config": config, "steps": opt.step_count(), "fused_steps": opt.fused_step_count(), "ema": ema}).to_string())
    }
}

/// Checks `out_len == n * num_classes` for the trainer's model before any work is done.
fn check_logits_len(t: &Trainer, xs: &tch::Tensor, out_len: usize) -> Result<()> {
    let n = xs.size().first().copied().unwrap_or(0);
    let need = n * lock(t.model()).config().num_classes;
    if out_len as i64 != need {
        return Err(Error::invalid(format!("out_len is {out_len}, needs n*num_classes = {need}")));
    }
    Ok(())
}

ffi_fn! {
    /// Creates a trainer for model `m` from JSON `(cfg, cfg_len)`:
    /// `{"optimizer":{"kind":"adam"|"adamw"|"sgd","lr":..,"betas":[..],"eps":..,
    /// "weight_decay":..,"momentum":..,"nesterov":..,"fused":..},"clip_grad_norm":null|x,
    /// "seed":n,"trainable":"all"|"head","ema":null|{"decay":d,"warmup_steps":w}}` (unknown fields
    /// rejected). Stores the handle in `*out` (non-null); the caller owns it and frees it with
    /// `hn_trainer_free`. The trainer keeps the model alive, so `m` may be freed first. The native loss starts as cross-entropy (see
    /// `hn_trainer_set_loss`).
    fn hn_trainer_new(m: *mut HnModel, cfg: *const u8, cfg_len: usize, out_handle: *mut *mut HnTrainer) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let out_handle = unsafe { out(out_handle, "out") }?;
        let config = TrainerConfig::from_json(unsafe { slice(cfg, cfg_len, "cfg") }?)?;
        let trainer = Trainer::new(m.model.clone(), &config)?;
        *out_handle = super::new_handle(HnTrainer { trainer: Mutex::new(trainer), config, last_error: ErrorSlot::default() });
        Ok(())
    }
}

ffi_fn! {
    /// Writes `{"config":{..},"steps":n,"fused_steps":n,"ema":null|{"updates":n,"fused_updates":n,
    /// "swapped":b}}` (`config` is the `hn_trainer_new` JSON as decoded, with the defaults filled
    /// in; `fused_steps` counts the optimizer steps that took the fused Adam pass; `ema` is null
    /// without one) with the `HN_ERR_BUFFER_TOO_SMALL` protocol (`out_len` non-null gets the
    /// size). `t` must be a live handle; waits for other calls on the trainer.
    fn hn_trainer_describe(t: *const HnTrainer, buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let s = t.describe()?;
        unsafe { write_str(&s, buf, cap, out_len) }
    }
}

declare_own! {
    /// Frees a trainer (and drops its pending graph and its model reference). NULL is a no-op;
    /// at most once; not while another call on it is running.
    hn_trainer_free, HnTrainer
}

ffi_fn! {
    /// Sets the learning rate (finite, > 0) for the following steps.
    fn hn_trainer_set_lr(t: *mut HnTrainer, lr: f64) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        t.lock().set_lr(lr)
    }
}

ffi_fn! {
    /// Train-mode forward (dropout on) of `x` (`x_len == n*c*h*w`, `shape = [n,c,h,w]`,
    /// finite values); writes `out_len == n*num_classes` logits and keeps the graph for the
    /// next `hn_trainer_backward_step` (replacing any pending one). NB: errors also go to
    /// `hn_trainer_last_error`. Inputs are copied; calls on one trainer are serialised.
    fn hn_trainer_forward_train(t: *mut HnTrainer, x: *const f32, x_len: usize, shape: *const i64, out_logits: *mut f32, out_len: usize) on t {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let xs = unsafe { input_batch(x, x_len, shape) }?;
        let mut tr = t.lock();
        check_logits_len(&tr, &xs, out_len)?;
        let logits = tr.forward_train(&xs)?;
        unsafe { write_tensor(&logits, out_logits, out_len, "out_logits") }
    }
}

ffi_fn! {
    /// Runs `logits.backward(dlogits)` for the pending forward (`len` = its n*num_classes,
    /// finite values), clips to `clip_grad_norm`, takes an optimizer step, zeroes the grads
    /// and drops the graph. `*out_grad_norm` (non-null) gets the total L2 norm before
    /// clipping. Without a pending forward: `HN_ERR_STATE`. NB.
    fn hn_trainer_backward_step(t: *mut HnTrainer, dlogits: *const f32, len: usize, out_grad_norm: *mut f64) on t {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let out_grad_norm = unsafe { out(out_grad_norm, "out_grad_norm") }?;
        let mut tr = t.lock();
        if !tr.has_pending() {
            return Err(Error::State("backward_step called without a pending forward_train".into()));
        }
        let d = unsafe { slice(dlogits, len, "dlogits") }?;
        *out_grad_norm = tr.backward_step(d)?;
        Ok(())
    }
}

ffi_fn! {
    /// Sets the native loss from JSON `{"kind":"cross_entropy"|"focal","gamma":1.0,
    /// "alpha":null|[C],"class_mask":null|[0/1 x C]}`; masked-out classes are excluded from
    /// the softmax.
    fn hn_trainer_set_loss(t: *mut HnTrainer, cfg: *const u8, cfg_len: usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let loss = LossConfig::from_json(unsafe { slice(cfg, cfg_len, "cfg") }?)?;
        t.lock().set_loss(loss)
    }
}

ffi_fn! {
    /// One call: train-mode forward, native loss (mean over the batch) against `targets`
    /// (`n_targets == n` values in `[0, C)`), backward, clip, optimizer step; the batch is
    /// counted in the train statistics (`hn_trainer_train_stats`). Writes the logits
    /// (`out_len == n*num_classes`) and `*out_loss`; `out_logits` NULL with `out_len` 0 skips the
    /// logits and `out_loss` NULL skips the loss, so nothing is copied back to the host (on CUDA:
    /// no wait for the step to finish). Drops any pending graph. NB.
    fn hn_trainer_train_step(t: *mut HnTrainer, x: *const f32, x_len: usize, shape: *const i64, targets: *const i32, n_targets: usize, out_logits: *mut f32, out_len: usize, out_loss: *mut f64) on t {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let xs = unsafe { input_batch(x, x_len, shape) }?;
        let targets = unsafe { slice(targets, n_targets, "targets") }?;
        let want_logits = !(out_logits.is_null() && out_len == 0);
        let mut tr = t.lock();
        if want_logits {
            check_logits_len(&tr, &xs, out_len)?;
        }
        let (logits, loss, _) = tr.step_native(&xs, targets)?;
        if want_logits {
            unsafe { write_tensor(&logits, out_logits, out_len, "out_logits") }?;
        }
        if !out_loss.is_null() {
            // SAFETY: non-null, per this export's contract.
            *unsafe { out(out_loss, "out_loss") }? = loss.f_double_value(&[])?;
        }
        Ok(())
    }
}

ffi_fn! {
    /// Writes the number of optimizer steps taken so far to `*out_count` (non-null).
    fn hn_trainer_step_count(t: *const HnTrainer, out_count: *mut u64) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        *unsafe { out(out_count, "out") }? = t.lock().optimizer().step_count();
        Ok(())
    }
}

ffi_fn! {
    /// Saves the optimizer state (`exp_avg.<param>`, `exp_avg_sq.<param>`,
    /// `momentum.<param>`; step counts in the safetensors metadata) and, with an EMA, its
    /// `ema.<param>` tensors (none before the first step) and `ema_updates` metadata atomically
    /// to the UTF-8 path. `HN_ERR_STATE` while the EMA is swapped in.
    fn hn_trainer_save_state(t: *const HnTrainer, path: *const u8, path_len: usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let path = unsafe { str_arg(path, path_len, "path") }?;
        t.lock().save_state(Path::new(path))
    }
}

ffi_fn! {
    /// Loads optimizer state saved by `hn_trainer_save_state` (same optimizer kind, known
    /// parameter names and shapes, an EMA exactly when this trainer has one;
    /// `HN_ERR_CHECKPOINT` naming the tensor otherwise). On error the state is unchanged.
    fn hn_trainer_load_state(t: *mut HnTrainer, path: *const u8, path_len: usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let path = unsafe { str_arg(path, path_len, "path") }?;
        t.lock().load_state(Path::new(path))
    }
}

ffi_fn! {
    /// Exchanges the values of the trained parameters and their EMA in place (no allocation on
    /// CPU float32): afterwards the model evaluates and saves with the EMA weights; a second call
    /// swaps back, restoring both bit for bit. While swapped, steps and state save/load fail with
    /// `HN_ERR_STATE`. Before the first step the EMA equals the weights (only the flag flips).
    /// `HN_ERR_STATE` for a trainer made with `ema: null`. `t` must be a live handle; waits for
    /// other calls on the trainer and its model.
    fn hn_trainer_swap_ema(t: *mut HnTrainer) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        t.lock().swap_ema()
    }
}

ffi_fn! {
    /// Writes the message of the last failed call on this trainer handle (empty if none), with
    /// the `HN_ERR_BUFFER_TOO_SMALL` protocol. Thread-safe.
    fn hn_trainer_last_error(t: *const HnTrainer, buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        unsafe { write_str(&t.last_error.get(), buf, cap, out_len) }
    }
}
