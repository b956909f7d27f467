use super::*;
use tch::{Kind, Tensor};

fn model(cfg: &HybridNetConfig) -> HybridNet {
    crate::runtime::init();
    tch::manual_seed(0);
    HybridNet::new(cfg).unwrap()
}

/// The parameter called `name` (a `state_dict()` key), sharing storage with the model.
fn param(m: &HybridNet, name: &str) -> Tensor {
    m.named_parameters().iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()).unwrap()
}

#[test]
fn parameter_counts_match_the_seed() {
    let m = model(&HybridNetConfig::default());
    assert_eq!(m.param_count(), 7_696_913);
    let fpn: u64 = m.named_parameters().iter().filter(|(n, _)| n.starts_with("fpn.")).map(|(_, t)| t.numel() as u64).sum();
    assert_eq!(fpn, 2_000_384);
    assert_eq!(m.named_parameters().len(), 97);
}

#[test]
fn block_output_shapes() {
    let _g = tch::no_grad_guard();
    let m = model(&HybridNetConfig::default());
    let x = Tensor::randn([2, 3, 64, 64], tch::kind::FLOAT_CPU);
    let x = m.conv1.forward(&x).unwrap();
    assert_eq!(x.size(), [2, 64, 16, 16]);
    let x = m.dense1.forward(&x).unwrap();
    assert_eq!(x.size(), [2, 256, 16, 16]);
    let c1 = m.trans1.forward(&x).unwrap();
    assert_eq!(c1.size(), [2, 128, 8, 8]);
    let r1 = m.res_blocks[0].forward(&c1).unwrap();
    assert_eq!(r1.size(), [2, 128, 8, 8]);
    let r2 = m.res_blocks[1].forward(&r1).unwrap();
    assert_eq!(r2.size(), [2, 256, 4, 4]);
    let r3 = m.res_blocks[2].forward(&r2).unwrap();
    assert_eq!(r3.size(), [2, 512, 2, 2]);
    let [p1, p2, p3] = m.fpn.forward(&c1, &r2, &r3).unwrap();
    assert_eq!((p1.size(), p2.size(), p3.size()), (vec![2, 256, 8, 8], vec![2, 256, 4, 4], vec![2, 256, 2, 2]));
    let a = m.attention.forward(&r3).unwrap();
    assert_eq!(a.size(), [2, 512, 2, 2]);
    let logits = m.forward_t(&Tensor::randn([2, 3, 64, 64], tch::kind::FLOAT_CPU), false).unwrap();
    assert_eq!(logits.size(), [2, 8]);
}

#[test]
fn smallest_input_and_bad_inputs() {
    let m = model(&HybridNetConfig { num_classes: 2, input_channels: 1, ..Default::default() });
    assert_eq!(m.forward_t(&Tensor::zeros([1, 1, 5, 5], tch::kind::FLOAT_CPU), false).unwrap().size(), [1, 2]);
    for shape in [vec![1, 1, 4, 4], vec![1, 1, 5, 4], vec![1, 2, 8, 8], vec![0, 1, 8, 8], vec![1, 8, 8]] {
        let err = m.forward_t(&Tensor::zeros(shape.as_slice(), tch::kind::FLOAT_CPU), false).unwrap_err();
        assert_eq!(err.code(), 1, "{shape:?}: {err}");
    }
    let err = m.forward_t(&Tensor::zeros([1, 1, 8, 8], tch::kind::DOUBLE_CPU), false).unwrap_err();
    assert_eq!(err.code(), 1);
}

#[test]
fn init_statistics_follow_initialize_weights() {
    let m = model(&HybridNetConfig::default());
    for (name, t) in m.named_parameters() {
        let size = t.size();
        let mean = t.mean(Kind::Float).double_value(&[]);
        let std = if t.numel() > 1 { t.std(true).double_value(&[]) } else { 0.0 };
        if size.len() == 4 {
            let want = (2.0 / (size[0] * size[2] * size[3]) as f64).sqrt();
            if t.numel() >= 1000 {
                assert!((std / want - 1.0).abs() < 0.1, "{name}: std {std} vs {want}");
            }
        } else if size.len() == 2 {
            assert!((std / 0.01 - 1.0).abs() < 0.1, "{name}: std {std}");
        } else if name.ends_with(".bias") {
            assert_eq!(t.abs().max().double_value(&[]), 0.0, "{name}");
        } else {
            assert_eq!(mean, 1.0, "{name}");
            assert_eq!(std, 0.0, "{name}");
        }
    }
}

