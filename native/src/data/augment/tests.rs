use super::*;

const SQ: Chw = Chw { c: 3, h: 8, w: 8 };

fn pixels(shape: Chw, seed: u64) -> Vec<u8> {
    let mut rng = Rng::for_sample(seed, 0);
    (0..shape.len()).map(|_| (rng.next_u64() & 0xff) as u8).collect()
}

fn run(src: &[u8], shape: Chw, ops: &[Op], seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; shape.len()];
    apply(src, shape, ops, &mut Rng::for_sample(seed, 0), &mut out, &mut Vec::new());
    out
}

fn ops(json: &str, shape: Chw) -> Vec<Op> {
    parse_ops(json.as_bytes(), shape).unwrap()
}

fn base(src: &[u8]) -> Vec<f32> {
    src.iter().map(|&v| v as f32 / 255.0).collect()
}

#[test]
fn no_ops_is_a_division_by_255() {
    let src = pixels(SQ, 1);
    assert_eq!(run(&src, SQ, &[], 0), base(&src));
}

#[test]
fn hflip_and_vflip_twice_are_the_identity_and_once_mirror() {
    let shape = Chw { c: 2, h: 5, w: 7 };
    let src = pixels(shape, 2);
    for name in ["hflip", "vflip"] {
        let one = ops(&format!(r#"[{{"op":"{name}","p":1}}]"#), shape);
        let two = ops(&format!(r#"[{{"op":"{name}","p":1}},{{"op":"{name}","p":1}}]"#), shape);
        assert_eq!(run(&src, shape, &two, 3), base(&src), "{name} twice");
        let once = run(&src, shape, &one, 3);
        let b = base(&src);
        let (c, y, x) = (1, 1, 2);
        let at = |v: &[f32], c: usize, y: usize, x: usize| v[(c * 5 + y) * 7 + x];
        if name == "hflip" {
            assert_eq!(at(&once, c, y, x), at(&b, c, y, 6 - x));
        } else {
            assert_eq!(at(&once, c, y, x), at(&b, c, 4 - y, x));
        }
        let never = ops(&format!(r#"[{{"op":"{name}","p":0}}]"#), shape);
        assert_eq!(run(&src, shape, &never, 3), b, "{name} p=0");
    }
}

#[test]
fn rot90_keeps_the_shape_and_the_multiset_of_values_and_four_turns_are_identity() {
    let src = pixels(SQ, 3);
    let b = base(&src);
    let sorted = |v: &[f32]| {
        let mut s: Vec<_> = v.to_vec();
        s.sort_by(f32::total_cmp);
        s
    };
    let rot = ops(r#"[{"op":"rot90","p":1}]"#, SQ);
    let mut changed = 0;
    for seed in 0..20 {
        let r = run(&src, SQ, &rot, seed);
        assert_eq!(r.len(), b.len());
        assert_eq!(sorted(&r), sorted(&b), "same values, seed {seed}");
        // Per channel too: rotation never mixes planes.
        for ch in 0..3 {
            assert_eq!(sorted(&r[ch * 64..(ch + 1) * 64]), sorted(&b[ch * 64..(ch + 1) * 64]));
        }
        changed += usize::from(r != b);
    }
    assert_eq!(changed, 20, "p=1 always rotates by a non-zero multiple of 90 degrees");
    // k = 1 four times is the identity; one turn moves (0, 0) to (n-1, 0).
    let mut x = b.clone();
    for _ in 0..4 {
        rot90(&mut x, SQ, 1, &mut Vec::new());
    }
    assert_eq!(x, b);
    let mut one = b.clone();
    rot90(&mut one, SQ, 1, &mut Vec::new());
    assert_eq!(one[7 * 8], b[0], "counter-clockwise like numpy.rot90");
    assert!(parse_ops(br#"[{"op":"rot90","p":0.5}]"#, Chw { c: 1, h: 4, w: 5 }).is_err(), "non-square");
}

#[test]
fn normalize_math_is_exact() {
    let shape = Chw { c: 2, h: 3, w: 3 };
    let src = pixels(shape, 4);
    let r = run(&src, shape, &ops(r#"[{"op":"normalize","mean":[0.5,0.25],"std":[0.2,2.0]}]"#, shape), 0);
    for (i, (&v, &s)) in r.iter().zip(&src).enumerate() {
        let (m, d) = if i < 9 { (0.5f32, 0.2f32) } else { (0.25, 2.0) };
        assert_eq!(v, (s as f32 / 255.0 - m) / d, "value {i}");
    }
}

#[test]
fn crop_with_full_scale_and_unit_ratio_is_the_identity() {
    let src = pixels(SQ, 5);
    let crop = ops(r#"[{"op":"random_resized_crop","scale":[1,1],"ratio":[1,1]}]"#, SQ);
    for seed in 0..5 {
        assert_eq!(run(&src, SQ, &crop, seed), base(&src));
    }
}

#[test]
fn crop_stays_in_range_and_box_is_valid() {
    let shape = Chw { c: 1, h: 16, w: 12 };
    let src = pixels(shape, 6);
    let crop = ops(r#"[{"op":"random_resized_crop","scale":[0.08,1],"ratio":[0.75,1.3333]}]"#, shape);
    for seed in 0..50 {
        let mut rng = Rng::for_sample(seed, 0);
        let (top, left, ch, cw) = crop_box(16, 12, [0.08, 1.0], [0.75, 1.3333], &mut rng);
        assert!(ch >= 1 && cw >= 1 && top + ch <= 16 && left + cw <= 12, "{top} {left} {ch} {cw}");
        let r = run(&src, shape, &crop, seed);
        assert!(r.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Fallback: no crop of an 8x1 (h x w) strip has w/h = 4, so the center crop is clamped.
    let (top, left, ch, cw) = crop_box(8, 1, [0.5, 0.5], [4.0, 4.0], &mut Rng::for_sample(0, 0));
    assert_eq!((top, left, ch, cw), (3, 0, 1, 1));
}

#[test]
fn jitter_clamps_and_zero_jitter_is_identity() {
    let src = pixels(SQ, 7);
    let zero = run(&src, SQ, &ops(r#"[{"op":"jitter","brightness":0,"contrast":0}]"#, SQ), 1);
    assert!(zero.iter().zip(base(&src)).all(|(a, b)| (a - b).abs() < 1e-6), "(x - m) * 1 + m + 0 = x up to rounding");
    let j = ops(r#"[{"op":"jitter","brightness":1,"contrast":1}]"#, SQ);
    for seed in 0..20 {
        assert!(run(&src, SQ, &j, seed).iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let src = pixels(SQ, 8);
    let all = ops(
        r#"[{"op":"hflip","p":0.5},{"op":"vflip","p":0.5},{"op":"rot90","p":0.5},
            {"op":"random_resized_crop","scale":[0.08,1],"ratio":[0.75,1.3333]},
            {"op":"jitter","brightness":0.2,"contrast":0.2},{"op":"normalize","mean":[0.5,0.5,0.5],"std":[0.25,0.25,0.25]}]"#,
        SQ,
    );
    assert_eq!(run(&src, SQ, &all, 42), run(&src, SQ, &all, 42));
    assert_ne!(run(&src, SQ, &all, 42), run(&src, SQ, &all, 43));
}

#[test]
fn bad_ops_are_rejected_with_the_op_index() {
    let bad = [
        (r#"[{"op":"hflip"}]"#, "missing field"),
        (r#"[{"op":"hflip","p":0.5,"x":1}]"#, "unknown field"),
        (r#"[{"op":"blur","p":0.5}]"#, "unknown variant"),
        (r#"[{"op":"hflip","p":1.5}]"#, "ops[0]: p must be in [0, 1]"),
        (r#"[{"op":"vflip","p":0},{"op":"random_resized_crop","scale":[0,1],"ratio":[1,1]}]"#, "ops[1]: scale"),
        (r#"[{"op":"random_resized_crop","scale":[0.5,1],"ratio":[2,1]}]"#, "ratio"),
        (r#"[{"op":"jitter","brightness":-1,"contrast":0}]"#, "brightness"),
        (r#"[{"op":"normalize","mean":[0.5],"std":[0.5]}]"#, "needs 3 mean"),
        (r#"[{"op":"normalize","mean":[0,0,0],"std":[1,0,1]}]"#, "std must be finite and > 0"),
        (r#"[{"op":"normalize","mean":[0,0,0],"std":[1,1,1]},{"op":"hflip","p":1}]"#, "must be the last"),
        (r#"{"op":"hflip","p":1}"#, "ops:"),
    ];
    for (json, want) in bad {
        let e = parse_ops(json.as_bytes(), SQ).unwrap_err();
        assert_eq!(e.code(), crate::error::status::HN_ERR_INVALID_ARG, "{json}");
        assert!(e.to_string().contains(want), "{json}: {e}");
    }
}

#[test]
fn sample_generators_differ_by_position_and_seed() {
    let a: Vec<_> = (0..4).map(|p| Rng::for_sample(1, p).next_u64()).collect();
    let b: Vec<_> = (0..4).map(|p| Rng::for_sample(2, p).next_u64()).collect();
    for i in 0..4 {
        assert_ne!(a[i], b[i]);
        for j in 0..i {
            assert_ne!(a[i], a[j]);
        }
    }
    let mut r = Rng::for_sample(9, 9);
    for _ in 0..1000 {
        let u = r.uniform();
        assert!((0.0..1.0).contains(&u));
        assert!(r.below(3) < 3);
    }
}
