//! Files → pixels: decode one image (any enabled format, detected from its bytes), convert it to
//! the requested channels, center-crop it to the target aspect ratio and resize it to exactly
//! `height × width` (Triangle filter, which antialiases when shrinking), stored planar (CHW).
//!
//! Before decoding, two checks make a file a bad image: its header's `width × height` must be at
//! most `max_pixels` (a decompression bomb, such as a 389 KB PNG of 20000 × 20000 pixels, is
//! refused before any pixel buffer is allocated), and its data must reach the format's end marker
//! ([`super::truncation`]). The decoder's own buffer limit (the `image` crate's default 512 MiB)
//! stays on, so one decode holds a pixel buffer of at most `min(max_pixels × bytes per pixel,
//! 512 MiB)` plus its 8-bit RGB or gray copy (`max_pixels × 3` at most; none when the decoded
//! image is already in that layout), and a build at most that times the decode threads.
//!
//! Channel rules (the `image` crate's conversions): gray → RGB replicates, RGB → gray is Rec. 709
//! luma (0.2126 R + 0.7152 G + 0.0722 B), an alpha channel is dropped (not composited), 16-bit and
//! float samples are scaled to 8 bits.

use super::{bad_image_error, truncation, BuildConfig, ImageSet, OnBadImage, Skipped};
use crate::error::Result;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, ImageReader, Pixel};
use rayon::prelude::*;
use std::io::Cursor;

/// Default of `max_pixels`: 10^8 pixels (10000 × 10000), a little over Pillow's
/// `MAX_IMAGE_PIXELS` (89,478,485). An 8-bit RGB image at the limit decodes to 300 MB.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Decodes one file into `channels × height × width` u8 (CHW); see [`decode_bytes`]. The error
/// is a message without the path (the caller adds it).
pub fn decode_file(path: &str, channels: u32, height: u32, width: u32, max_pixels: u64) -> std::result::Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_bytes(&bytes, channels, height, width, max_pixels)
}

/// Decodes one encoded image into `channels × height × width` u8 (CHW). Refused before
/// decoding: an image over `max_pixels` (read from its header), and data that ends early.
pub fn decode_bytes(bytes: &[u8], channels: u32, height: u32, width: u32, max_pixels: u64) -> std::result::Result<Vec<u8>, String> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let Some(format) = reader.format() else {
        return Err("cannot decode: not a jpeg, png, bmp, gif, tiff or webp image (unknown format)".into());
    };
    let (w, h) = reader.into_dimensions().map_err(|e| format!("cannot decode: {e}"))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(format!(
            "image is {w} x {h} = {pixels} pixels, over the limit of {max_pixels} (max_pixels; data.maxPixels in the config)"
        ));
    }
    truncation::check(format, bytes)?;
    let img = ImageReader::with_format(Cursor::new(bytes), format).decode().map_err(|e| format!("cannot decode: {e}"))?;
    Ok(to_chw(img, channels, height, width))
}

/// Converts a decoded image to `channels` and `height × width` (CHW u8).
/// Takes the image by value: an image already in the target layout is not copied.
pub fn to_chw(img: DynamicImage, channels: u32, height: u32, width: u32) -> Vec<u8> {
    if channels == 1 {
        planar(&fit(&img.into_luma8(), height, width))
    } else {
        planar(&fit(&img.into_rgb8(), height, width))
    }
}

/// The largest centered region of a `w0 × h0` image with the aspect ratio `w / h`:
/// `(x, y, crop_w, crop_h)`. Cropping first and then resizing equals resizing the shorter side
/// and then center-cropping, and resamples fewer pixels.
pub fn center_crop_box(w0: u32, h0: u32, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (w0f, h0f, wf, hf) = (w0 as f64, h0 as f64, w as f64, h as f64);
    if w0f * hf > h0f * wf {
        // Wider than the target: keep the full height.
        let cw = ((h0f * wf / hf).round() as u32).clamp(1, w0);
        ((w0 - cw) / 2, 0, cw, h0)
    } else {
        let ch = ((w0f * hf / wf).round() as u32).clamp(1, h0);
        (0, (h0 - ch) / 2, w0, ch)
    }
}

