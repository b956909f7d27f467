//! Build and cache tests on small generated images (the real-JPEG tests are in tests/data.rs).

use super::*;
use crate::error::status::*;
use image::{ImageBuffer, Luma, Rgb, Rgba};
use std::path::PathBuf;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hn-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(files: &[PathBuf], c: u32, hw: u32) -> BuildConfig {
    BuildConfig {
        files: files.iter().map(|p| p.display().to_string()).collect(),
        height: hw,
        width: hw,
        channels: c,
        cache_path: None,
        on_bad_image: OnBadImage::Error,
        max_pixels: decode::DEFAULT_MAX_PIXELS,
    }
}

fn plane(set: &ImageSet, i: usize, ch: usize) -> &[u8] {
    let hw = set.height * set.width;
    &set.image(i)[ch * hw..(ch + 1) * hw]
}

#[test]
fn gray_rgb_rgba_and_16_bit_pngs_convert_to_3_and_1_channels() {
    let d = scratch("convert");
    let gray = d.join("gray.png");
    ImageBuffer::from_pixel(10, 10, Luma([100u8])).save(&gray).unwrap();
    let red = d.join("red.png");
    ImageBuffer::from_pixel(12, 9, Rgb([200u8, 0, 0])).save(&red).unwrap();
    let rgba = d.join("rgba.png");
    ImageBuffer::from_pixel(7, 7, Rgba([10u8, 20, 30, 0])).save(&rgba).unwrap();
    let g16 = d.join("g16.png");
    ImageBuffer::from_pixel(9, 9, Luma([65535u16])).save(&g16).unwrap();
    let rgb16 = d.join("rgb16.png");
    ImageBuffer::from_pixel(9, 9, Rgb([257u16 * 50, 257 * 60, 257 * 70])).save(&rgb16).unwrap();
    let files = [gray, red, rgba, g16, rgb16];

    let rgb = build(&cfg(&files, 3, 4)).unwrap();
    assert_eq!((rgb.count, rgb.channels, rgb.height, rgb.width), (5, 3, 4, 4));
    assert_eq!(rgb.data.len(), 5 * 3 * 16);
    let want3: [[u8; 3]; 5] = [[100, 100, 100], [200, 0, 0], [10, 20, 30], [255, 255, 255], [50, 60, 70]];
    for (i, want) in want3.iter().enumerate() {
        for (ch, &v) in want.iter().enumerate() {
            assert!(plane(&rgb, i, ch).iter().all(|&p| p == v), "image {i} channel {ch}: {:?} != {v}", plane(&rgb, i, ch));
        }
    }

    let luma = build(&cfg(&files, 1, 4)).unwrap();
    assert_eq!(luma.data.len(), 5 * 16);
    // Rec. 709 luma: 0.2126 R + 0.7152 G + 0.0722 B.
    let want1 =
        [100.0, 0.2126 * 200.0, 0.2126 * 10.0 + 0.7152 * 20.0 + 0.0722 * 30.0, 255.0, 0.2126 * 50.0 + 0.7152 * 60.0 + 0.0722 * 70.0];
    for (i, &want) in want1.iter().enumerate() {
        for &p in plane(&luma, i, 0) {
            assert!((p as f64 - want).abs() <= 1.0, "image {i}: {p} vs {want}");
        }
    }
    assert_eq!(luma.kept, vec![0, 1, 2, 3, 4]);
    assert!(luma.skipped.is_empty() && !luma.from_cache);
}

#[test]
fn a_wide_image_is_center_cropped_not_squashed() {
    let d = scratch("crop");
    // 40x20: columns [0,10) and [30,40) are 255 (cropped away), [10,20) is 0, [20,30) is 255.
    let p = d.join("wide.png");
    ImageBuffer::from_fn(40, 20, |x, _| Luma([if (10..20).contains(&x) { 0u8 } else { 255 }])).save(&p).unwrap();
    let set = build(&cfg(&[p], 1, 8)).unwrap();
    let img = set.image(0);
    for y in 0..8 {
        assert!(img[y * 8] < 10, "left column is the dark band: {:?}", &img[y * 8..y * 8 + 8]);
        assert!(img[y * 8 + 7] > 245, "right column is the bright band");
    }
}

