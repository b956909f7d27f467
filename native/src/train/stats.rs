//! Train statistics of an epoch, counted where the logits are (the model's device) so that a
//! step never waits for the host: the loss sum, the images and steps, the `C × C` confusion of
//! argmax predictions and the top-k hits. Read back once per epoch (`hn_trainer_train_stats`).
//!
//! The counting rules are those of the TS evaluator "classification" (`confusionMatrix`,
//! `topKAccuracy` in `ts/plugins/evaluate/classification.ts`), so metrics computed from these
//! counts equal the ones computed from the logits: the argmax runs over the candidate columns
//! only (ties to the lower class, NaN below every number), rows whose label is not a candidate
//! are not counted, and the optional per-class `bias` is added in float64.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tch::{Device, Kind, Tensor};

/// What to count (`hn_trainer_stats_reset` JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Candidate classes of the argmax (the epoch's active classes); rows with another label are
    /// not counted. Distinct, each in `[0, C)`, at least one.
    pub classes: Vec<i64>,
    /// k values of top-k hits; a k not below the number of candidates is left out.
    #[serde(default)]
    pub top_k: Vec<i64>,
    /// Per-class value added (in float64) to each logit column before counting, or none.
    #[serde(default)]
    pub bias: Option<Vec<f64>>,
    /// Counts the epoch already had (a run resumed in the middle of an epoch), or none.
    #[serde(default)]
    pub carry: Option<Carry>,
}

/// The integer counts an epoch starts from (`carry`); the loss sum travels as an `f64` argument.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carry {
    /// Images counted.
    pub images: u64,
    /// Steps counted.
    pub steps: u64,
    /// `C × C` confusion.
    pub confusion: Vec<Vec<i64>>,
    /// Top-k hits keyed by k (the keys of `top_k`).
    pub top_k: std::collections::BTreeMap<String, i64>,
}

impl StatsConfig {
    /// Parses and validates JSON against `c` classes.
    pub fn from_json(bytes: &[u8], c: i64) -> Result<Self> {
        let mut cfg: StatsConfig = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("stats config: {e}")))?;
        cfg.classes.sort_unstable();
        cfg.classes.dedup();
        if cfg.classes.is_empty() || cfg.classes.iter().any(|&k| k < 0 || k >= c) {
            return Err(Error::invalid(format!("stats config: classes must be non-empty and in [0, {c})")));
        }
        if let Some(b) = &cfg.bias {
            if b.len() as i64 != c || b.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(format!("stats config: bias needs {c} finite values")));
            }
        }
        if let Some(k) = &cfg.carry {
            if k.confusion.len() as i64 != c || k.confusion.iter().any(|r| r.len() as i64 != c) {
                return Err(Error::invalid(format!("stats config: carry.confusion must be {c} x {c}")));
            }
        }
        let candidates = cfg.classes.len() as i64;
        cfg.top_k.retain(|&k| k > 0 && k < candidates);
        cfg.top_k.sort_unstable();
        cfg.top_k.dedup();
        Ok(cfg)
    }
}

/// Device tensors that accumulate over an epoch (made on the first batch's device).
#[derive(Debug)]
struct Counts {
    /// `[C * C]` int64, row = true class.
    confusion: Tensor,
    /// `[top_k.len()]` int64.
    top_hits: Tensor,
    /// float64 scalar: sum of batch mean loss × batch size.
    loss_sum: Tensor,
}

/// The config's tensors on the device the batches come from (made once per epoch).
#[derive(Debug)]
struct Consts {
    device: Device,
    /// The candidate classes, sorted.
    cols: Tensor,
    /// `[C]` int64: 1 for a candidate class (a row's weight in the counts).
    keep: Tensor,
    /// `[1, C]` float64, or none.
    bias: Option<Tensor>,
}

/// The accumulator of one epoch.
#[derive(Debug)]
pub struct TrainStats {
    c: i64,
    config: StatsConfig,
    counts: Option<Counts>,
    consts: Option<Consts>,
    images: u64,
    steps: u64,
}

impl TrainStats {
    /// An empty accumulator over every class of `c`, no top-k, no bias.
    pub fn new(c: i64) -> Self {
        let config = StatsConfig { classes: (0..c).collect(), top_k: Vec::new(), bias: None, carry: None };
        Self { c, config, counts: None, consts: None, images: 0, steps: 0 }
    }

