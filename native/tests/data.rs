//! The image data path through the C ABI: real JPEGs, the error out-parameter of the NB build,
//! info, gather (with ops) vs. gather_u8 + u8_to_f32_ops, handle errors, free; bad images:
//! files cut short (every format) and decompression bombs (refused from the header, with the
//! allocation measured by a counting allocator).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts the bytes the Rust heap hands out, process-wide (every thread, the decode pool too),
/// with a resettable peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                CURRENT.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the most heap bytes held above the start while it ran
/// (other tests running at the same time can only add to it).
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

use hybridnet::error::status::*;
use hybridnet::ffi::images::*;
use std::path::PathBuf;
use std::ptr::{null, null_mut};

/// `HN_SHARED`, else `<project>/../shared`.
fn shared_dir() -> PathBuf {
    std::env::var("HN_SHARED").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The first `per_class` JPEGs of each class folder of bccd_wbc5/train, sorted.
fn bccd_files(per_class: usize) -> Vec<String> {
    let root = shared_dir().join("data/bccd_wbc5/train");
    let mut classes: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e} (set HN_SHARED)", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut out = Vec::new();
    for c in classes {
        let mut files: Vec<_> = std::fs::read_dir(&c).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
        files.sort();
        out.extend(files.into_iter().take(per_class));
    }
    out
}

struct Built {
    code: i32,
    handle: *mut HnImages,
    error: String,
}

fn build(cfg: &serde_json::Value) -> Built {
    let json = cfg.to_string();
    let mut handle: *mut HnImages = null_mut();
    let mut err = vec![0u8; 4096];
    let mut err_len = usize::MAX;
    let code = unsafe { hn_images_build(json.as_ptr(), json.len(), &mut handle, err.as_mut_ptr(), err.len(), &mut err_len) };
    Built { code, handle, error: String::from_utf8(err[..err_len].to_vec()).unwrap() }
}

fn info(h: *const HnImages) -> serde_json::Value {
    let mut need = 0usize;
    assert_eq!(unsafe { hn_images_info(h, null_mut(), 0, &mut need) }, HN_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; need];
    assert_eq!(unsafe { hn_images_info(h, buf.as_mut_ptr(), buf.len(), &mut need) }, HN_OK);
    serde_json::from_slice(&buf[..need]).unwrap()
}

fn handle_error(h: *const HnImages) -> String {
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    assert_eq!(unsafe { hn_images_last_error(h, buf.as_mut_ptr(), buf.len(), &mut len) }, HN_OK);
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

fn gather(h: *const HnImages, idx: &[i32], ops: &str, seed: u64, out_len: usize) -> (i32, Vec<f32>) {
    let mut out = vec![f32::NAN; out_len];
    let code = unsafe { hn_images_gather(h, idx.as_ptr(), idx.len(), ops.as_ptr(), ops.len(), seed, out.as_mut_ptr(), out.len()) };
    (code, out)
}

const OPS: &str = r#"[{"op":"hflip","p":0.5},{"op":"rot90","p":0.5},{"op":"random_resized_crop","scale":[0.3,1],"ratio":[0.75,1.3333]},
    {"op":"jitter","brightness":0.1,"contrast":0.1},{"op":"normalize","mean":[0.5,0.5,0.5],"std":[0.25,0.25,0.25]}]"#;

