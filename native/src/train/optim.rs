//! Optimizers written on tensors so their state can be saved: Adam (L2 weight decay added to
//! the gradient), AdamW (decoupled decay) and SGD with momentum / Nesterov, all with PyTorch's
//! update rules. Parameters whose gradient is undefined are skipped and get no state, as in
//! PyTorch (the FPN in `fpn: "skip"` mode never receives a gradient and stays unchanged).

use super::clip::clip_grad_norm;
use super::fused_adam;
use crate::checkpoint::F32Tensor;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tch::Tensor;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`.
    Adam,
    /// `torch.optim.AdamW`.
    Adamw,
    /// `torch.optim.SGD` (dampening 0).
    Sgd,
}

impl OptimizerKind {
    /// The lowercase name used in JSON and in state-file metadata.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Sgd => "sgd",
        }
    }

    /// The per-parameter state tensors this rule keeps (prefixes of the saved names).
    pub fn state_names(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Adam | OptimizerKind::Adamw => &["exp_avg", "exp_avg_sq"],
            OptimizerKind::Sgd => &["momentum"],
        }
    }
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}
fn default_momentum() -> f64 {
    0.9
}
fn default_true() -> bool {
    true
}

/// The parameters that have a gradient, with it: `(name, parameter, gradient)`.
fn live_grads(params: &[(String, Tensor)]) -> Result<Vec<(&String, &Tensor, Tensor)>> {
    let mut live = Vec::new();
    for (name, p) in params {
        let g = p.f_grad()?;
        if g.defined() {
            live.push((name, p, g));
        }
    }
    Ok(live)
}

/// The total gradient L2 norm of a step (before clipping): a number, or, when the step ran on a
/// device, a scalar tensor there, so that a step whose norm nobody reads never waits for the device.
#[derive(Debug)]
pub enum GradNorm {
    /// Computed on the host (the CPU paths).
    Host(f64),
    /// A 0-dim tensor on the parameters' device.
    Device(Tensor),
}

impl GradNorm {
    /// The norm as a number (on a device: waits for the step to finish).
    pub fn value(&self) -> Result<f64> {
        match self {
            GradNorm::Host(v) => Ok(*v),
            GradNorm::Device(t) => Ok(t.f_double_value(&[])?),
        }
    }
}

/// Optimizer hyper-parameters (the `optimizer` object of the trainer config). The ranges
/// [`OptimizerConfig::validate`] accepts are those of `OptimizerOptionsSchema` in
/// `ts/model/options.ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Learning rate, > 0.
    pub lr: f64,
    /// Adam betas, each in `[0, 1)` (default `[0.9, 0.999]`).
    #[serde(default = "default_betas")]
    pub betas: (f64, f64),
    /// Adam epsilon, > 0 (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Weight decay (L2 for Adam and SGD, decoupled for AdamW), >= 0. Default 0.
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum in `[0, 1)` (default 0.9; 0 disables the buffer).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// SGD Nesterov momentum (default false); needs momentum > 0.
    #[serde(default)]
    pub nesterov: bool,
    /// Adam and AdamW on CPU float32 take the one-pass kernel of [`super::fused_adam`]
    /// (default true); false takes the tensor-op path. Same update rule either way.
    #[serde(default = "default_true")]
    pub fused: bool,
}

impl OptimizerConfig {
    /// An Adam config with PyTorch defaults and learning rate `lr`.
    pub fn adam(lr: f64) -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
            momentum: default_momentum(),
            nesterov: false,
            fused: true,
        }
    }

    /// Range checks, the same as zod's: lr > 0, betas in `[0, 1)`, eps > 0, weight_decay >= 0,
    /// momentum in `[0, 1)`, all finite; nesterov needs momentum > 0. Messages name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, want: &str, v: f64| Error::invalid(format!("optimizer.{field} must be {want}, got {v}"));
        check_lr(self.lr)?;
        for (field, v) in [("betas[0]", self.betas.0), ("betas[1]", self.betas.1), ("momentum", self.momentum)] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(field, "in [0, 1)", v));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(bad("eps", "finite and > 0", self.eps));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", "finite and >= 0", self.weight_decay));
        }
        if self.nesterov && self.momentum <= 0.0 {
            return Err(Error::invalid("optimizer.nesterov requires momentum > 0"));
        }
        Ok(())
    }
}