    /// An accumulator counting as `config` says, starting from its `carry` and `loss_sum` (0 for
    /// a new epoch; a resumed epoch's sum, so the following batches add in the same order as in
    /// an uninterrupted run). Made on the CPU; moved to the first batch's device.
    pub fn with_config(c: i64, config: StatsConfig, loss_sum: f64) -> Result<Self> {
        let mut s = Self { c, counts: None, consts: None, images: 0, steps: 0, config };
        if let Some(k) = s.config.carry.take() {
            let flat: Vec<i64> = k.confusion.concat();
            let hits: Vec<i64> = s.config.top_k.iter().map(|t| k.top_k.get(&t.to_string()).copied().unwrap_or(0)).collect();
            s.counts = Some(Counts {
                confusion: Tensor::f_from_slice(&flat)?,
                top_hits: Tensor::f_from_slice(&hits)?,
                loss_sum: Tensor::f_scalar_tensor(loss_sum, (Kind::Double, Device::Cpu))?,
            });
            (s.images, s.steps) = (k.images, k.steps);
        } else if loss_sum != 0.0 {
            let _ = s.counts(Device::Cpu)?.loss_sum.f_fill_(loss_sum)?;
        }
        Ok(s)
    }

    fn counts(&mut self, device: Device) -> Result<&mut Counts> {
        if self.counts.is_none() {
            let opts = (Kind::Int64, device);
            self.counts = Some(Counts {
                confusion: Tensor::f_zeros([self.c * self.c], opts)?,
                top_hits: Tensor::f_zeros([self.config.top_k.len() as i64], opts)?,
                loss_sum: Tensor::f_zeros([], (Kind::Double, device))?,
            });
        }
        self.counts.as_mut().ok_or_else(|| Error::State("stats: no counts".into()))
    }

    /// The config's tensors on `device`, uploaded on the first batch of the epoch.
    fn consts(&mut self, device: Device) -> Result<&Consts> {
        if self.consts.as_ref().map(|k| k.device) != Some(device) {
            let mut keep = vec![0i64; self.c as usize];
            for &k in &self.config.classes {
                keep[k as usize] = 1;
            }
            let bias = match &self.config.bias {
                Some(b) => Some(upload(&Tensor::f_from_slice(b)?.f_view([1, self.c])?, device)?),
                None => None,
            };
            let cols = upload(&Tensor::f_from_slice(&self.config.classes)?, device)?;
            self.consts = Some(Consts { device, cols, keep: upload(&Tensor::f_from_slice(&keep)?, device)?, bias });
        }
        self.consts.as_ref().ok_or_else(|| Error::State("stats: no constants".into()))
    }

    /// Counts one batch: `logits` `[n, C]` (detached), `targets` in `[0, C)`, and its mean loss
    /// (a scalar tensor on the logits' device, or a host number). No value is read back.
    pub fn add(&mut self, logits: &Tensor, targets: &[i32], loss: BatchLoss<'_>) -> Result<()> {
        let size = logits.size();
        let (n, c) = match size.as_slice() {
            [n, c] if *c == self.c && *n == targets.len() as i64 => (*n, *c),
            _ => return Err(Error::invalid(format!("stats: logits {size:?} for {} targets and {} classes", targets.len(), self.c))),
        };
        if let Some(t) = targets.iter().find(|&&t| i64::from(t) < 0 || i64::from(t) >= c) {
            return Err(Error::invalid(format!("stats: target {t} outside [0, {c})")));
        }
        let device = logits.device();
        let idx: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
        let t = upload(&Tensor::f_from_slice(&idx)?, device)?;
        let top = self.config.top_k.clone();
        let k = self.consts(device)?;
        let row_weight = k.keep.f_index_select(0, &t)?;
        let mut v = logits.f_to_kind(Kind::Double)?;
        if let Some(b) = &k.bias {
            v = v.f_add(b)?;
        }
        let vc = v.f_index_select(1, &k.cols)?;
        let pred = k.cols.f_index_select(0, &first_max(&vc)?)?;
        let hits = if top.is_empty() { None } else { Some(top_hits(&v, &vc, &k.cols, &t, &row_weight, &top)?) };
        let batch_loss = match loss {
            BatchLoss::Device(l) => l.f_to_kind(Kind::Double)?.f_mul_scalar(n)?,
            BatchLoss::Host(l) => Tensor::f_scalar_tensor(l * n as f64, (Kind::Double, device))?,
        };
        let k = self.counts(device)?;
        if k.confusion.device() != device {
            // a carried epoch starts on the CPU; the counts follow the model to its device
            *k = Counts {
                confusion: k.confusion.f_to_device(device)?,
                top_hits: k.top_hits.f_to_device(device)?,
                loss_sum: k.loss_sum.f_to_device(device)?,
            };
        }
        // in-place ops return the tensor they changed: nothing else to keep
        let _ = k.confusion.f_index_add_(0, &t.f_mul_scalar(c)?.f_add(&pred)?, &row_weight)?;
        if let Some(h) = hits {
            let _ = k.top_hits.f_add_(&h)?;
        }
        let _ = k.loss_sum.f_add_(&batch_loss)?;
        self.images += n as u64;
        self.steps += 1;
        Ok(())
    }