#[test]
fn fpn_seed_and_skip_give_identical_logits() {
    let skip = model(&HybridNetConfig::default());
    let seed = model(&HybridNetConfig { fpn: FpnMode::Seed, ..Default::default() });
    // Tests share the global generator, so copy the weights rather than rely on the seed.
    tch::no_grad(|| {
        for ((_, dst), (_, src)) in seed.named_parameters().iter().zip(skip.named_parameters()) {
            dst.shallow_clone().copy_(src);
        }
    });
    let x = Tensor::randn([2, 3, 40, 48], tch::kind::FLOAT_CPU);
    let a = skip.forward_t(&x, false).unwrap();
    let b = seed.forward_t(&x, false).unwrap();
    assert!(a.equal(&b));
}

#[test]
fn get_groups_is_used_per_layer() {
    // conv1.0 is hard-coded to one group; everything else follows get_groups.
    assert_eq!(get_groups(3), 1);
    assert_eq!(get_groups(C_INITIAL), 8);
    assert_eq!(get_groups(256), 32);
}

/// Forward output and the gradients of input, kernel and bias of `f`, for a fixed upstream
/// gradient.
fn conv_grads(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor, x: &Tensor, w: &Tensor, b: &Tensor) -> Vec<Tensor> {
    let leaf = |t: &Tensor| t.detach().copy().set_requires_grad(true);
    let (x, w, b) = (leaf(x), leaf(w), leaf(b));
    let y = f(&x, &w, &b);
    // Deterministic without the global RNG, which tests running in parallel share.
    let upstream = (Tensor::arange(y.numel() as i64, tch::kind::FLOAT_CPU) * 0.7).sin().view(y.size().as_slice());
    (&y * &upstream).sum(Kind::Float).backward();
    vec![y.detach(), x.grad(), w.grad(), b.grad()]
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-12)
}

/// ‖a − b‖₂ / ‖b‖₂. For gradients through ReLUs: a pre-activation within float rounding of 0
/// can fall on either side in two exact formulations, and that element's gradient then differs
/// by the whole upstream value (max-abs differences of 1e-2 on some random draws), while the
/// tensor as a whole agrees to float precision.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-12)
}

/// Standard-normal values from a private xorshift stream (Box-Muller), independent of torch's
/// global generator. Tests that compare gradients through ReLUs use it: the test runner runs
/// tests in parallel threads that all draw from the global generator, so their draws differ
/// from run to run, and an unlucky draw puts a pre-activation within rounding of 0, where two
/// exact formulations may rectify it differently (see [`rel_l2`]).
pub(crate) fn det_randn(shape: &[i64], seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| ((-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()) as f32).collect();
    Tensor::from_slice(&values).view(shape)
}

/// Overwrites every parameter whose name starts with `prefix` with [`det_randn`] values of the
/// same spread as its initialisation (GroupNorm weights around 1).
fn det_params(m: &HybridNet, prefix: &str, seed: u64) {
    let _g = tch::no_grad_guard();
    for (k, (name, t)) in m.named_parameters().iter().filter(|(n, _)| n.starts_with(prefix)).enumerate() {
        let size = t.size();
        let fan_in: i64 = size.iter().skip(1).product::<i64>().max(1);
        let scale = if size.len() > 1 { (2.0 / fan_in as f64).sqrt() } else { 0.2 };
        let center = if size.len() == 1 && name.ends_with("weight") { 1.0 } else { 0.0 };
        t.shallow_clone().copy_(&(det_randn(&size, seed + k as u64) * scale + center));
    }
}

