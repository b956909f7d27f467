//! Whether an encoded image's data is all there, checked on the bytes before decoding.
//!
//! The `image` crate decodes some cut files without an error: its JPEG decoder (zune-jpeg in
//! non-strict mode) fills the missing scan data with gray, so a JPEG cut to half its size decodes
//! as half picture, half garbage. So a file must reach its format's end marker:
//!
//! - JPEG: the segments are walked by their lengths (an EXIF thumbnail's markers are skipped
//!   with its APP1 segment), each scan's entropy-coded data up to the next marker; the file must
//!   reach the end-of-image marker `FF D9`. Bytes after it (padding, appended data) are ignored.
//! - PNG: the chunks are walked by their lengths; the file must hold a whole `IEND` chunk
//!   (length, type and CRC).
//! - GIF: the blocks are walked (extensions, images and their data sub-blocks); the file must
//!   reach the trailer `3B`.
//! - WebP: the file must hold the `RIFF` size its header gives.
//! - BMP and TIFF: nothing here; their decoders read the pixel data with exact reads and report a
//!   file that ends early themselves (`tests/data.rs` cuts each format at several points).
//!
//! A file with a missing end marker but complete pixel data is refused too: the bytes cannot tell
//! it from a file cut at a scan boundary.

use image::ImageFormat;

/// `Ok` when `bytes` (a file of `format`) reaches its format's end marker, else a message that
/// says where the data ends.
pub fn check(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Png => png(bytes),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::WebP => webp(bytes),
        _ => Ok(()),
    }
}

fn ends_early(n: usize, what: &str) -> String {
    format!("truncated: the data ends early (at byte {n}, {what})")
}

/// A big-endian u16 at `at`, if the bytes reach it.
fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize)
}

fn jpeg(b: &[u8]) -> Result<(), String> {
    let n = b.len();
    let no_eoi = || ends_early(n, "before the JPEG end-of-image marker FF D9");
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG: no start-of-image marker FF D8".into());
    }
    let mut i = 2;
    loop {
        // The next marker: bytes other than FF between segments are tolerated (as decoders
        // do), as are fill bytes FF before a marker code.
        i += b.get(i..).and_then(|r| r.iter().position(|&x| x == 0xFF)).ok_or_else(no_eoi)?;
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or_else(no_eoi)?;
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers (no length): TEM, RSTn, SOI, and a stray FF 00.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let len = be16(b, i).ok_or_else(no_eoi)?;
        if len < 2 {
            return Err(format!("corrupt JPEG: segment FF {marker:02X} at byte {} has length {len}", i - 2));
        }
        i += len;
        if i > n {
            return Err(ends_early(n, &format!("inside JPEG segment FF {marker:02X} of {len} bytes")));
        }
        if marker == 0xDA {
            i = scan_end(b, i).ok_or_else(no_eoi)?;
        }
    }
}

/// The position of the marker that ends the entropy-coded data starting at `i` (an `FF` followed
/// by a byte other than `00` (a stuffed FF), `D0..=D7` (restart markers) or `FF` (fill)), or
/// `None` when the bytes end first.
fn scan_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let j = i + b.get(i..)?.iter().position(|&x| x == 0xFF)?;
        match *b.get(j + 1)? {
            0x00 | 0xD0..=0xD7 => i = j + 2,
            0xFF => i = j + 1,
            _ => return Some(j),
        }
    }
}

