//! CUDA: device discovery through the driver API (loaded dynamically by cudarc, so the library
//! builds and runs with no CUDA installed), libtorch's CUDA half loaded at run time from the
//! folder of the loaded libtorch ([`torch_cuda`]), and the ATen calls tch does not bind
//! ([`ops`]: autocast with a dtype, TF32, multi-tensor clip and fused Adam).

pub mod ops;
pub mod torch_cuda;

pub use torch_cuda::DeviceSpec;

use serde::Serialize;

/// One CUDA device as reported by the driver.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CudaDevice {
    /// Device ordinal.
    pub ordinal: i32,
    /// Marketing name.
    pub name: String,
    /// Total memory in bytes.
    pub total_mem: u64,
    /// Compute capability `[major, minor]`.
    pub compute_capability: [i32; 2],
}

/// Devices found, or the reason none could be listed (no driver, init failure ...).
pub fn list_devices() -> (Vec<CudaDevice>, Option<String>) {
    // cudarc panics if a symbol is missing from an unexpected driver build: contain it.
    match std::panic::catch_unwind(query) {
        Ok(Ok(devs)) => (devs, None),
        Ok(Err(reason)) => (Vec::new(), Some(reason)),
        Err(_) => (Vec::new(), Some("the CUDA driver library could not be used (panic while loading it)".into())),
    }
}

fn query() -> Result<Vec<CudaDevice>, String> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen the driver library.
    if !unsafe { sys::is_culib_present() } {
        return Err("CUDA driver library (libcuda) not found".into());
    }
    result::init().map_err(|e| format!("cuInit failed: {e}"))?;
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e}"))?;
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let dev = result::device::get(ordinal).map_err(|e| format!("cuDeviceGet({ordinal}) failed: {e}"))?;
        let name = result::device::get_name(dev).map_err(|e| format!("cuDeviceGetName failed: {e}"))?;
        // SAFETY: `dev` comes from cuDeviceGet.
        let total_mem = unsafe { result::device::total_mem(dev) }.map_err(|e| format!("cuDeviceTotalMem failed: {e}"))?;
        let attr = |a| unsafe { result::device::get_attribute(dev, a) }.map_err(|e| format!("cuDeviceGetAttribute failed: {e}"));
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        devices.push(CudaDevice { ordinal, name, total_mem: total_mem as u64, compute_capability: [major, minor] });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    #[test]
    fn listing_never_panics_and_explains_an_empty_list() {
        let (devs, reason) = super::list_devices();
        assert!(!devs.is_empty() || reason.is_some());
    }
}
