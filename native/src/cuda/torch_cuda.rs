//! libtorch's CUDA half, loaded at run time. The library links only `libtorch_cpu.so` and
//! `libc10.so` (built against a CPU-only view of torch), so on a machine with an NVIDIA driver
//! and a CUDA build of torch the CUDA part (`libc10_cuda.so`, `libtorch_cuda.so`) is `dlopen`ed
//! from the folder of the `libtorch_cpu.so` actually loaded, `RTLD_NOW | RTLD_GLOBAL`, so its
//! kernels and CUDA hooks register with that ATen.
//!
//! It must happen before anything asks ATen about CUDA: ATen looks its CUDA hooks up once
//! (`getCUDAHooks`) and keeps the CPU stub forever if the CUDA part was not loaded by then, and
//! even `torch::manual_seed` asks. So [`crate::runtime::init`] calls [`load`] on the library's
//! first use; it does nothing (no `dlopen`) where the driver lists no device. Every failure is
//! recorded as one message naming what is missing, returned by [`load`] and [`device`].

use super::list_devices;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where a model and its trainer live: the CPU or one CUDA device (the `device` of the model
/// JSON, `"cpu"` or `"cuda:N"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA device `N`.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `"cpu"` or `"cuda:N"` (N a decimal ordinal, no sign or spaces).
    pub fn parse(s: &str) -> Result<Self> {
        if s == "cpu" {
            return Ok(Self::Cpu);
        }
        let ordinal = s.strip_prefix("cuda:").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match ordinal.and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Ok(Self::Cuda(n)),
            None => Err(Error::invalid(format!("device must be \"cpu\" or \"cuda:N\" (N = 0, 1, ...), got {s:?}"))),
        }
    }

    /// Whether this is a CUDA device.
    pub fn is_cuda(self) -> bool {
        matches!(self, Self::Cuda(_))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

extern "C" {
    /// An address inside libtorch_cpu (`csrc/cuda_ops.cpp`).
    fn hn_torch_anchor() -> *mut libc::c_void;
}

/// The libtorch this process runs on: the folder of the loaded `libtorch_cpu.so` (from `dladdr`
/// on one of its functions) and whether that folder holds a CUDA build (`libtorch_cuda.so`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TorchLib {
    /// Folder of the loaded `libtorch_cpu.so`, or `None` if the loader could not tell.
    pub lib_dir: Option<PathBuf>,
    /// Whether `libtorch_cuda.so` sits next to it.
    pub cuda_build: bool,
}

/// Finds the loaded libtorch (cheap; no `dlopen`).
pub fn torch_lib() -> TorchLib {
    let lib_dir = torch_cpu_path().and_then(|p| p.parent().map(Path::to_path_buf));
    let cuda_build = lib_dir.as_ref().is_some_and(|d| d.join(TORCH_CUDA).is_file());
    TorchLib { lib_dir, cuda_build }
}

const TORCH_CUDA: &str = "libtorch_cuda.so";
const C10_CUDA: &str = "libc10_cuda.so";

fn torch_cpu_path() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: the anchor only returns a function address; dladdr reads the loader's tables.
    let found = unsafe { libc::dladdr(hn_torch_anchor(), &mut info) } != 0 && !info.dli_fname.is_null();
    if !found {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
    Some(std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(name)))
}

/// The message when the driver lists no device.
pub fn no_driver_message(reason: &str) -> String {
    format!("no usable NVIDIA driver: {reason}")
}

/// The message when the loaded libtorch has no CUDA part.
pub fn cpu_only_message(lib_dir: Option<&Path>) -> String {
    let dir = lib_dir.map_or_else(|| "<unknown folder>".to_string(), |d| d.display().to_string());
    format!(
        "the loaded libtorch ({dir}) is a CPU-only build: it has no {TORCH_CUDA}; use a CUDA build of torch 2.11 \
         (deno task setup --cuda, or LD_LIBRARY_PATH=<torch>/lib)"
    )
}

/// The message when `dlopen` of the CUDA part fails.
pub fn dlopen_message(path: &Path, err: &str) -> String {
    format!("dlopen({}) failed: {err}", path.display())
}

/// The message for a device ordinal past the last device.
pub fn out_of_range_message(ordinal: usize, count: usize) -> String {
    match count {
        0 => format!("cuda:{ordinal} is out of range: libtorch sees no CUDA device"),
        n => format!("cuda:{ordinal} is out of range: {n} CUDA device(s), cuda:0..cuda:{}", n - 1),
    }
}

static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Loads the CUDA part once (see the module doc); later calls return the first outcome. `Ok`
/// means libtorch's CUDA part is loaded; the error names what is missing.
pub fn load() -> std::result::Result<(), String> {
    LOADED.get_or_init(load_once).clone()
}

fn load_once() -> std::result::Result<(), String> {
    let (devices, reason) = list_devices();
    if devices.is_empty() {
        return Err(no_driver_message(reason.as_deref().unwrap_or("the driver lists no CUDA device")));
    }
    let lib = torch_lib();
    let Some(dir) = lib.lib_dir.as_deref().filter(|_| lib.cuda_build) else {
        return Err(cpu_only_message(lib.lib_dir.as_deref()));
    };
    // c10_cuda first: libtorch_cuda needs it, and its RUNPATH may not name this folder.
    for name in [C10_CUDA, TORCH_CUDA] {
        let path = dir.join(name);
        if name == C10_CUDA && !path.is_file() {
            continue;
        }
        dlopen_global(&path)?;
    }
    Ok(())
}

