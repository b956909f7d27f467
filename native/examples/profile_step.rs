//! Splits one native train step (fpn skip, focal loss, Adam) into forward / loss+backward /
//! optimizer / zero-grad and prints milliseconds per part, median of STEPS steps after two
//! warm-ups: `cargo run --release --example profile_step -- PX BATCH [STEPS]`. Environment:
//! `HN_PROFILE_INFER=1` times eval forwards instead, `HN_PROFILE_UNFUSED=1` uses the tensor-op
//! Adam, `HN_CONV_REWRITES=0` plain `conv2d` everywhere, `HN_NUM_THREADS` the thread count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hybridnet::model::{HybridNet, HybridNetConfig};
use hybridnet::train::{LossConfig, OptimizerConfig};
use std::time::Instant;
use tch::Tensor;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let px: i64 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(32);
    let batch: i64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(32);
    let steps: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(10);
    hybridnet::runtime::init();
    tch::manual_seed(0);
    let model = HybridNet::new(&HybridNetConfig { num_classes: 8, ..Default::default() }).unwrap();
    let params: Vec<(String, Tensor)> = model.named_parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    let mut opt = hybridnet::train::Optimizer::new(OptimizerConfig::adam(1e-4)).unwrap();
    opt.set_fused(std::env::var("HN_PROFILE_UNFUSED").is_err());
    let loss = LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap();
    let x = Tensor::randn([batch, 3, px, px], (tch::Kind::Float, tch::Device::Cpu));
    let y: Vec<i32> = (0..batch as i32).map(|i| i % 8).collect();
    if std::env::var("HN_PROFILE_INFER").is_ok() {
        let mut ms: Vec<f64> = (0..steps + 2)
            .map(|_| {
                let t0 = Instant::now();
                let _ = model.forward_t(&x, false).unwrap();
                (Instant::now() - t0).as_secs_f64() * 1e3
            })
            .collect();
        ms.drain(..2);
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = ms[ms.len() / 2];
        println!("px {px} batch {batch} infer: {med:.1} ms = {:.1} img/s", batch as f64 / med * 1e3);
        return;
    }
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for _ in 0..steps + 2 {
        let t0 = Instant::now();
        let logits = model.forward_t(&x, true).unwrap();
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
    let med = |i: usize| {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let total: f64 = (0..4).map(med).sum();
    println!(
        "px {px} batch {batch} threads {}: forward {:.1} ms, loss+backward {:.1}, norm+adam {:.1}, zero {:.1}; total {:.1} ms = {:.1} img/s",
        tch::get_num_threads(),
        med(0), med(1), med(2), med(3), total, batch as f64 / total * 1e3
    );
}