#[test]
fn conv_rewrites_equal_conv2d_in_value_and_gradient() {
    use super::layers::{Conv2d, ConvPlan};
    crate::runtime::init();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let kernels = kernels::Kernels::default();
    // (c_in, c_out, k, stride, padding, h, plan expected)
    let cases = [
        (64, 48, 3, 1, 1, 1, ConvPlan::Window),
        (32, 40, 3, 2, 1, 2, ConvPlan::Window),
        (2, 1, 7, 1, 3, 1, ConvPlan::Window),
        (24, 16, 1, 1, 0, 1, ConvPlan::Window),
        (64, 24, 3, 1, 1, 2, ConvPlan::Unfold { ho: 2, wo: 2 }),
        (96, 24, 3, 2, 1, 4, ConvPlan::Unfold { ho: 2, wo: 2 }),
        (32, 24, 3, 1, 1, 2, ConvPlan::Direct),
        (64, 8, 3, 2, 1, 3, ConvPlan::Unfold { ho: 2, wo: 2 }),
        (512, 8, 3, 1, 1, 4, ConvPlan::Direct),
        (2, 1, 7, 1, 3, 2, ConvPlan::Direct),
        (32, 24, 3, 1, 1, 8, ConvPlan::Direct),
        (128, 24, 3, 1, 1, 4, ConvPlan::Direct),
    ];
    for (i, &(c_in, c_out, k, stride, padding, h, plan)) in cases.iter().enumerate() {
        assert_eq!(ConvPlan::choose(c_in, h, h, k, stride, padding), plan, "case {i}");
        tch::manual_seed(i as i64);
        let conv = Conv2d::new(&(vs.root() / format!("c{i}")), c_in, c_out, k, stride, padding, true, &kernels).unwrap();
        let x = Tensor::randn([3, c_in, h, h], tch::kind::FLOAT_CPU);
        let b = Tensor::randn([c_out], tch::kind::FLOAT_CPU);
        let ours =
            conv_grads(|x, w, b| conv.with_params(w.shallow_clone(), Some(b.shallow_clone())).forward(x).unwrap(), &x, &conv.weight, &b);
        let reference = conv_grads(|x, w, b| x.conv2d(w, Some(b), [stride], [padding], [1], 1), &x, &conv.weight, &b);
        for (what, (a, r)) in ["output", "d input", "d kernel", "d bias"].iter().zip(ours.iter().zip(&reference)) {
            assert_eq!(a.size(), r.size(), "case {i} {what}");
            let d = max_rel_diff(a, r);
            assert!(d < 1e-5, "case {i} ({plan:?}) {what}: {d}");
        }
    }
}

#[test]
fn folded_stem_equals_groupnorm_then_conv() {
    crate::runtime::init();
    tch::manual_seed(5);
    let m = model(&HybridNetConfig::default());
    let x = Tensor::randn([4, 3, 32, 32], tch::kind::FLOAT_CPU) * 3.0 + 1.0;
    let get = |name: &str| param(&m, name);
    let (mut gamma, mut beta, kernel) = (get("conv1.0.weight"), get("conv1.0.bias"), get("conv1.1.weight"));
    tch::no_grad(|| {
        gamma.copy_(&(Tensor::randn([3], tch::kind::FLOAT_CPU) * 0.5 + 1.0));
        beta.copy_(&Tensor::randn([3], tch::kind::FLOAT_CPU));
    });
    let upstream = Tensor::randn([4, 64, 16, 16], tch::kind::FLOAT_CPU);
    let run = |folded: bool| {
        let y = if folded {
            m.conv1.input_conv(&x).unwrap()
        } else {
            x.group_norm(1, Some(&gamma), Some(&beta), 1e-5, false).conv2d(&kernel, None::<Tensor>, [2], [3], [1], 1)
        };
        for t in [&gamma, &beta, &kernel] {
            let _ = t.grad().zero_();
        }
        (&y * &upstream).sum(Kind::Float).backward();
        vec![y.detach(), gamma.grad().copy(), beta.grad().copy(), kernel.grad().copy()]
    };
    // A first pass creates the gradient tensors that `run` zeroes.
    (m.conv1.input_conv(&x).unwrap().sum(Kind::Float)).backward();
    let (ours, reference) = (run(true), run(false));
    for (what, (a, r)) in ["output", "d gamma", "d beta", "d kernel"].iter().zip(ours.iter().zip(&reference)) {
        let d = max_rel_diff(a, r);
        assert!(d < 1e-5, "{what}: {d}");
    }
}

