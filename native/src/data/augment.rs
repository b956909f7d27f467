//! The augment ops of `hn_images_gather` / `hn_u8_to_f32_ops` (one implementation for both), and
//! the per-sample PRNG.
//!
//! A sample is converted u8 → f32 `/ 255`, then the ops run in order on its `[c, h, w]` values:
//! - `hflip` / `vflip` `{p}`: mirror left-right / top-bottom with probability `p`.
//! - `rot90` `{p}`: with probability `p`, rotate counter-clockwise by `k × 90°`, `k` uniform in
//!   {1, 2, 3}. Needs square images (`h == w`).
//! - `random_resized_crop` `{scale, ratio}`: torchvision's algorithm: up to 10 tries of an area
//!   fraction uniform in `scale` and an aspect ratio (w/h) log-uniform in `ratio`, at a uniform
//!   position; else a center crop with the ratio clamped to `ratio`. The crop is resized back to
//!   `h × w` bilinearly (half-pixel centers, like `align_corners=False`).
//! - `jitter` `{brightness, contrast}`: `x = (x - m) * f + m + b` where `m` is the sample's mean
//!   over all channels and pixels, `f` uniform in `[1 - contrast, 1 + contrast]`, `b` uniform in
//!   `[-brightness, brightness]`; then clamped to `[0, 1]`.
//! - `normalize` `{mean, std}`: `(x - mean[ch]) / std[ch]`, one value per channel; at most once,
//!   and last (the ops before it assume values in `[0, 1]`).
//!
//! Every op draws its random numbers whether or not it applies, so the draws of one op never
//! shift with the outcome of another.

use crate::error::{Error, Result};
use serde::Deserialize;

/// One augment op (JSON: `{"op":"hflip","p":0.5}` ...; unknown ops or fields are rejected).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Mirror left-right with probability `p`.
    Hflip {
        /// Probability in [0, 1].
        p: f64,
    },
    /// Mirror top-bottom with probability `p`.
    Vflip {
        /// Probability in [0, 1].
        p: f64,
    },
    /// Rotate by a random non-zero multiple of 90° with probability `p` (square images only).
    Rot90 {
        /// Probability in [0, 1].
        p: f64,
    },
    /// Crop a random area fraction and aspect ratio, resize back bilinearly.
    RandomResizedCrop {
        /// Area fraction range, `0 < lo <= hi <= 1`.
        scale: [f64; 2],
        /// Aspect ratio (w/h) range, `0 < lo <= hi`.
        ratio: [f64; 2],
    },
    /// Random brightness offset and contrast factor.
    Jitter {
        /// Offset range `[-b, b]`, `0 <= b <= 1`.
        brightness: f64,
        /// Factor range `[1 - c, 1 + c]`, `0 <= c <= 1`.
        contrast: f64,
    },
    /// Per-channel `(x - mean) / std`.
    Normalize {
        /// One value per channel.
        mean: Vec<f32>,
        /// One value per channel, each finite and > 0.
        std: Vec<f32>,
    },
}

/// Sample shape `[c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chw {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Chw {
    /// Values per sample.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True when a dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn invalid(i: usize, msg: String) -> Error {
    Error::invalid(format!("ops[{i}]: {msg}"))
}

fn check_p(i: usize, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(i, format!("p must be in [0, 1], got {p}")));
    }
    Ok(())
}

/// Parses and validates the ops JSON for samples of `shape`.
pub fn parse_ops(json: &[u8], shape: Chw) -> Result<Vec<Op>> {
    let ops: Vec<Op> = serde_json::from_slice(json).map_err(|e| Error::invalid(format!("ops: {e}")))?;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Hflip { p } | Op::Vflip { p } => check_p(i, *p)?,
            Op::Rot90 { p } => {
                check_p(i, *p)?;
                if shape.h != shape.w {
                    return Err(invalid(i, format!("rot90 needs square images, these are {}x{}", shape.h, shape.w)));
                }
            }
            Op::RandomResizedCrop { scale: [s0, s1], ratio: [r0, r1] } => {
                if !(*s0 > 0.0 && s0 <= s1 && *s1 <= 1.0) {
                    return Err(invalid(i, format!("scale must satisfy 0 < lo <= hi <= 1, got [{s0}, {s1}]")));
                }
                if !(*r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
                    return Err(invalid(i, format!("ratio must satisfy 0 < lo <= hi, got [{r0}, {r1}]")));
                }
            }
            Op::Jitter { brightness, contrast } => {
                if !(0.0..=1.0).contains(brightness) || !(0.0..=1.0).contains(contrast) {
                    return Err(invalid(i, format!("brightness and contrast must be in [0, 1], got {brightness} and {contrast}")));
                }
            }
            Op::Normalize { mean, std } => {
                if mean.len() != shape.c || std.len() != shape.c {
                    return Err(invalid(
                        i,
                        format!("normalize needs {} mean and std values (one per channel), got {} and {}", shape.c, mean.len(), std.len()),
                    ));
                }
                if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(invalid(i, format!("normalize std must be finite and > 0, got {s}")));
                }
                if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                    return Err(invalid(i, format!("normalize mean must be finite, got {m}")));
                }
                if i + 1 != ops.len() {
                    return Err(invalid(i, "normalize must be the last op (and appear once)".into()));
                }
            }
        }
    }
    Ok(ops)
}

