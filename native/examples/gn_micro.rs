//! Times relu(group_norm(x)) forward+backward with two GroupNorm layers that differ only in the
//! `fused_group_norm` kernel option (ATen's ops vs the fused kernel), alternating:
//! `cargo run --release --example gn_micro -- N C H GROUPS REPS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hybridnet::model::kernels::{KernelOptions, Kernels};
use hybridnet::model::layers::GroupNorm;
use std::time::Instant;
use tch::{Kind, Tensor};

fn main() {
    let a: Vec<i64> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (n, c, h, g, reps) = (a[0], a[1], a[2], a[3], a[4] as usize);
    hybridnet::runtime::init();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let layer = |name: &str, fused_group_norm: bool| {
        let kernels = Kernels::new(KernelOptions { fused_group_norm, ..KernelOptions::ALL });
        GroupNorm::new(&(vs.root() / name), g, c, &kernels).unwrap()
    };
    let (aten, fused) = (layer("aten", false), layer("fused", true));
    let x = Tensor::randn([n, c, h, h], tch::kind::FLOAT_CPU).set_requires_grad(true);
    let up = Tensor::randn([n, c, h, h], tch::kind::FLOAT_CPU);
    let time = |gn: &GroupNorm| {
        let t0 = Instant::now();
        let y = gn.forward_relu(&x).unwrap();
        let t1 = Instant::now();
        let _ = Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &[&x, &gn.weight, &gn.bias], false, false);
        let t2 = Instant::now();
        ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3)
    };
    let (mut fa, mut ba, mut ff, mut bf) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let (f, b) = time(&aten);
        fa.push(f);
        ba.push(b);
        let (f, b) = time(&fused);
        ff.push(f);
        bf.push(b);
    }
    let med = common::median;
    // The backward includes the mul+sum of the loss, the same for both.
    println!("[{n},{c},{h},{h}]/{g}: aten fwd {:.2} bwd {:.2} | fused fwd {:.2} bwd {:.2} ms", med(fa), med(ba), med(ff), med(bf));
}
