//! The decoded-image cache file (`.hnc`). Layout, little-endian:
//!
//! ```text
//! magic   8 bytes  "HNIMGC\0\0"
//! version u32      FORMAT_VERSION
//! key     u64      hash of (format version, channels, height, width, max_pixels, the file list
//!                  in order, each file's size and mtime)
//! hlen    u32      length of the header JSON
//! header  hlen     {"count","channels","height","width","kept":[..],"skipped":[..]}
//! pixels  count*channels*height*width bytes (u8 NCHW)
//! ```
//!
//! A file with another magic, version, key, header or length is a miss (rebuilt and rewritten),
//! never an error. Writes are atomic (temp file + rename).

use super::{BuildConfig, ImageSet, Skipped};
use crate::checkpoint::atomic;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Bumped whenever the layout or the decoding (filter, crop, channel rules, which files are bad)
/// changes. 2: truncated files and files over `max_pixels` are bad images.
pub const FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"HNIMGC\0\0";
const PREFIX: usize = 8 + 4 + 8 + 4;

/// 64-bit FNV-1a: stable across runs and Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// The cache key of `cfg`: format version, channels, height, width, `max_pixels` (it decides which
/// files are skipped), and per file (in order) its path, size and mtime (nanoseconds). A file
/// that cannot be stat'ed hashes as a marker, so it is decoded (and fails or is skipped) rather
/// than read from a stale cache.
pub fn key(cfg: &BuildConfig) -> u64 {
    let mut h = Fnv::new();
    for v in [FORMAT_VERSION, cfg.channels, cfg.height, cfg.width] {
        h.u64(v as u64);
    }
    h.u64(cfg.max_pixels);
    h.u64(cfg.files.len() as u64);
    for f in &cfg.files {
        h.u64(f.len() as u64);
        h.bytes(f.as_bytes());
        match std::fs::metadata(f) {
            Ok(m) => {
                h.u64(m.len());
                let mtime = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(u128::MAX, |d| d.as_nanos());
                h.bytes(&mtime.to_le_bytes());
            }
            Err(_) => h.u64(u64::MAX),
        }
    }
    h.0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
    kept: Vec<usize>,
    skipped: Vec<Skipped>,
}

/// Reads the cache at `path` if it exists and matches `key` and `cfg`; `None` otherwise.
pub fn read(path: &Path, key: u64, cfg: &BuildConfig) -> Option<ImageSet> {
    let bytes = std::fs::read(path).ok()?;
    parse(bytes, key, cfg)
}

fn parse(mut bytes: Vec<u8>, key: u64, cfg: &BuildConfig) -> Option<ImageSet> {
    if bytes.len() < PREFIX || &bytes[..8] != MAGIC {
        return None;
    }
    let u32_at = |at: usize| bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let version = u32_at(8)?;
    let file_key = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?);
    let hlen = u32_at(20)? as usize;
    if version != FORMAT_VERSION || file_key != key {
        return None;
    }
    let header: Header = serde_json::from_slice(bytes.get(PREFIX..PREFIX.checked_add(hlen)?)?).ok()?;
    let same_shape = header.channels == cfg.channels as usize && header.height == cfg.height as usize && header.width == cfg.width as usize;
    let consistent = header.kept.len() == header.count && header.kept.len() + header.skipped.len() == cfg.files.len();
    let image_len = header.channels.checked_mul(header.height)?.checked_mul(header.width)?;
    let start = PREFIX + hlen;
    if !same_shape || !consistent || bytes.len() != start.checked_add(header.count.checked_mul(image_len)?)? {
        return None;
    }
    bytes.drain(..start);
    Some(ImageSet {
        data: bytes,
        count: header.count,
        channels: header.channels,
        height: header.height,
        width: header.width,
        kept: header.kept,
        skipped: header.skipped,
        from_cache: true,
        decode_seconds: 0.0,
        cache_error: None,
    })
}

/// Writes `set` to `path` under `key`, atomically. `HN_ERR_IO` naming the path on failure.
pub fn write(path: &Path, key: u64, set: &ImageSet) -> Result<()> {
    let header = Header {
        count: set.count,
        channels: set.channels,
        height: set.height,
        width: set.width,
        kept: set.kept.clone(),
        skipped: set.skipped.clone(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| crate::Error::invalid(format!("cache header: {e}")))?;
    let hlen = u32::try_from(json.len()).map_err(|_| crate::Error::invalid("cache header is over 4 GiB"))?;
    let mut out = Vec::with_capacity(PREFIX + json.len() + set.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&set.data);
    atomic::write(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::OnBadImage;

    fn cfg(files: Vec<String>) -> BuildConfig {
        BuildConfig { files, height: 2, width: 2, channels: 1, cache_path: None, on_bad_image: OnBadImage::Skip, max_pixels: 100 }
    }

    fn set() -> ImageSet {
        let mut s = ImageSet::from_u8((0..8).collect(), 2, 1, 2, 2).unwrap();
        s.kept = vec![0, 2];
        s.skipped = vec![Skipped { index: 1, path: "/b".into(), error: "bad".into() }];
        s
    }

    #[test]
    fn round_trip_and_every_mismatch_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("hn-cache-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.hnc");
        let c = cfg(vec!["/a".into(), "/b".into(), "/c".into()]);
        write(&path, 42, &set()).unwrap();
        let back = read(&path, 42, &c).unwrap();
        assert_eq!(back.data, set().data);
        assert_eq!((back.kept.clone(), back.skipped.clone()), (set().kept, set().skipped));
        assert!(read(&path, 43, &c).is_none(), "other key");
        assert!(read(&path, 42, &BuildConfig { channels: 3, ..c.clone() }).is_none(), "other shape");
        assert!(read(&path, 42, &cfg(vec!["/a".into()])).is_none(), "other file count");
        let bytes = std::fs::read(&path).unwrap();
        assert!(parse(bytes[..bytes.len() - 1].to_vec(), 42, &c).is_none(), "truncated");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(parse(bad, 42, &c).is_none(), "magic");
        assert!(parse(Vec::new(), 42, &c).is_none(), "empty");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_depends_on_order_size_and_shape() {
        let a = cfg(vec!["/nonexistent/a".into(), "/nonexistent/b".into()]);
        let b = cfg(vec!["/nonexistent/b".into(), "/nonexistent/a".into()]);
        assert_ne!(key(&a), key(&b));
        assert_ne!(key(&a), key(&BuildConfig { height: 3, ..a.clone() }));
        assert_ne!(key(&a), key(&BuildConfig { max_pixels: 101, ..a.clone() }), "max_pixels decides the skips");
        assert_eq!(key(&a), key(&a.clone()));
    }
}
