//! Splits one native train step (fpn skip, focal loss, Adam) into forward / loss+backward /
//! optimizer / zero-grad and prints milliseconds per part, median of STEPS steps after two
//! warm-ups: `cargo run --release --example profile_step -- PX BATCH [STEPS] [train|infer]
//! [VARIANT]`. `infer` times eval forwards instead. With VARIANT (as for `ab_step`, e.g.
//! `conv_rewrites=off,fused_adam=off`) a second model and optimizer with those options (and the
//! first one's weights) are profiled after the defaults, on all available cores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hybridnet::model::{HybridNet, HybridNetConfig};
use hybridnet::train::{LossConfig, Optimizer, OptimizerConfig};
use std::time::Instant;
use tch::Tensor;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let px: i64 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(32);
    let batch: i64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(32);
    let steps: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(10);
    let infer = match args.get(4).map(String::as_str) {
        None | Some("train") => false,
        Some("infer") => true,
        Some(other) => panic!("mode {other:?}: train or infer"),
    };
    let mut variants = vec![("defaults".to_string(), common::Variant::default())];
    if let Some(spec) = args.get(5) {
        variants.push((spec.clone(), common::parse_variant(spec).unwrap_or_else(|e| panic!("{e}"))));
    }
    hybridnet::runtime::init();
    tch::manual_seed(0);
    let x = Tensor::randn([batch, 3, px, px], (tch::Kind::Float, tch::Device::Cpu));
    let mut first: Option<HybridNet> = None;
    for (name, variant) in variants {
        let model = HybridNet::new(&HybridNetConfig { num_classes: 8, kernels: variant.kernels, ..Default::default() }).unwrap();
        if let Some(src) = &first {
            tch::no_grad(|| {
                for ((_, dst), (_, s)) in model.named_parameters().iter().zip(src.named_parameters()) {
                    dst.shallow_clone().copy_(s);
                }
            });
        }
        let opt = OptimizerConfig { fused: variant.fused_adam, ..OptimizerConfig::adam(1e-4) };
        if infer {
            profile_infer(&model, &x, steps, &name);
        } else {
            profile_train(&model, Optimizer::new(opt).unwrap(), &x, steps, &name);
        }
        first.get_or_insert(model);
    }
}

fn profile_infer(model: &HybridNet, x: &Tensor, steps: usize, name: &str) {
    let batch = x.size()[0];
    let mut ms: Vec<f64> = (0..steps + 2)
        .map(|_| {
            let t0 = Instant::now();
            let _ = model.forward_t(x, false).unwrap();
            (Instant::now() - t0).as_secs_f64() * 1e3
        })
        .collect();
    ms.drain(..2);
    let med = common::median(ms);
    println!("{name}: px {} batch {batch} infer: {med:.1} ms = {:.1} img/s", x.size()[2], batch as f64 / med * 1e3);
}

fn profile_train(model: &HybridNet, mut opt: Optimizer, x: &Tensor, steps: usize, name: &str) {
    let batch = x.size()[0];
    let params: Vec<(String, Tensor)> = model.named_parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    let loss = LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap();
    let y: Vec<i32> = (0..batch as i32).map(|i| i % 8).collect();
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for _ in 0..steps + 2 {
        let t0 = Instant::now();
        let logits = model.forward_t(x, true).unwrap();
        let t1 = Instant::now();
        let l = loss.compute(&logits, &y).unwrap();
        l.backward();
        let t2 = Instant::now();
        let _norm = opt.step_clipped(&params, None).unwrap();
        let t3 = Instant::now();
        hybridnet::train::clip::zero_grad(&params).unwrap();
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        rows.push([ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)]);
    }
    rows.drain(..2);
    let med = |i: usize| common::median(rows.iter().map(|r| r[i]).collect());
    let total: f64 = (0..4).map(med).sum();
    println!(
        "{name}: px {} batch {batch} threads {}: forward {:.1} ms, loss+backward {:.1}, norm+adam {:.1}, zero {:.1}; total {:.1} ms = {:.1} img/s",
        x.size()[2],
        tch::get_num_threads(),
        med(0), med(1), med(2), med(3), total, batch as f64 / total * 1e3
    );
}