#[test]
fn stem_pools_before_its_relu_with_the_same_result() {
    crate::runtime::init();
    tch::manual_seed(7);
    let m = model(&HybridNetConfig::default());
    let get = |name: &str| param(&m, name);
    let (gamma, beta) = (get("conv1.2.weight"), get("conv1.2.bias"));
    // A shift of about one standard deviation makes a good share of windows all-negative.
    tch::no_grad(|| {
        gamma.shallow_clone().copy_(&(Tensor::randn([64], tch::kind::FLOAT_CPU) * 0.5 + 1.0));
        beta.shallow_clone().copy_(&(Tensor::randn([64], tch::kind::FLOAT_CPU) - 0.5));
    });
    let x = Tensor::randn([3, 3, 40, 40], tch::kind::FLOAT_CPU);
    let upstream = Tensor::randn([3, 64, 10, 10], tch::kind::FLOAT_CPU);
    let seed_order = |x: &Tensor| {
        let y = m.conv1.input_conv(x).unwrap().group_norm(get_groups(64), Some(&gamma), Some(&beta), 1e-5, false);
        y.relu().max_pool2d([3], [2], [1], [1], false)
    };
    let run = |ours: bool| {
        let y = if ours { m.conv1.forward(&x).unwrap() } else { seed_order(&x) };
        for t in [&gamma, &beta] {
            let _ = t.grad().zero_();
        }
        (&y * &upstream).sum(Kind::Float).backward();
        vec![y.detach(), gamma.grad().copy(), beta.grad().copy()]
    };
    m.conv1.forward(&x).unwrap().sum(Kind::Float).backward();
    let (ours, reference) = (run(true), run(false));
    let zeros = ours[0].eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!(zeros > 0.1, "the test needs windows whose maximum is negative ({zeros})");
    for (what, (a, r)) in ["output", "d gamma", "d beta"].iter().zip(ours.iter().zip(&reference)) {
        let d = max_rel_diff(a, r);
        assert!(d < 1e-6, "{what}: {d}");
    }
    let _g = tch::no_grad_guard();
    let d = max_rel_diff(&m.conv1.forward(&x).unwrap(), &seed_order(&x));
    assert!(d < 1e-6, "eval output: {d}");
}

#[test]
fn transition_pools_before_its_conv_with_the_same_result() {
    crate::runtime::init();
    tch::manual_seed(6);
    let m = model(&HybridNetConfig::default());
    let get = |name: &str| param(&m, name);
    let (gamma, beta, kernel, bias) = (get("trans1.0.weight"), get("trans1.0.bias"), get("trans1.1.weight"), get("trans1.1.bias"));
    tch::no_grad(|| {
        bias.shallow_clone().copy_(&Tensor::randn([128], tch::kind::FLOAT_CPU));
    });
    // An odd size checks that the pooling's floor drops the same row and column.
    for h in [8, 7] {
        let x = Tensor::randn([3, 256, h, h], tch::kind::FLOAT_CPU);
        let upstream = (Tensor::arange(3 * 128 * (h / 2) * (h / 2), tch::kind::FLOAT_CPU) * 0.3).sin().view([3, 128, h / 2, h / 2]);
        let run = |ours: bool| {
            let xl = x.detach().copy().set_requires_grad(true);
            let y = if ours {
                m.trans1.forward(&xl).unwrap()
            } else {
                let z = xl.group_norm(get_groups(256), Some(&gamma), Some(&beta), 1e-5, false);
                z.conv2d(&kernel, Some(&bias), [1], [0], [1], 1).avg_pool2d([2], [2], [0], false, true, None::<i64>)
            };
            for t in [&gamma, &beta, &kernel, &bias] {
                let _ = t.grad().zero_();
            }
            (&y * &upstream).sum(Kind::Float).backward();
            vec![y.detach(), xl.grad(), gamma.grad().copy(), kernel.grad().copy(), bias.grad().copy()]
        };
        // A first pass creates the gradient tensors that `run` zeroes.
        m.trans1.forward(&x).unwrap().sum(Kind::Float).backward();
        let (ours, reference) = (run(true), run(false));
        for (what, (a, r)) in ["output", "d input", "d gamma", "d kernel", "d bias"].iter().zip(ours.iter().zip(&reference)) {
            assert_eq!(a.size(), r.size(), "{h}px {what}");
            let d = max_rel_diff(a, r);
            assert!(d < 1e-5, "{h}px {what}: {d}");
        }
    }
}