fn png(b: &[u8]) -> Result<(), String> {
    const SIGNATURE: usize = 8;
    let n = b.len();
    let mut i = SIGNATURE;
    loop {
        let head = b.get(i..i + 8).ok_or_else(|| ends_early(n, "before the PNG IEND chunk"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let end = i.saturating_add(12).saturating_add(len);
        if end > n {
            let name = String::from_utf8_lossy(kind);
            return Err(ends_early(n, &format!("inside the PNG {name} chunk of {len} bytes at byte {i}")));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

fn gif(b: &[u8]) -> Result<(), String> {
    let n = b.len();
    let early = || ends_early(n, "before the GIF trailer 3B");
    let color_table = |packed: u8| if packed & 0x80 != 0 { 3usize << ((packed & 7) + 1) } else { 0 };
    // Header (6) + logical screen descriptor (7), then the global color table.
    let packed = *b.get(10).ok_or_else(early)?;
    let mut i = 13 + color_table(packed);
    loop {
        match *b.get(i).ok_or_else(early)? {
            0x3B => return Ok(()),
            0x21 => i = sub_blocks(b, i + 2).ok_or_else(early)?,
            0x2C => {
                // Descriptor (9 bytes after the separator), local color table, LZW code size.
                let packed = *b.get(i + 9).ok_or_else(early)?;
                i = sub_blocks(b, i + 10 + color_table(packed) + 1).ok_or_else(early)?;
            }
            other => return Err(format!("corrupt GIF: unknown block {other:#04x} at byte {i}")),
        }
    }
}

/// The position after the data sub-blocks starting at `i` (each a length byte and that many
/// bytes, ended by a zero length), or `None` when the bytes end first.
fn sub_blocks(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            return Some(i);
        }
        i += len;
    }
}

fn webp(b: &[u8]) -> Result<(), String> {
    let size = b.get(4..8).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    match size {
        Some(size) if b.len() >= size.saturating_add(8) => Ok(()),
        Some(size) => Err(ends_early(b.len(), &format!("before the end of the WebP RIFF data of {size} bytes"))),
        None => Err(ends_early(b.len(), "inside the WebP RIFF header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_markers_stuffing_restarts_and_trailing_bytes() {
        // SOI, APP0 holding a fake EOI, SOS with stuffed FF 00 and a restart marker, EOI.
        let mut ok = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02];
        ok.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD9]);
        assert_eq!(check(ImageFormat::Jpeg, &ok), Ok(()));
        let mut trailing = ok.clone();
        trailing.extend_from_slice(&[0, 0, 0, 0x12]);
        assert_eq!(check(ImageFormat::Jpeg, &trailing), Ok(()), "bytes after EOI are ignored");
        for cut in 0..ok.len() - 1 {
            assert!(check(ImageFormat::Jpeg, &ok[..cut]).is_err(), "cut at {cut} must be refused");
        }
        // The APP0 segment's FF D9 alone does not end the file.
        assert!(check(ImageFormat::Jpeg, &ok[..8]).is_err());
    }

    #[test]
    fn png_needs_a_whole_iend_chunk() {
        let mut ok = b"\x89PNG\r\n\x1a\n".to_vec();
        ok.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', b'c', b'd', 1, 2, 0, 0, 0, 0]);
        ok.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
        assert_eq!(check(ImageFormat::Png, &ok), Ok(()));
        for cut in 0..ok.len() {
            assert!(check(ImageFormat::Png, &ok[..cut]).is_err(), "cut at {cut} must be refused");
        }
        // A chunk length near u32::MAX does not overflow.
        let mut huge = ok[..8].to_vec();
        huge.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, b'I', b'D', b'A', b'T']);
        assert!(check(ImageFormat::Png, &huge).unwrap_err().contains("IDAT"));
    }

    #[test]
    fn gif_needs_its_trailer_and_webp_its_riff_size() {
        // Header, screen 1x1 with a 2-entry global table, a graphic control extension, one image
        // (LZW size 2, one data sub-block), trailer.
        let mut ok = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
        ok.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        ok.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
        ok.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0, 0x3B]);
        assert_eq!(check(ImageFormat::Gif, &ok), Ok(()));
        for cut in 0..ok.len() {
            assert!(check(ImageFormat::Gif, &ok[..cut]).is_err(), "cut at {cut} must be refused");
        }
        let webp = b"RIFF\x04\x00\x00\x00WEBP".to_vec();
        assert_eq!(check(ImageFormat::WebP, &webp), Ok(()));
        assert!(check(ImageFormat::WebP, &webp[..11]).is_err());
        assert!(check(ImageFormat::WebP, &webp[..6]).is_err());
    }
}
