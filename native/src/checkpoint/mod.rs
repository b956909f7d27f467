//! Safetensors files: model weights under the seed's `state_dict()` names, written atomically
//! (temp file in the same folder, fsync, rename) and loaded strictly (every name present, no
//! extras, same shapes and dtype; the error names the tensor). Bad files never panic: headers
//! are parsed by the pure-Rust `safetensors` crate before any tensor reaches libtorch.

pub mod atomic;

use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tch::{Kind, Tensor};

/// A float32 tensor read from a file: shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// Dimensions (C order).
    pub shape: Vec<i64>,
    /// Values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

impl F32Tensor {
    /// Copies a tensor's values out (converted to contiguous float32 on the CPU; a CUDA tensor
    /// is copied to the host first).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let mut t = t.f_detach()?;
        if t.device() != tch::Device::Cpu {
            t = t.f_to_device(tch::Device::Cpu)?;
        }
        let t = t.f_to_kind(Kind::Float)?.f_contiguous()?;
        let numel = t.numel();
        let mut data = vec![0f32; numel];
        t.f_copy_data(&mut data, numel)?;
        Ok(Self { shape: t.size(), data })
    }

    /// A new CPU tensor holding these values.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::f_from_slice(&self.data)?.f_view(self.shape.as_slice())?)
    }
}

/// Serialises `tensors` (name → values) plus string `metadata` to safetensors bytes.
pub fn to_bytes(tensors: &[(String, F32Tensor)], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let raw: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let shape = t.shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
            (name.clone(), bytes, shape)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, bytes, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Checkpoint(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Checkpoint(format!("serialize: {e}")))
}

/// Writes `tensors` to `path` as safetensors, atomically.
pub fn write_file(path: &Path, tensors: &[(String, F32Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let bytes = to_bytes(tensors, metadata)?;
    atomic::write(path, &bytes)
}

/// The parsed contents of a safetensors file: tensors in file order and the metadata.
#[derive(Debug, Default)]
pub struct FileContents {
    /// `(name, tensor)`, in no particular order.
    pub tensors: Vec<(String, F32Tensor)>,
    /// `__metadata__` (empty when absent).
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file of float32 tensors. Missing/unreadable file → [`Error::Io`]; not
/// safetensors, truncated, or a non-F32 tensor → [`Error::Checkpoint`] naming the path (and
/// the tensor).
pub fn read_file(path: &Path) -> Result<FileContents> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let shown = path.display();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Checkpoint(format!("{shown}: not a valid safetensors file ({e})")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| Error::Checkpoint(format!("{shown}: not a valid safetensors file ({e})")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut tensors = Vec::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::Checkpoint(format!("{shown}: tensor {name} has dtype {:?}, expected F32", view.dtype())));
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let shape = view.shape().iter().map(|&d| d as i64).collect();
        tensors.push((name.to_string(), F32Tensor { shape, data }));
    }
    Ok(FileContents { tensors, metadata })
}

/// Checks `file` against the expected `(name, shape)` list: every name present, no extra
/// names, same shapes. The error names the first offending tensor.
pub fn check_strict(path: &Path, expected: &[(String, Vec<i64>)], file: &FileContents) -> Result<()> {
    let shown = path.display();
    let have: HashMap<&str, &F32Tensor> = file.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for (name, shape) in expected {
        let Some(t) = have.get(name.as_str()) else {
            return Err(Error::Checkpoint(format!("{shown}: missing tensor {name}")));
        };
        if &t.shape != shape {
            return Err(Error::Checkpoint(format!("{shown}: tensor {name} has shape {:?}, the model expects {shape:?}", t.shape)));
        }
    }
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&str> = file.tensors.iter().map(|(n, _)| n.as_str()).filter(|n| !wanted.contains(n)).collect();
    if let Some(first) = extra.first() {
        return Err(Error::Checkpoint(format!("{shown}: unexpected tensor {first} ({} unexpected in all)", extra.len())));
    }
    Ok(())
}

/// Saves named parameters as safetensors with `{"format": "pt"}` metadata.
pub fn save_params(path: &Path, params: &[(String, Tensor)]) -> Result<()> {
    let tensors = params.iter().map(|(n, t)| Ok((n.clone(), F32Tensor::from_tensor(t)?))).collect::<Result<Vec<_>>>()?;
    write_file(path, &tensors, HashMap::from([("format".to_string(), "pt".to_string())]))
}

/// Strictly loads `path` into `params` (in place, under `no_grad`). Nothing is modified unless
/// the whole file matches.
pub fn load_params(path: &Path, params: &[(String, Tensor)]) -> Result<()> {
    let file = read_file(path)?;
    let expected: Vec<(String, Vec<i64>)> = params.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    check_strict(path, &expected, &file)?;
    let by_name: HashMap<&str, &F32Tensor> = file.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let _guard = tch::no_grad_guard();
    for (name, param) in params {
        let src = by_name.get(name.as_str()).ok_or_else(|| Error::Checkpoint(format!("missing tensor {name}")))?;
        let mut dst = param.shallow_clone();
        dst.f_copy_(&src.to_tensor()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
