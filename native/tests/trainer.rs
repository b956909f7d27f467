//! Trainer contracts: state save/load gives an identical next step (Adam, AdamW, SGD), the
//! two-call step equals the one-call step, and bad checkpoint/state files give the right
//! error kind naming the tensor; a head-only trainer (cRT) changes only `classifier.*`; the
//! EMA of the weights resumes exactly from the state file and swaps in and out bit for bit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hybridnet::checkpoint;
use hybridnet::error::status::*;
use hybridnet::model::{lock, HybridNet, HybridNetConfig, SharedModel};
use hybridnet::train::{LossConfig, Trainer, TrainerConfig};
use std::sync::{Arc, Mutex};
use tch::Tensor;

fn small_cfg(num_classes: i64) -> HybridNetConfig {
    HybridNetConfig { num_classes, input_channels: 1, dropout_rate: 0.0, ..Default::default() }
}

fn new_model(num_classes: i64) -> SharedModel {
    hybridnet::runtime::init();
    Arc::new(Mutex::new(HybridNet::new(&small_cfg(num_classes)).unwrap()))
}

fn batch() -> (Tensor, [i32; 2]) {
    let x = Tensor::from_slice(&(0..2 * 16 * 16).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect::<Vec<_>>()).view([2, 1, 16, 16]);
    (x, [1, 2])
}