#[test]
fn a_corrupt_file_fails_naming_the_path_or_is_skipped() {
    let d = scratch("corrupt");
    let good = d.join("good.png");
    ImageBuffer::from_pixel(5, 5, Rgb([1u8, 2, 3])).save(&good).unwrap();
    let bad = d.join("x.jpg");
    std::fs::write(&bad, (0..997u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    let missing = d.join("missing.png");
    let files = [good.clone(), bad.clone(), good.clone(), missing.clone()];

    let e = build(&cfg(&files, 3, 4)).unwrap_err();
    assert_eq!(e.code(), HN_ERR_IO);
    let msg = e.to_string();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(msg.contains("cannot decode"), "{msg}");

    let e = build(&cfg(&[good.clone(), missing.clone()], 3, 4)).unwrap_err();
    assert_eq!(e.code(), HN_ERR_IO);
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");

    let set = build(&BuildConfig { on_bad_image: OnBadImage::Skip, ..cfg(&files, 3, 4) }).unwrap();
    assert_eq!(set.count, 2);
    assert_eq!(set.kept, vec![0, 2]);
    assert_eq!(
        set.skipped.iter().map(|s| (s.index, s.path.clone())).collect::<Vec<_>>(),
        vec![(1, bad.display().to_string()), (3, missing.display().to_string())]
    );
    assert!(set.skipped.iter().all(|s| !s.error.is_empty()));
    let info: serde_json::Value = serde_json::from_str(&set.info_json()).unwrap();
    assert_eq!(info["kept"], serde_json::json!([0, 2]));
    assert_eq!(info["skipped"][0]["index"], 1);
}

#[test]
fn invalid_configs_are_rejected() {
    let base = cfg(&[PathBuf::from("/a.png")], 3, 4);
    for (bad, want) in [
        (BuildConfig { files: vec![], ..base.clone() }, "files is empty"),
        (BuildConfig { channels: 2, ..base.clone() }, "channels"),
        (BuildConfig { height: 0, ..base.clone() }, "height"),
        (BuildConfig { width: MAX_SIDE + 1, ..base.clone() }, "width"),
        (BuildConfig { max_pixels: 0, ..base.clone() }, "max_pixels"),
    ] {
        let e = build(&bad).unwrap_err();
        assert_eq!(e.code(), HN_ERR_INVALID_ARG);
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn the_cache_is_reused_byte_identical_and_invalidated_by_a_changed_file() {
    let d = scratch("cache");
    let files: Vec<_> = (0..4u8)
        .map(|i| {
            let p = d.join(format!("{i}.png"));
            ImageBuffer::from_fn(11, 13, |x, y| Rgb([i * 40, x as u8 * 20, y as u8 * 15])).save(&p).unwrap();
            p
        })
        .collect();
    let cache = d.join("sub.hnc");
    let c = BuildConfig { cache_path: Some(cache.display().to_string()), ..cfg(&files, 3, 6) };

    let first = build(&c).unwrap();
    assert!(!first.from_cache);
    assert!(cache.exists());
    let leftovers: Vec<_> =
        std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "no temp files left behind");
    let second = build(&c).unwrap();
    assert!(second.from_cache);
    assert_eq!(second.data, first.data, "byte-identical");
    assert_eq!((second.kept.clone(), second.count), (first.kept.clone(), first.count));

    // Another size is another key.
    assert!(!build(&BuildConfig { height: 5, ..c.clone() }).unwrap().from_cache);
    assert!(!build(&c).unwrap().from_cache, "the 5-pixel build replaced the file");
    assert!(build(&c).unwrap().from_cache);

    // Touching a file (new mtime) invalidates it.
    let f = std::fs::File::options().write(true).open(&files[2]).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    drop(f);
    assert!(!build(&c).unwrap().from_cache, "touched");
    assert!(build(&c).unwrap().from_cache);

    // Changing a file's content changes the pixels.
    ImageBuffer::from_pixel(11, 13, Rgb([9u8, 9, 9])).save(&files[1]).unwrap();
    let changed = build(&c).unwrap();
    assert!(!changed.from_cache);
    assert!(changed.image(1).iter().all(|&v| v == 9));
    assert_eq!(changed.image(0), first.image(0));

    // A garbage cache file is a miss, then rewritten.
    std::fs::write(&cache, b"not a cache").unwrap();
    assert!(!build(&c).unwrap().from_cache);
    assert!(build(&c).unwrap().from_cache);
}

#[test]
fn a_cached_skip_still_fails_in_error_mode() {
    let d = scratch("cache-skip");
    let good = d.join("good.png");
    ImageBuffer::from_pixel(5, 5, Luma([7u8])).save(&good).unwrap();
    let bad = d.join("bad.jpg");
    std::fs::write(&bad, b"garbage").unwrap();
    let cache = d.join("c.hnc");
    let skip = BuildConfig {
        cache_path: Some(cache.display().to_string()),
        on_bad_image: OnBadImage::Skip,
        ..cfg(&[good.clone(), bad.clone()], 1, 4)
    };
    assert!(!build(&skip).unwrap().from_cache);
    let cached = build(&skip).unwrap();
    assert!(cached.from_cache);
    assert_eq!(cached.skipped.len(), 1);
    let e = build(&BuildConfig { on_bad_image: OnBadImage::Error, ..skip }).unwrap_err();
    assert_eq!(e.code(), HN_ERR_IO);
    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
}

#[test]
fn an_unwritable_cache_path_is_reported_naming_it_and_the_set_is_kept() {
    let d = scratch("cache-ro");
    let good = d.join("good.png");
    ImageBuffer::from_pixel(5, 5, Luma([7u8])).save(&good).unwrap();
    let cache = d.join("no/such/dir/c.hnc");
    let set = build(&BuildConfig { cache_path: Some(cache.display().to_string()), ..cfg(&[good], 1, 4) }).unwrap();
    assert_eq!(set.count, 1);
    let why = set.cache_error.unwrap_or_default();
    assert!(why.contains("c.hnc"), "{why}");
}

#[test]
fn an_image_over_max_pixels_is_a_bad_image_and_the_limit_is_in_the_cache_key() {
    let d = scratch("max-pixels");
    let small = d.join("small.png");
    ImageBuffer::from_pixel(4, 5, Luma([7u8])).save(&small).unwrap();
    let big = d.join("big.png");
    ImageBuffer::from_pixel(6, 5, Luma([9u8])).save(&big).unwrap();
    let files = [small, big.clone()];
    let cache = d.join("c.hnc");
    let c = BuildConfig { max_pixels: 20, cache_path: Some(cache.display().to_string()), ..cfg(&files, 1, 4) };

    let e = build(&c).unwrap_err();
    assert_eq!(e.code(), HN_ERR_IO);
    let msg = e.to_string();
    for want in [big.display().to_string().as_str(), "6 x 5 = 30 pixels", "limit of 20", "max_pixels"] {
        assert!(msg.contains(want), "{msg} lacks {want}");
    }
    let skip = BuildConfig { on_bad_image: OnBadImage::Skip, ..c.clone() };
    let set = build(&skip).unwrap();
    assert_eq!((set.count, set.kept.clone()), (1, vec![0]));
    assert!(set.skipped[0].error.contains("30 pixels"), "{:?}", set.skipped);
    assert!(build(&skip).unwrap().from_cache);
    // A higher limit is another cache key: the big image is decoded, not a cached skip.
    let more = build(&BuildConfig { max_pixels: 30, ..skip }).unwrap();
    assert!(!more.from_cache);
    assert_eq!(more.count, 2);
}

#[test]
fn max_pixels_is_optional_in_the_json_and_defaults_to_10_pow_8() {
    let c: BuildConfig =
        serde_json::from_str(r#"{"files":["/a.png"],"height":4,"width":4,"channels":3,"cache_path":null,"on_bad_image":"skip"}"#).unwrap();
    assert_eq!(c.max_pixels, 100_000_000);
    let c: BuildConfig = serde_json::from_str(
        r#"{"files":["/a.png"],"height":4,"width":4,"channels":3,"cache_path":null,"on_bad_image":"skip","max_pixels":7}"#,
    )
    .unwrap();
    assert_eq!(c.max_pixels, 7);
}

#[test]
fn an_unwritable_cache_keeps_the_decoded_set_and_says_why() {
    let d = scratch("cache-error");
    let img = d.join("a.png");
    ImageBuffer::from_pixel(4, 4, Luma([200u8])).save(&img).unwrap();
    // the cache's folder is a regular file: the write fails for root too (ENOTDIR)
    let blocker = d.join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let mut c = cfg(&[img], 1, 4);
    c.cache_path = Some(blocker.join("cache.hnc").display().to_string());
    let set = build(&c).unwrap();
    assert_eq!((set.count, set.from_cache), (1, false));
    assert_eq!(plane(&set, 0, 0), &[200u8; 16][..]);
    let why = set.cache_error.clone().expect("the failed write is reported");
    assert!(why.contains("not-a-folder"), "names the path: {why}");
    assert!(set.info_json().contains("\"cache_error\""));
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no temp file left behind");
}
