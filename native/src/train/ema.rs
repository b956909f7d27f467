//! Exponential moving average (EMA) of the trained parameters, updated after every optimizer
//! step: `ema = lerp(ema, p, 1 - d_t)`, i.e. `ema = d_t * ema + (1 - d_t) * p`.
//!
//! **Warm-up rule.** With `t` the EMA updates taken before this one (0 for the first) and
//! `W = warmup_steps`:
//!
//! ```text
//! d_t = decay                              if W == 0
//! d_t = min(decay, (1 + t) / (W + t))      otherwise
//! ```
//!
//! TensorFlow's `ExponentialMovingAverage(num_updates=t)` rule, with its fixed 10 made the
//! `W` of the config. Why this one: while the ramp is below `decay` the average spans about the
//! last `(W + t) / (W - 1)` updates, a fixed share of the run so far (W = 2 is the plain running
//! mean of every weight since the start), so the random start is forgotten as fast as training
//! moves away from it, and no step count has to be known in advance. `W` is a scale, not the
//! ramp's length: the ramp reaches `decay` after `(decay * W - 1) / (1 - decay)` updates (about
//! 9000 for `decay = 0.999, W = 10`). `W = 0` (and `W = 1`, where the ramp is 1) give the constant
//! `decay`.
//!
//! The average starts as a copy of the parameters the first optimizer step starts from (so weights
//! loaded into the model after the trainer was made are what it averages from); until then it
//! equals the weights. The lerp form keeps an EMA equal to a parameter that does not move (frozen
//! or gradient-less ones) bit for bit, which `mul_(d).add_(p, 1 - d)` would not.
//!
//! On CPU float32 contiguous tensors the update and the swap are one pass over memory (each
//! parameter and EMA element read once, the EMA written once; AVX-512 / AVX2 dispatch as in
//! [`super::fused_adam`], on its worker pool); anything else (CUDA, other layouts) takes ATen's
//! `lerp_` / `copy_` per tensor.

use super::fused_adam::{is_plain_f32, pool, work_items, CHUNK};
use crate::checkpoint::F32Tensor;
use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

/// The `ema` object of the trainer config (`null` or absent: no EMA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// The decay once warmed up, in (0, 1).
    pub decay: f64,
    /// The warm-up scale `W` of the module doc's rule; 0 (the default): the constant decay.
    #[serde(default)]
    pub warmup_steps: u64,
}

impl EmaConfig {
    /// Range checks, the same as zod's: `decay` finite and in (0, 1).
    pub fn validate(&self) -> Result<()> {
        if !(self.decay.is_finite() && self.decay > 0.0 && self.decay < 1.0) {
            return Err(Error::invalid(format!("ema.decay must be in (0, 1), got {}", self.decay)));
        }
        Ok(())
    }

    /// The decay of the update that follows `t` earlier updates (the module doc's rule).
    pub fn decay_at(&self, t: u64) -> f64 {
        if self.warmup_steps == 0 {
            return self.decay;
        }
        let (t, w) = (t as f64, self.warmup_steps as f64);
        self.decay.min((1.0 + t) / (w + t))
    }
}

/// Prefix of the EMA tensors in the trainer state file (`ema.<param>`).
pub const STATE_PREFIX: &str = "ema.";
/// Metadata key of the update count in the trainer state file.
pub const UPDATES_KEY: &str = "ema_updates";

/// The moving average of a trainer's parameters (same order as the trainer's list).
#[derive(Debug)]
pub struct Ema {
    cfg: EmaConfig,
    /// One buffer per parameter; `None` until the first update (the EMA equals the weights).
    shadow: Option<Vec<Tensor>>,
    updates: u64,
    fused_updates: u64,
    swapped: bool,
}

