//! Fuzzing on the stable toolchain: mutation-based, deterministic from a seed, time-bounded.
//!
//! Five targets, each fed mutations of a seed corpus taken from the test data:
//! - `onnx`: ONNX bytes → `Engine::from_bytes` and `onnx::import` (the int8 fixture and a small
//!   f32 export; byte-level mutations, and structural ones that rewrite the integers of
//!   attributes and dimensions in the decoded protobuf, where tract's crashes were found);
//! - `safetensors`: weight files → `Weights::from_safetensors_bytes`;
//! - `image`: image files (PNG, JPEG) → `decode_rgb` → preprocessing;
//! - `raw`: raw frame streams (yuv420, nv12, yuyv, rgb24) of mutated bytes and sizes;
//! - `mjpeg`: MJPEG streams → `MjpegSource`.
//!
//! Every input must give a result or an error: a panic is caught, its input written to
//! `target/fuzz-failures/`, and the test fails naming it. An abort (an allocation the system
//! refuses) ends the process and a hang never ends: either way the test fails, and
//! `target/fuzz-failures/TARGET-current.bin` holds the input that was being tried. Each target runs for
//! `EDGENET_FUZZ_SECS` seconds (default 2; CI gives each 20), from seed `EDGENET_FUZZ_SEED`
//! (default 1). Crashes it finds become regression tests named after what they fix
//! (`tests/bad_input.rs`).

mod common;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::mjpeg::MjpegSource;
use edgenet::frames::preprocess::{Preprocess, Preprocessor};
use edgenet::frames::raw::RawSource;
use edgenet::frames::{FrameSource, PixelFormat, RgbBuf, YuvRange};
use edgenet::graph::Weights;
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x10];

/// One to four byte-level mutations: flips, interesting bytes, truncation, duplicated or
/// removed chunks, random insertions.
fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        if d.is_empty() {
            d.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(d.len());
        match rng.below(7) {
            0 => d[at] ^= 1 << rng.below(8),
            1 => d[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => d.truncate(at),
            3 => {
                let len = rng.below(64.min(d.len() - at)) + 1;
                let chunk = d[at..at + len.min(d.len() - at)].to_vec();
                let to = rng.below(d.len());
                d.splice(to..to, chunk);
            }
            4 => {
                let len = rng.below(64.min(d.len() - at)) + 1;
                d.drain(at..(at + len).min(d.len()));
            }
            5 => {
                let n = rng.below(8) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, bytes);
            }
            _ => {
                // Overwrite four bytes with an integer near a boundary.
                let v: u32 = [0, 1, u32::MAX, 1 << 30, 1 << 16, 0x8000_0000][rng.below(6)];
                for (i, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = d.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
        }
    }
    d
}

/// A structural mutation of an ONNX model: one integer of an attribute, a dimension of a
/// tensor or of the graph input, or a node's input name, set to a boundary value.
fn mutate_onnx(rng: &mut Rng, model: &tract_onnx::pb::ModelProto) -> Vec<u8> {
    use prost::Message;
    let mut m = model.clone();
    let g = m.graph.as_mut().unwrap();
    let values = [0i64, -1, 1, 2, 3, 1 << 30, i64::MAX, i64::MIN, 65536, 7];
    let v = values[rng.below(values.len())];
    match rng.below(5) {
        0 | 1 => {
            let n = rng.below(g.node.len());
            let node = &mut g.node[n];
            if !node.attribute.is_empty() {
                let a = rng.below(node.attribute.len());
                let attr = &mut node.attribute[a];
                if attr.ints.is_empty() {
                    attr.i = v;
                } else {
                    let i = rng.below(attr.ints.len());
                    attr.ints[i] = v;
                }
            }
        }
        2 => {
            if !g.initializer.is_empty() {
                let t = rng.below(g.initializer.len());
                let t = &mut g.initializer[t];
                if !t.dims.is_empty() {
                    let i = rng.below(t.dims.len());
                    t.dims[i] = v;
                }
            }
        }
        3 => {
            use tract_onnx::pb::tensor_shape_proto::dimension::Value;
            if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if let Some(shape) = t.shape.as_mut() {
                    let i = rng.below(shape.dim.len());
                    shape.dim[i].value = Some(Value::DimValue(v));
                }
            }
        }
        _ => {
            let n = rng.below(g.node.len());
            let other = rng.below(g.node.len());
            if let (Some(out), false) = (g.node[other].output.first().cloned(), g.node[n].input.is_empty()) {
                let i = rng.below(g.node[n].input.len());
                g.node[n].input[i] = out;
            }
        }
    }
    m.encode_to_vec()
}

fn secs() -> Duration {
    Duration::from_secs_f64(std::env::var("EDGENET_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0))
}

fn seed() -> u64 {
    std::env::var("EDGENET_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("fuzz-failures")
}

/// Runs `case` on inputs from `next` for the time budget; panics are caught and kept.
fn fuzz(target: &str, mut next: impl FnMut(&mut Rng) -> Vec<u8>, case: impl Fn(&[u8])) {
    let mut rng = Rng(seed() ^ target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)));
    let start = Instant::now();
    let (mut n, mut failed) = (0u64, Vec::new());
    // A panic's message goes through the hook to stderr; it is reported below with the input.
    // The input being tried, kept until it returns: after a hang or an abort it is the culprit.
    std::fs::create_dir_all(failures_dir()).unwrap();
    let current = failures_dir().join(format!("{target}-current.bin"));
    while start.elapsed() < secs() {
        let input = next(&mut rng);
        n += 1;
        std::fs::write(&current, &input).unwrap();
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| case(&input))) {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            let path = failures_dir().join(format!("{target}-{n}.bin"));
            std::fs::write(&path, &input).unwrap();
            failed.push(format!("{}: {msg}", path.display()));
        }
    }
    let _ = std::fs::remove_file(&current);
    eprintln!("fuzz {target}: {n} inputs in {:.1} s, {} panics", start.elapsed().as_secs_f64(), failed.len());
    assert!(failed.is_empty(), "{target}: inputs that panicked:\n{}", failed.join("\n"));
}

