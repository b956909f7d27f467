//! A/B timing of one train step (fpn skip, focal loss, Adam): model and optimizer A use the
//! default options, B the variant given on the command line (with A's weights), and A and B
//! alternate step by step in one process so that both see the same machine phase:
//! `cargo run --release --example ab_step -- PX BATCH PAIRS VARIANT`, VARIANT as
//! `fused_group_norm=off` (see `common::parse_variant`; several separated by commas). Prints
//! the median step time of each and the median of the per-pair ratios B/A.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hybridnet::model::{HybridNet, HybridNetConfig};
use hybridnet::train::{LossConfig, Optimizer, OptimizerConfig};
use std::time::Instant;
use tch::Tensor;

/// A model, its parameters and its optimizer.
struct Arm {
    model: HybridNet,
    params: Vec<(String, Tensor)>,
    opt: Optimizer,
}

impl Arm {
    fn new(variant: common::Variant) -> Self {
        let model = HybridNet::new(&HybridNetConfig { num_classes: 8, kernels: variant.kernels, ..Default::default() }).unwrap();
        let params = model.named_parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        let opt = Optimizer::new(OptimizerConfig { fused: variant.fused_adam, ..OptimizerConfig::adam(1e-4) }).unwrap();
        Self { model, params, opt }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let px: i64 = args[1].parse().unwrap();
    let batch: i64 = args[2].parse().unwrap();
    let pairs: usize = args[3].parse().unwrap();
    let spec = args.get(4).cloned().unwrap_or_default();
    let variant = common::parse_variant(&spec).unwrap_or_else(|e| panic!("{e}"));
    hybridnet::runtime::init();
    tch::manual_seed(0);
    let mut a = Arm::new(common::Variant::default());
    let mut b = Arm::new(variant);
    tch::no_grad(|| {
        for ((_, dst), (_, src)) in b.params.iter().zip(&a.params) {
            dst.shallow_clone().copy_(src);
        }
    });
    let loss = LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap();
    let x = Tensor::randn([batch, 3, px, px], (tch::Kind::Float, tch::Device::Cpu));
    let y: Vec<i32> = (0..batch as i32).map(|i| i % 8).collect();
    let step = |arm: &mut Arm| {
        let t0 = Instant::now();
        let logits = arm.model.forward_t(&x, true).unwrap();
        loss.compute(&logits, &y).unwrap().backward();
        arm.opt.step_clipped(&arm.params, None).unwrap();
        hybridnet::train::clip::zero_grad(&arm.params).unwrap();
        (Instant::now() - t0).as_secs_f64() * 1e3
    };
    step(&mut a);
    step(&mut b);
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first, so neither always follows the other.
        let (x1, x2) = if i % 2 == 0 {
            (step(&mut a), step(&mut b))
        } else {
            let t2 = step(&mut b);
            (step(&mut a), t2)
        };
        ta.push(x1);
        tb.push(x2);
        ratio.push(x2 / x1);
    }
    println!(
        "px {px} batch {batch}, {pairs} pairs: A (defaults) {:.1} ms, B ({spec}) {:.1} ms, median ratio B/A {:.3}",
        common::median(ta),
        common::median(tb),
        common::median(ratio)
    );
}