impl Ema {
    /// A fresh EMA (no update yet).
    pub fn new(cfg: EmaConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, shadow: None, updates: 0, fused_updates: 0, swapped: false })
    }

    /// The configuration.
    pub fn config(&self) -> &EmaConfig {
        &self.cfg
    }

    /// Updates taken so far (the `t` of the warm-up rule).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// How many updates took the fused CPU pass for every tensor.
    pub fn fused_updates(&self) -> u64 {
        self.fused_updates
    }

    /// Whether the model holds the EMA weights now (see [`Ema::swap`]).
    pub fn swapped(&self) -> bool {
        self.swapped
    }

    /// The EMA buffers (parameter order), `None` before the first update.
    pub fn buffers(&self) -> Option<&[Tensor]> {
        self.shadow.as_deref()
    }

    /// Makes the buffers (copies of `params`) if there are none yet. Call before the optimizer
    /// step whose result [`Ema::update`] then averages in.
    pub fn prepare(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        if self.shadow.is_none() {
            let _guard = tch::no_grad_guard();
            let copies = params.iter().map(|(_, p)| copy_of(p)).collect::<Result<Vec<_>>>()?;
            self.shadow = Some(copies);
        }
        Ok(())
    }

    /// One update with the decay of the warm-up rule: `ema = lerp(ema, p, 1 - d_t)`.
    pub fn update(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        if self.swapped {
            return Err(swapped_error());
        }
        self.prepare(params)?;
        let weight = 1.0 - self.cfg.decay_at(self.updates);
        let shadow = self.shadow.as_ref().ok_or_else(|| Error::State("EMA buffers".into()))?;
        let fused = lerp_all(shadow, params, weight)?;
        self.updates += 1;
        if fused {
            self.fused_updates += 1;
        }
        Ok(())
    }

    /// Exchanges the values of `params` and the EMA buffers in place (the parameters keep their
    /// storage, so optimizer state and autograd stay attached). Twice restores both bit for bit.
    /// Before the first update the EMA is the weights, so only the flag changes.
    pub fn swap(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        if let Some(shadow) = &self.shadow {
            swap_all(shadow, params)?;
        }
        self.swapped = !self.swapped;
        Ok(())
    }

    /// The state's tensors: `ema.<param>` (none before the first update); the update count goes
    /// into the metadata as [`UPDATES_KEY`].
    pub fn state_tensors(&self, params: &[(String, Tensor)]) -> Result<Vec<(String, F32Tensor)>> {
        if self.swapped {
            return Err(swapped_error());
        }
        let mut tensors = Vec::new();
        if let Some(shadow) = &self.shadow {
            for ((name, _), e) in params.iter().zip(shadow) {
                tensors.push((format!("{STATE_PREFIX}{name}"), F32Tensor::from_tensor(e)?));
            }
        }
        Ok(tensors)
    }

    /// Checks a saved state against `params` (every parameter's `ema.<param>` of its shape, or
    /// none of them; `updates` from the metadata) and returns what [`Ema::commit`] installs.
    /// Nothing changes here.
    pub fn check_state(
        &self,
        params: &[(String, Tensor)],
        tensors: &[(&str, &F32Tensor)],
        updates: Option<&String>,
        ck: &dyn Fn(String) -> Error,
    ) -> Result<LoadedEma> {
        if self.swapped {
            return Err(swapped_error());
        }
        let updates: u64 = updates.and_then(|s| s.parse().ok()).ok_or_else(|| {
            ck(format!("metadata lacks a valid \"{UPDATES_KEY}\": the state was written by a trainer without an EMA (ema: null)"))
        })?;
        let by_name: HashMap<&str, &F32Tensor> = tensors.iter().copied().collect();
        let params_by_name: HashMap<&str, &Tensor> = params.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for name in by_name.keys() {
            if !params_by_name.contains_key(name) {
                return Err(ck(format!("unexpected tensor {STATE_PREFIX}{name} (no trained parameter {name})")));
            }
        }
        if by_name.is_empty() {
            if updates > 0 {
                return Err(ck(format!("{UPDATES_KEY} is {updates} but the file has no {STATE_PREFIX}* tensors")));
            }
            return Ok(LoadedEma { shadow: None, updates });
        }
        let mut shadow = Vec::with_capacity(params.len());
        for (name, p) in params {
            let t = by_name.get(name.as_str()).ok_or_else(|| ck(format!("missing tensor {STATE_PREFIX}{name}")))?;
            if t.shape != p.size() {
                return Err(ck(format!("tensor {STATE_PREFIX}{name} has shape {:?}, the parameter has {:?}", t.shape, p.size())));
            }
            shadow.push(t.to_tensor()?.f_to_device(p.device())?);
        }
        Ok(LoadedEma { shadow: Some(shadow), updates })
    }

    /// Installs a state checked by [`Ema::check_state`].
    pub fn commit(&mut self, loaded: LoadedEma) {
        self.shadow = loaded.shadow;
        self.updates = loaded.updates;
    }
}