#[test]
fn dense_block_in_channels_last_equals_the_nchw_path() {
    crate::runtime::init();
    let m = model(&HybridNetConfig::default());
    det_params(&m, "dense1.", 100);
    det_params(&m, "trans1.", 200);
    // 32x32 maps take the channels-last path, with a graph or without.
    let x = det_randn(&[2, 64, 32, 32], 7);
    let fast = tch::no_grad(|| m.dense1.forward(&x)).unwrap();
    let reference = tch::no_grad(|| m.dense1.concat_layers(&x.contiguous())).unwrap();
    assert_eq!(fast.size(), vec![2, 256, 32, 32]);
    assert!(!fast.is_contiguous() && fast.stride()[1] == 1, "channels-last strides {:?}", fast.stride());
    let d = max_rel_diff(&fast, &reference);
    assert!(d < 1e-5, "channels-last vs NCHW: {d}");
    // The transition takes the channels-last map as it is.
    let pooled = tch::no_grad(|| m.trans1.forward(&fast)).unwrap();
    let d = max_rel_diff(&pooled, &tch::no_grad(|| m.trans1.forward(&reference.contiguous())).unwrap());
    assert!(d < 1e-5, "transition on channels-last vs NCHW: {d}");
    // Training: the same gradients for the block's input and its parameters, through the
    // transition (which then also runs channels-last).
    let params: Vec<Tensor> = m
        .named_parameters()
        .iter()
        .filter(|(n, _)| n.starts_with("dense1.") || n.starts_with("trans1."))
        .map(|(_, t)| t.shallow_clone())
        .collect();
    let upstream = det_randn(&[2, 128, 16, 16], 8);
    let run = |channels_last: bool| {
        let xg = x.detach().copy().set_requires_grad(true);
        let features = if channels_last { m.dense1.forward(&xg) } else { m.dense1.concat_layers(&xg.contiguous()) }.unwrap();
        assert_eq!(features.is_contiguous(), !channels_last, "layout of the training path");
        let y = m.trans1.forward(&features).unwrap();
        let mut inputs = vec![&xg];
        inputs.extend(params.iter());
        let mut out = vec![y.detach()];
        out.extend(Tensor::run_backward(&[(&y * &upstream).sum(Kind::Float)], &inputs, false, false));
        out
    };
    let (ours, reference) = (run(true), run(false));
    for (i, (a, r)) in ours.iter().zip(&reference).enumerate() {
        let d = rel_l2(a, r);
        assert!(d < 1e-5, "training, channels-last vs NCHW, tensor {i} (0 output, 1 input grad, then parameters): {d}");
    }
    // At 128 px the stem, the block, the transition and the residual stages all switch layout
    // in inference (training: the block and the transition), at 64 px the stem and the
    // residual stages; the logits still match the training path, with the FPN maps computed or
    // not.
    for (px, fpn) in [(128, FpnMode::Skip), (64, FpnMode::Skip), (64, FpnMode::Seed)] {
        tch::manual_seed(8);
        let m = model(&HybridNetConfig { fpn, ..Default::default() });
        let img = Tensor::randn([2, 3, px, px], tch::kind::FLOAT_CPU);
        let eval = m.forward_t(&img, false).unwrap();
        let features = m.features(&img.detach().copy().set_requires_grad(true)).unwrap();
        let graph = m.classify(&features, &Dropout::Off).unwrap().detach();
        let d = max_rel_diff(&eval, &graph);
        assert!(d < 1e-5, "{px} px {fpn:?}: eval logits, inference vs training layouts: {d}");
    }
}

