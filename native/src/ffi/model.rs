//! `HnModel` exports: create/free, parameter count, eval forward (NB), save/load, describe,
//! last error.

use super::info::parse_json;
use super::{handle, input_batch, out, str_arg, write_str, write_tensor, ErrorSlot, HasErrorSlot};
use crate::checkpoint;
use crate::cuda::DeviceSpec;
use crate::error::{Error, Result};
use crate::model::{lock, FpnMode, HybridNet, HybridNetConfig, KernelOptions, SharedModel};
use crate::{declare_own, ffi_fn};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Opaque model handle: the shared model (trainers hold it too), the config it was made from
/// and the handle's last error.
#[derive(Debug)]
pub struct HnModel {
    /// The model; trainers made from this handle keep their own reference.
    pub model: SharedModel,
    config: ModelJson,
    last_error: ErrorSlot,
}

impl HasErrorSlot for HnModel {
    fn error_slot(&self) -> &ErrorSlot {
        &self.last_error
    }
}

/// `hn_model_new` JSON; every field is required (TS fills the defaults). `hn_model_describe`
/// writes it back as decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelJson {
    /// Output classes.
    pub num_classes: i64,
    /// Input channels.
    pub input_channels: i64,
    /// Head dropout probability.
    pub dropout_rate: f64,
    /// `"skip"` or `"seed"`.
    pub fpn: FpnMode,
    /// Seed of the weight initialisation.
    pub seed: u64,
    /// Kernel and layout choices, fixed for the model's life (on CUDA the CPU-only ones are
    /// off, and describe reports them so).
    pub kernels: KernelOptions,
    /// `"cpu"` or `"cuda:N"`: where the weights live and the forward runs.
    pub device: DeviceSpec,
}

impl HnModel {
    /// Builds a model from `hn_model_new` JSON (seeds torch's generator with `seed` first).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let j: ModelJson = parse_json(bytes, "model config")?;
        let cfg = HybridNetConfig {
            num_classes: j.num_classes,
            input_channels: j.input_channels,
            dropout_rate: j.dropout_rate,
            fpn: j.fpn,
            kernels: j.kernels,
        };
        cfg.validate()?;
        let device = crate::cuda::torch_cuda::device(j.device)?;
        tch::manual_seed(j.seed as i64);
        let model = HybridNet::new_on(&cfg, device)?;
        let config = ModelJson { kernels: model.config().kernels, ..j };
        Ok(Self { model: Arc::new(Mutex::new(model)), config, last_error: ErrorSlot::default() })
    }

    /// The describe JSON: classes, `{name, shape}` per parameter in state_dict order, the config
    /// as decoded, and how often each kernel option's path has run.
    pub fn describe(&self) -> Result<String> {
        let model = lock(&self.model);
        let params: Vec<_> = model.named_parameters().iter().map(|(n, t)| json!({"name": n, "shape": t.size()})).collect();
        let value = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| Error::State(format!("describe: {e}")));
        let config = value(serde_json::to_value(&self.config))?;
        let kernel_calls = value(serde_json::to_value(model.kernel_calls()))?;
        Ok(json!({"num_classes": model.config().num_classes, "params": params, "config": config, "kernel_calls": kernel_calls}).to_string())
    }
}

ffi_fn! {
    /// Creates a model from the JSON config `(cfg, cfg_len)`
    /// (`{"num_classes","input_channels","dropout_rate","fpn":"skip"|"seed","seed",
    /// "kernels":{"fused_group_norm","conv_rewrites","channels_last"},"device":"cpu"|"cuda:N"}`,
    /// all required, unknown fields rejected; a CUDA device that is not usable is `HN_ERR_CUDA`
    /// with the reason) and stores the handle in `*out` (non-null). The caller owns the handle
    /// and frees it with `hn_model_free`. `cfg` is copied.
    fn hn_model_new(cfg: *const u8, cfg_len: usize, out_handle: *mut *mut HnModel) {
        // SAFETY: per this export's contract.
        let out_handle = unsafe { out(out_handle, "out") }?;
        let bytes = unsafe { super::slice(cfg, cfg_len, "cfg") }?;
        let m = HnModel::from_json(bytes)?;
        *out_handle = super::new_handle(m);
        Ok(())
    }
}