fn trainer(m: &SharedModel, opt: &str) -> Trainer {
    let cfg = TrainerConfig::from_json(format!(r#"{{"optimizer":{opt},"clip_grad_norm":0.5}}"#).as_bytes()).unwrap();
    let mut t = Trainer::new(m.clone(), &cfg).unwrap();
    t.set_loss(LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap()).unwrap();
    t
}

fn weights(m: &SharedModel) -> Vec<Tensor> {
    lock(m).named_parameters().iter().map(|(_, t)| t.copy()).collect()
}

#[test]
fn state_round_trip_gives_an_identical_next_step() {
    let dir = scratch("state");
    let (x, y) = batch();
    for opt in [
        r#"{"kind":"adam","lr":0.001,"weight_decay":0.01}"#,
        r#"{"kind":"adamw","lr":0.001,"weight_decay":0.1}"#,
        r#"{"kind":"sgd","lr":0.01,"momentum":0.9,"nesterov":true,"weight_decay":0.001}"#,
    ] {
        let a = new_model(3);
        let mut ta = trainer(&a, opt);
        ta.train_step(&x, &y).unwrap();
        ta.train_step(&x, &y).unwrap();
        let wpath = dir.join("w.safetensors");
        let spath = dir.join("s.safetensors");
        checkpoint::save_params(&wpath, lock(&a).named_parameters()).unwrap();
        ta.save_state(&spath).unwrap();
        let loss_a = ta.train_step(&x, &y).unwrap().loss;

        let b = new_model(3);
        checkpoint::load_params(&wpath, lock(&b).named_parameters()).unwrap();
        let mut tb = trainer(&b, opt);
        tb.load_state(&spath).unwrap();
        assert_eq!(tb.optimizer().step_count(), 2);
        let loss_b = tb.train_step(&x, &y).unwrap().loss;
        assert_eq!(loss_a, loss_b, "{opt}");
        for (wa, wb) in weights(&a).iter().zip(weights(&b).iter()) {
            assert!(wa.equal(wb), "{opt}: weights differ after the resumed step");
        }
        // A fresh trainer (no state) takes a different step: the state mattered.
        let c = new_model(3);
        checkpoint::load_params(&wpath, lock(&c).named_parameters()).unwrap();
        trainer(&c, opt).train_step(&x, &y).unwrap();
        assert!(weights(&a).iter().zip(weights(&c).iter()).any(|(p, q)| !p.equal(q)), "{opt}");
    }
}

#[test]
fn two_call_step_equals_one_call_step() {
    let (x, y) = batch();
    let dir = scratch("twocall");
    let wpath = dir.join("w.safetensors");
    let a = new_model(3);
    checkpoint::save_params(&wpath, lock(&a).named_parameters()).unwrap();
    let b = new_model(3);
    checkpoint::load_params(&wpath, lock(&b).named_parameters()).unwrap();
    let opt = r#"{"kind":"adam","lr":0.001}"#;
    let one = trainer(&a, opt).train_step(&x, &y).unwrap();

    let mut tb = trainer(&b, opt);
    let logits = tb.forward_train(&x).unwrap();
    assert!(logits.equal(&one.logits));
    let z: Vec<f32> = Vec::try_from(&logits.flatten(0, -1)).unwrap();
    let (loss, grad) = LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap().eval(&z, 2, 3, &y).unwrap();
    assert!(rel(loss, one.loss) < 1e-6);
    let norm = tb.backward_step(&grad).unwrap();
    assert!(rel(norm, one.grad_norm) < 1e-5, "{norm} vs {}", one.grad_norm);
    for (wa, wb) in weights(&a).iter().zip(weights(&b).iter()) {
        let d = (wa - wb).abs().max().double_value(&[]);
        assert!(d < 1e-6, "two-call and one-call steps differ by {d}");
    }
    assert_eq!(tb.backward_step(&grad).unwrap_err().code(), HN_ERR_STATE);
}

#[test]
fn model_checkpoint_errors_name_the_tensor() {
    let dir = scratch("ckpt");
    let p8 = dir.join("c8.safetensors");
    let m8 = new_model(8);
    checkpoint::save_params(&p8, lock(&m8).named_parameters()).unwrap();
    let m3 = new_model(3);
    let err = checkpoint::load_params(&p8, lock(&m3).named_parameters()).unwrap_err();
    assert_eq!(err.code(), HN_ERR_CHECKPOINT);
    assert!(err.to_string().contains("classifier.8.weight"), "{err}");
    // The seed's own file loads into a default model.
    let seed = HybridNet::new(&HybridNetConfig::default()).unwrap();
    checkpoint::load_params(&reference_dir().join("hybridnet_seed_init.safetensors"), seed.named_parameters()).unwrap();
    // A gradient file lacks the FPN tensors.
    let err = checkpoint::load_params(&reference_dir().join("grads_nodropout.safetensors"), seed.named_parameters()).unwrap_err();
    assert!(err.to_string().contains("missing tensor fpn."), "{err}");
}

#[test]
fn bad_trainer_state_files_are_rejected() {
    let dir = scratch("badstate");
    let (x, y) = batch();
    let m = new_model(3);
    let mut adam = trainer(&m, r#"{"kind":"adam","lr":0.001}"#);
    adam.train_step(&x, &y).unwrap();
    let spath = dir.join("adam.safetensors");
    adam.save_state(&spath).unwrap();
    let mut sgd = trainer(&m, r#"{"kind":"sgd","lr":0.001}"#);
    let err = sgd.load_state(&spath).unwrap_err();
    assert_eq!(err.code(), HN_ERR_CHECKPOINT);
    assert!(err.to_string().contains("adam"), "{err}");
    // State of a model with another head: shape mismatch names the tensor.
    let other = new_model(4);
    let mut t4 = trainer(&other, r#"{"kind":"adam","lr":0.001}"#);
    let err = t4.load_state(&spath).unwrap_err();
    assert!(err.to_string().contains("classifier.8."), "{err}");
    assert_eq!(t4.optimizer().step_count(), 0);
    // Weights are not trainer state.
    let wpath = dir.join("w.safetensors");
    checkpoint::save_params(&wpath, lock(&m).named_parameters()).unwrap();
    assert_eq!(adam.load_state(&wpath).unwrap_err().code(), HN_ERR_CHECKPOINT);
    assert_eq!(adam.load_state(&dir.join("missing.safetensors")).unwrap_err().code(), HN_ERR_IO);
}

#[test]
fn head_only_trainer_changes_only_the_classifier() {
    let m = new_model(3);
    let (x, y) = batch();
    let cfg = TrainerConfig::from_json(br#"{"optimizer":{"kind":"adam","lr":0.01},"trainable":"head"}"#).unwrap();
    let mut t = Trainer::new(m.clone(), &cfg).unwrap();
    assert!(t.trainable_names().iter().all(|n| n.starts_with("classifier.")));
    assert_eq!(t.trainable_names().len(), 10, "3 linear + 2 group norms, weight and bias each");
    let names: Vec<String> = lock(&m).named_parameters().iter().map(|(n, _)| n.clone()).collect();
    let before = weights(&m);
    t.train_step(&x, &y).unwrap();
    // the two-call step too
    let logits = t.forward_train(&x).unwrap();
    t.backward_step(&vec![0.1f32; logits.numel()]).unwrap();
    let after = weights(&m);
    let mut head_changed = 0;
    for ((name, b), a) in names.iter().zip(&before).zip(&after) {
        let same = b.equal(a);
        if name.starts_with("classifier.") {
            head_changed += usize::from(!same);
        } else {
            assert!(same, "{name} changed in a head-only step");
        }
    }
    assert!(head_changed >= 5, "the head trained ({head_changed} tensors changed)");
    assert!(TrainerConfig::from_json(br#"{"optimizer":{"kind":"adam","lr":0.01},"trainable":"neck"}"#).is_err());
}

fn ema_trainer(m: &SharedModel, ema: &str) -> Trainer {
    let cfg = TrainerConfig::from_json(
        format!(r#"{{"optimizer":{{"kind":"adamw","lr":0.003,"weight_decay":0.01}},"clip_grad_norm":0.5,"ema":{ema}}}"#).as_bytes(),
    )
    .unwrap();
    let mut t = Trainer::new(m.clone(), &cfg).unwrap();
    t.set_loss(LossConfig::from_json(br#"{"kind":"focal","gamma":1.0}"#).unwrap()).unwrap();
    t
}

fn ema_weights(t: &Trainer) -> Vec<Tensor> {
    t.ema().unwrap().buffers().unwrap().iter().map(Tensor::copy).collect()
}

fn all_equal(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equal(y))
}

/// Saved after k steps and loaded into a fresh model + trainer, the run continues exactly: the
/// same weights and the same EMA, bit for bit, as the uninterrupted run (warm-up included, so
/// the update count must come back too).
#[test]
fn ema_state_round_trip_resumes_exactly() {
    let dir = scratch("ema-state");
    let (x, y) = batch();
    let ema = r#"{"decay":0.9,"warmup_steps":4}"#;
    let a = new_model(3);
    let mut ta = ema_trainer(&a, ema);
    for _ in 0..3 {
        ta.train_step(&x, &y).unwrap();
    }
    let (wpath, spath) = (dir.join("w.safetensors"), dir.join("s.safetensors"));
    checkpoint::save_params(&wpath, lock(&a).named_parameters()).unwrap();
    ta.save_state(&spath).unwrap();
    let saved = checkpoint::read_file(&spath).unwrap();
    assert_eq!(saved.metadata.get("ema_updates").map(String::as_str), Some("3"));
    assert_eq!(saved.tensors.iter().filter(|(n, _)| n.starts_with("ema.")).count(), ta.trainable_names().len());

    let b = new_model(3);
    checkpoint::load_params(&wpath, lock(&b).named_parameters()).unwrap();
    let mut tb = ema_trainer(&b, ema);
    tb.load_state(&spath).unwrap();
    assert_eq!(tb.ema().unwrap().updates(), 3);
    assert!(all_equal(&ema_weights(&ta), &ema_weights(&tb)), "the EMA read back bit for bit");
    for _ in 0..3 {
        ta.train_step(&x, &y).unwrap();
        tb.train_step(&x, &y).unwrap();
    }
    assert_eq!(tb.ema().unwrap().updates(), 6);
    assert!(all_equal(&weights(&a), &weights(&b)), "weights after the resumed steps");
    assert!(all_equal(&ema_weights(&ta), &ema_weights(&tb)), "EMA after the resumed steps");
    // The EMA trails the weights (it is not a copy of them).
    assert!(!all_equal(&ema_weights(&ta), &weights(&a)));

    // Strict both ways: an EMA state into a trainer without one, and the other way round.
    let mut plain = trainer(&b, r#"{"kind":"adamw","lr":0.003,"weight_decay":0.01}"#);
    let err = plain.load_state(&spath).unwrap_err();
    assert_eq!(err.code(), HN_ERR_CHECKPOINT);
    assert!(err.to_string().contains("EMA"), "{err}");
    plain.train_step(&x, &y).unwrap();
    let ppath = dir.join("plain.safetensors");
    plain.save_state(&ppath).unwrap();
    let err = tb.load_state(&ppath).unwrap_err();
    assert!(err.to_string().contains("ema_updates"), "{err}");
    assert_eq!(tb.ema().unwrap().updates(), 6, "a failed load changes nothing");
}

/// Swapping exchanges the model's trained weights and the EMA; twice restores both bit for bit;
/// steps and state files wait for the swap back; without an EMA the swap is a state error.
#[test]
fn ema_swap_twice_restores() {
    let (x, y) = batch();
    let m = new_model(3);
    let mut t = ema_trainer(&m, r#"{"decay":0.5}"#);
    t.swap_ema().unwrap(); // before any step: the EMA is the weights
    t.swap_ema().unwrap();
    for _ in 0..2 {
        t.train_step(&x, &y).unwrap();
    }
    let (w0, e0) = (weights(&m), ema_weights(&t));
    t.swap_ema().unwrap();
    assert!(t.ema().unwrap().swapped());
    assert!(all_equal(&weights(&m), &e0) && all_equal(&ema_weights(&t), &w0));
    assert_eq!(t.train_step(&x, &y).unwrap_err().code(), HN_ERR_STATE);
    assert_eq!(t.forward_train(&x).unwrap_err().code(), HN_ERR_STATE);
    assert_eq!(t.save_state(&scratch("ema-swap").join("s.safetensors")).unwrap_err().code(), HN_ERR_STATE);
    t.swap_ema().unwrap();
    assert!(all_equal(&weights(&m), &w0) && all_equal(&ema_weights(&t), &e0));
    t.train_step(&x, &y).unwrap();
    assert_eq!(t.ema().unwrap().updates(), 3);
    let mut plain = trainer(&m, r#"{"kind":"adam","lr":0.001}"#);
    assert_eq!(plain.swap_ema().unwrap_err().code(), HN_ERR_STATE);
}
