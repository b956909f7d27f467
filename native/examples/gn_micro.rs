//! Times relu(group_norm(x)) forward+backward, ATen ops vs the fused kernel, alternating:
//! `cargo run --release --example gn_micro -- N C H GROUPS REPS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Instant;
use tch::{Kind, Tensor};

fn main() {
    let a: Vec<i64> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (n, c, h, g, reps) = (a[0], a[1], a[2], a[3], a[4] as usize);
    hybridnet::runtime::init();
    let x = Tensor::randn([n, c, h, h], tch::kind::FLOAT_CPU).set_requires_grad(true);
    let w = Tensor::ones([c], tch::kind::FLOAT_CPU).set_requires_grad(true);
    let b = Tensor::zeros([c], tch::kind::FLOAT_CPU).set_requires_grad(true);
    let up = Tensor::randn([n, c, h, h], tch::kind::FLOAT_CPU);
    let time = |fused: bool| {
        let t0 = Instant::now();
        let y = if fused {
            hybridnet::model::fused::group_norm_relu(&x, &w, &b, g, 1e-5).unwrap()
        } else {
            x.group_norm(g, Some(&w), Some(&b), 1e-5, false).relu_()
        };
        let t1 = Instant::now();
        let _ = Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &[&x, &w, &b], false, false);
        let t2 = Instant::now();
        ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3)
    };
    let (mut fa, mut ba, mut ff, mut bf) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let (f, b) = time(false);
        fa.push(f);
        ba.push(b);
        let (f, b) = time(true);
        ff.push(f);
        bf.push(b);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    // The backward includes the mul+sum of the loss, the same for both.
    println!("[{n},{c},{h},{h}]/{g}: aten fwd {:.2} bwd {:.2} | fused fwd {:.2} bwd {:.2} ms", med(fa), med(ba), med(ff), med(bf));
}
