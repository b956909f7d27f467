//! Training: hand-written optimizers ([`optim`], with the one-pass CPU Adam of
//! [`fused_adam`]), native losses ([`loss`]), gradient clipping ([`clip`]) and the two-call /
//! one-call step with savable state ([`trainer`]), the moving average of the weights ([`ema`]),
//! the epoch's train statistics counted on the device ([`stats`]).

pub mod clip;
pub mod ema;
pub mod fused_adam;
pub mod loss;
pub mod optim;
pub mod stats;
pub mod trainer;

pub use ema::{Ema, EmaConfig};
pub use loss::{LossConfig, LossKind};
pub use optim::{GradNorm, Optimizer, OptimizerConfig, OptimizerKind};
pub use trainer::{Precision, Trainer, TrainerConfig};