#[test]
fn real_jpegs_decode_at_32px_and_gather_through_the_abi() {
    let files = bccd_files(4);
    let count = files.len();
    assert!(count >= 16, "bccd_wbc5/train has {count} files in its first 4 per class");
    let b =
        build(&serde_json::json!({"files": files, "height": 32, "width": 32, "channels": 3, "cache_path": null, "on_bad_image": "error"}));
    assert_eq!(b.code, HN_OK, "{}", b.error);
    assert_eq!(b.error, "");
    let h = b.handle;
    let i = info(h);
    assert_eq!(
        (i["count"].as_u64(), i["channels"].as_u64(), i["height"].as_u64(), i["width"].as_u64()),
        (Some(count as u64), Some(3), Some(32), Some(32))
    );
    assert_eq!(i["from_cache"], false);
    assert!(i["decode_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(i["kept"], serde_json::json!((0..count).collect::<Vec<_>>()));
    assert_eq!(i["skipped"], serde_json::json!([]));

    // Raw pixels: real photos, not constant, plausible brightness (stained blood smears).
    let idx: Vec<i32> = (0..count as i32).collect();
    let n = 3 * 32 * 32;
    let mut raw = vec![0u8; count * n];
    assert_eq!(unsafe { hn_images_gather_u8(h, idx.as_ptr(), count, raw.as_mut_ptr(), raw.len()) }, HN_OK);
    for img in raw.chunks(n) {
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let (lo, hi) = (img.iter().min().unwrap(), img.iter().max().unwrap());
        assert!((40.0..250.0).contains(&mean) && hi - lo > 50, "mean {mean}, range {lo}..{hi}");
    }

    // No ops: exactly /255.
    let (code, plain) = gather(h, &[3, 0], "[]", 0, 2 * n);
    assert_eq!(code, HN_OK);
    let want: Vec<f32> = raw[3 * n..4 * n].iter().chain(&raw[..n]).map(|&v| v as f32 / 255.0).collect();
    assert_eq!(plain, want);

    // With ops: finite, deterministic, and equal to u8_to_f32_ops on the gathered pixels.
    let pick = [5, 5, count as i32 - 1, 0, 7];
    let (code, a) = gather(h, &pick, OPS, 11, 5 * n);
    assert_eq!(code, HN_OK, "{}", handle_error(h));
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(gather(h, &pick, OPS, 11, 5 * n).1, a);
    assert_ne!(gather(h, &pick, OPS, 12, 5 * n).1, a);
    assert_ne!(a[..n], a[n..2 * n], "the same image at two positions gets different draws");
    let mut u8s = vec![0u8; 5 * n];
    assert_eq!(unsafe { hn_images_gather_u8(h, pick.as_ptr(), 5, u8s.as_mut_ptr(), u8s.len()) }, HN_OK);
    let mut via = vec![0f32; 5 * n];
    let code = unsafe { hn_u8_to_f32_ops(u8s.as_ptr(), u8s.len(), 5, 3, 32, 32, OPS.as_ptr(), OPS.len(), 11, via.as_mut_ptr(), via.len()) };
    assert_eq!(code, HN_OK);
    assert_eq!(via, a, "one implementation of the ops");

    unsafe { hn_images_free(h) };
}

#[test]
fn gather_errors_go_to_the_handle() {
    let data: Vec<u8> = (0..2 * 3 * 4 * 4).map(|i| i as u8).collect();
    let mut h: *mut HnImages = null_mut();
    assert_eq!(unsafe { hn_images_from_u8(data.as_ptr(), data.len(), 2, 3, 4, 4, &mut h) }, HN_OK);
    assert!(!h.is_null());
    assert_eq!(handle_error(h), "");
    let cases: [(&[i32], &str, usize, &str); 5] = [
        (&[0, 2], "[]", 96, "indices[1] = 2 is out of range [0, 2)"),
        (&[-1], "[]", 48, "indices[0] = -1"),
        (&[0], "[]", 47, "out_len is 47, needs"),
        (&[0], r#"[{"op":"normalize","mean":[0],"std":[1]}]"#, 48, "needs 3 mean"),
        (&[0], r#"[{"op":"normalize","mean":[0,0,0],"std":[1,0,1]}]"#, 48, "std must be finite and > 0"),
    ];
    for (idx, ops, len, want) in cases {
        let (code, _) = gather(h, idx, ops, 0, len);
        assert_eq!(code, HN_ERR_INVALID_ARG, "{want}");
        assert!(handle_error(h).contains(want), "{}", handle_error(h));
    }
    let (code, _) = gather(h, &[0], "[{\"op\":\"hflip\"", 0, 48);
    assert_eq!(code, HN_ERR_INVALID_ARG);
    assert!(handle_error(h).starts_with("invalid argument: ops:"), "{}", handle_error(h));
    let mut out = vec![0u8; 48];
    assert_eq!(unsafe { hn_images_gather_u8(h, [2i32].as_ptr(), 1, out.as_mut_ptr(), 48) }, HN_ERR_INVALID_ARG);
    // NULL handles and bad shapes.
    assert_eq!(gather(null(), &[0], "[]", 0, 48).0, HN_ERR_INVALID_ARG);
    let mut h2: *mut HnImages = null_mut();
    assert_eq!(unsafe { hn_images_from_u8(data.as_ptr(), data.len(), 2, 3, 4, 5, &mut h2) }, HN_ERR_INVALID_ARG);
    assert!(h2.is_null());
    assert_eq!(unsafe { hn_images_from_u8(data.as_ptr(), 0, 0, 3, 4, 4, &mut h2) }, HN_ERR_INVALID_ARG);
    let mut f = vec![0f32; 96];
    let code = unsafe { hn_u8_to_f32_ops(data.as_ptr(), data.len(), 2, 3, 4, 4, b"[]".as_ptr(), 2, 0, f.as_mut_ptr(), 95) };
    assert_eq!(code, HN_ERR_INVALID_ARG);
    unsafe { hn_images_free(h) };
    unsafe { hn_images_free(null_mut()) };
}

#[test]
fn build_errors_come_back_through_the_error_out_parameter() {
    let dir = common::scratch("data-build-errors");
    let bad = dir.join("x.jpg");
    std::fs::write(&bad, [0x17u8; 300]).unwrap();
    let bad_s = bad.display().to_string();
    let mut files = bccd_files(1);
    files.insert(2, bad_s.clone());
    let cfg = |mode: &str| serde_json::json!({"files": files, "height": 16, "width": 16, "channels": 1, "cache_path": null, "on_bad_image": mode});

    let b = build(&cfg("error"));
    assert_eq!(b.code, HN_ERR_IO);
    assert!(b.handle.is_null());
    assert!(b.error.contains(&bad_s), "{}", b.error);

    let b = build(&cfg("skip"));
    assert_eq!(b.code, HN_OK, "{}", b.error);
    let i = info(b.handle);
    assert_eq!(i["count"], 5);
    assert_eq!(i["kept"], serde_json::json!([0, 1, 3, 4, 5]));
    assert_eq!(i["skipped"][0]["index"], 2);
    assert_eq!(i["skipped"][0]["path"], bad_s.as_str());
    unsafe { hn_images_free(b.handle) };

    // Bad JSON; a short error buffer gets a prefix; NULL error out-parameters are allowed.
    let b = build(&serde_json::json!({"files": ["/a.jpg"], "height": 16, "width": 16, "channels": 3, "cache_path": null}));
    assert_eq!(b.code, HN_ERR_INVALID_ARG);
    assert!(b.error.contains("on_bad_image"), "{}", b.error);
    let json = r#"{"files":[],"height":1,"width":1,"channels":3,"cache_path":null,"on_bad_image":"skip"}"#;
    let mut h: *mut HnImages = null_mut();
    let mut short = [0u8; 7];
    let mut len = 0usize;
    assert_eq!(unsafe { hn_images_build(json.as_ptr(), json.len(), &mut h, short.as_mut_ptr(), 7, &mut len) }, HN_ERR_INVALID_ARG);
    assert_eq!((&short[..], len), (&b"invalid"[..], 7));
    assert_eq!(unsafe { hn_images_build(json.as_ptr(), json.len(), &mut h, null_mut(), 0, null_mut()) }, HN_ERR_INVALID_ARG);
}

#[test]
fn a_free_during_a_gather_does_not_crash() {
    // The call holds its own reference: free the handle while a gather runs on another thread.
    let data = vec![128u8; 64 * 3 * 32 * 32];
    for _ in 0..20 {
        let mut h: *mut HnImages = null_mut();
        assert_eq!(unsafe { hn_images_from_u8(data.as_ptr(), data.len(), 64, 3, 32, 32, &mut h) }, HN_OK);
        let addr = h as usize;
        let idx: Vec<i32> = (0..64).collect();
        let mut out = vec![0f32; 64 * 3 * 32 * 32];
        let started = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ops = OPS;
                started.wait();
                let code = unsafe {
                    hn_images_gather(addr as *const HnImages, idx.as_ptr(), 64, ops.as_ptr(), ops.len(), 1, out.as_mut_ptr(), out.len())
                };
                assert_eq!(code, HN_OK);
            });
            // The gather takes its reference right after the barrier; free while it runs (~ms).
            started.wait();
            std::thread::sleep(std::time::Duration::from_micros(500));
            unsafe { hn_images_free(addr as *mut HnImages) };
        });
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

/// The first `n` JPEGs (sorted) of pbc_blood8/train/<class>.
fn pbc_files(class: &str, n: usize) -> Vec<PathBuf> {
    let dir = shared_dir().join("data/pbc_blood8/train").join(class);
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e} (set HN_SHARED)", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    files.truncate(n);
    files
}

fn json_build(files: &[String], mode: &str) -> serde_json::Value {
    serde_json::json!({"files": files, "height": 32, "width": 32, "channels": 3, "cache_path": null, "on_bad_image": mode})
}

/// Without the truncation check the image crate decodes a JPEG cut to 500 bytes or to half its
/// size without an error (zune-jpeg fills the missing scan data with gray: the pixel mean is
/// about half the intact image's), in train, val and predict alike.
#[test]
fn jpegs_cut_short_are_bad_images_and_trailing_bytes_are_not() {
    let dir = common::scratch("data-truncated");
    let src = pbc_files("0_basophil", 2);
    let bytes = std::fs::read(&src[0]).unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let intact = write("intact.jpg", &bytes);
    let cut500 = write("cut500.jpg", &bytes[..500]);
    let half = write("half.jpg", &bytes[..bytes.len() / 2]);
    let no_eoi = write("no_eoi.jpg", &bytes[..bytes.len() - 2]);
    let padded = write("padded.jpg", &[&bytes[..], &[0u8; 64], b"trailer"].concat());
    let other = src[1].display().to_string();

    for cut in [&cut500, &half, &no_eoi] {
        let b = build(&json_build(&[intact.clone(), cut.clone(), other.clone()], "error"));
        assert_eq!(b.code, HN_ERR_IO, "{cut}");
        assert!(b.handle.is_null());
        assert!(b.error.contains(cut.as_str()) && b.error.contains("truncated"), "{}", b.error);
    }

    let files = vec![intact.clone(), cut500.clone(), padded, half.clone(), other, no_eoi.clone()];
    let b = build(&json_build(&files, "skip"));
    assert_eq!(b.code, HN_OK, "{}", b.error);
    let i = info(b.handle);
    assert_eq!(i["kept"], serde_json::json!([0, 2, 4]));
    let skipped: Vec<(u64, &str)> =
        i["skipped"].as_array().unwrap().iter().map(|s| (s["index"].as_u64().unwrap(), s["path"].as_str().unwrap())).collect();
    assert_eq!(skipped, vec![(1, cut500.as_str()), (3, half.as_str()), (5, no_eoi.as_str())]);
    assert!(i["skipped"].as_array().unwrap().iter().all(|s| s["error"].as_str().unwrap().contains("end-of-image marker")), "{i}");
    // Bytes after the end-of-image marker change nothing.
    let n = 3 * 32 * 32;
    let mut raw = vec![0u8; 2 * n];
    assert_eq!(unsafe { hn_images_gather_u8(b.handle, [0, 1].as_ptr(), 2, raw.as_mut_ptr(), raw.len()) }, HN_OK);
    assert_eq!(raw[..n], raw[n..], "padded = intact");
    unsafe { hn_images_free(b.handle) };
}

/// Every real file of the shared data sets decodes (the end-marker walk has no false alarms on
/// real files), and each one cut short is refused: every cut of a real PNG, every 37th cut of a
/// real JPEG.
#[test]
fn real_files_pass_the_end_marker_check_and_every_cut_fails() {
    use hybridnet::data::decode::{decode_bytes, DEFAULT_MAX_PIXELS};
    let mut seen = 0;
    for set in ["bccd_wbc5", "pbc_blood8", "fashion_mnist10_mini"] {
        let mut stack = vec![shared_dir().join("data").join(set)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if matches!(p.extension().and_then(|x| x.to_str()), Some("jpg" | "png")) {
                    let bytes = std::fs::read(&p).unwrap();
                    if let Err(e) = hybridnet::data::truncation::check(image::ImageFormat::from_path(&p).unwrap(), &bytes) {
                        panic!("{}: {e}", p.display());
                    }
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 10_000, "{seen} files");

    let png = std::fs::read(first_png()).unwrap();
    let jpg = std::fs::read(&pbc_files("1_eosinophil", 1)[0]).unwrap();
    for (bytes, step) in [(&png, 1), (&jpg, 37)] {
        assert!(decode_bytes(bytes, 3, 8, 8, DEFAULT_MAX_PIXELS).is_ok());
        for cut in (0..bytes.len()).step_by(step) {
            assert!(decode_bytes(&bytes[..cut], 3, 8, 8, DEFAULT_MAX_PIXELS).is_err(), "cut at {cut} of {}", bytes.len());
        }
    }
}

/// The first PNG (sorted, depth first) under fashion_mnist10_mini.
fn first_png() -> PathBuf {
    let root = shared_dir().join("data/fashion_mnist10_mini");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                return p;
            }
        }
    }
    panic!("no png under {}", root.display());
}

