use super::info::*;
use super::model::*;
use super::trainer::*;
use super::*;
use crate::error::status::*;
use std::ptr::{null, null_mut};

#[test]
fn guard_maps_ok_err_and_panic_and_records_messages() {
    assert_eq!(guard(None, || Ok(())), HN_OK);
    let slot = ErrorSlot::default();
    assert_eq!(guard(Some(&slot), || Err(Error::State("nope".into()))), HN_ERR_STATE);
    assert!(last_error().contains("nope"));
    assert!(slot.get().contains("nope"));
    let code = guard(Some(&slot), || -> Result<()> { panic!("boom {}", 42) });
    assert_eq!(code, HN_ERR_PANIC);
    assert_eq!(last_error(), "panic: boom 42");
    assert_eq!(slot.get(), "panic: boom 42");
}

ffi_fn! {
    /// Test-only export that panics inside the guard.
    fn hn_test_panic(x: i32) {
        if x > 0 {
            panic!("test panic {x}");
        }
        Ok(())
    }
}

#[test]
fn an_export_converts_a_panic_into_code_99() {
    assert_eq!(unsafe { hn_test_panic(0) }, HN_OK);
    assert_eq!(unsafe { hn_test_panic(7) }, HN_ERR_PANIC);
    let len = hn_last_error_length();
    let mut buf = vec![0u8; len];
    let n = unsafe { hn_last_error_message(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(n, len);
    assert_eq!(std::str::from_utf8(&buf).unwrap(), "panic: test panic 7");
    // A short buffer gets a prefix; NULL with cap 0 is fine.
    let mut short = [0u8; 5];
    assert_eq!(unsafe { hn_last_error_message(short.as_mut_ptr(), 5) }, 5);
    assert_eq!(&short, b"panic");
    assert_eq!(unsafe { hn_last_error_message(null_mut(), 0) }, 0);
}

#[test]
fn string_outputs_follow_the_buffer_too_small_protocol() {
    let mut need = 0usize;
    assert_eq!(unsafe { hn_info_json(null_mut(), 0, &mut need) }, HN_ERR_BUFFER_TOO_SMALL);
    assert!(need > 10);
    let mut buf = vec![0u8; need];
    assert_eq!(unsafe { hn_info_json(buf.as_mut_ptr(), buf.len(), &mut need) }, HN_OK);
    let info: serde_json::Value = serde_json::from_slice(&buf[..need]).unwrap();
    assert_eq!(info["abi"], ABI_VERSION);
    assert!(info["threads"].as_i64().unwrap() >= 1);
    assert!(info["cuda_devices"].is_array());
    assert!(info["library_path"].is_string(), "{info}");
    assert!(!info["cuda_devices"].as_array().unwrap().is_empty() || info["cuda_error"].is_string());
    assert_eq!(unsafe { hn_info_json(buf.as_mut_ptr(), buf.len(), null_mut()) }, HN_ERR_INVALID_ARG);
    assert_eq!(hn_abi_version(), ABI_VERSION);
    assert_eq!(unsafe { hn_noop() }, HN_OK);
    assert_eq!(unsafe { hn_set_num_threads(0) }, HN_ERR_INVALID_ARG);
}

fn new_model(json: &str) -> (i32, *mut HnModel) {
    let mut m: *mut HnModel = null_mut();
    let code = unsafe { hn_model_new(json.as_ptr(), json.len(), &mut m) };
    (code, m)
}

const KERNELS: &str = r#""kernels":{"fused_group_norm":true,"conv_rewrites":true,"channels_last":true}"#;
const CFG: &str = concat!(
    r#"{"num_classes":3,"input_channels":1,"dropout_rate":0.0,"fpn":"skip","seed":0,"#,
    r#""kernels":{"fused_group_norm":true,"conv_rewrites":true,"channels_last":true},"device":"cpu"}"#
);

/// `CFG` with `field` set to `value` (raw JSON).
fn cfg_with(field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(CFG).unwrap();
    v[field] = serde_json::from_str(value).unwrap();
    v.to_string()
}

/// The string an out-string export writes, by the `HN_ERR_BUFFER_TOO_SMALL` protocol.
fn read_out(call: impl Fn(*mut u8, usize, *mut usize) -> i32) -> serde_json::Value {
    let mut need = 0usize;
    assert_eq!(call(null_mut(), 0, &mut need), HN_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; need];
    assert_eq!(call(buf.as_mut_ptr(), need, &mut need), HN_OK);
    serde_json::from_slice(&buf[..need]).unwrap()
}

#[test]
fn model_exports_validate_their_arguments() {
    let no_kernels = CFG.replace(&format!(",{KERNELS}"), "");
    for bad in [
        r#"{"num_classes":3,"input_channels":1,"dropout_rate":0.0,"fpn":"skip"}"#.to_string(),
        no_kernels,
        cfg_with("x", "1"),
        cfg_with("num_classes", "0"),
        cfg_with("num_classes", "1"),
        cfg_with("input_channels", "0"),
        cfg_with("input_channels", "4097"),
        cfg_with("dropout_rate", "1.0"),
        cfg_with("fpn", r#""both""#),
        cfg_with("kernels", r#"{"fused_group_norm":true,"conv_rewrites":true}"#),
        cfg_with("kernels", r#"{"fused_group_norm":true,"conv_rewrites":true,"channels_last":true,"cuda":true}"#),
        cfg_with("kernels", r#"{"fused_group_norm":1,"conv_rewrites":true,"channels_last":true}"#),
        CFG.replace(r#","device":"cpu""#, ""),
        cfg_with("device", r#""cuda""#),
        cfg_with("device", r#""gpu:0""#),
        "{".to_string(),
    ] {
        let bad = bad.as_str();
        let (code, m) = new_model(bad);
        assert_eq!(code, HN_ERR_INVALID_ARG, "{bad}");
        assert!(m.is_null());
    }
    assert_eq!(unsafe { hn_model_new(CFG.as_ptr(), CFG.len(), null_mut()) }, HN_ERR_INVALID_ARG);
    // A CUDA device that is not usable is HN_ERR_CUDA with the reason, never a panic.
    let (usable, _) = crate::cuda::torch_cuda::usable_devices();
    let (code, m) = new_model(&cfg_with("device", &format!("\"cuda:{}\"", usable.len())));
    assert_eq!(code, HN_ERR_CUDA);
    assert!(m.is_null());
    let (code, m) = new_model(CFG);
    assert_eq!(code, HN_OK);
    let mut count = 0u64;
    assert_eq!(unsafe { hn_model_param_count(m, &mut count) }, HN_OK);
    assert_eq!(unsafe { hn_model_param_count(null(), &mut count) }, HN_ERR_INVALID_ARG);

    let x = vec![0.5f32; 2 * 8 * 8];
    let shape = [2i64, 1, 8, 8];
    let mut out = vec![0f32; 6];
    assert_eq!(unsafe { hn_model_forward_eval(m, x.as_ptr(), x.len(), shape.as_ptr(), out.as_mut_ptr(), 6) }, HN_OK);
    let cases: Vec<(Vec<f32>, [i64; 4], usize, &str)> = vec![
        (vec![0.5; 127], [2, 1, 8, 8], 6, "x_len"),
        (vec![0.5; 128], [2, 1, 8, 8], 5, "out_len"),
        (vec![0.5; 256], [2, 2, 8, 8], 6, "channels"),
        (vec![0.5; 32], [2, 1, 4, 4], 6, ">= 5"),
        (vec![f32::NAN; 128], [2, 1, 8, 8], 6, "NaN"),
        (vec![], [0, 1, 8, 8], 0, "empty"),
    ];
    for (x, shape, out_len, needle) in cases {
        let code = unsafe { hn_model_forward_eval(m, x.as_ptr(), x.len(), shape.as_ptr(), out.as_mut_ptr(), out_len) };
        assert_eq!(code, HN_ERR_INVALID_ARG, "{needle}");
        let mut buf = vec![0u8; 512];
        let mut len = 0usize;
        assert_eq!(unsafe { hn_model_last_error(m, buf.as_mut_ptr(), buf.len(), &mut len) }, HN_OK);
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    // 5x5 is the smallest input the architecture survives.
    let x5 = [0.5f32; 25];
    assert_eq!(unsafe { hn_model_forward_eval(m, x5.as_ptr(), 25, [1i64, 1, 5, 5].as_ptr(), out.as_mut_ptr(), 3) }, HN_OK);
    assert_eq!(unsafe { hn_model_forward_eval(m, null(), 128, shape.as_ptr(), out.as_mut_ptr(), 6) }, HN_ERR_INVALID_ARG);
    assert_eq!(unsafe { hn_model_forward_eval(m, x.as_ptr(), x.len(), null(), out.as_mut_ptr(), 6) }, HN_ERR_INVALID_ARG);
    assert_eq!(unsafe { hn_model_forward_eval(null_mut(), x.as_ptr(), x.len(), shape.as_ptr(), out.as_mut_ptr(), 6) }, HN_ERR_INVALID_ARG);

    let d = read_out(|buf, cap, len| unsafe { hn_model_describe(m, buf, cap, len) });
    assert_eq!(d["num_classes"], 3);
    assert_eq!(d["params"][0]["name"], "conv1.0.weight");
    assert_eq!(d["config"], serde_json::from_str::<serde_json::Value>(CFG).unwrap(), "the config as decoded");
    assert!(d["kernel_calls"]["fused_group_norm"].as_u64().unwrap() > 0, "{d}");

    let bad_path = "/nonexistent-hn-dir/m.safetensors";
    assert_eq!(unsafe { hn_model_save(m, bad_path.as_ptr(), bad_path.len()) }, HN_ERR_IO);
    assert!(last_error().contains(bad_path));
    assert_eq!(unsafe { hn_model_load(m, bad_path.as_ptr(), bad_path.len()) }, HN_ERR_IO);
    unsafe { hn_model_free(m) };
    unsafe { hn_model_free(null_mut()) };
}

#[test]
fn describe_gives_back_the_decoded_configs() {
    let off = r#"{"fused_group_norm":false,"conv_rewrites":false,"channels_last":true}"#;
    let cfg = cfg_with("kernels", off);
    let (code, m) = new_model(&cfg);
    assert_eq!(code, HN_OK);
    let d = read_out(|buf, cap, len| unsafe { hn_model_describe(m, buf, cap, len) });
    assert_eq!(d["config"]["kernels"], serde_json::from_str::<serde_json::Value>(off).unwrap());
    assert_eq!(d["kernel_calls"], serde_json::json!({"fused_group_norm": 0, "conv_rewrites": 0, "channels_last": 0}));

    // Optional fields come back filled in: the decoded config, not the text sent.
    let t_cfg = r#"{"optimizer":{"kind":"adamw","lr":0.01,"fused":false},"seed":3}"#;
    let mut t: *mut HnTrainer = null_mut();
    assert_eq!(unsafe { hn_trainer_new(m, t_cfg.as_ptr(), t_cfg.len(), &mut t) }, HN_OK);
    let d = read_out(|buf, cap, len| unsafe { hn_trainer_describe(t, buf, cap, len) });
    let want = serde_json::json!({
        "config": {
            "optimizer": {
                "kind": "adamw", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                "momentum": 0.9, "nesterov": false, "fused": false
            },
            "clip_grad_norm": null, "seed": 3, "trainable": "all", "ema": null, "precision": "fp32"
        },
        "steps": 0,
        "fused_steps": 0,
        "ema": null
    });
    assert_eq!(d, want);
    let x = vec![0.25f32; 2 * 8 * 8];
    let (mut logits, mut loss) = ([0f32; 6], 0f64);
    let targets = [0i32, 1];
    let step = unsafe {
        hn_trainer_train_step(t, x.as_ptr(), x.len(), [2i64, 1, 8, 8].as_ptr(), targets.as_ptr(), 2, logits.as_mut_ptr(), 6, &mut loss)
    };
    assert_eq!(step, HN_OK);
    let d = read_out(|buf, cap, len| unsafe { hn_trainer_describe(t, buf, cap, len) });
    assert_eq!((d["steps"].as_u64(), d["fused_steps"].as_u64()), (Some(1), Some(0)), "fused: false takes the tensor path");
    let mut len = 0usize;
    assert_eq!(unsafe { hn_trainer_describe(null(), null_mut(), 0, &mut len) }, HN_ERR_INVALID_ARG);
    unsafe { hn_trainer_free(t) };
    unsafe { hn_model_free(m) };
}

#[test]
fn trainer_outlives_its_model_handle_and_checks_state() {
    let (_, m) = new_model(CFG);
    let cfg = r#"{"optimizer":{"kind":"sgd","lr":0.01,"momentum":0.9,"nesterov":true},"clip_grad_norm":1.0,"seed":3}"#;
    let mut t: *mut HnTrainer = null_mut();
    assert_eq!(unsafe { hn_trainer_new(m, cfg.as_ptr(), cfg.len(), &mut t) }, HN_OK);
    unsafe { hn_model_free(m) };

    let d = [0.1f32; 6];
    let mut norm = 0f64;
    assert_eq!(unsafe { hn_trainer_backward_step(t, d.as_ptr(), 6, &mut norm) }, HN_ERR_STATE);
    let mut buf = vec![0u8; 256];
    let mut len = 0;
    assert_eq!(unsafe { hn_trainer_last_error(t, buf.as_mut_ptr(), 256, &mut len) }, HN_OK);
    assert!(std::str::from_utf8(&buf[..len]).unwrap().contains("without a pending forward"));

    let x = vec![0.25f32; 2 * 8 * 8];
    let shape = [2i64, 1, 8, 8];
    let mut logits = [0f32; 6];
    assert_eq!(unsafe { hn_trainer_forward_train(t, x.as_ptr(), x.len(), shape.as_ptr(), logits.as_mut_ptr(), 6) }, HN_OK);
    assert_eq!(unsafe { hn_trainer_backward_step(t, d.as_ptr(), 5, &mut norm) }, HN_ERR_INVALID_ARG);
    assert_eq!(unsafe { hn_trainer_backward_step(t, d.as_ptr(), 6, &mut norm) }, HN_OK);
    assert!(norm > 0.0);
    assert_eq!(unsafe { hn_trainer_backward_step(t, d.as_ptr(), 6, &mut norm) }, HN_ERR_STATE);

    let loss_cfg = r#"{"kind":"focal","gamma":2.0,"alpha":null,"class_mask":[1,1,0]}"#;
    assert_eq!(unsafe { hn_trainer_set_loss(t, loss_cfg.as_ptr(), loss_cfg.len()) }, HN_OK);
    let bad_loss = r#"{"kind":"focal","alpha":[1,2]}"#;
    assert_eq!(unsafe { hn_trainer_set_loss(t, bad_loss.as_ptr(), bad_loss.len()) }, HN_ERR_INVALID_ARG);
    let mut loss = 0f64;
    let targets = [0i32, 1];
    assert_eq!(
        unsafe { hn_trainer_train_step(t, x.as_ptr(), x.len(), shape.as_ptr(), targets.as_ptr(), 2, logits.as_mut_ptr(), 6, &mut loss) },
        HN_OK
    );
    assert!(loss.is_finite() && loss > 0.0);
    let masked_target = [0i32, 2];
    assert_eq!(
        unsafe {
            hn_trainer_train_step(t, x.as_ptr(), x.len(), shape.as_ptr(), masked_target.as_ptr(), 2, logits.as_mut_ptr(), 6, &mut loss)
        },
        HN_ERR_INVALID_ARG
    );
    assert_eq!(
        unsafe { hn_trainer_train_step(t, x.as_ptr(), x.len(), shape.as_ptr(), targets.as_ptr(), 1, logits.as_mut_ptr(), 6, &mut loss) },
        HN_ERR_INVALID_ARG
    );
    let mut steps = 0u64;
    assert_eq!(unsafe { hn_trainer_step_count(t, &mut steps) }, HN_OK);
    assert_eq!(steps, 2);
    assert_eq!(unsafe { hn_trainer_set_lr(t, -1.0) }, HN_ERR_INVALID_ARG);
    assert_eq!(unsafe { hn_trainer_set_lr(t, 0.001) }, HN_OK);
    unsafe { hn_trainer_free(t) };
    unsafe { hn_trainer_free(null_mut()) };
}

#[test]
fn loss_eval_export_writes_loss_and_grad() {
    let cfg = r#"{"kind":"cross_entropy"}"#;
    let logits = [0f32, 0., 0., 0.];
    let targets = [0i32, 1];
    let mut loss = 0f64;
    let mut grad = [0f32; 4];
    assert_eq!(
        unsafe {
            super::loss::hn_loss_eval(cfg.as_ptr(), cfg.len(), logits.as_ptr(), 2, 2, targets.as_ptr(), &mut loss, grad.as_mut_ptr())
        },
        HN_OK
    );
    assert!((loss - 2f64.ln()).abs() < 1e-6);
    assert_eq!(grad, [-0.25, 0.25, 0.25, -0.25]);
    assert_eq!(
        unsafe { super::loss::hn_loss_eval(cfg.as_ptr(), cfg.len(), null(), 2, 2, targets.as_ptr(), &mut loss, grad.as_mut_ptr()) },
        HN_ERR_INVALID_ARG
    );
}

#[test]
fn handles_may_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HnModel>();
    assert_send_sync::<HnTrainer>();
}
