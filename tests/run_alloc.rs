//! Steady state of the frame loop allocates nothing: a counting global allocator watches the
//! runner over hundreds of frames after warm-up, in this process, with stub models and with a
//! real int8 model (whose tract session allocates nothing either once warm). Everything is measured in one
//! test function so that no other test thread allocates meanwhile.

mod common;

use std::io::Cursor;

use edgenet::alloc::CountingAlloc;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::frames::live::Latest;
use edgenet::frames::mjpeg::MjpegSource;
use edgenet::frames::raw::RawSource;
use edgenet::frames::synthetic::SyntheticSource;
use edgenet::frames::{FrameSource, PixelFormat, YuvRange};
use edgenet::onnx::{export, ExportOptions};
use edgenet::quant::{quantize, QuantOptions};
use edgenet::runner::{Model, StreamOptions, StreamRunner};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};
use edgenet::Result;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// A model that touches every input value and allocates nothing.
struct Stub {
    shape: [usize; 4],
}

impl Model for Stub {
    fn input_shape(&self) -> [usize; 4] {
        self.shape
    }
    fn output_len(&self) -> usize {
        10
    }
    fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        for (i, v) in input.iter().enumerate() {
            out[i % 10] += v;
        }
        Ok(())
    }
}

/// Runs `warm` frames, then counts allocations over `n` more; returns (total allocations over
/// the n frames, allocations of each frame, live bytes before and after).
fn measure<M: Model>(r: &mut StreamRunner<M>, src: &mut dyn FrameSource, warm: usize, n: usize) -> (usize, Vec<usize>, usize, usize) {
    for _ in 0..warm {
        r.step(src).unwrap().expect("warm-up frame");
    }
    let mut per = Vec::with_capacity(n);
    let start = ALLOC.snapshot();
    let mut prev = start;
    let mut frames = 0;
    for _ in 0..n {
        if r.step(src).unwrap().is_some() {
            frames += 1;
        }
        let now = ALLOC.snapshot();
        per.push(now.allocations_since(&prev));
        prev = now;
    }
    let end = ALLOC.snapshot();
    assert_eq!(frames, n, "every measured step produced a frame");
    (end.allocations_since(&start), per, start.live_bytes, end.live_bytes)
}

/// Allocations of the third of three calls of `f`.
fn count(f: &mut dyn FnMut()) -> usize {
    f();
    f();
    let s = ALLOC.snapshot();
    f();
    ALLOC.snapshot().allocations_since(&s)
}

