//! Parity with the PyTorch oracle (shared/reference/hybridnet-seed): weights loaded strictly
//! from the seed's state_dict, then logits, focal loss, every gradient, the loss after one
//! Adam step, and the recorded-dropout forward.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hybridnet::checkpoint;
use hybridnet::model::{lock, Dropout, FpnMode, HybridNet, HybridNetConfig};
use hybridnet::train::{LossConfig, OptimizerConfig, Trainer, TrainerConfig};
use std::sync::{Arc, Mutex};
use tch::Tensor;

fn seed_model(dropout_rate: f64, fpn: FpnMode) -> HybridNet {
    hybridnet::runtime::init();
    let m = HybridNet::new(&HybridNetConfig { dropout_rate, fpn, ..Default::default() }).unwrap();
    checkpoint::load_params(&reference_dir().join("hybridnet_seed_init.safetensors"), m.named_parameters()).unwrap();
    m
}

fn input() -> Tensor {
    Tensor::from_slice(&read_f32("input.bin")).view([2, 3, 64, 64])
}

fn focal() -> LossConfig {
    LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap()
}

const TARGETS: [i32; 2] = [3, 5];

fn max_rel(a: &Tensor, want: &[f32]) -> f64 {
    let want = Tensor::from_slice(want).view(a.size().as_slice());
    let diff = (a - &want).abs().max().double_value(&[]);
    diff / want.abs().max().double_value(&[])
}

#[test]
fn names_order_and_shapes_equal_the_state_dict() {
    let m = seed_model(0.3, FpnMode::Skip);
    let reference = reference_json();
    let want: Vec<(String, Vec<i64>)> = reference["state_dict_order_and_shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect()))
        .collect();
    let have: Vec<(String, Vec<i64>)> = m.named_parameters().iter().map(|(n, t)| (n.clone(), t.size())).collect();
    assert_eq!(have, want);
    assert_eq!(m.param_count(), reference["num_parameters"].as_u64().unwrap());
}

#[test]
fn eval_logits_and_focal_loss_match() {
    let reference = reference_json();
    for fpn in [FpnMode::Skip, FpnMode::Seed] {
        let m = seed_model(0.3, fpn);
        let logits = m.forward_t(&input(), false).unwrap();
        let r = max_rel(&logits, &read_f32("logits.bin"));
        println!("{fpn:?}: eval logits max|diff|/max|ref| = {r:.3e}");
        assert!(r <= 1e-4, "{r}");
        let loss = focal().compute(&logits, &TARGETS).unwrap().double_value(&[]);
        let want = reference["eval"]["focal_loss_targets_3_5"].as_f64().unwrap();
        println!("{fpn:?}: focal loss {loss} vs {want} (rel {:.3e})", rel(loss, want));
        assert!(rel(loss, want) <= 1e-4);
    }
}

#[test]
fn every_gradient_matches_and_fpn_gets_none() {
    let grads_ref = checkpoint::read_file(&reference_dir().join("grads_nodropout.safetensors")).unwrap();
    let by_name: std::collections::HashMap<_, _> = grads_ref.tensors.iter().map(|(n, t)| (n.clone(), t.clone())).collect();
    let mut logits_by_mode = Vec::new();
    for fpn in [FpnMode::Skip, FpnMode::Seed] {
        let m = seed_model(0.0, fpn);
        let logits = m.forward_t(&input(), true).unwrap();
        assert!(max_rel(&logits, &read_f32("train_logits_nodropout.bin")) <= 1e-4);
        focal().compute(&logits, &TARGETS).unwrap().backward();
        let mut worst = (0.0f64, String::new());
        let mut checked = 0;
        for (name, p) in m.named_parameters() {
            let g = p.grad();
            if name.starts_with("fpn.") {
                assert!(!g.defined(), "{name} got a gradient");
                assert!(!by_name.contains_key(name));
                continue;
            }
            let want = by_name.get(name).unwrap_or_else(|| panic!("no reference grad for {name}")).to_tensor().unwrap();
            let r = (&g - &want).norm().double_value(&[]) / want.norm().double_value(&[]);
            if r > worst.0 {
                worst = (r, name.clone());
            }
            checked += 1;
        }
        println!("{fpn:?}: worst relative L2 grad error {:.3e} ({})", worst.0, worst.1);
        assert_eq!(checked, 85);
        assert!(worst.0 <= 1e-3, "{worst:?}");
        logits_by_mode.push(logits.detach());
    }
    assert!(logits_by_mode[0].equal(&logits_by_mode[1]), "fpn seed/skip train logits differ");
}

#[test]
fn loss_after_one_adam_step_matches() {
    let reference = reference_json();
    let m = Arc::new(Mutex::new(seed_model(0.0, FpnMode::Skip)));
    let fpn_before: Vec<Tensor> =
        lock(&m).named_parameters().iter().filter(|(n, _)| n.starts_with("fpn.")).map(|(_, t)| t.copy()).collect();
    let cfg = TrainerConfig {
        optimizer: OptimizerConfig::adam(1e-4),
        clip_grad_norm: None,
        seed: None,
        trainable: Default::default(),
        ema: None,
        precision: Default::default(),
    };
    let mut trainer = Trainer::new(m.clone(), &cfg).unwrap();
    trainer.set_loss(focal()).unwrap();
    let step = trainer.train_step(&input(), &TARGETS).unwrap();
    let want_loss = reference["train_step_nodropout"]["loss"].as_f64().unwrap();
    let want_norm = reference["train_step_nodropout"]["grad_l2_norm_total"].as_f64().unwrap();
    println!("step loss {} vs {want_loss}; grad norm {} vs {want_norm}", step.loss, step.grad_norm);
    assert!(rel(step.loss, want_loss) <= 1e-4);
    assert!(rel(step.grad_norm, want_norm) <= 1e-4);
    let after = focal().compute(&lock(&m).forward_t(&input(), false).unwrap(), &TARGETS).unwrap().double_value(&[]);
    let want = reference["train_step_nodropout"]["loss_after_one_adam_step_same_batch"].as_f64().unwrap();
    println!("loss after one Adam step {after} vs {want} (rel {:.3e})", rel(after, want));
    assert!(rel(after, want) <= 1e-4);
    let fpn_after: Vec<Tensor> = lock(&m).named_parameters().iter().filter(|(n, _)| n.starts_with("fpn.")).map(|(_, t)| t.copy()).collect();
    assert!(fpn_before.iter().zip(&fpn_after).all(|(a, b)| a.equal(b)), "FPN changed");
}

#[test]
fn recorded_dropout_masks_reproduce_the_dropout_forward() {
    let reference = reference_json();
    let m = seed_model(0.3, FpnMode::Skip);
    let m1 = Tensor::from_slice(&read_f32("dropout_mask_1.bin")).view([2, 512]);
    let m2 = Tensor::from_slice(&read_f32("dropout_mask_2.bin")).view([2, 256]);
    let logits = m.forward_with(&input(), &Dropout::Masks { p: 0.3, masks: [&m1, &m2] }).unwrap();
    let r = max_rel(&logits, &read_f32("train_logits_dropout.bin"));
    let loss = focal().compute(&logits, &TARGETS).unwrap().double_value(&[]);
    let want = reference["train_step_dropout_recorded_masks"]["loss"].as_f64().unwrap();
    println!("dropout logits rel {r:.3e}; loss {loss} vs {want}");
    assert!(r <= 1e-4);
    assert!(rel(loss, want) <= 1e-4);
    // (How random train-mode dropout draws and scales its masks is tested with the head, in
    // `model/classifier.rs`.)
}