/// A checked EMA state, waiting for the rest of the trainer state to be checked too.
#[derive(Debug)]
pub struct LoadedEma {
    shadow: Option<Vec<Tensor>>,
    updates: u64,
}

fn swapped_error() -> Error {
    Error::State("the model holds the EMA weights (hn_trainer_swap_ema); swap them back first".into())
}

/// A detached copy of `p` with its layout.
fn copy_of(p: &Tensor) -> Result<Tensor> {
    let mut e = p.f_detach()?.f_zeros_like()?;
    e.f_copy_(p)?;
    Ok(e)
}

/// One parameter and its EMA as raw same-length float32 buffers.
#[derive(Debug, Clone, Copy)]
struct Pair {
    param: *mut f32,
    ema: *mut f32,
    len: usize,
}

// SAFETY: a pair points into tensors the caller keeps alive and that no other thread touches
// during the pass (the trainer and model mutexes are held); chunks never overlap.
unsafe impl Send for Pair {}
unsafe impl Sync for Pair {}

impl Pair {
    fn new(param: &Tensor, ema: &Tensor) -> Option<Self> {
        if !(is_plain_f32(param) && is_plain_f32(ema) && param.numel() == ema.numel()) {
            return None;
        }
        Some(Self { param: param.data_ptr() as *mut f32, ema: ema.data_ptr() as *mut f32, len: param.numel() })
    }
}

/// The fused pairs of every tensor, or `None` when any tensor needs the ATen path.
fn pairs(shadow: &[Tensor], params: &[(String, Tensor)]) -> Option<Vec<Pair>> {
    if shadow.len() != params.len() {
        return None;
    }
    params.iter().zip(shadow).map(|((_, p), e)| Pair::new(p, e)).collect()
}

/// Runs `f(param chunk, ema chunk)` over every chunk of every pair on the optimizer's pool;
/// false when no pool could be made (nothing touched).
fn for_each_chunk(pairs: &[Pair], f: impl Fn(&mut [f32], &mut [f32]) + Sync) -> bool {
    let Some(pool) = pool() else { return false };
    let items = work_items(pairs.iter().map(|p| p.len));
    pool.install(|| {
        items.par_iter().for_each(|&(i, start)| {
            let s = &pairs[i];
            let n = CHUNK.min(s.len - start);
            // SAFETY: `start + n <= len`, the two buffers are live and distinct tensors (Pair::new
            // on a parameter and its own EMA copy), and each (pair, start) item is visited by
            // exactly one thread.
            unsafe {
                f(std::slice::from_raw_parts_mut(s.param.add(start), n), std::slice::from_raw_parts_mut(s.ema.add(start), n));
            }
        });
    });
    true
}

/// `ema = lerp(ema, p, weight)` for every pair; true when it took the fused pass.
fn lerp_all(shadow: &[Tensor], params: &[(String, Tensor)], weight: f64) -> Result<bool> {
    let _guard = tch::no_grad_guard();
    if let Some(pairs) = pairs(shadow, params) {
        let w = weight as f32;
        if for_each_chunk(&pairs, |p, e| lerp_chunk(e, p, w)) {
            return Ok(true);
        }
    }
    for ((_, p), e) in params.iter().zip(shadow) {
        let mut e = e.shallow_clone();
        let _ = e.f_lerp_(p, weight)?;
    }
    Ok(false)
}

/// Exchanges the values of every parameter and its EMA.
fn swap_all(shadow: &[Tensor], params: &[(String, Tensor)]) -> Result<()> {
    let _guard = tch::no_grad_guard();
    if let Some(pairs) = pairs(shadow, params) {
        if for_each_chunk(&pairs, |p, e| p.swap_with_slice(e)) {
            return Ok(());
        }
    }
    for ((_, p), e) in params.iter().zip(shadow) {
        let tmp = copy_of(p)?;
        let (mut p, mut e) = (p.shallow_clone(), e.shallow_clone());
        p.f_copy_(&e)?;
        e.f_copy_(&tmp)?;
    }
    Ok(())
}

