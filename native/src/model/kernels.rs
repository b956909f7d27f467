//! Kernel options: which CPU kernels and memory layouts one model uses, fixed when it is built
//! (the `kernels` object of the `hn_model_new` JSON), and a count of how often each option's path
//! ran. Every layer holds its model's [`Kernels`]; nothing is read from the environment or from
//! process-wide state, so two models in one process can make different choices. Every choice
//! computes the seed's function: values and gradients agree with either setting to float
//! rounding. A CUDA path will turn the CPU-only choices off here.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The kernel choices of one model. `Default` turns every one on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelOptions {
    /// GroupNorm on 4-D float CPU input, with or without the ReLU after it, runs the C++ kernel
    /// of [`super::group_norm`] (one autograd node) instead of ATen's `group_norm` (+ `relu`).
    pub fused_group_norm: bool,
    /// Exact algebraic rewrites of the seed's layers: CPU convolutions with tiny outputs as
    /// matrix products ([`super::layers::ConvPlan`]), the stem's input GroupNorm folded into its
    /// 7x7 kernel when a graph is kept, the stem's max-pool before its ReLU, and `trans1`'s
    /// average pool before its 1x1 conv.
    pub conv_rewrites: bool,
    /// Memory-layout choices on the CPU: channels-last order for the stem without a graph
    /// (its conv on inputs of 64x64 and more, its max-pool at every size), the dense block on
    /// maps of 32x32 and more (with or without a graph) and the residual stages without a graph
    /// on maps of 8x8 and more. Off, every layer runs NCHW.
    pub channels_last: bool,
}

impl Default for KernelOptions {
    fn default() -> Self {
        Self::ALL
    }
}

impl KernelOptions {
    /// Every choice on (the default).
    pub const ALL: Self = Self { fused_group_norm: true, conv_rewrites: true, channels_last: true };
    /// Every choice off: ATen's GroupNorm, the seed's layer order, `conv2d` everywhere, NCHW.
    pub const NONE: Self = Self { fused_group_norm: false, conv_rewrites: false, channels_last: false };
}

/// One of the [`KernelOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// [`KernelOptions::fused_group_norm`].
    FusedGroupNorm,
    /// [`KernelOptions::conv_rewrites`].
    ConvRewrites,
    /// [`KernelOptions::channels_last`].
    ChannelsLast,
}

/// How many times each option's path was taken (a layer counts once per forward that takes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelCalls {
    /// Fused GroupNorm calls.
    pub fused_group_norm: u64,
    /// Rewritten convolutions, folds and reordered pools.
    pub conv_rewrites: u64,
    /// Layers run in channels-last order.
    pub channels_last: u64,
}

/// A model's kernel options and its counters, shared by all of its layers.
#[derive(Debug, Clone, Default)]
pub struct Kernels {
    options: KernelOptions,
    calls: Arc<[AtomicU64; 3]>,
}

impl Kernels {
    /// Fresh counters for a model built with `options`.
    pub fn new(options: KernelOptions) -> Self {
        Self { options, calls: Arc::default() }
    }

    /// The options.
    pub fn options(&self) -> KernelOptions {
        self.options
    }

    /// Whether option `k` is on.
    pub fn on(&self, k: Kernel) -> bool {
        match k {
            Kernel::FusedGroupNorm => self.options.fused_group_norm,
            Kernel::ConvRewrites => self.options.conv_rewrites,
            Kernel::ChannelsLast => self.options.channels_last,
        }
    }

    /// Counts one use of option `k`'s path.
    pub fn ran(&self, k: Kernel) {
        self.calls[k as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether to take option `k`'s path here: the option is on and `applies` (the input is one
    /// the path serves). Counts a yes.
    pub fn take(&self, k: Kernel, applies: bool) -> bool {
        let yes = applies && self.on(k);
        if yes {
            self.ran(k);
        }
        yes
    }

    /// The counts so far.
    pub fn calls(&self) -> KernelCalls {
        let get = |k: Kernel| self.calls[k as usize].load(Ordering::Relaxed);
        KernelCalls {
            fused_group_norm: get(Kernel::FusedGroupNorm),
            conv_rewrites: get(Kernel::ConvRewrites),
            channels_last: get(Kernel::ChannelsLast),
        }
    }
}