/// A real image re-encoded in every format the decoder takes, each cut at several points: the
/// format's end marker or its decoder refuses every cut (BMP and TIFF by their exact reads).
#[test]
fn every_format_cut_short_is_a_bad_image() {
    use hybridnet::data::decode::{decode_bytes, DEFAULT_MAX_PIXELS};
    use image::ImageFormat::*;
    let img = image::open(&pbc_files("2_erythroblast", 1)[0]).unwrap().resize_exact(48, 40, image::imageops::FilterType::Triangle);
    for format in [Jpeg, Png, Bmp, Gif, Tiff, WebP] {
        let mut buf = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img.to_rgb8()).write_to(&mut buf, format).unwrap();
        let bytes = buf.into_inner();
        let n = bytes.len();
        assert!(decode_bytes(&bytes, 3, 8, 8, DEFAULT_MAX_PIXELS).is_ok(), "{format:?} intact");
        for cut in [16, n / 4, n / 2, 3 * n / 4, n - 12, n - 4, n - 1] {
            let r = decode_bytes(&bytes[..cut], 3, 8, 8, DEFAULT_MAX_PIXELS);
            assert!(r.is_err(), "{format:?} cut at {cut} of {n} decoded");
        }
    }
}

/// Writes a `side × side` 1-bit gray PNG of zeros, streaming its rows (the file is a few hundred
/// KB; it would decode to `side²` bytes, and to `3·side²` as RGB).
fn write_bomb(path: &std::path::Path, side: u32) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::Balanced);
    let mut w = enc.write_header().unwrap().into_stream_writer().unwrap();
    let row = vec![0u8; side.div_ceil(8) as usize];
    for _ in 0..side {
        std::io::Write::write_all(&mut w, &row).unwrap();
    }
    w.finish().unwrap();
}

