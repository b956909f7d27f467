//! Batches: pick images by index (or take a u8 batch given by the caller), augment each sample
//! with its own PRNG (`Rng::for_sample(seed, position)`), in parallel over samples (rayon), into
//! float32 NCHW.

use super::augment::{apply, parse_ops, Chw, Op, Rng};
use super::{checked_len, ImageSet};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Checks that every index is an image of `set`.
pub fn check_indices(set: &ImageSet, indices: &[i32]) -> Result<()> {
    if let Some((i, &v)) = indices.iter().enumerate().find(|(_, &v)| v < 0 || v as usize >= set.count) {
        return Err(Error::invalid(format!("indices[{i}] = {v} is out of range [0, {})", set.count)));
    }
    Ok(())
}

fn check_out_len(got: usize, n: usize, shape: Chw) -> Result<()> {
    let need = n * shape.len();
    if got != need {
        return Err(Error::invalid(format!("out_len is {got}, needs n*c*h*w = {n}*{}*{}*{} = {need}", shape.c, shape.h, shape.w)));
    }
    Ok(())
}

fn shape_of(set: &ImageSet) -> Chw {
    Chw { c: set.channels, h: set.height, w: set.width }
}

/// Augments `n = out.len() / shape.len()` samples; sample `pos` is `source(pos)`.
pub fn augment_batch<'a, F>(source: F, shape: Chw, ops: &[Op], seed: u64, out: &mut [f32])
where
    F: Fn(usize) -> &'a [u8] + Sync,
{
    out.par_chunks_mut(shape.len()).enumerate().for_each_init(Vec::new, |scratch, (pos, dst)| {
        let mut rng = Rng::for_sample(seed, pos as u64);
        apply(source(pos), shape, ops, &mut rng, dst, scratch);
    });
}

/// `hn_images_gather`: images `indices` of `set`, augmented by the ops JSON, into `out`
/// (`indices.len() * c*h*w` floats).
pub fn gather(set: &ImageSet, indices: &[i32], ops_json: &[u8], seed: u64, out: &mut [f32]) -> Result<()> {
    let shape = shape_of(set);
    let ops = parse_ops(ops_json, shape)?;
    check_indices(set, indices)?;
    check_out_len(out.len(), indices.len(), shape)?;
    augment_batch(|pos| set.image(indices[pos] as usize), shape, &ops, seed, out);
    Ok(())
}

/// `hn_images_gather_u8`: the raw pixels of images `indices` into `out`.
pub fn gather_u8(set: &ImageSet, indices: &[i32], out: &mut [u8]) -> Result<()> {
    let shape = shape_of(set);
    check_indices(set, indices)?;
    check_out_len(out.len(), indices.len(), shape)?;
    for (dst, &i) in out.chunks_exact_mut(shape.len()).zip(indices) {
        dst.copy_from_slice(set.image(i as usize));
    }
    Ok(())
}

/// `hn_u8_to_f32_ops`: a u8 NCHW batch `data` of shape `[n, c, h, w]` augmented into `out`;
/// equals `gather` of the same pixels with the same ops and seed.
pub fn u8_to_f32_ops(data: &[u8], [n, c, h, w]: [usize; 4], ops_json: &[u8], seed: u64, out: &mut [f32]) -> Result<()> {
    let need = checked_len(n, c, h, w)?;
    if data.len() != need {
        return Err(Error::invalid(format!("data has {} bytes, shape [{n}, {c}, {h}, {w}] needs {need}", data.len())));
    }
    let shape = Chw { c, h, w };
    let ops = parse_ops(ops_json, shape)?;
    check_out_len(out.len(), n, shape)?;
    augment_batch(|pos| &data[pos * shape.len()..(pos + 1) * shape.len()], shape, &ops, seed, out);
    Ok(())
}
