//! `HnTrainer` train-statistics exports: reset at an epoch's start, count the logits path's
//! batch, read the epoch's figures (loss sum, images, steps, confusion, top-k hits) once.

use super::trainer::HnTrainer;
use super::{handle, slice, write_str};
use crate::ffi_fn;
use crate::model::lock;
use crate::train::stats::StatsConfig;

ffi_fn! {
    /// Starts a new epoch of train statistics from JSON `{"classes":[k..],"top_k":[k..],
    /// "bias":null|[C],"carry":null|{"images":n,"steps":n,"confusion":[[..]..],"top_k":{"k":n}}}`
    /// (unknown fields rejected): the argmax runs over `classes` (distinct, in `[0, C)`, at least
    /// one) and rows with another label are not counted; top-k hits for each k below the number
    /// of classes given; `bias` is added to the logit columns (float64) before counting; `carry`
    /// and `loss_sum` are what a resumed epoch had already counted (null and 0 for a new epoch;
    /// the sum is an argument so that it arrives bit for bit). Every later
    /// `hn_trainer_train_step` and `hn_trainer_count_last` adds its batch. `t` must be a live
    /// handle; waits for other calls on the trainer.
    fn hn_trainer_stats_reset(t: *mut HnTrainer, cfg: *const u8, cfg_len: usize, loss_sum: f64) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let mut tr = t.lock();
        let c = lock(tr.model()).config().num_classes;
        let cfg = StatsConfig::from_json(unsafe { slice(cfg, cfg_len, "cfg") }?, c)?;
        tr.reset_stats(cfg, loss_sum)
    }
}

ffi_fn! {
    /// Counts the logits of the last `hn_trainer_forward_train` against `targets` (`n_targets`
    /// = its batch size, values in `[0, C)`) with the batch's mean `loss` computed by the caller
    /// (the logits path), once per forward: `HN_ERR_STATE` when there is none left to count.
    /// Inputs are copied.
    fn hn_trainer_count_last(t: *mut HnTrainer, targets: *const i32, n_targets: usize, loss: f64) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let targets = unsafe { slice(targets, n_targets, "targets") }?;
        t.lock().count_last(targets, loss)
    }
}

ffi_fn! {
    /// Writes the epoch's train statistics since `hn_trainer_stats_reset` (or the trainer's
    /// creation) as `{"images":n,"steps":n,"loss_sum":x|null,"confusion":[[..]..],
    /// "top_k":{"k":hits}}` with the `HN_ERR_BUFFER_TOO_SMALL` protocol: `loss_sum` = Σ batch mean
    /// loss × batch size (null once it is not finite), `confusion` C × C (row = label, column =
    /// argmax). The one read back of the epoch's counts (a device sync on CUDA).
    fn hn_trainer_train_stats(t: *const HnTrainer, buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        let t = unsafe { handle(t, "trainer") }?;
        let s = t.lock().stats().to_json()?;
        unsafe { write_str(&s, buf, cap, out_len) }
    }
}