/// A 20000 × 20000 PNG (4·10^8 pixels, a few hundred KB) took 1.76 GB to decode. The header
/// check refuses it before any pixel buffer: the build allocates little, and the message names
/// the file, its size and the limit. A `max_pixels` given in the JSON replaces the default.
#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    let dir = common::scratch("data-bomb");
    let bomb = dir.join("bomb.png");
    write_bomb(&bomb, 20_000);
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size < 2_000_000, "the bomb is {size} bytes");
    let bomb = bomb.display().to_string();
    let good = pbc_files("3_immature_granulocyte", 1)[0].display().to_string();
    let files = vec![good.clone(), bomb.clone()];

    // No max_pixels in the JSON: the default, 10^8.
    let (b, peak) = peak_heap(|| build(&json_build(&files, "error")));
    assert_eq!(b.code, HN_ERR_IO);
    for want in [bomb.as_str(), "20000 x 20000 = 400000000 pixels", "limit of 100000000", "max_pixels"] {
        assert!(b.error.contains(want), "{} lacks {want}", b.error);
    }
    assert!(peak < 64 << 20, "the refused build allocated {peak} bytes");

    let (b, peak) = peak_heap(|| build(&json_build(&files, "skip")));
    assert_eq!(b.code, HN_OK, "{}", b.error);
    let i = info(b.handle);
    assert_eq!(i["kept"], serde_json::json!([0]));
    assert_eq!(i["skipped"][0]["path"], bomb.as_str());
    assert!(i["skipped"][0]["error"].as_str().unwrap().contains("400000000 pixels"), "{i}");
    assert!(peak < 64 << 20, "the skipping build allocated {peak} bytes");
    unsafe { hn_images_free(b.handle) };

    // A limit from the JSON: one pixel under the blood-cell JPEG's size refuses it.
    let (w, h) = image::image_dimensions(&good).unwrap();
    let mut cfg = json_build(std::slice::from_ref(&good), "error");
    cfg["max_pixels"] = serde_json::json!(w * h - 1);
    let b = build(&cfg);
    assert_eq!(b.code, HN_ERR_IO);
    assert!(b.error.contains(&good) && b.error.contains(&format!("{w} x {h} = {} pixels", w * h)), "{}", b.error);
    cfg["max_pixels"] = serde_json::json!(w * h);
    let b = build(&cfg);
    assert_eq!(b.code, HN_OK, "{}", b.error);
    unsafe { hn_images_free(b.handle) };
    cfg["max_pixels"] = serde_json::json!(0);
    assert_eq!(build(&cfg).code, HN_ERR_INVALID_ARG);
}
