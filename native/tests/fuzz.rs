//! Fuzzing on stable Rust: property tests (proptest) of the image decode path and of the
//! safetensors loaders (model weights, trainer state), fed random bytes and mutated real files.
//! Properties, for every input: the call returns (`Ok` or `Err`; no panic, no abort), and the
//! heap it takes stays under a bound set by the pixel limit or the file size, so a header that
//! claims a huge size is refused before allocating.
//!
//! Cases per target: [`CASES`] (2,000), from a fixed seed, so a run is repeatable;
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them for a longer or another search. The
//! suite is sized to run in a few seconds with `cargo test --release` (`deno task test:native --
//! --test fuzz`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hybridnet::checkpoint;
use hybridnet::data::decode::decode_bytes;
use hybridnet::model::{lock, HybridNet, HybridNetConfig, SharedModel};
use hybridnet::train::{Trainer, TrainerConfig};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tch::Tensor;

/// Cases per fuzz target.
const CASES: u32 = 2_000;

/// How many cases of a target were accepted (`Ok`) and refused (`Err`), and the largest heap
/// peak of one case.
#[derive(Default)]
struct Tally {
    ok: Cell<usize>,
    err: Cell<usize>,
    peak: Cell<usize>,
}

impl Tally {
    fn count(&self, ok: bool, peak: usize) {
        let c = if ok { &self.ok } else { &self.err };
        c.set(c.get() + 1);
        self.peak.set(self.peak.get().max(peak));
    }

    /// Prints the split (`--nocapture`) and checks that at least `min_ok` of the cases were
    /// accepted: mutations that every parser refuses at once would test little.
    fn report(&self, name: &str, min_ok: f64) {
        let (ok, err) = (self.ok.get(), self.err.get());
        eprintln!("{name}: {ok} accepted, {err} refused; largest heap peak {} KiB", self.peak.get() >> 10);
        assert!(ok as f64 >= min_ok * (ok + err) as f64, "{name}: only {ok} of {} cases accepted", ok + err);
    }
}

// ---- the heap bound --------------------------------------------------------------------------