/// SplitMix64: a small, fast PRNG; one per sample.
#[derive(Debug, Clone)]
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of the sample at `position` in a batch drawn with `seed`: independent of
    /// thread scheduling, so a batch depends only on (images, ops, seed).
    pub fn for_sample(seed: u64, position: u64) -> Self {
        Self(mix(mix(seed) ^ position))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi) (`lo` when they are equal).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n), n >= 1.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// Converts one u8 sample to f32 `/ 255` into `out` and applies `ops` in order. `scratch` is a
/// reusable buffer (any contents). `src.len() == out.len() == shape.len()`.
pub fn apply(src: &[u8], shape: Chw, ops: &[Op], rng: &mut Rng, out: &mut [f32], scratch: &mut Vec<f32>) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = v as f32 / 255.0;
    }
    for op in ops {
        match op {
            Op::Hflip { p } => {
                if rng.uniform() < *p {
                    for row in out.chunks_exact_mut(shape.w) {
                        row.reverse();
                    }
                }
            }
            Op::Vflip { p } => {
                if rng.uniform() < *p {
                    vflip(out, shape);
                }
            }
            Op::Rot90 { p } => {
                let u = rng.uniform();
                let k = 1 + rng.below(3);
                if u < *p {
                    rot90(out, shape, k, scratch);
                }
            }
            Op::RandomResizedCrop { scale, ratio } => {
                let (top, left, ch, cw) = crop_box(shape.h, shape.w, *scale, *ratio, rng);
                resize_crop(out, shape, (top, left, ch, cw), scratch);
            }
            Op::Jitter { brightness, contrast } => {
                let b = rng.range(-brightness, *brightness) as f32;
                let f = rng.range(1.0 - contrast, 1.0 + contrast) as f32;
                let mean = (out.iter().map(|&v| v as f64).sum::<f64>() / out.len().max(1) as f64) as f32;
                for v in out.iter_mut() {
                    *v = ((*v - mean) * f + mean + b).clamp(0.0, 1.0);
                }
            }
            Op::Normalize { mean, std } => {
                let hw = shape.h * shape.w;
                for (ch, plane) in out.chunks_exact_mut(hw).enumerate() {
                    let (m, s) = (mean[ch], std[ch]);
                    for v in plane {
                        *v = (*v - m) / s;
                    }
                }
            }
        }
    }
}

fn vflip(x: &mut [f32], s: Chw) {
    for plane in x.chunks_exact_mut(s.h * s.w) {
        for y in 0..s.h / 2 {
            let (a, b) = plane.split_at_mut((s.h - 1 - y) * s.w);
            a[y * s.w..(y + 1) * s.w].swap_with_slice(&mut b[..s.w]);
        }
    }
}

/// Counter-clockwise rotation by `k × 90°` of square planes (as `numpy.rot90(x, k)`).
fn rot90(x: &mut [f32], s: Chw, k: usize, scratch: &mut Vec<f32>) {
    let n = s.w;
    scratch.clear();
    scratch.extend_from_slice(x);
    for (dst, src) in x.chunks_exact_mut(n * n).zip(scratch.chunks_exact(n * n)) {
        for i in 0..n {
            for j in 0..n {
                let (si, sj) = match k {
                    1 => (j, n - 1 - i),
                    2 => (n - 1 - i, n - 1 - j),
                    _ => (n - 1 - j, i),
                };
                dst[i * n + j] = src[si * n + sj];
            }
        }
    }
}

/// torchvision `RandomResizedCrop.get_params`: `(top, left, crop_h, crop_w)`.
pub fn crop_box(h: usize, w: usize, scale: [f64; 2], ratio: [f64; 2], rng: &mut Rng) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * rng.range(scale[0], scale[1]);
        let aspect = rng.range(lr0, lr1).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && cw <= w && ch > 0 && ch <= h {
            let top = rng.below(h - ch + 1);
            let left = rng.below(w - cw + 1);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < ratio[0] {
        (((w as f64 / ratio[0]).round() as usize).clamp(1, h), w)
    } else if in_ratio > ratio[1] {
        (h, ((h as f64 * ratio[1]).round() as usize).clamp(1, w))
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// Source index, its neighbour and the weight of the neighbour for output `dst` when `n_in`
/// values are resized to `n_out` (half-pixel centers, clamped like `align_corners=False`).
fn taps(dst: usize, n_in: usize, n_out: usize) -> (usize, usize, f32) {
    let src = ((dst as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, (src - i0 as f64) as f32)
}

/// Resizes the crop `(top, left, ch, cw)` of each plane of `x` back to `h × w`, bilinearly.
fn resize_crop(x: &mut [f32], s: Chw, (top, left, ch, cw): (usize, usize, usize, usize), scratch: &mut Vec<f32>) {
    scratch.clear();
    scratch.extend_from_slice(x);
    let xs: Vec<_> = (0..s.w).map(|j| taps(j, cw, s.w)).collect();
    for (dst, src) in x.chunks_exact_mut(s.h * s.w).zip(scratch.chunks_exact(s.h * s.w)) {
        for i in 0..s.h {
            let (y0, y1, fy) = taps(i, ch, s.h);
            let r0 = &src[(top + y0) * s.w + left..];
            let r1 = &src[(top + y1) * s.w + left..];
            for (j, &(x0, x1, fx)) in xs.iter().enumerate() {
                let a = r0[x0] + (r0[x1] - r0[x0]) * fx;
                let b = r1[x0] + (r1[x1] - r1[x0]) * fx;
                dst[i * s.w + j] = a + (b - a) * fy;
            }
        }
    }
}

#[cfg(test)]
mod tests;
