//! Build script: makes the library and test binaries find libtorch at run time (rpath to
//! `$LIBTORCH/lib`), records the torch version for `hn_info_json`, and compiles the C++ fused
//! kernels in `csrc/` against libtorch's headers (the ones tch's own C++ layer is built with).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=HN_TORCH_VERSION");
    let mut version = env::var("HN_TORCH_VERSION").ok().filter(|v| !v.trim().is_empty());
    if let Ok(libtorch) = env::var("LIBTORCH") {
        let lib = Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        let version_file = Path::new(&libtorch).join("build-version");
        println!("cargo:rerun-if-changed={}", version_file.display());
        if version.is_none() {
            version = std::fs::read_to_string(&version_file).ok().map(|v| v.trim().to_string());
        }
        if version.is_none() {
            version = version_from_header(Path::new(&libtorch));
        }
    }
    compile_fused_kernels();
    let version = version.unwrap_or_else(|| "unknown".to_string());
    // "2.11.0+cpu" -> "2.11.0": the info JSON reports the release, not the build flavour.
    let release = version.split('+').next().unwrap_or(&version).trim().to_string();
    println!("cargo:rustc-env=HN_TORCH_VERSION={release}");
}

/// `MAJOR.MINOR.PATCH` from libtorch's `torch/version.h` (present in every libtorch, including
/// the include tree of a pip-installed torch).
fn version_from_header(libtorch: &Path) -> Option<String> {
    let candidates = ["include/torch/csrc/api/include/torch/version.h", "include/torch/headeronly/version.h"];
    for rel in candidates {
        let path = libtorch.join(rel);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        println!("cargo:rerun-if-changed={}", path.display());
        let get = |key: &str| text.lines().find_map(|l| l.trim().strip_prefix("#define ")?.strip_prefix(key)?.trim().parse::<u32>().ok());
        if let (Some(a), Some(b), Some(c)) = (get("TORCH_VERSION_MAJOR"), get("TORCH_VERSION_MINOR"), get("TORCH_VERSION_PATCH")) {
            return Some(format!("{a}.{b}.{c}"));
        }
    }
    None
}

/// Builds `csrc/group_norm.cpp` (the fused CPU kernel) and `csrc/cuda_ops.cpp` (ATen calls tch
/// does not bind: autocast dtype, TF32, fused Adam) into a static library linked into this
/// crate. The include directories follow torch-sys: `LIBTORCH_INCLUDE` or `LIBTORCH`, plus the
/// C++ API folder.
fn compile_fused_kernels() {
    let sources = ["csrc/group_norm.cpp", "csrc/cuda_ops.cpp"];
    for src in sources {
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH_INCLUDE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let root = env::var("LIBTORCH_INCLUDE").or_else(|_| env::var("LIBTORCH")).unwrap_or_else(|_| {
        panic!("LIBTORCH (or LIBTORCH_INCLUDE) must name a libtorch folder: run `deno task build:native`, which sets it")
    });
    let include = Path::new(&root).join("include");
    if !include.join("ATen/ATen.h").exists() {
        panic!("libtorch headers not found: {} has no ATen/ATen.h", include.display());
    }
    // torch 2.x wheels are built with the C++11 ABI, like torch-sys' default.
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .files(sources)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // ATen's parallel_for is an inline `#pragma omp parallel` (AT_PARALLEL_OPENMP): without
        // -fopenmp it compiles to a serial loop.
        .flag("-fopenmp")
        .opt_level(3)
        .warnings(false)
        .compile("hn_fused");
    // The OpenMP runtime torch itself uses (and bundles next to libtorch_cpu).
    println!("cargo:rustc-link-arg=-l:libgomp.so.1");
}