/// Center-crops to the target aspect ratio and resizes to exactly `height × width`.
fn fit<P: Pixel<Subpixel = u8> + 'static>(img: &ImageBuffer<P, Vec<u8>>, height: u32, width: u32) -> ImageBuffer<P, Vec<u8>> {
    let (x, y, cw, ch) = center_crop_box(img.width(), img.height(), width, height);
    let view = imageops::crop_imm(img, x, y, cw, ch);
    if cw == width && ch == height {
        view.to_image()
    } else {
        imageops::resize(&*view, width, height, FilterType::Triangle)
    }
}

/// Interleaved HWC → planar CHW.
fn planar<P: Pixel<Subpixel = u8>>(img: &ImageBuffer<P, Vec<u8>>) -> Vec<u8> {
    let c = P::CHANNEL_COUNT as usize;
    let hw = (img.width() * img.height()) as usize;
    let src = img.as_raw();
    let mut out = vec![0u8; c * hw];
    for (p, px) in src.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            out[k * hw + p] = v;
        }
    }
    out
}

/// Decodes every file of `cfg` in parallel (rayon). A bad file fails the build (`"error"`, the
/// first bad file in list order) or is dropped and recorded (`"skip"`).
pub fn decode_all(cfg: &BuildConfig) -> Result<ImageSet> {
    let (c, h, w) = (cfg.channels, cfg.height, cfg.width);
    let results: Vec<_> = cfg.files.par_iter().map(|path| decode_file(path, c, h, w, cfg.max_pixels)).collect();
    let image_len = (c * h * w) as usize;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let mut data = Vec::with_capacity(ok * image_len);
    let mut kept = Vec::with_capacity(ok);
    let mut skipped = Vec::new();
    for (index, (result, path)) in results.into_iter().zip(&cfg.files).enumerate() {
        match result {
            Ok(pixels) => {
                data.extend_from_slice(&pixels);
                kept.push(index);
            }
            Err(error) => {
                let s = Skipped { index, path: path.clone(), error };
                if cfg.on_bad_image == OnBadImage::Error {
                    return Err(bad_image_error(&s));
                }
                skipped.push(s);
            }
        }
    }
    Ok(ImageSet {
        data,
        count: kept.len(),
        channels: c as usize,
        height: h as usize,
        width: w as usize,
        kept,
        skipped,
        from_cache: false,
        decode_seconds: 0.0,
        cache_error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    #[test]
    fn center_crop_box_keeps_the_aspect_ratio() {
        assert_eq!(center_crop_box(100, 50, 10, 10), (25, 0, 50, 50));
        assert_eq!(center_crop_box(50, 100, 10, 10), (0, 25, 50, 50));
        assert_eq!(center_crop_box(64, 64, 32, 32), (0, 0, 64, 64));
        assert_eq!(center_crop_box(100, 100, 20, 10), (0, 25, 100, 50));
    }

    #[test]
    fn planar_layout_and_exact_size_copy() {
        // 2x2 RGB, red channel = x + 2y, green = 10 + .., blue = 100 + ..
        let img = ImageBuffer::from_fn(2, 2, |x, y| {
            let v = (x + 2 * y) as u8;
            Rgb([v, 10 + v, 100 + v])
        });
        let chw = to_chw(DynamicImage::ImageRgb8(img), 3, 2, 2);
        assert_eq!(chw, vec![0, 1, 2, 3, 10, 11, 12, 13, 100, 101, 102, 103]);
    }

    #[test]
    fn resize_of_a_constant_image_is_constant() {
        let img = ImageBuffer::from_pixel(37, 53, Luma([77u8]));
        let chw = to_chw(DynamicImage::ImageLuma8(img), 1, 8, 8);
        assert_eq!(chw.len(), 64);
        assert!(chw.iter().all(|&v| v == 77), "{chw:?}");
    }
}