/// `e = lerp(e, p, w)` element-wise, with ATen's two forms (`e + w * (p - e)` for `w < 0.5`,
/// `p - (p - e) * (1 - w)` otherwise). Compiled for AVX-512 / AVX2 when the CPU has them
/// (element-wise f32, no FMA contraction, so every build gives the same bits).
fn lerp_chunk(e: &mut [f32], p: &[f32], w: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { lerp_chunk_avx512(e, p, w) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { lerp_chunk_avx2(e, p, w) };
        }
    }
    lerp_chunk_body(e, p, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn lerp_chunk_avx512(e: &mut [f32], p: &[f32], w: f32) {
    lerp_chunk_body(e, p, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lerp_chunk_avx2(e: &mut [f32], p: &[f32], w: f32) {
    lerp_chunk_body(e, p, w)
}

#[inline(always)]
fn lerp_chunk_body(e: &mut [f32], p: &[f32], w: f32) {
    if w < 0.5 {
        for (e, &p) in e.iter_mut().zip(p) {
            *e += w * (p - *e);
        }
    } else {
        let v = 1.0 - w;
        for (e, &p) in e.iter_mut().zip(p) {
            *e = p - (p - *e) * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn wave(n: i64, freq: f64, phase: f64) -> Tensor {
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * freq + phase).sin()
    }

    /// Parameters of awkward sizes (tails, several work chunks).
    fn sample(step: i64) -> Vec<(String, Tensor)> {
        [1i64, 17, 1000, 70_003]
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("p{i}"), wave(n, 0.37 + step as f64 * 0.01, i as f64 + step as f64)))
            .collect()
    }

    /// Moves `params` in place to the values of step `step`.
    fn move_to(params: &[(String, Tensor)], step: i64) {
        for ((_, p), (_, q)) in params.iter().zip(sample(step)) {
            p.shallow_clone().copy_(&q);
        }
    }

    #[test]
    fn the_warm_up_rule() {
        let c = EmaConfig { decay: 0.999, warmup_steps: 0 };
        assert_eq!((c.decay_at(0), c.decay_at(1_000_000)), (0.999, 0.999));
        let c = EmaConfig { decay: 0.9, warmup_steps: 10 };
        assert_eq!(c.decay_at(0), 0.1);
        assert_eq!(c.decay_at(2), 3.0 / 12.0);
        assert_eq!(c.decay_at(1000), 0.9);
        // W = 2: the running mean of every weight so far.
        let c = EmaConfig { decay: 0.99, warmup_steps: 2 };
        assert_eq!(c.decay_at(0), 0.5);
        assert_eq!(c.decay_at(1), 2.0 / 3.0);
    }

    #[test]
    fn config_ranges_are_zods() {
        for (json, ok) in [
            (r#"{"decay":0.999}"#, true),
            (r#"{"decay":0.5,"warmup_steps":10}"#, true),
            (r#"{"decay":0}"#, false),
            (r#"{"decay":1}"#, false),
            (r#"{"decay":0.9,"warmup_steps":-1}"#, false),
            (r#"{"decay":0.9,"warmup_steps":1.5}"#, false),
            (r#"{"decay":0.9,"warmupSteps":1}"#, false),
            (r#"{"warmup_steps":1}"#, false),
        ] {
            let parsed: std::result::Result<EmaConfig, _> = serde_json::from_str(json);
            assert_eq!(parsed.map(|c| c.validate().is_ok()).unwrap_or(false), ok, "{json}");
        }
    }

    /// The fused pass equals ATen's lerp_ (and `mul_(d).add_(p, 1-d)`) to 1e-6 over several
    /// steps with warm-up, both branches of lerp included (W = 10 starts at weight 0.9).
    #[test]
    fn fused_update_matches_aten() {
        let cfg = EmaConfig { decay: 0.95, warmup_steps: 10 };
        let live = sample(0);
        let mut ema = Ema::new(cfg.clone()).unwrap();
        let mut lerp_ref: Vec<Tensor> = live.iter().map(|(_, p)| p.copy()).collect();
        let mut muladd_ref: Vec<Tensor> = live.iter().map(|(_, p)| p.copy()).collect();
        for step in 1..=12 {
            ema.prepare(&live).unwrap();
            move_to(&live, step);
            ema.update(&live).unwrap();
            let d = cfg.decay_at(step as u64 - 1);
            for (((_, p), l), m) in live.iter().zip(&mut lerp_ref).zip(&mut muladd_ref) {
                let _ = l.lerp_(p, 1.0 - d);
                let _ = m.f_mul_scalar_(d).unwrap().f_add_(&(p * (1.0 - d))).unwrap();
            }
            for ((e, l), m) in ema.buffers().unwrap().iter().zip(&lerp_ref).zip(&muladd_ref) {
                let dl = (e - l).abs().max().double_value(&[]);
                let dm = (e - m).abs().max().double_value(&[]);
                assert!(dl <= 1e-6 && dm <= 1e-6, "step {step}: lerp {dl}, mul/add {dm}");
            }
        }
        assert_eq!((ema.updates(), ema.fused_updates()), (12, 12));
    }

    #[test]
    fn non_contiguous_tensors_take_the_aten_path() {
        let p = wave(64, 0.3, 0.0).view([8, 8]).transpose(0, 1); // not contiguous
        assert!(!p.is_contiguous());
        let live = vec![("w".to_string(), p)];
        let mut ema = Ema::new(EmaConfig { decay: 0.5, warmup_steps: 0 }).unwrap();
        ema.prepare(&live).unwrap();
        let start = live[0].1.copy();
        live[0].1.shallow_clone().copy_(&(&start + 1.0));
        ema.update(&live).unwrap();
        assert_eq!(ema.fused_updates(), 0);
        let want = &start + 0.5;
        assert!((ema.buffers().unwrap()[0].copy() - want).abs().max().double_value(&[]) <= 1e-6);
        // swap twice restores both on this path too
        let (p0, e0) = (live[0].1.copy(), ema.buffers().unwrap()[0].copy());
        ema.swap(&live).unwrap();
        assert!(live[0].1.equal(&e0) && ema.buffers().unwrap()[0].equal(&p0));
        ema.swap(&live).unwrap();
        assert!(live[0].1.equal(&p0) && ema.buffers().unwrap()[0].equal(&e0));
    }

    #[test]
    fn a_parameter_that_does_not_move_keeps_its_ema_exactly() {
        let live = sample(3);
        let mut ema = Ema::new(EmaConfig { decay: 0.999, warmup_steps: 7 }).unwrap();
        for _ in 0..5 {
            ema.update(&live).unwrap();
        }
        for ((_, p), e) in live.iter().zip(ema.buffers().unwrap()) {
            assert!(p.equal(e));
        }
    }

    #[test]
    fn swap_twice_restores_and_updates_wait_for_the_swap_back() {
        let live = sample(0);
        let mut ema = Ema::new(EmaConfig { decay: 0.9, warmup_steps: 0 }).unwrap();
        ema.swap(&live).unwrap(); // before any update: only the flag
        assert!(ema.swapped() && ema.buffers().is_none());
        assert!(matches!(ema.update(&live), Err(Error::State(_))));
        ema.swap(&live).unwrap();
        ema.prepare(&live).unwrap();
        move_to(&live, 1);
        ema.update(&live).unwrap();
        let p0: Vec<Tensor> = live.iter().map(|(_, p)| p.copy()).collect();
        let e0: Vec<Tensor> = ema.buffers().unwrap().iter().map(Tensor::copy).collect();
        ema.swap(&live).unwrap();
        for (((_, p), e), (p0, e0)) in live.iter().zip(ema.buffers().unwrap()).zip(p0.iter().zip(&e0)) {
            assert!(p.equal(e0) && e.equal(p0));
        }
        assert!(ema.state_tensors(&live).is_err(), "no state while swapped");
        ema.swap(&live).unwrap();
        for (((_, p), e), (p0, e0)) in live.iter().zip(ema.buffers().unwrap()).zip(p0.iter().zip(&e0)) {
            assert!(p.equal(p0) && e.equal(e0));
        }
    }
}