declare_own! {
    /// Frees a model handle. NULL is a no-op; call at most once per handle, and not while
    /// another call on it is running. Trainers made from the model keep the model alive.
    hn_model_free, HnModel
}

ffi_fn! {
    /// Writes the number of parameter values to `*out_count`. `m` must be a live handle.
    /// Thread-safe (waits for other calls on the model).
    fn hn_model_param_count(m: *const HnModel, out_count: *mut u64) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let out_count = unsafe { out(out_count, "out") }?;
        *out_count = lock(&m.model).param_count();
        Ok(())
    }
}

ffi_fn! {
    /// Eval-mode forward without grad (NB: may run on another thread; errors also go to
    /// `hn_model_last_error`). `x` holds `x_len == n*c*h*w` finite floats (NCHW) with
    /// `shape = [n, c, h, w]`, `c == input_channels`, `h, w >= 5`; `out` receives
    /// `out_len == n*num_classes` logits. Inputs are copied; `out` is written before return.
    /// Calls on one model are serialised.
    fn hn_model_forward_eval(m: *mut HnModel, x: *const f32, x_len: usize, shape: *const i64, out_logits: *mut f32, out_len: usize) on m {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let xs = unsafe { input_batch(x, x_len, shape) }?;
        let model = lock(&m.model);
        let n = xs.size().first().copied().unwrap_or(0);
        let need = n * model.config().num_classes;
        if out_len as i64 != need {
            return Err(Error::invalid(format!("out_len is {out_len}, needs n*num_classes = {need}")));
        }
        let logits = model.forward_t(&xs, false)?;
        unsafe { write_tensor(&logits, out_logits, out_len, "out") }
    }
}

ffi_fn! {
    /// Saves the weights to the UTF-8 path `(path, path_len)` as safetensors named like the
    /// seed's `state_dict()`, atomically (temp file + rename). Errors: `HN_ERR_IO` naming the
    /// path.
    fn hn_model_save(m: *const HnModel, path: *const u8, path_len: usize) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let path = unsafe { str_arg(path, path_len, "path") }?;
        let model = lock(&m.model);
        checkpoint::save_params(Path::new(path), model.named_parameters())
    }
}

ffi_fn! {
    /// Loads weights strictly from a safetensors file: every name present, no extras, same
    /// shapes, F32 (`HN_ERR_CHECKPOINT` naming the tensor; `HN_ERR_IO` if unreadable). On
    /// error the model is unchanged.
    fn hn_model_load(m: *mut HnModel, path: *const u8, path_len: usize) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let path = unsafe { str_arg(path, path_len, "path") }?;
        let model = lock(&m.model);
        checkpoint::load_params(Path::new(path), model.named_parameters())
    }
}

ffi_fn! {
    /// Writes `{"num_classes":..,"params":[{"name":..,"shape":[..]}..],"config":{..},
    /// "kernel_calls":{"fused_group_norm":n,"conv_rewrites":n,"channels_last":n}}` (params in
    /// state_dict order; `config` is the `hn_model_new` JSON as decoded) with the
    /// `HN_ERR_BUFFER_TOO_SMALL` protocol (`out_len` non-null gets the size). Thread-safe (waits
    /// for other calls on the model).
    fn hn_model_describe(m: *const HnModel, buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        let s = m.describe()?;
        unsafe { write_str(&s, buf, cap, out_len) }
    }
}

ffi_fn! {
    /// Writes the message of the last failed call on this model handle (empty if none), with
    /// the `HN_ERR_BUFFER_TOO_SMALL` protocol. Thread-safe.
    fn hn_model_last_error(m: *const HnModel, buf: *mut u8, cap: usize, out_len: *mut usize) {
        // SAFETY: per this export's contract.
        let m = unsafe { handle(m, "model") }?;
        unsafe { write_str(&m.last_error.get(), buf, cap, out_len) }
    }
}
