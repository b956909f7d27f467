//! What the examples share: reading a variant of the default options from the command line.
#![allow(dead_code)]

use hybridnet::model::KernelOptions;

/// The options a run compares against the defaults: the model's kernel options and whether the
/// optimizer takes the fused Adam pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The model's kernel options.
    pub kernels: KernelOptions,
    /// `OptimizerConfig::fused`.
    pub fused_adam: bool,
}

impl Default for Variant {
    fn default() -> Self {
        Self { kernels: KernelOptions::default(), fused_adam: true }
    }
}

/// Parses `name=on|off[,name=on|off...]` over the defaults; names: `fused_group_norm`,
/// `conv_rewrites`, `channels_last`, `fused_adam`, or `all` (every one). Example:
/// `fused_group_norm=off,fused_adam=off`.
pub fn parse_variant(spec: &str) -> Result<Variant, String> {
    let mut v = Variant::default();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (name, value) = item.split_once('=').ok_or_else(|| format!("{item:?}: expected name=on|off"))?;
        let on = match value {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => return Err(format!("{item:?}: the value must be on or off")),
        };
        match name {
            "fused_group_norm" => v.kernels.fused_group_norm = on,
            "conv_rewrites" => v.kernels.conv_rewrites = on,
            "channels_last" => v.kernels.channels_last = on,
            "fused_adam" => v.fused_adam = on,
            "all" => {
                v.kernels = if on { KernelOptions::ALL } else { KernelOptions::NONE };
                v.fused_adam = on;
            }
            _ => return Err(format!("{item:?}: unknown option (fused_group_norm, conv_rewrites, channels_last, fused_adam, all)")),
        }
    }
    Ok(v)
}

/// The median of `v` (sorted in place).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