    /// The figures as JSON: `{"images":n,"steps":n,"loss_sum":x|null,"confusion":[[..]..],
    /// "top_k":{"k":hits}}` (`loss_sum` null when it is not finite: JSON has no NaN).
    pub fn to_json(&self) -> Result<String> {
        let c = self.c as usize;
        let (confusion, hits, loss_sum) = match &self.counts {
            Some(k) => (
                Vec::<i64>::try_from(&k.confusion.f_to_device(Device::Cpu)?)?,
                Vec::<i64>::try_from(&k.top_hits.f_to_device(Device::Cpu)?)?,
                k.loss_sum.f_double_value(&[])?,
            ),
            None => (vec![0; c * c], vec![0; self.config.top_k.len()], 0.0),
        };
        let rows: Vec<&[i64]> = confusion.chunks(c.max(1)).collect();
        let mut top = Map::new();
        for (k, h) in self.config.top_k.iter().zip(hits) {
            top.insert(k.to_string(), json!(h));
        }
        let loss = if loss_sum.is_finite() { json!(loss_sum) } else { Value::Null };
        Ok(json!({"images": self.images, "steps": self.steps, "loss_sum": loss, "confusion": rows, "top_k": top}).to_string())
    }
}

/// A host tensor on `device` without waiting for the device (a no-op on the CPU): the copy is
/// queued behind the work already there, as the model's input upload is.
fn upload(t: &Tensor, device: Device) -> Result<Tensor> {
    Ok(t.f_to_device_(device, t.kind(), true, false)?)
}

/// A batch's mean loss: the native loss's tensor (stays on the device) or a number from TS.
#[derive(Debug)]
pub enum BatchLoss<'a> {
    /// Scalar tensor (any float kind).
    Device(&'a Tensor),
    /// The TS loss plugin's value.
    Host(f64),
}

/// Per row, the position of the first maximum of `v` `[n, K]`, NaN below every number; 0 when
/// the row is all NaN (as the TS loop, which starts at the first candidate).
fn first_max(v: &Tensor) -> Result<Tensor> {
    let nan = v.f_isnan()?;
    let key = v.f_masked_fill(&nan, f64::NEG_INFINITY)?;
    let max = key.f_amax([1i64].as_slice(), true)?;
    // argmax returns the first maximal index; among 0/1 flags that is the first true one
    let at_max = key.f_eq_tensor(&max)?.f_logical_and(&nan.f_logical_not()?)?.f_to_kind(Kind::Int64)?;
    Ok(at_max.f_argmax(1, false)?)
}