fn yuv_stream(w: usize, h: usize, frames: usize) -> Vec<u8> {
    let len = PixelFormat::Yuv420.frame_len(w, h).unwrap();
    (0..len * frames).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn the_frame_loop_allocates_nothing_after_warm_up() {
    assert!(ALLOC.installed());
    let pre = edgenet::frames::preprocess::Preprocess::torchvision(32);
    let opts = StreamOptions { top: 5, every: 1, max_frames: None, softmax: true };

    // 1. Synthetic frames, resized 160×120 → 32×32, stub model: the loop alone.
    let mut r = StreamRunner::new(Stub { shape: [1, 3, 32, 32] }, pre.clone(), opts).unwrap();
    let mut src = SyntheticSource::new(160, 120, None);
    let (total, _, _, _) = measure(&mut r, &mut src, 5, 200);
    assert_eq!(total, 0, "synthetic source + preprocessing + top-K + stats allocated");

    // 2. A raw YUV 4:2:0 stream (conversion into the reused RGB buffer), every 2nd frame.
    let mut r = StreamRunner::new(Stub { shape: [1, 3, 32, 32] }, pre.clone(), StreamOptions { every: 2, ..opts }).unwrap();
    let mut src = RawSource::new(Box::new(Cursor::new(yuv_stream(64, 48, 420))), "mem", PixelFormat::Yuv420, YuvRange::Limited, 64, 48, false).unwrap();
    let (total, _, _, _) = measure(&mut r, &mut src, 5, 200);
    assert_eq!(total, 0, "raw yuv420 source allocated");

    // 3. The live wrapper (reader thread, triple buffer) on a paced synthetic source.
    let mut r = StreamRunner::new(Stub { shape: [1, 3, 32, 32] }, pre.clone(), opts).unwrap();
    let mut src = Latest::spawn(Box::new(SyntheticSource::new(64, 48, None).paced(2000.0))).unwrap();
    let (total, _, _, _) = measure(&mut r, &mut src, 10, 150);
    assert_eq!(total, 0, "live wrapper allocated");
    drop(src);

    // 4. A real int8 model: MobileNetV2 0.35 at 96², quantized by edgenet, run by a tract
    //    session whose every op is one of edgenet's buffer-reusing ops. Once warm, neither a
    //    session run nor a whole frame of the loop allocates anything.
    let cfg = ZooConfig { width_mult: 0.35, resolution: 96, num_classes: 1000 };
    let model = zoo::build(Arch::MobileNetV2, &cfg, WeightSource::Seeded(5)).unwrap();
    let calibration: Vec<Vec<f32>> = (0..4).map(|k| common::random_input(3 * 96 * 96, k)).collect();
    let q = quantize(&model, &calibration, &QuantOptions::default(), &mut |_, _| {}).unwrap();
    let engine = Engine::from_bytes(&q.bytes, "mnv2.int8", &EngineOptions::default()).unwrap();
    let x = common::random_input(engine.input_len(), 9);
    let mut y = vec![0f32; engine.output_len()];
    let per_engine_run = count(&mut || engine.run_into(&x, &mut y).unwrap());
    let mut session = engine.session().unwrap();
    let per_session_run = count(&mut || session.run_into(&x, &mut y).unwrap());
    let by_node = session.allocations_by_node(&x, &mut y, &|| ALLOC.snapshot().allocations).unwrap();
    assert_eq!(per_session_run, 0, "a warm int8 session run allocated; by node: {by_node:?}");
    assert_eq!(by_node.total, 0, "{by_node:?}");
    // Reusing buffers changes nothing in the results, run after run, input after input.
    for k in 0..3 {
        let x = common::random_input(engine.input_len(), 20 + k);
        session.run_into(&x, &mut y).unwrap();
        assert_eq!(y, engine.run(&x).unwrap(), "session run {k} differs from a fresh run");
    }
    let buffers = session.buffer_bytes();
    let mut r = StreamRunner::new(session, model.info.preprocess.clone(), opts).unwrap();
    let mut src = SyntheticSource::new(160, 120, None);
    let (total, per, live_before, live_after) = measure(&mut r, &mut src, 5, 150);
    eprintln!(
        "int8 MobileNetV2 0.35 96²: allocations per inference: Engine::run_into {per_engine_run} (a fresh tract state \
         per call), Session::run_into {per_session_run}; frame loop: {total} over 150 frames (live bytes \
         {live_before} → {live_after}; the session keeps {buffers} bytes of output buffers)"
    );
    assert_eq!(total, 0, "the int8 frame loop allocated: per frame {per:?}");
    assert_eq!(live_before, live_after, "live heap bytes do not grow over 150 frames");

    //    With two and four threads: edgenet's pool publishes each job under a lock, the grids are
    //    worked out on the first run, the shared packing buffers only grow: no allocation. (With
    //    the `tract-threads` feature, tract's rayon pool also exists, for tract's own layers.)
    //    Each thread's task buffers grow the first time it runs a layer's largest task, and which
    //    thread claims which task changes from run to run (four threads on this two-core machine
    //    may leave one unscheduled for a while): warm-up lasts until 50 runs in a row allocate
    //    nothing. Buffers that only grow get there; an allocation in every run never does.
    for threads in [2, 4] {
        let several = Engine::from_bytes(&q.bytes, "mnv2.int8.threads", &EngineOptions { threads, ..Default::default() }).unwrap();
        let mut session = several.session().unwrap();
        let (mut clean, mut warm_up) = (0, 0);
        while clean < 50 {
            warm_up += 1;
            assert!(warm_up <= 2000, "{threads} threads: no 50 allocation-free runs in a row within 2000 runs");
            let s = ALLOC.snapshot();
            session.run_into(&x, &mut y).unwrap();
            clean = if ALLOC.snapshot().allocations_since(&s) == 0 { clean + 1 } else { 0 };
        }
        let s = ALLOC.snapshot();
        for _ in 0..200 {
            session.run_into(&x, &mut y).unwrap();
        }
        let allocs = ALLOC.snapshot().allocations_since(&s);
        eprintln!("int8, {threads} threads: {} allocations per Session::run_into over 200 runs after {warm_up} warm-up runs", allocs as f64 / 200.0);
        assert_eq!(allocs, 0, "an int8 session with {threads} threads allocated {allocs} times in 200 runs");
        assert_eq!(y, engine.run(&x).unwrap(), "{threads} threads give other results than one");
    }

    //    The f32 model: tract's own ops (convolutions, matmul packing, reshapes) allocate their
    //    outputs on every run; measured and reported, not asserted. The loop adds nothing.
    let bytes = export(&model, &ExportOptions { fold_bn: true }).unwrap();
    let engine = Engine::from_bytes(&bytes, "mnv2", &EngineOptions::default()).unwrap();
    let per_engine_run = count(&mut || engine.run_into(&x, &mut y).unwrap());
    let mut session = engine.session().unwrap();
    let per_session_run = count(&mut || session.run_into(&x, &mut y).unwrap());
    let by_node = session.allocations_by_node(&x, &mut y, &|| ALLOC.snapshot().allocations).unwrap();
    let mut by_op: Vec<(String, usize)> = Vec::new();
    for n in &by_node.nodes {
        match by_op.iter_mut().find(|(op, _)| *op == n.op) {
            Some(e) => e.1 += n.allocations,
            None => by_op.push((n.op.clone(), n.allocations)),
        }
    }
    let mut r = StreamRunner::new(session, model.info.preprocess.clone(), opts).unwrap();
    let (total, per, live_before, live_after) = measure(&mut r, &mut src, 5, 100);
    eprintln!(
        "f32 MobileNetV2 0.35 96²: allocations per inference: Engine::run_into {per_engine_run}, Session::run_into \
         {per_session_run} (by op: {by_op:?}, {} outside the nodes); frame loop {} per frame (live bytes {live_before} → {live_after})",
        by_node.outside_nodes,
        total as f64 / 100.0
    );
    assert!(per.iter().all(|&p| p == per_session_run), "each frame allocates exactly what tract's run does: {per:?} vs {per_session_run}");
    assert_eq!(live_before, live_after, "live heap bytes do not grow over 100 frames");

    // 5. MJPEG decoding goes through the image crate, which allocates per frame: measured and
    //    reported here, not hidden (the raw YUV path above is the zero-allocation one).
    let mut mj = Vec::new();
    for i in 0..40u8 {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, i * 6]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut mj, 80).encode_image(&img).unwrap();
    }
    let mut r = StreamRunner::new(Stub { shape: [1, 3, 32, 32] }, pre, opts).unwrap();
    let mut src = MjpegSource::new(Box::new(Cursor::new(mj)), "mem.mjpeg", false);
    let (total, _, a, b) = measure(&mut r, &mut src, 5, 30);
    eprintln!("MJPEG 64×48: {} allocations per frame in the JPEG decoder (live bytes {a} → {b})", total as f64 / 30.0);
    assert_eq!(a, b, "MJPEG decoding frees what it allocates");
}