/// A learning rate must be finite and > 0 (in the config and when it is changed later).
fn check_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!("optimizer.lr must be finite and > 0, got {lr}")))
    }
}

/// Saved optimizer state: named tensors plus string metadata.
pub type StateDict = (Vec<(String, F32Tensor)>, HashMap<String, String>);

/// Per-parameter state.
#[derive(Debug, Default)]
struct ParamState {
    step: u64,
    /// name ("exp_avg", "exp_avg_sq", "momentum") → tensor.
    buffers: BTreeMap<&'static str, Tensor>,
}

/// A stateful optimizer over named parameters.
#[derive(Debug)]
pub struct Optimizer {
    cfg: OptimizerConfig,
    state: HashMap<String, ParamState>,
    steps: u64,
    fused_steps: u64,
}

fn zeros_like(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_zeros_like()?)
}

fn buffer<'a>(st: &'a mut ParamState, name: &'static str, like: &Tensor) -> Result<&'a mut Tensor> {
    if !st.buffers.contains_key(name) {
        st.buffers.insert(name, zeros_like(like)?);
    }
    st.buffers.get_mut(name).ok_or_else(|| Error::State(format!("optimizer buffer {name}")))
}

impl Optimizer {
    /// A fresh optimizer (no state, step 0).
    pub fn new(cfg: OptimizerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, state: HashMap::new(), steps: 0, fused_steps: 0 })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Number of `step` calls so far.
    pub fn step_count(&self) -> u64 {
        self.steps
    }

    /// Changes the learning rate (finite, > 0) for the following steps.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.cfg.lr = lr;
        Ok(())
    }

    /// How many steps took the fused pass (the rest took the tensor path).
    pub fn fused_step_count(&self) -> u64 {
        self.fused_steps
    }

    /// Clips the gradients to `max_norm` (if given) and updates every parameter that has one;
    /// returns the total gradient L2 norm before clipping. With `fused`, Adam and AdamW on CPU
    /// float32 run as one pass (`fused_adam.rs`), on CUDA as ATen's fused multi-tensor kernels;
    /// everything else takes the tensor path.
    pub fn step_clipped(&mut self, params: &[(String, Tensor)], max_norm: Option<f64>) -> Result<GradNorm> {
        if self.cfg.fused && matches!(self.cfg.kind, OptimizerKind::Adam | OptimizerKind::Adamw) {
            if let Some(norm) = self.fused_step(params, max_norm)? {
                return Ok(GradNorm::Host(norm));
            }
            if let Some(norm) = self.device_fused_step(params, max_norm)? {
                return Ok(GradNorm::Device(norm));
            }
        }
        let norm = clip_grad_norm(params, max_norm)?;
        self.tensor_step(params)?;
        Ok(GradNorm::Host(norm))
    }

    /// One update of every parameter that has a gradient (no clipping).
    pub fn step(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        self.step_clipped(params, None).map(|_| ())
    }

    /// The fused CPU Adam/AdamW step, or `None` (state untouched but for zero moments made
    /// early) when a tensor is not plain CPU float32 or no worker pool could be made.
    fn fused_step(&mut self, params: &[(String, Tensor)], max_norm: Option<f64>) -> Result<Option<f64>> {
        let _guard = tch::no_grad_guard();
        let live = live_grads(params)?;
        if !live.iter().all(|(_, p, g)| fused_adam::is_plain_f32(p) && fused_adam::is_plain_f32(g)) {
            return Ok(None);
        }
        let (norm, scale) = match max_norm {
            Some(max) => {
                let grads: Vec<&Tensor> = live.iter().map(|(_, _, g)| g).collect();
                let Some(sumsq) = fused_adam::grad_sumsq(&grads) else { return Ok(None) };
                let norm = sumsq.sqrt();
                let coef = max / (norm + 1e-6);
                (Some(norm), if coef < 1.0 { coef as f32 } else { 1.0 })
            }
            None => (None, 1.0),
        };
        let cfg = &self.cfg;
        let (b1, b2) = cfg.betas;
        let mut slots = Vec::with_capacity(live.len());
        for (name, p, g) in &live {
            let st = self.state.entry((*name).clone()).or_default();
            let m = buffer(st, "exp_avg", p)?.shallow_clone();
            let v = buffer(st, "exp_avg_sq", p)?.shallow_clone();
            let step = (st.step + 1) as f64;
            let scalars = fused_adam::AdamScalars {
                one_minus_b1: (1.0 - b1) as f32,
                b2: b2 as f32,
                one_minus_b2: (1.0 - b2) as f32,
                step_size: (cfg.lr / (1.0 - b1.powf(step))) as f32,
                bc2_sqrt: (1.0 - b2.powf(step)).sqrt() as f32,
                eps: cfg.eps as f32,
                l2: if cfg.kind == OptimizerKind::Adam { cfg.weight_decay as f32 } else { 0.0 },
                decay: if cfg.kind == OptimizerKind::Adamw { (1.0 - cfg.lr * cfg.weight_decay) as f32 } else { 1.0 },
            };
            let Some(slot) = fused_adam::Slot::new(p, g, &m, &v, scalars) else { return Ok(None) };
            slots.push(slot);
        }
        let Some(sumsq) = fused_adam::adam_pass(&slots, scale) else { return Ok(None) };
        for (name, _, _) in &live {
            if let Some(st) = self.state.get_mut(name.as_str()) {
                st.step += 1;
            }
        }
        self.steps += 1;
        self.fused_steps += 1;
        Ok(Some(norm.unwrap_or_else(|| sumsq.sqrt())))
    }

    /// Adam/AdamW on CUDA float32 parameters as ATen's multi-tensor passes (`csrc/cuda_ops.cpp`):
    /// one `_foreach_norm` for the norm and the clip (computed on the device), one
    /// `_fused_adam(w)_`. `None` (nothing changed) when a parameter is not CUDA float32. The
    /// norm stays on the device (a scalar tensor): reading it would wait for the step.
    fn device_fused_step(&mut self, params: &[(String, Tensor)], max_norm: Option<f64>) -> Result<Option<Tensor>> {
        use crate::cuda::ops;
        let _guard = tch::no_grad_guard();
        let live = live_grads(params)?;
        let on_cuda = |t: &Tensor| t.device().is_cuda() && t.kind() == tch::Kind::Float;
        if live.is_empty() || !live.iter().all(|(_, p, g)| on_cuda(p) && on_cuda(g)) {
            return Ok(None);
        }
        let grads: Vec<&Tensor> = live.iter().map(|(_, _, g)| g).collect();
        let norm = ops::foreach_clip(&grads, max_norm)?;
        let (mut ms, mut vs, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        // One step-count tensor per distinct count and device (the kernel only reads them).
        let mut step_tensors: HashMap<(u64, tch::Device), Tensor> = HashMap::new();
        for (name, p, _) in &live {
            let st = self.state.entry((*name).clone()).or_default();
            ms.push(buffer(st, "exp_avg", p)?.shallow_clone());
            vs.push(buffer(st, "exp_avg_sq", p)?.shallow_clone());
            let key = (st.step + 1, p.device());
            let step = match step_tensors.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.get().shallow_clone(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Tensor::f_full([] as [i64; 0], key.0 as f64, (tch::Kind::Float, key.1))?).shallow_clone()
                }
            };
            steps.push(step);
        }
        let cfg = &self.cfg;
        let args = ops::AdamArgs {
            lr: cfg.lr,
            betas: cfg.betas,
            weight_decay: cfg.weight_decay,
            eps: cfg.eps,
            adamw: cfg.kind == OptimizerKind::Adamw,
        };
        let ps: Vec<&Tensor> = live.iter().map(|(_, p, _)| *p).collect();
        fn refs(v: &[Tensor]) -> Vec<&Tensor> {
            v.iter().collect()
        }
        ops::fused_adam_step(&ps, &grads, &refs(&ms), &refs(&vs), &refs(&steps), args)?;
        for (name, _, _) in &live {
            if let Some(st) = self.state.get_mut(name.as_str()) {
                st.step += 1;
            }
        }
        self.steps += 1;
        self.fused_steps += 1;
        Ok(Some(norm))
    }

    /// One update of every parameter that has a gradient with tensor ops (runs under `no_grad`).
    fn tensor_step(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (name, p) in params {
            let grad = p.f_grad()?;
            if !grad.defined() {
                continue;
            }
            let st = self.state.entry(name.clone()).or_default();
            st.step += 1;
            let mut p = p.shallow_clone();
            match self.cfg.kind {
                OptimizerKind::Adam | OptimizerKind::Adamw => adam_update(&self.cfg, st, &mut p, &grad)?,
                OptimizerKind::Sgd => sgd_update(&self.cfg, st, &mut p, &grad)?,
            }
        }
        self.steps += 1;
        Ok(())
    }

    /// The state as named float32 tensors (`exp_avg.<param>` ...), plus metadata holding the
    /// optimizer kind, the step count and each parameter's own step count.
    pub fn state_dict(&self) -> Result<StateDict> {
        let mut tensors = Vec::new();
        let mut param_steps = BTreeMap::new();
        for (param, st) in &self.state {
            param_steps.insert(param.clone(), st.step);
            for (buf, t) in &st.buffers {
                tensors.push((format!("{buf}.{param}"), F32Tensor::from_tensor(t)?));
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let meta = HashMap::from([
            ("format".to_string(), "hybridnet-trainer-state".to_string()),
            ("optimizer".to_string(), self.cfg.kind.name().to_string()),
            ("step".to_string(), self.steps.to_string()),
            ("param_steps".to_string(), serde_json::to_string(&param_steps).map_err(|e| Error::State(e.to_string()))?),
        ]);
        Ok((tensors, meta))
    }

    /// Replaces the state with one read from a file. Every tensor must be `<buffer>.<param>`
    /// for a buffer of this optimizer kind and a known parameter of the same shape; the
    /// metadata must name the same optimizer kind. Nothing changes on error.
    pub fn load_state_dict(
        &mut self,
        params: &[(String, Tensor)],
        tensors: &[(String, F32Tensor)],
        meta: &HashMap<String, String>,
        origin: &str,
    ) -> Result<()> {
        let ck = |msg: String| Error::Checkpoint(format!("{origin}: {msg}"));
        let kind = meta.get("optimizer").ok_or_else(|| ck("metadata lacks \"optimizer\"".into()))?;
        if kind != self.cfg.kind.name() {
            return Err(ck(format!("state is for optimizer {kind}, this trainer uses {}", self.cfg.kind.name())));
        }
        let steps: u64 = meta.get("step").and_then(|s| s.parse().ok()).ok_or_else(|| ck("metadata lacks a valid \"step\"".into()))?;
        let param_steps: BTreeMap<String, u64> = match meta.get("param_steps") {
            Some(s) => serde_json::from_str(s).map_err(|e| ck(format!("bad param_steps metadata: {e}")))?,
            None => BTreeMap::new(),
        };
        let shapes: HashMap<&str, Vec<i64>> = params.iter().map(|(n, t)| (n.as_str(), t.size())).collect();
        let devices: HashMap<&str, tch::Device> = params.iter().map(|(n, t)| (n.as_str(), t.device())).collect();
        let mut state: HashMap<String, ParamState> = HashMap::new();
        for (name, t) in tensors {
            let (buf, param) = name.split_once('.').ok_or_else(|| ck(format!("unexpected tensor {name}")))?;
            let buf =
                self.cfg.kind.state_names().iter().copied().find(|b| *b == buf).ok_or_else(|| ck(format!("unexpected tensor {name}")))?;
            let shape = shapes.get(param).ok_or_else(|| ck(format!("unexpected tensor {name} (no parameter {param})")))?;
            if &t.shape != shape {
                return Err(ck(format!("tensor {name} has shape {:?}, the parameter has {shape:?}", t.shape)));
            }
            let st = state.entry(param.to_string()).or_default();
            st.step = param_steps.get(param).copied().unwrap_or(steps);
            let device = devices.get(param).copied().unwrap_or(tch::Device::Cpu);
            let mut t = t.to_tensor()?;
            if device != tch::Device::Cpu {
                t = t.f_to_device(device)?;
            }
            st.buffers.insert(buf, t);
        }
        for (param, st) in &state {
            for buf in self.cfg.kind.state_names() {
                // SGD without momentum keeps no buffer; Adam always keeps both moments.
                let needed = self.cfg.kind != OptimizerKind::Sgd || self.cfg.momentum != 0.0;
                if needed && !st.buffers.contains_key(buf) {
                    return Err(ck(format!("missing tensor {buf}.{param}")));
                }
            }
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }
}

fn adam_update(cfg: &OptimizerConfig, st: &mut ParamState, p: &mut Tensor, grad: &Tensor) -> Result<()> {
    let (b1, b2) = cfg.betas;
    let mut g = grad.shallow_clone();
    if cfg.weight_decay != 0.0 {
        match cfg.kind {
            OptimizerKind::Adamw => {
                let _ = p.f_mul_scalar_(1.0 - cfg.lr * cfg.weight_decay)?;
            }
            _ => g = g.f_add(&p.f_mul_scalar(cfg.weight_decay)?)?,
        }
    }
    let step = st.step as f64;
    {
        let m = buffer(st, "exp_avg", p)?;
        let _ = m.f_mul_scalar_(b1)?;
        let _ = m.f_add_(&g.f_mul_scalar(1.0 - b1)?)?;
    }
    {
        let v = buffer(st, "exp_avg_sq", p)?;
        let _ = v.f_mul_scalar_(b2)?;
        let _ = v.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - b2)?)?;
    }
    let bias_correction1 = 1.0 - b1.powf(step);
    let bias_correction2 = 1.0 - b2.powf(step);
    let step_size = cfg.lr / bias_correction1;
    let m = st.buffers.get("exp_avg").ok_or_else(|| Error::State("exp_avg".into()))?;
    let v = st.buffers.get("exp_avg_sq").ok_or_else(|| Error::State("exp_avg_sq".into()))?;
    let denom = v.f_sqrt()?.f_div_scalar(bias_correction2.sqrt())?.f_add_scalar(cfg.eps)?;
    let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
    Ok(())
}