/// Top-k hits of the counted rows: rows whose label has fewer than k better candidates (higher
/// value, or equal value at a lower class; with a NaN label value every non-NaN candidate and
/// every lower class is better). `v` `[n, C]`, `vc` its candidate columns `cols`.
fn top_hits(v: &Tensor, vc: &Tensor, cols: &Tensor, t: &Tensor, row_weight: &Tensor, ks: &[i64]) -> Result<Tensor> {
    let st = v.f_gather(1, &t.f_unsqueeze(1)?, false)?;
    let st_nan = st.f_isnan()?;
    let lower = cols.f_unsqueeze(0)?.f_lt_tensor(&t.f_unsqueeze(1)?)?;
    let other = cols.f_unsqueeze(0)?.f_ne_tensor(&t.f_unsqueeze(1)?)?;
    let numeric = vc.f_gt_tensor(&st)?.f_logical_or(&vc.f_eq_tensor(&st)?.f_logical_and(&lower)?)?;
    let when_nan = vc.f_isnan()?.f_logical_not()?.f_logical_or(&lower)?;
    let better = when_nan.f_where_self(&st_nan, &numeric)?.f_logical_and(&other)?;
    let rank = better.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)?;
    let per_k: Vec<Tensor> = ks
        .iter()
        .map(|&k| rank.f_lt(k).and_then(|r| r.f_to_kind(Kind::Int64)).and_then(|r| r.f_mul(row_weight)).and_then(|r| r.f_sum(Kind::Int64)))
        .collect::<std::result::Result<_, _>>()?;
    Ok(Tensor::f_stack(&per_k, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(c: i64, cfg: &str, logits: &[f32], targets: &[i32]) -> Value {
        let mut s = TrainStats::with_config(c, StatsConfig::from_json(cfg.as_bytes(), c).unwrap(), 0.0).unwrap();
        let l = Tensor::from_slice(logits).view([targets.len() as i64, c]);
        s.add(&l, targets, BatchLoss::Host(0.5)).unwrap();
        serde_json::from_str(&s.to_json().unwrap()).unwrap()
    }

    #[test]
    fn ties_go_to_the_lower_class_and_nan_ranks_last() {
        let nan = f32::NAN;
        let v =
            counted(3, r#"{"classes":[0,1,2],"top_k":[1,2]}"#, &[1.0, 1.0, 0.0, nan, f32::NEG_INFINITY, 0.0, nan, nan, nan], &[1, 0, 2]);
        // row 0: tie 0/1 → 0; row 1: NaN < -inf < 0 → 2; row 2: all NaN → first candidate 0
        assert_eq!(v["confusion"], json!([[0, 0, 1], [1, 0, 0], [1, 0, 0]]));
        // ranks: row 0 label 1 has class 0 tied below it → 1; row 1 label 0 (NaN) → 2; row 2 label 2 (NaN) → 2
        assert_eq!(v["top_k"], json!({"1": 0, "2": 1}));
        assert_eq!(v["loss_sum"], json!(1.5));
        assert_eq!(v["images"], json!(3));
    }

    #[test]
    fn rows_outside_the_candidates_are_not_counted() {
        let v = counted(3, r#"{"classes":[2,0]}"#, &[0.0, 9.0, 1.0, 5.0, 0.0, 0.0], &[1, 0]);
        // row 0 (label 1) is dropped; row 1 argmax over columns {0, 2} → 0
        assert_eq!(v["confusion"], json!([[1, 0, 0], [0, 0, 0], [0, 0, 0]]));
    }

    #[test]
    fn a_carried_epoch_continues_its_counts_and_loss_sum() {
        let cfg = r#"{"classes":[0,1],"top_k":[1],"carry":{"images":2,"steps":1,"confusion":[[1,0],[0,1]],"top_k":{"1":2}}}"#;
        let mut s = TrainStats::with_config(2, StatsConfig::from_json(cfg.as_bytes(), 2).unwrap(), 0.25).unwrap();
        s.add(&Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]), &[0], BatchLoss::Host(0.5)).unwrap();
        let v: Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
        assert_eq!(v, json!({"images": 3, "steps": 2, "loss_sum": 0.75, "confusion": [[1, 1], [0, 1]], "top_k": {"1": 2}}));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(StatsConfig::from_json(br#"{"classes":[]}"#, 3).is_err());
        assert!(StatsConfig::from_json(br#"{"classes":[3]}"#, 3).is_err());
        assert!(StatsConfig::from_json(br#"{"classes":[0],"bias":[1]}"#, 3).is_err());
        assert!(StatsConfig::from_json(br#"{"classes":[0],"x":1}"#, 3).is_err());
        assert!(StatsConfig::from_json(br#"{"classes":[0],"carry":{"images":0,"steps":0,"confusion":[[0]],"top_k":{}}}"#, 3).is_err());
    }
}