fn dlopen_global(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| dlopen_message(path, "the path contains a NUL byte"))?;
    // SAFETY: dlopen with a NUL-terminated path; the handle is kept for the process's life.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
        let err = unsafe { libc::dlerror() };
        let text = if err.is_null() {
            "unknown error".to_string()
        } else {
            unsafe { std::ffi::CStr::from_ptr(err) }.to_string_lossy().into_owned()
        };
        return Err(dlopen_message(path, &text));
    }
    Ok(())
}

/// How many CUDA devices libtorch sees (0 unless its CUDA part is loaded).
pub fn torch_device_count() -> usize {
    if load().is_err() {
        return 0;
    }
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}

/// The tch device for `spec`: the CPU, or CUDA device N once the CUDA part is loaded and N is in
/// range. [`Error::Cuda`] with the reason otherwise.
pub fn device(spec: DeviceSpec) -> Result<tch::Device> {
    match spec {
        DeviceSpec::Cpu => Ok(tch::Device::Cpu),
        DeviceSpec::Cuda(n) => {
            load().map_err(|e| Error::Cuda(format!("{spec} is not usable: {e}")))?;
            let count = torch_device_count();
            if n >= count {
                return Err(Error::Cuda(out_of_range_message(n, count)));
            }
            Ok(tch::Device::Cuda(n))
        }
    }
}

/// The CUDA devices a model can use (`cuda:N` ordinals), or why there are none.
pub fn usable_devices() -> (Vec<usize>, Option<String>) {
    match load() {
        Err(e) => (Vec::new(), Some(e)),
        Ok(()) => match torch_device_count() {
            0 => (Vec::new(), Some(out_of_range_message(0, 0))),
            n => ((0..n).collect(), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_parse_strictly() {
        let rows: [(&str, Option<DeviceSpec>, &str); 9] = [
            ("cpu", Some(DeviceSpec::Cpu), "the CPU"),
            ("cuda:0", Some(DeviceSpec::Cuda(0)), "first device"),
            ("cuda:12", Some(DeviceSpec::Cuda(12)), "two digits"),
            ("cuda", None, "no ordinal: TS resolves bare cuda"),
            ("cuda:", None, "empty ordinal"),
            ("cuda:-1", None, "sign"),
            ("cuda: 1", None, "space"),
            ("CPU", None, "case matters"),
            ("auto", None, "TS resolves auto"),
        ];
        for (s, want, why) in rows {
            assert_eq!(DeviceSpec::parse(s).ok(), want, "{s}: {why}");
        }
        let err = DeviceSpec::parse("gpu").unwrap_err();
        assert_eq!(err.code(), crate::error::status::HN_ERR_INVALID_ARG);
        assert!(err.to_string().contains("\"cpu\" or \"cuda:N\""), "{err}");
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        let back: DeviceSpec = serde_json::from_str("\"cuda:1\"").unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), "\"cuda:1\"");
        assert!(serde_json::from_str::<DeviceSpec>("\"cuda\"").is_err());
    }

    #[test]
    fn error_texts_name_what_is_missing() {
        assert!(no_driver_message("CUDA driver library (libcuda) not found").contains("no usable NVIDIA driver: CUDA driver library"));
        let m = cpu_only_message(Some(Path::new("/opt/t/lib")));
        assert!(m.contains("(/opt/t/lib) is a CPU-only build") && m.contains("no libtorch_cuda.so"), "{m}");
        assert!(cpu_only_message(None).contains("<unknown folder>"));
        let m = dlopen_message(Path::new("/x/libtorch_cuda.so"), "libcudart.so.13: cannot open shared object file");
        assert_eq!(m, "dlopen(/x/libtorch_cuda.so) failed: libcudart.so.13: cannot open shared object file");
        assert_eq!(out_of_range_message(2, 1), "cuda:2 is out of range: 1 CUDA device(s), cuda:0..cuda:0");
        assert!(out_of_range_message(0, 0).contains("sees no CUDA device"));
    }

    #[test]
    fn the_loaded_libtorch_is_found_and_cuda_fails_with_a_reason_when_absent() {
        let lib = torch_lib();
        let dir = lib.lib_dir.clone().expect("dladdr finds libtorch_cpu");
        assert!(dir.join("libtorch_cpu.so").is_file(), "{dir:?}");
        let (devices, reason) = usable_devices();
        if devices.is_empty() {
            let reason = reason.unwrap();
            let e = device(DeviceSpec::Cuda(0)).unwrap_err();
            assert_eq!(e.code(), crate::error::status::HN_ERR_CUDA);
            assert!(e.to_string().contains(&reason), "{e} vs {reason}");
        } else {
            let e = device(DeviceSpec::Cuda(devices.len())).unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        assert_eq!(device(DeviceSpec::Cpu).unwrap(), tch::Device::Cpu);
    }
}