/// Counts, per thread, the bytes the Rust heap hands out, with a resettable peak. Each target runs
/// on its own test thread and the code under test allocates on that thread (the decoders and the
/// safetensors parser run no threads of their own), so tests running side by side do not mix.
/// libtorch's C++ allocations are not seen (the loaders make tensors only of checked shapes).
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + n as isize;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get() - n as isize));
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
        shrank(l.size());
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                shrank(l.size() - new);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`; returns its result and the most heap bytes this thread held above the start.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(Cell::get) - base).max(0) as usize)
}

// ---- inputs ----------------------------------------------------------------------------------

/// `PROPTEST_CASES` / `PROPTEST_RNG_SEED` when set, else `cases` from a fixed seed; no
/// regression files are written into the source tree.
fn runner(cases: u32) -> TestRunner {
    let env = Config::default();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let rng_seed = if env.rng_seed == RngSeed::Random { RngSeed::Fixed(0x4859_4252_4944) } else { env.rng_seed };
    TestRunner::new(Config { cases, rng_seed, failure_persistence: None, max_shrink_iters: 2_000, ..env })
}

/// Runs `test` on `cases` values of `strategy`; a failing case panics with its (shrunk) input.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

/// Values that break size fields: zero, one, sign bits, all ones.
const EXTREMES: [u64; 10] = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, u64::MAX];

/// One edit of a file. Positions are `Index`es, taken modulo the current length; `head` ones
/// fall in the first 512 bytes, where headers (sizes, counts, offsets) live.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Pos,
        bit: u8,
    },
    SetByte {
        at: Pos,
        value: u8,
    },
    /// `EXTREMES[pick]` written at `at` as `width` bytes (2, 4 or 8), big- or little-endian.
    SizeField {
        at: Pos,
        pick: usize,
        width: usize,
        big: bool,
    },
    Insert {
        at: Pos,
        bytes: Vec<u8>,
    },
    Delete {
        at: Pos,
        len: usize,
    },
    /// Copies `len` bytes from `from` over `at` (repeats markers and chunk headers elsewhere).
    Splice {
        from: Pos,
        at: Pos,
        len: usize,
    },
    Truncate {
        at: Pos,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pos {
    head: bool,
    index: Index,
}

impl Pos {
    fn get(self, len: usize) -> usize {
        let span = if self.head { len.min(512) } else { len };
        if span == 0 {
            0
        } else {
            self.index.index(span)
        }
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    (any::<bool>(), any::<Index>()).prop_map(|(head, index)| Pos { head, index })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (pos(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (pos(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        3 => (pos(), 0..EXTREMES.len(), prop::sample::select(vec![2usize, 4, 8]), any::<bool>())
            .prop_map(|(at, pick, width, big)| Mutation::SizeField { at, pick, width, big }),
        1 => (pos(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (pos(), 1..256usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (pos(), pos(), 1..32usize).prop_map(|(from, at, len)| Mutation::Splice { from, at, len }),
        1 => pos().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(seed: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in edits {
        let len = b.len();
        if len == 0 {
            break;
        }
        match m {
            Mutation::FlipBit { at, bit } => b[at.get(len)] ^= 1 << bit,
            Mutation::SetByte { at, value } => b[at.get(len)] = *value,
            Mutation::SizeField { at, pick, width, big } => {
                let v = EXTREMES[*pick];
                let bytes = if *big { v.to_be_bytes()[8 - width..].to_vec() } else { v.to_le_bytes()[..*width].to_vec() };
                let i = at.get(len);
                let end = (i + width).min(len);
                b[i..end].copy_from_slice(&bytes[..end - i]);
            }
            Mutation::Insert { at, bytes } => {
                let i = at.get(len);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete { at, len: n } => {
                let i = at.get(len);
                b.drain(i..(i + n).min(len));
            }
            Mutation::Splice { from, at, len: n } => {
                let (f, t) = (from.get(len), at.get(len));
                let n = (*n).min(len - f).min(len - t);
                let chunk = b[f..f + n].to_vec();
                b[t..t + n].copy_from_slice(&chunk);
            }
            Mutation::Truncate { at } => b.truncate(at.get(len)),
        }
    }
    b
}

/// `(which seed, edits)`.
fn mutated(seeds: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..seeds, prop::collection::vec(mutation(), 1..6))
}

/// `HN_SHARED`, else `<project>/../shared`.
fn shared_dir() -> PathBuf {
    std::env::var("HN_SHARED").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The first sub-folder (sorted) of `dir` under the shared data, as a path under the data.
fn first_dir(dir: &str) -> String {
    let d = shared_dir().join("data").join(dir);
    let mut dirs: Vec<_> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e} (set HN_SHARED)", d.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    format!("{dir}/{}", dirs[0].file_name().unwrap().to_string_lossy())
}

/// The first file (sorted) of `dir` under the shared data.
fn first_file(dir: &str) -> PathBuf {
    let d = shared_dir().join("data").join(dir);
    let mut files: Vec<_> =
        std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e} (set HN_SHARED)", d.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().find(|p| p.is_file()).unwrap()
}

// ---- the image decode path -------------------------------------------------------------------

/// The pixel limit of the image targets: 2^20 pixels.
const FUZZ_MAX_PIXELS: u64 = 1 << 20;

/// The heap one decode may take: the decoded buffer at the limit in the widest sample type
/// (4 channels × f32 = 16 bytes per pixel), its RGB copy, 4× the input (the JPEG decoder copies
/// it) and 16 MiB of decoder tables and row buffers.
fn decode_bound(input: usize) -> usize {
    (FUZZ_MAX_PIXELS as usize) * (16 + 3) + 4 * input + (16 << 20)
}

/// Decodes `bytes` at 3 × 16 × 16 under [`FUZZ_MAX_PIXELS`] and checks the properties.
fn decode_ok(bytes: &[u8], tally: &Tally) -> Result<(), TestCaseError> {
    let (result, peak) = peak_heap(|| decode_bytes(bytes, 3, 16, 16, FUZZ_MAX_PIXELS));
    prop_assert!(peak <= decode_bound(bytes.len()), "decode of {} bytes took {peak} bytes of heap", bytes.len());
    tally.count(result.is_ok(), peak);
    match result {
        Ok(px) => prop_assert_eq!(px.len(), 3 * 16 * 16),
        Err(e) => prop_assert!(!e.is_empty()),
    }
    Ok(())
}

/// Seeds: a real blood-cell JPEG, a real Fashion-MNIST PNG, and the JPEG's pixels (64 × 64)
/// re-encoded as PNG, GIF, BMP, TIFF and WebP (every format the decoder takes).
fn image_seeds() -> Vec<Vec<u8>> {
    let jpeg = std::fs::read(first_file("pbc_blood8/train/4_lymphocyte")).unwrap();
    let png = std::fs::read(first_file(&first_dir("fashion_mnist10_mini/train"))).unwrap();
    let small = image::load_from_memory(&jpeg).unwrap().resize_exact(64, 64, image::imageops::FilterType::Triangle).to_rgb8();
    let mut seeds = vec![jpeg, png];
    for format in
        [image::ImageFormat::Png, image::ImageFormat::Gif, image::ImageFormat::Bmp, image::ImageFormat::Tiff, image::ImageFormat::WebP]
    {
        let mut buf = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(small.clone()).write_to(&mut buf, format).unwrap();
        seeds.push(buf.into_inner());
    }
    for s in &seeds {
        assert!(decode_bytes(s, 3, 16, 16, FUZZ_MAX_PIXELS).is_ok(), "every seed decodes");
    }
    seeds
}

#[test]
fn decode_of_random_bytes_behind_each_format_signature() {
    const MAGIC: [&[u8]; 8] = [
        b"\xFF\xD8\xFF",
        b"\xFF\xD8\xFF\xC0\x00\x11\x08",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
        b"GIF89a",
        b"BM",
        b"II*\x00",
        b"MM\x00*",
        b"RIFF\x00\x10\x00\x00WEBPVP8L",
    ];
    let strategy = (0..MAGIC.len(), prop::collection::vec(any::<u8>(), 0..2048));
    let tally = Tally::default();
    check("random bytes", CASES, strategy, |(m, tail)| decode_ok(&[MAGIC[m], &tail[..]].concat(), &tally));
    tally.report("decode of random bytes", 0.0);
}

#[test]
fn decode_of_mutated_real_images() {
    let seeds = image_seeds();
    let tally = Tally::default();
    check("mutated images", CASES, mutated(seeds.len()), |(s, edits)| decode_ok(&mutate(&seeds[s], &edits), &tally));
    tally.report("decode of mutated images", 0.05);
}

// ---- the safetensors loaders -----------------------------------------------------------------

/// The heap a load of a `len`-byte file may take: the file, its float32 copy, the parsed header
/// (at most a few times its size) and 1 MiB.
fn load_bound(len: usize) -> usize {
    4 * len + (1 << 20)
}

fn new_model() -> SharedModel {
    hybridnet::runtime::init();
    let cfg = HybridNetConfig { num_classes: 3, input_channels: 1, dropout_rate: 0.0, ..Default::default() };
    Arc::new(Mutex::new(HybridNet::new(&cfg).unwrap()))
}

/// The model's small `classifier.*` parameters (up to 4096 values each; shallow clones): a real
/// checkpoint of a few KB, read by the same loader as the whole model's 30 MB one.
fn head(m: &SharedModel) -> Vec<(String, Tensor)> {
    let params: Vec<_> = lock(m)
        .named_parameters()
        .iter()
        .filter(|(n, t)| n.starts_with("classifier.") && t.numel() <= 4096)
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    assert!(params.len() >= 2, "{} small classifier parameters", params.len());
    params
}

/// Writes `bytes` to `path`, then runs `load` and checks the properties: no panic (a panic fails
/// the case), and the heap under [`load_bound`].
/// Each case gets a new file name (`<path>.<n>`, removed after): rewriting one file in place
/// makes ext4 flush it on every close (`auto_da_alloc`), 100× slower.
fn load_ok(
    path: &Path,
    bytes: &[u8],
    tally: &Tally,
    load: impl FnOnce(&Path) -> hybridnet::error::Result<()>,
) -> Result<(), TestCaseError> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = path.with_extension(N.fetch_add(1, Relaxed).to_string());
    std::fs::write(&path, bytes).unwrap();
    let (result, peak) = peak_heap(|| load(&path));
    std::fs::remove_file(&path).unwrap();
    prop_assert!(peak <= load_bound(bytes.len()), "load of {} bytes took {peak} bytes of heap", bytes.len());
    tally.count(result.is_ok(), peak);
    if let Err(e) = result {
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

/// Safetensors files whose header claims huge sizes: each is refused, with little heap.
fn huge_claims(real: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let with_header = |json: &str, data: usize| {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    };
    let mut len_max = real.to_vec();
    len_max[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut len_big = real.to_vec();
    len_big[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    vec![
        ("header length u64::MAX", len_max),
        ("header length 2^40", len_big),
        ("shape of 2^62 elements", with_header(r#"{"t":{"dtype":"F32","shape":[4294967296,1073741824],"data_offsets":[0,16]}}"#, 16)),
        ("shape overflowing u64", with_header(r#"{"t":{"dtype":"F32","shape":[18446744073709551615,3],"data_offsets":[0,16]}}"#, 16)),
        ("offsets past the end", with_header(r#"{"t":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}"#, 16)),
        ("reversed offsets", with_header(r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#, 16)),
    ]
}

#[test]
fn the_weights_loader_on_a_mutated_real_checkpoint_and_huge_claims() {
    let dir = common::scratch("fuzz-weights");
    let model = new_model();
    let params = head(&model);
    let real_path = dir.join("head.safetensors");
    checkpoint::save_params(&real_path, &params).unwrap();
    let real = std::fs::read(&real_path).unwrap();
    checkpoint::load_params(&real_path, &params).unwrap();
    let path = dir.join("case.safetensors");

    for (what, bytes) in huge_claims(&real) {
        let (r, peak) = peak_heap(|| {
            std::fs::write(&path, &bytes).unwrap();
            checkpoint::load_params(&path, &params)
        });
        let e = r.expect_err(what);
        assert_eq!(e.code(), hybridnet::error::status::HN_ERR_CHECKPOINT, "{what}: {e}");
        assert!(peak <= load_bound(bytes.len()), "{what}: {peak} bytes of heap");
    }

    let tally = Tally::default();
    check("mutated weights", CASES, mutated(1), |(_, edits)| {
        load_ok(&path, &mutate(&real, &edits), &tally, |p| checkpoint::load_params(p, &params))
    });
    tally.report("weights loader, mutated", 0.05);
}

#[test]
fn the_loaders_on_random_bytes_after_a_plausible_header_length() {
    let dir = common::scratch("fuzz-random-st");
    let model = new_model();
    let params = head(&model);
    let path = dir.join("case.safetensors");
    // An 8-byte length in [0, 2 × the rest], then random bytes starting like JSON half the time.
    let strategy = (prop::collection::vec(any::<u8>(), 0..1024), any::<bool>(), any::<Index>());
    let tally = Tally::default();
    check("random safetensors", CASES, strategy, |(tail, json, n)| {
        let mut body = tail;
        if json && !body.is_empty() {
            body[0] = b'{';
        }
        let mut bytes = (n.index(2 * body.len() + 1) as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        load_ok(&path, &bytes, &tally, |p| checkpoint::load_params(p, &params))?;
        load_ok(&path, &bytes, &tally, |p| checkpoint::read_file(p).map(|_| ()))
    });
    tally.report("loaders on random bytes", 0.0);
}

#[test]
fn the_trainer_state_loader_on_a_mutated_real_state() {
    let dir = common::scratch("fuzz-state");
    let model = new_model();
    let cfg = TrainerConfig::from_json(br#"{"optimizer":{"kind":"adam","lr":0.001},"trainable":"head"}"#).unwrap();
    let mut trainer = Trainer::new(model.clone(), &cfg).unwrap();
    let x = Tensor::from_slice(&(0..2 * 16 * 16).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>()).view([2, 1, 16, 16]);
    trainer.train_step(&x, &[0, 2]).unwrap();
    let saved = dir.join("saved.safetensors");
    trainer.save_state(&saved).unwrap();
    // The saved state (3 MB: the head's two Adam moments) cut down to its small tensors, with
    // the real metadata: the loader takes a state that covers some parameters, and each case
    // stays cheap to write and read.
    let full = checkpoint::read_file(&saved).unwrap();
    let small: Vec<_> = full.tensors.into_iter().filter(|(_, t)| t.data.len() <= 4096).collect();
    assert!(small.len() >= 2, "{} small tensors", small.len());
    let real_path = dir.join("state.safetensors");
    checkpoint::write_file(&real_path, &small, full.metadata).unwrap();
    let real = std::fs::read(&real_path).unwrap();
    assert!(real.len() < 1 << 20, "{} bytes", real.len());
    trainer.load_state(&real_path).unwrap();
    let trainer = RefCell::new(trainer);
    let path = dir.join("case.safetensors");

    for (what, bytes) in huge_claims(&real) {
        std::fs::write(&path, &bytes).unwrap();
        let (r, peak) = peak_heap(|| trainer.borrow_mut().load_state(&path));
        assert!(r.is_err(), "{what}");
        assert!(peak <= load_bound(bytes.len()), "{what}: {peak} bytes of heap");
    }

    let tally = Tally::default();
    check("mutated trainer state", CASES, mutated(1), |(_, edits)| {
        load_ok(&path, &mutate(&real, &edits), &tally, |p| trainer.borrow_mut().load_state(p))
    });
    tally.report("trainer-state loader, mutated", 0.05);
    // The state still loads after the fuzzing (failed loads changed nothing they should not).
    trainer.borrow_mut().load_state(&real_path).unwrap();
}

/// The whole model's checkpoint (30 MB): fewer cases, as each writes and reads the file; the
/// edits fall in its header (names, shapes, offsets, metadata).
#[test]
fn the_weights_loader_on_the_whole_models_checkpoint_with_header_edits() {
    const WHOLE_CASES: u32 = 60;
    let dir = common::scratch("fuzz-whole");
    let model = new_model();
    let real_path = dir.join("model.safetensors");
    checkpoint::save_params(&real_path, lock(&model).named_parameters()).unwrap();
    let real = std::fs::read(&real_path).unwrap();
    let header_end = 8 + u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let path = dir.join("case.safetensors");
    let header_edit = (any::<Index>(), any::<u8>(), 0..EXTREMES.len(), any::<bool>());
    let strategy = prop::collection::vec(header_edit, 1..4);
    let tally = Tally::default();
    check("whole checkpoint", WHOLE_CASES, strategy, |edits| {
        let mut bytes = real.clone();
        for (at, v, pick, size) in edits {
            let i = at.index(header_end);
            if size {
                let s = EXTREMES[pick].to_string();
                let end = (i + s.len()).min(header_end);
                bytes[i..end].copy_from_slice(&s.as_bytes()[..end - i]);
            } else {
                bytes[i] = v;
            }
        }
        load_ok(&path, &bytes, &tally, |p| checkpoint::load_params(p, lock(&model).named_parameters()))
    });
    tally.report("weights loader, whole checkpoint", 0.0);
}