/// Copies every parameter of `src` into `dst` (same architecture).
fn copy_weights(dst: &HybridNet, src: &HybridNet) {
    tch::no_grad(|| {
        for ((_, d), (_, s)) in dst.named_parameters().iter().zip(src.named_parameters()) {
            d.shallow_clone().copy_(s);
        }
    });
}

/// Logits of an eval forward at 128 px (every channels-last choice applies) and at 32 px (the
/// conv rewrites of tiny maps apply), then the logits and the parameter gradients of a
/// training forward and backward at 32 px (the stem's fold applies).
fn kernel_workout(m: &HybridNet) -> (Vec<Tensor>, Tensor) {
    let big = det_randn(&[1, 3, 128, 128], 31);
    let small = det_randn(&[2, 3, 32, 32], 32);
    let mut outs = vec![m.forward_t(&big, false).unwrap(), m.forward_t(&small, false).unwrap()];
    let logits = m.forward_with(&small, &Dropout::Off).unwrap();
    (&logits * &det_randn(&[2, 8], 33)).sum(Kind::Float).backward();
    outs.push(logits.detach());
    let grads: Vec<Tensor> = m
        .named_parameters()
        .iter()
        .filter(|(n, _)| !n.starts_with("fpn."))
        .map(|(_, p)| {
            let g = p.grad().flatten(0, -1);
            let _ = p.grad().zero_();
            g
        })
        .collect();
    (outs, Tensor::cat(&grads, 0))
}

#[test]
fn each_model_follows_its_own_kernel_options() {
    crate::runtime::init();
    let all = KernelOptions::ALL;
    let variants = [
        all,
        KernelOptions::NONE,
        KernelOptions { fused_group_norm: false, ..all },
        KernelOptions { conv_rewrites: false, ..all },
        KernelOptions { channels_last: false, ..all },
    ];
    // Built together, run in turn in one process: nothing global decides a model's path.
    let models: Vec<HybridNet> = variants.iter().map(|&kernels| model(&HybridNetConfig { kernels, ..Default::default() })).collect();
    for m in &models[1..] {
        copy_weights(m, &models[0]);
    }
    let runs: Vec<_> = models.iter().map(kernel_workout).collect();
    let calls: Vec<KernelCalls> = models.iter().map(HybridNet::kernel_calls).collect();
    let (reference, reference_grads) = &runs[0];
    for (i, ((m, (outs, grads)), used)) in models.iter().zip(&runs).zip(&calls).enumerate() {
        let k = variants[i];
        assert_eq!(m.config().kernels, k, "model {i} keeps its options");
        // Each option's path ran exactly when the option is on...
        assert_eq!(used.fused_group_norm > 0, k.fused_group_norm, "model {i} {k:?}: {used:?}");
        assert_eq!(used.conv_rewrites > 0, k.conv_rewrites, "model {i} {k:?}: {used:?}");
        assert_eq!(used.channels_last > 0, k.channels_last, "model {i} {k:?}: {used:?}");
        // ...and as often as in the all-on model: one option does not change another's choices.
        // (Not so for the GroupNorm count: the stem's fold, a conv rewrite, normalises its input
        // without the GroupNorm layer.)
        let on = &calls[0];
        if k.conv_rewrites {
            assert_eq!(used.conv_rewrites, on.conv_rewrites, "model {i} {k:?}: {used:?} vs all on {on:?}");
        }
        if k.channels_last {
            assert_eq!(used.channels_last, on.channels_last, "model {i} {k:?}: {used:?} vs all on {on:?}");
        }
        // The same function either way.
        for (j, (a, r)) in outs.iter().zip(reference).enumerate() {
            let d = max_rel_diff(a, r);
            assert!(d < 1e-5, "model {i} {k:?}, output {j}: {d}");
        }
        let d = rel_l2(grads, reference_grads);
        assert!(d < 1e-4, "model {i} {k:?}: gradients {d}");
    }
    // The paths differ in float summation order, so the all-off model's logits are not the same bits.
    assert!(!runs[1].0[0].equal(&reference[0]), "all-off logits equal all-on logits bit for bit");
}
