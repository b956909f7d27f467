use super::*;
use tch::{Kind, Tensor};

fn model(cfg: &HybridNetConfig) -> HybridNet {
    crate::runtime::init();
    tch::manual_seed(0);
    HybridNet::new(cfg).unwrap()
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