fn seed_models() -> Vec<Vec<u8>> {
    let int8 = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/int8/mobilenet_v2_035_48.int8.onnx")).unwrap();
    let cfg = ZooConfig { width_mult: 0.35, resolution: 32, num_classes: 10 };
    let m = zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(1)).unwrap();
    let f32 = edgenet::onnx::export(&m, &edgenet::onnx::ExportOptions { fold_bn: true }).unwrap();
    // torchvision exports with the ops foreign models bring: squeeze-excitation and hard swish,
    // ceil-mode pooling and Concat, pre-activation BatchNorm and AveragePool; and one of them
    // in int8, with its lookup-table regions.
    let tv = |f: &str| std::fs::read(format!("{}/tests/data/torchvision/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let v3 = tv("mobilenet_v3_small.onnx");
    let m3 = edgenet::onnx::import(&v3, "mobilenet_v3_small").unwrap();
    let cal: Vec<Vec<f32>> = (0..2u32)
        .map(|k| (0..3 * 112 * 112u32).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(k) >> 16) % 400) as f32 / 100.0 - 2.0).collect())
        .collect();
    let v3_int8 = edgenet::quant::quantize(&m3, &cal, &Default::default(), &mut |_, _| {}).unwrap().bytes;
    vec![int8, f32, v3, v3_int8, tv("googlenet_small.onnx"), tv("densenet.onnx")]
}

fn load_model(bytes: &[u8]) {
    // A modest budget: a mutated dimension must be refused, not allocated.
    let opts = EngineOptions { memory_limit: 256 << 20, ..Default::default() };
    if let Ok(engine) = Engine::from_bytes(bytes, "fuzz.onnx", &opts) {
        let _ = engine.run(&vec![0.5; engine.input_len()]);
    }
    let _ = edgenet::onnx::import(bytes, "fuzz.onnx");
}

#[test]
fn fuzz_onnx_bytes() {
    let seeds = seed_models();
    fuzz(
        "onnx",
        |rng| {
            let s = rng.below(seeds.len());
            mutate(rng, &seeds[s])
        },
        load_model,
    );
}

#[test]
fn fuzz_onnx_structure() {
    let seeds: Vec<_> = seed_models().iter().map(|b| edgenet::onnx::decode(b, "seed").unwrap()).collect();
    fuzz(
        "onnx-structure",
        |rng| {
            let s = rng.below(seeds.len());
            mutate_onnx(rng, &seeds[s])
        },
        load_model,
    );
}

#[test]
fn fuzz_safetensors() {
    let cfg = ZooConfig { width_mult: 0.35, resolution: 32, num_classes: 10 };
    let m = zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(2)).unwrap();
    let seed = m.weights.to_safetensors_bytes().unwrap();
    let graph = &m.graph;
    fuzz(
        "safetensors",
        |rng| mutate(rng, &seed),
        |b| {
            let _ = Weights::from_safetensors_bytes(b, Path::new("fuzz.safetensors"), graph);
        },
    );
}

#[test]
fn fuzz_images_and_preprocessing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir).unwrap().filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect();
    seeds.sort_by_key(|s| s.len());
    seeds.truncate(3);
    assert!(!seeds.is_empty());
    let pre = Preprocess::torchvision(32);
    fuzz(
        "image",
        |rng| {
            let s = rng.below(seeds.len());
            mutate(rng, &seeds[s])
        },
        |b| {
            if let Ok(img) = edgenet::frames::image_file::decode_rgb(b, Path::new("fuzz.jpg")) {
                if let Ok(mut p) = Preprocessor::new(&pre, img.width, img.height) {
                    let mut out = vec![0.0; pre.input_len()];
                    let _ = p.run(&img.data, &mut out);
                }
            }
        },
    );
}

#[test]
fn fuzz_raw_streams() {
    let formats = [PixelFormat::Yuv420, PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Rgb24];
    let frame: Vec<u8> = (0..3 * 16 * 12 * 3).map(|i| (i * 37 % 256) as u8).collect();
    fuzz(
        "raw",
        |rng| {
            // The first two bytes choose the format and size; the rest is the stream.
            let mut d = vec![rng.below(formats.len()) as u8, rng.below(40) as u8];
            d.extend(mutate(rng, &frame));
            d
        },
        |b| {
            let (format, w) = (formats[b[0] as usize % formats.len()], b[1] as usize);
            let Ok(mut src) = RawSource::new(Box::new(Cursor::new(b[2..].to_vec())), "fuzz", format, YuvRange::Limited, w, 12, false) else { return };
            let mut buf = RgbBuf::new();
            while let Ok(Some(_)) = src.next_frame(&mut buf) {}
        },
    );
}

#[test]
fn fuzz_mjpeg_streams() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
    let jpegs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let img = image::open(&p).ok()?.thumbnail(48, 48).to_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70).encode_image(&img).ok()?;
            Some(out)
        })
        .take(3)
        .collect();
    assert!(!jpegs.is_empty());
    let stream: Vec<u8> = jpegs.concat();
    fuzz(
        "mjpeg",
        |rng| mutate(rng, &stream),
        |b| {
            let mut src = MjpegSource::new(Box::new(Cursor::new(b.to_vec())), "fuzz.mjpeg", false);
            let mut buf = RgbBuf::new();
            for _ in 0..16 {
                match src.next_frame(&mut buf) {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        },
    );
}
