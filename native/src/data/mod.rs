//! The image data path: decode a file list once into an in-memory u8 NCHW store (optionally
//! cached on disk), then per batch gather images by index and augment them natively into
//! float32. One concern per file: [`decode`] (files → pixels), [`truncation`] (whether a file's
//! data is all there), [`cache`] (the `.hnc` file), [`augment`] (the ops and their PRNG),
//! [`gather`] (batches, parallel over samples).

pub mod augment;
pub mod cache;
pub mod decode;
pub mod gather;
pub mod truncation;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// What to do with a file that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Fail the build with `HN_ERR_IO` naming the file.
    Error,
    /// Drop the image and record it in [`ImageSet::skipped`].
    Skip,
}

/// `hn_images_build` JSON; every field but `max_pixels` is required (TS fills the defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Absolute image paths, in dataset order.
    pub files: Vec<String>,
    /// Output height in pixels.
    pub height: u32,
    /// Output width in pixels.
    pub width: u32,
    /// Output channels: 3 (RGB) or 1 (luma).
    pub channels: u32,
    /// Cache file, or `null` for none.
    pub cache_path: Option<String>,
    /// `"error"` or `"skip"`.
    pub on_bad_image: OnBadImage,
    /// Largest `width × height` of an image file, read from its header before decoding; a file
    /// over it is a bad image. Optional, default [`decode::DEFAULT_MAX_PIXELS`].
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

fn default_max_pixels() -> u64 {
    decode::DEFAULT_MAX_PIXELS
}

/// Largest height or width accepted (keeps `n*c*h*w` far from overflow).
pub const MAX_SIDE: u32 = 8192;

impl BuildConfig {
    /// Checks the sizes and the file list.
    pub fn validate(&self) -> Result<()> {
        if self.files.is_empty() {
            return Err(Error::invalid("files is empty; give at least one image path"));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::invalid(format!("channels must be 1 or 3, got {}", self.channels)));
        }
        for (name, v) in [("height", self.height), ("width", self.width)] {
            if v == 0 || v > MAX_SIDE {
                return Err(Error::invalid(format!("{name} must be in [1, {MAX_SIDE}], got {v}")));
            }
        }
        if self.max_pixels == 0 {
            return Err(Error::invalid("max_pixels must be >= 1, got 0"));
        }
        Ok(())
    }
}

/// A file that was dropped by `"on_bad_image":"skip"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Position in the input file list.
    pub index: usize,
    /// The path as given.
    pub path: String,
    /// Why it could not be used (I/O or decoder message).
    pub error: String,
}

/// Decoded images, u8 NCHW, read-only after it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `count * channels * height * width` bytes, image after image, each planar (CHW).
    pub data: Vec<u8>,
    /// Number of images kept.
    pub count: usize,
    /// Channels per image.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// For each kept image, its position in the input file list (all of 0..n without skips).
    pub kept: Vec<usize>,
    /// Files dropped by `"skip"`, in input order.
    pub skipped: Vec<Skipped>,
    /// True when the pixels came from the cache file.
    pub from_cache: bool,
    /// Seconds the build took (decoding, or reading the cache).
    pub decode_seconds: f64,
    /// Why the cache could not be written (the set is still whole, decoded in memory): the cache
    /// is an optimisation, so a full or unwritable cache folder costs a re-decode next time, not the run.
    pub cache_error: Option<String>,
}

impl ImageSet {
    /// Bytes per image (`c*h*w`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i` (CHW).
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.data[i * len..(i + 1) * len]
    }

    /// Wraps pixels given by the caller (`hn_images_from_u8`): `data.len()` must be `n*c*h*w`,
    /// every dimension >= 1.
    pub fn from_u8(data: Vec<u8>, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        let need = checked_len(n, c, h, w)?;
        if data.len() != need {
            return Err(Error::invalid(format!("data has {} bytes, shape [{n}, {c}, {h}, {w}] needs {need}", data.len())));
        }
        Ok(Self {
            data,
            count: n,
            channels: c,
            height: h,
            width: w,
            kept: (0..n).collect(),
            skipped: Vec::new(),
            from_cache: false,
            decode_seconds: 0.0,
            cache_error: None,
        })
    }

    /// The `hn_images_info` JSON.
    pub fn info_json(&self) -> String {
        serde_json::json!({
            "count": self.count,
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "from_cache": self.from_cache,
            "decode_seconds": self.decode_seconds,
            "cache_error": self.cache_error,
            "skipped": self.skipped,
            "kept": self.kept,
        })
        .to_string()
    }
}

/// `n*c*h*w`, rejecting zero dimensions and overflow.
pub fn checked_len(n: usize, c: usize, h: usize, w: usize) -> Result<usize> {
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(Error::invalid(format!("shape [{n}, {c}, {h}, {w}] has a zero dimension; all must be >= 1")));
    }
    [n, c, h, w]
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(format!("shape [{n}, {c}, {h}, {w}] overflows")))
}

/// Builds the image set of `cfg`: reads the cache when its key matches, else decodes every file
/// in parallel and (with a `cache_path`) writes the cache atomically; a failed cache write is
/// recorded in `cache_error`, not returned.
pub fn build(cfg: &BuildConfig) -> Result<ImageSet> {
    cfg.validate()?;
    let start = Instant::now();
    let key = cache::key(cfg);
    if let Some(path) = &cfg.cache_path {
        if let Some(mut set) = cache::read(Path::new(path), key, cfg) {
            if cfg.on_bad_image == OnBadImage::Error {
                if let Some(s) = set.skipped.first() {
                    return Err(bad_image_error(s));
                }
            }
            set.from_cache = true;
            set.decode_seconds = start.elapsed().as_secs_f64();
            return Ok(set);
        }
    }
    let mut set = decode::decode_all(cfg)?;
    if let Some(path) = &cfg.cache_path {
        if let Err(e) = cache::write(Path::new(path), key, &set) {
            set.cache_error = Some(e.to_string());
        }
    }
    set.decode_seconds = start.elapsed().as_secs_f64();
    Ok(set)
}

/// The `HN_ERR_IO` error of a bad file (the message names the path).
pub fn bad_image_error(s: &Skipped) -> Error {
    Error::io(&s.path, std::io::Error::other(s.error.clone()))
}

#[cfg(test)]
mod tests;
