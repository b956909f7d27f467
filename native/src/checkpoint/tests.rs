use super::*;
use crate::error::status;
use tch::Tensor;

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hn-ckpt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn params() -> Vec<(String, Tensor)> {
    vec![
        ("a.weight".to_string(), Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.]).view([2, 3])),
        ("b.bias".to_string(), Tensor::from_slice(&[7f32, 8.]).view([2])),
    ]
}

fn fresh() -> Vec<(String, Tensor)> {
    vec![
        ("a.weight".to_string(), Tensor::zeros([2, 3], tch::kind::FLOAT_CPU)),
        ("b.bias".to_string(), Tensor::zeros([2], tch::kind::FLOAT_CPU)),
    ]
}

fn write(path: &Path, tensors: Vec<(&str, Vec<i64>)>) {
    let ts: Vec<(String, F32Tensor)> = tensors
        .into_iter()
        .map(|(n, shape)| {
            let numel = shape.iter().product::<i64>() as usize;
            (n.to_string(), F32Tensor { shape, data: vec![0.5; numel] })
        })
        .collect();
    write_file(path, &ts, HashMap::new()).unwrap();
}

#[test]
fn round_trip_is_exact_and_leaves_no_temp_file() {
    let d = tmpdir("rt");
    let p = d.join("w.safetensors");
    save_params(&p, &params()).unwrap();
    let dst = fresh();
    load_params(&p, &dst).unwrap();
    for ((_, a), (_, b)) in params().iter().zip(dst.iter()) {
        assert!(a.equal(b));
    }
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "temp files left: {names:?}");
    let file = read_file(&p).unwrap();
    assert_eq!(file.metadata.get("format").map(String::as_str), Some("pt"));
}

#[test]
fn bad_files_give_the_right_error_kind_and_name_the_tensor() {
    let d = tmpdir("bad");
    let good = d.join("good.safetensors");
    save_params(&good, &params()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let missing_file = d.join("nope.safetensors");
    let truncated = d.join("trunc.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file at all").unwrap();
    let huge_header = d.join("huge.safetensors");
    std::fs::write(&huge_header, u64::MAX.to_le_bytes()).unwrap();
    let empty = d.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let wrong_name = d.join("wrong.safetensors");
    write(&wrong_name, vec![("a.weight", vec![2, 3]), ("b.biass", vec![2])]);
    let missing_name = d.join("missing.safetensors");
    write(&missing_name, vec![("a.weight", vec![2, 3])]);
    let extra_name = d.join("extra.safetensors");
    write(&extra_name, vec![("a.weight", vec![2, 3]), ("b.bias", vec![2]), ("c.extra", vec![1])]);
    let wrong_shape = d.join("shape.safetensors");
    write(&wrong_shape, vec![("a.weight", vec![3, 2]), ("b.bias", vec![2])]);
    let wrong_dtype = d.join("dtype.safetensors");
    {
        let data = [0u8; 4];
        let v = TensorView::new(Dtype::I32, vec![1], &data).unwrap();
        std::fs::write(&wrong_dtype, safetensors::serialize(vec![("a.weight", v)], None).unwrap()).unwrap();
    }

    let cases: Vec<(&Path, i32, &str)> = vec![
        (&missing_file, status::HN_ERR_IO, "nope.safetensors"),
        (&truncated, status::HN_ERR_CHECKPOINT, "trunc.safetensors"),
        (&garbage, status::HN_ERR_CHECKPOINT, "garbage.safetensors"),
        (&huge_header, status::HN_ERR_CHECKPOINT, "huge.safetensors"),
        (&empty, status::HN_ERR_CHECKPOINT, "empty.safetensors"),
        (&wrong_name, status::HN_ERR_CHECKPOINT, "b.bias"),
        (&missing_name, status::HN_ERR_CHECKPOINT, "missing tensor b.bias"),
        (&extra_name, status::HN_ERR_CHECKPOINT, "unexpected tensor c.extra"),
        (&wrong_shape, status::HN_ERR_CHECKPOINT, "a.weight has shape [3, 2]"),
        (&wrong_dtype, status::HN_ERR_CHECKPOINT, "a.weight has dtype I32"),
    ];
    for (path, code, needle) in cases {
        let dst = fresh();
        let err = load_params(path, &dst).unwrap_err();
        assert_eq!(err.code(), code, "{}: {err}", path.display());
        assert!(err.to_string().contains(needle), "{}: message {err:?} lacks {needle:?}", path.display());
        // A failed load leaves the parameters untouched.
        assert_eq!(dst[0].1.abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
    }
}

#[test]
fn unwritable_path_is_an_io_error() {
    let err = save_params(Path::new("/nonexistent-dir-hn/x.safetensors"), &params()).unwrap_err();
    assert_eq!(err.code(), status::HN_ERR_IO, "{err}");
    assert!(err.to_string().contains("/nonexistent-dir-hn/x.safetensors"));
}
