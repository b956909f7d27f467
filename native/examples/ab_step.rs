//! A/B timing of one train step (fpn skip, focal loss, Adam) under two values of an environment
//! switch, alternating A and B step by step in one process so that both see the same machine
//! phase: `cargo run --release --example ab_step -- PX BATCH PAIRS VAR A B`. Prints the median
//! step time of each and the median of the per-pair ratios B/A. Only switches read at every
//! call (not the ones cached at first use) can be compared this way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hybridnet::model::{HybridNet, HybridNetConfig};
use hybridnet::train::{LossConfig, OptimizerConfig};
use std::time::Instant;
use tch::Tensor;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let px: i64 = args[1].parse().unwrap();
    let batch: i64 = args[2].parse().unwrap();
    let pairs: usize = args[3].parse().unwrap();
    let (var, a, b) = (args[4].clone(), args[5].clone(), args[6].clone());
    hybridnet::runtime::init();
    tch::manual_seed(0);
    let model = HybridNet::new(&HybridNetConfig { num_classes: 8, ..Default::default() }).unwrap();
    let params: Vec<(String, Tensor)> = model.named_parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    let mut opt = hybridnet::train::Optimizer::new(OptimizerConfig::adam(1e-4)).unwrap();
    let loss = LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap();
    let x = Tensor::randn([batch, 3, px, px], (tch::Kind::Float, tch::Device::Cpu));
    let y: Vec<i32> = (0..batch as i32).map(|i| i % 8).collect();
    let mut step = |value: &str| {
        std::env::set_var(&var, value);
        let t0 = Instant::now();
        let logits = model.forward_t(&x, true).unwrap();
        loss.compute(&logits, &y).unwrap().backward();
        opt.step_clipped(&params, None).unwrap();
        hybridnet::train::clip::zero_grad(&params).unwrap();
        (Instant::now() - t0).as_secs_f64() * 1e3
    };
    step(&a);
    step(&b);
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first, so neither always follows the other.
        let (x1, x2) = if i % 2 == 0 {
            (step(&a), step(&b))
        } else {
            let t2 = step(&b);
            (step(&a), t2)
        };
        ta.push(x1);
        tb.push(x2);
        ratio.push(x2 / x1);
    }
    println!(
        "px {px} batch {batch}, {pairs} pairs: {var}={a} {:.1} ms, {var}={b} {:.1} ms, median ratio B/A {:.3}",
        median(ta),
        median(tb),
        median(ratio)
    );
}
