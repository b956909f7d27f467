//! Shared helpers of the integration tests: the parity-oracle folder and its raw files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

/// `HN_REFERENCE_DIR`, else `<project>/../shared/reference/hybridnet-seed` (the project lives
/// at `<x>/main`, the shared files at `<x>/shared`).
pub fn reference_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HN_REFERENCE_DIR") {
        return PathBuf::from(d);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/hybridnet-seed");
    assert!(dir.join("reference.json").exists(), "parity oracle not found at {} (set HN_REFERENCE_DIR)", dir.display());
    dir
}

/// Raw little-endian float32 file.
pub fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(reference_dir().join(name)).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// `reference.json`.
pub fn reference_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(reference_dir().join("reference.json")).unwrap()).unwrap()
}

/// A fresh scratch folder.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hn-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Relative difference `|a - b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}