fn sgd_update(cfg: &OptimizerConfig, st: &mut ParamState, p: &mut Tensor, grad: &Tensor) -> Result<()> {
    let mut d_p = grad.shallow_clone();
    if cfg.weight_decay != 0.0 {
        d_p = d_p.f_add(&p.f_mul_scalar(cfg.weight_decay)?)?;
    }
    if cfg.momentum != 0.0 {
        let buf = if let Some(buf) = st.buffers.get_mut("momentum") {
            let _ = buf.f_mul_scalar_(cfg.momentum)?;
            let _ = buf.f_add_(&d_p)?;
            buf.shallow_clone()
        } else {
            let buf = d_p.f_detach_copy()?;
            st.buffers.insert("momentum", buf.shallow_clone());
            buf
        };
        d_p = if cfg.nesterov { d_p.f_add(&buf.f_mul_scalar(cfg.momentum)?)? } else { buf };
    }
    let _ = p.f_sub_(&d_p.f_mul_scalar(cfg.lr)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn param(vals: &[f32], grad: &[f32]) -> (String, Tensor) {
        let p = Tensor::from_slice(vals).set_requires_grad(true);
        let g = Tensor::from_slice(grad);
        (p.shallow_clone() * g).sum(Kind::Float).backward();
        ("w".to_string(), p)
    }

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        let params = vec![param(&[1.0, -2.0], &[0.5, -3.0])];
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.1)).unwrap();
        opt.step(&params).unwrap();
        let v: Vec<f32> = Vec::try_from(&params[0].1.detach()).unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6, "{v:?}");
        assert_eq!(opt.step_count(), 1);
    }

    #[test]
    fn sgd_momentum_and_nesterov_follow_pytorch() {
        // Two steps with constant grad g=1, lr=0.1, momentum=0.9:
        // plain: buf1=1, buf2=1.9 → p = 1 - 0.1 - 0.19; nesterov: d1=1+0.9, d2=1+0.9*1.9.
        for (nesterov, want) in [(false, 1.0 - 0.1 - 0.19), (true, 1.0 - 0.19 - 0.1 * (1.0 + 0.9 * 1.9))] {
            let params = vec![param(&[1.0], &[1.0])];
            let cfg = OptimizerConfig { kind: OptimizerKind::Sgd, nesterov, ..OptimizerConfig::adam(0.1) };
            let mut opt = Optimizer::new(cfg).unwrap();
            opt.step(&params).unwrap();
            opt.step(&params).unwrap();
            let v = params[0].1.double_value(&[0]);
            assert!((v - want).abs() < 1e-6, "nesterov={nesterov}: {v} vs {want}");
        }
    }

    #[test]
    fn adamw_decays_and_params_without_grad_are_skipped() {
        let with = param(&[1.0], &[0.0]);
        let without = ("frozen".to_string(), Tensor::from_slice(&[5f32]).set_requires_grad(true));
        let cfg = OptimizerConfig { kind: OptimizerKind::Adamw, weight_decay: 0.5, ..OptimizerConfig::adam(0.1) };
        let mut opt = Optimizer::new(cfg).unwrap();
        opt.step(&[with.clone_pair(), without.clone_pair()]).unwrap();
        assert!((with.1.double_value(&[0]) - 0.95).abs() < 1e-6);
        assert_eq!(without.1.double_value(&[0]), 5.0);
        let (tensors, _) = opt.state_dict().unwrap();
        let names: Vec<_> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["exp_avg.w", "exp_avg_sq.w"]);
    }

    trait ClonePair {
        fn clone_pair(&self) -> (String, Tensor);
    }
    impl ClonePair for (String, Tensor) {
        fn clone_pair(&self) -> (String, Tensor) {
            (self.0.clone(), self.1.shallow_clone())
        }
    }

    /// Deterministic values without the global RNG (tests run in parallel and share it).
    fn wave(n: i64, freq: f64, phase: f64) -> Tensor {
        (Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * freq + phase).sin()
    }

    /// Parameters of awkward sizes (tails shorter than a vector, several work chunks).
    fn fuzz_params() -> Vec<(String, Tensor)> {
        [1i64, 17, 1000, 70_003]
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("p{i}"), wave(n, 0.37, i as f64).set_requires_grad(true)))
            .collect()
    }

    /// A different gradient each step, with magnitudes spanning several decades.
    fn set_grads(params: &[(String, Tensor)], step: i64) {
        for (i, (_, p)) in params.iter().enumerate() {
            let n = p.numel() as i64;
            let w = wave(n, 1.3 + step as f64, i as f64) * wave(n, 0.011, 0.5).exp() * (1.0 + (i as f64 + step as f64) * 0.7);
            (p.shallow_clone() * w).sum(Kind::Float).backward();
        }
    }

    #[test]
    fn fused_adam_matches_the_tensor_path() {
        for (kind, wd, clip) in [
            (OptimizerKind::Adam, 0.0, None),
            (OptimizerKind::Adam, 0.01, Some(5.0)),
            (OptimizerKind::Adamw, 0.1, None),
            (OptimizerKind::Adamw, 0.1, Some(1e6)),
        ] {
            let cfg = OptimizerConfig { kind, weight_decay: wd, ..OptimizerConfig::adam(0.01) };
            let (a, b) = (fuzz_params(), fuzz_params());
            let mut fused = Optimizer::new(cfg.clone()).unwrap();
            let mut plain = Optimizer::new(OptimizerConfig { fused: false, ..cfg }).unwrap();
            for step in 0..4 {
                set_grads(&a, step);
                set_grads(&b, step);
                let na = fused.step_clipped(&a, clip).unwrap().value().unwrap();
                let nb = plain.step_clipped(&b, clip).unwrap().value().unwrap();
                assert!((na - nb).abs() <= 1e-5 * nb, "{kind:?} step {step}: norm {na} vs {nb}");
                super::super::clip::zero_grad(&a).unwrap();
                super::super::clip::zero_grad(&b).unwrap();
            }
            // The total updates agree to float rounding. (Per element, an update whose clipped,
            // decayed gradient nearly cancels is ill-conditioned under Adam: rounding-level
            // differences in the clip factor move it by up to ~0.1% of lr.)
            for (((name, pa), (_, pb)), (_, p0)) in a.iter().zip(&b).zip(&fuzz_params()) {
                let (ua, ub) = (pa - p0, pb - p0);
                let rel = (&ua - &ub).norm().double_value(&[]) / ub.norm().double_value(&[]).max(1e-12);
                assert!(rel <= 1e-5, "{kind:?} {name}: relative L2 difference of the updates {rel}");
                let worst = (&ua - &ub).abs().max().double_value(&[]);
                assert!(worst <= 0.01 * 0.01, "{kind:?} {name}: an element differs by {worst}");
            }
            assert_eq!((fused.step_count(), fused.fused_step_count()), (4, 4));
            assert_eq!((plain.step_count(), plain.fused_step_count()), (4, 0));
            let (sa, _) = fused.state_dict().unwrap();
            let (sb, _) = plain.state_dict().unwrap();
            assert_eq!(sa.len(), sb.len());
        }
    }

    #[test]
    fn clipping_scales_the_fused_update() {
        // One element, grad 10, clip to 1: Adam's first step is lr * sign regardless of scale,
        // so check the second moment instead: v = (1 - b2) * (g * coef)^2.
        let params = vec![param(&[0.0], &[10.0])];
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.1)).unwrap();
        let norm = opt.step_clipped(&params, Some(1.0)).unwrap().value().unwrap();
        assert!((norm - 10.0).abs() < 1e-5, "{norm}");
        let (state, _) = opt.state_dict().unwrap();
        let v = state.iter().find(|(n, _)| n == "exp_avg_sq.w").map(|(_, t)| t.data[0]).unwrap();
        let coef = 1.0 / (10.0 + 1e-6);
        let want = 0.001 * (10.0 * coef) * (10.0 * coef);
        assert!((f64::from(v) - want).abs() < 1e-8, "{v} vs {want}");
    }

    /// The boundaries of every range, as zod's `OptimizerOptionsSchema` draws them (table rows:
    /// JSON, accepted?, why).
    #[test]
    fn configs_are_checked_like_zod_checks_them() {
        let rows = [
            (r#"{"kind":"adam","lr":0.001}"#, true, "the defaults fill the rest"),
            (r#"{"kind":"adam"}"#, false, "lr is required"),
            (r#"{"kind":"rmsprop","lr":1}"#, false, "unknown kind"),
            (r#"{"kind":"adam","lr":1,"foo":1}"#, false, "unknown field"),
            (r#"{"kind":"adam","lr":0}"#, false, "lr must be > 0"),
            (r#"{"kind":"adam","lr":-1}"#, false, "lr must be > 0"),
            (r#"{"kind":"adam","lr":1e-300}"#, true, "any positive lr"),
            (r#"{"kind":"adam","lr":1,"betas":[0,0]}"#, true, "betas may be 0"),
            (r#"{"kind":"adam","lr":1,"betas":[1,0.5]}"#, false, "betas[0] must be < 1"),
            (r#"{"kind":"adam","lr":1,"betas":[0.5,1]}"#, false, "betas[1] must be < 1"),
            (r#"{"kind":"adam","lr":1,"betas":[-0.1,0.5]}"#, false, "betas must be >= 0"),
            (r#"{"kind":"adam","lr":1,"eps":0}"#, false, "eps must be > 0"),
            (r#"{"kind":"adam","lr":1,"eps":1e-30}"#, true, "any positive eps"),
            (r#"{"kind":"adam","lr":1,"weight_decay":0}"#, true, "weight decay may be 0"),
            (r#"{"kind":"adam","lr":1,"weight_decay":-0.1}"#, false, "weight decay must be >= 0"),
            (r#"{"kind":"sgd","lr":1,"momentum":0}"#, true, "momentum may be 0"),
            (r#"{"kind":"sgd","lr":1,"momentum":1}"#, false, "momentum must be < 1"),
            (r#"{"kind":"sgd","lr":1,"momentum":-0.5}"#, false, "momentum must be >= 0"),
            (r#"{"kind":"sgd","lr":1,"momentum":0,"nesterov":true}"#, false, "nesterov needs momentum"),
            (r#"{"kind":"sgd","lr":1,"momentum":0.5,"nesterov":true}"#, true, "nesterov with momentum"),
            (r#"{"kind":"adam","lr":1,"fused":false}"#, true, "the tensor path"),
            (r#"{"kind":"adam","lr":1,"fused":0}"#, false, "fused is a boolean"),
        ];
        for (json, want, why) in rows {
            let parsed: std::result::Result<OptimizerConfig, _> = serde_json::from_str(json);
            let ok = parsed.map(|c| c.validate().is_ok()).unwrap_or(false);
            assert_eq!(ok, want, "{json}: {why}");
        }
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.1)).unwrap();
        assert!(opt.set_lr(0.0).is_err() && opt.set_lr(f64::NAN).is_err() && opt.set_lr(1e-5).is_ok());
    }
}
