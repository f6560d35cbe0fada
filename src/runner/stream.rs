//! The frame loop: source → RGB buffer → preprocessing → model → top-K → statistics, with every
//! buffer made once. After warm-up (the first frames grow the buffers to the frame size) the
//! loop itself allocates nothing; what the model does inside is its own business: a
//! [`Session`] on an int8 plan allocates nothing either once warm, while on an f32 plan
//! tract allocates its ops' output tensors on every run (see [`Session`]).

use std::time::Instant;

use serde::Serialize;

use super::stats::{Latency, Stats};
use super::topk::{softmax_in_place, top_k, TopK, MAX_TOP_K};
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::frames::preprocess::{Preprocess, Preprocessor};
use crate::frames::source::{FrameSource, RgbBuf};

/// Something that maps an NCHW f32 input to scores: a tract [`Session`], or a stub in tests.
pub trait Model {
    /// `[1, C, H, W]`.
    fn input_shape(&self) -> [usize; 4];
    /// Number of scores.
    fn output_len(&self) -> usize;
    /// Runs one input into `out`.
    ///
    /// # Errors
    /// Whatever the model reports.
    fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()>;
}

impl Model for Session {
    fn input_shape(&self) -> [usize; 4] {
        Session::input_shape(self)
    }
    fn output_len(&self) -> usize {
        Session::output_len(self)
    }
    fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
        Session::run_into(self, input, out)
    }
}

/// How to run a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Classes per frame (at most [`MAX_TOP_K`]).
    pub top: usize,
    /// Process every N-th frame read (1: all).
    pub every: u64,
    /// Stop after this many processed frames.
    pub max_frames: Option<u64>,
    /// Apply softmax to the model's output (false when it already gives probabilities).
    pub softmax: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { top: 5, every: 1, max_frames: None, softmax: true }
    }
}

/// What one processed frame gave.
#[derive(Debug)]
pub struct FrameReport<'a> {
    /// The frame's index in the source (counting frames not processed).
    pub index: u64,
    /// Frames a live source dropped just before this one.
    pub dropped: u64,
    /// Frame size.
    pub width: usize,
    /// Frame size.
    pub height: usize,
    /// Preprocessing + inference + top-K, in ms.
    pub latency_ms: f64,
    /// Time from the source having the frame to the result, in ms (includes waiting).
    pub age_ms: f64,
    /// Best classes first, probabilities when `softmax` (or the model gives them).
    pub top: &'a TopK,
    /// Frames per second over the rolling window.
    pub fps: f64,
    /// Median latency of the rolling window, in ms.
    pub window_p50_ms: f64,
    /// The frame's name, for sources that have one (image files).
    pub name: Option<&'a str>,
}

/// The end-of-run figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Frames the source delivered or dropped (processed, passed over, or dropped; corrupt
    /// frames are counted separately).
    pub frames: u64,
    /// Frames classified.
    pub processed: u64,
    /// Frames a live source dropped because the runner was busy.
    pub dropped: u64,
    /// Frames the source could not decode (skipped).
    pub corrupt: u64,
    /// Frames read but passed over by `--every`.
    pub skipped_every: u64,
    /// Seconds from the first frame read to now.
    pub elapsed_s: f64,
    /// Processed frames per second over the whole run.
    pub fps: f64,
    /// Per-frame latency over the whole run.
    pub latency_ms: Latency,
}

/// The frame loop's state: every buffer it uses.
#[derive(Debug)]
pub struct StreamRunner<M: Model> {
    model: M,
    preprocess: Preprocess,
    pre: Option<Preprocessor>,
    frame: RgbBuf,
    input: Vec<f32>,
    output: Vec<f32>,
    top: TopK,
    opts: StreamOptions,
    stats: Stats,
    frames_read: u64,
    dropped: u64,
    skipped_every: u64,
    started: bool,
}

impl<M: Model> StreamRunner<M> {
    /// A runner for `model` with `preprocess` (whose size must be the model's input).
    ///
    /// # Errors
    /// [`Error::Config`] when the preprocessing does not fit the model or the options are
    /// unusable.
    pub fn new(model: M, preprocess: Preprocess, opts: StreamOptions) -> Result<Self> {
        preprocess.validate()?;
        let [_, c, h, w] = model.input_shape();
        if c != 3 || h != preprocess.height || w != preprocess.width {
            return Err(Error::Config(format!("preprocessing makes 3×{}×{} tensors but the model takes {c}×{h}×{w}", preprocess.height, preprocess.width)));
        }
        if opts.every == 0 || opts.top == 0 || opts.top > MAX_TOP_K {
            return Err(Error::Config(format!("--every must be ≥ 1 and --top in 1..={MAX_TOP_K}")));
        }
        let input = vec![0.0; preprocess.input_len()];
        let output = vec![0.0; model.output_len()];
        Ok(StreamRunner {
            model,
            preprocess,
            pre: None,
            frame: RgbBuf::new(),
            input,
            output,
            top: TopK::new(),
            opts,
            stats: Stats::new(),
            frames_read: 0,
            dropped: 0,
            skipped_every: 0,
            started: false,
        })
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Reads frames from `source` until one is to be processed, processes it and reports;
    /// `Ok(None)` at the end of the stream or after `max_frames`.
    ///
    /// # Errors
    /// A source error (the frames before it were reported) or a model error.
    pub fn step<'a>(&'a mut self, source: &'a mut dyn FrameSource) -> Result<Option<FrameReport<'a>>> {
        if !self.started {
            self.started = true;
            self.stats.restart_clock();
        }
        loop {
            if self.opts.max_frames.is_some_and(|m| self.stats.count() >= m) {
                return Ok(None);
            }
            let Some(info) = source.next_frame(&mut self.frame)? else { return Ok(None) };
            self.frames_read += 1;
            self.dropped += info.dropped;
            if !(self.frames_read - 1).is_multiple_of(self.opts.every) {
                self.skipped_every += 1;
                continue;
            }
            let t0 = Instant::now();
            let (w, h) = (self.frame.width, self.frame.height);
            if self.pre.as_ref().map(Preprocessor::source_size) != Some((w, h)) {
                log::debug!("{}: frames of {w}x{h}", source.name());
                self.pre = Some(Preprocessor::new(&self.preprocess, w, h)?);
            }
            if let Some(p) = self.pre.as_mut() {
                p.run(self.frame.pixels(), &mut self.input)?;
            }
            self.model.run_into(&self.input, &mut self.output)?;
            if self.opts.softmax {
                softmax_in_place(&mut self.output);
            }
            top_k(&self.output, self.opts.top, &mut self.top);
            let now = Instant::now();
            let latency_ms = now.duration_since(t0).as_secs_f64() * 1e3;
            self.stats.record(latency_ms, now);
            return Ok(Some(FrameReport {
                index: info.index,
                dropped: info.dropped,
                width: w,
                height: h,
                latency_ms,
                age_ms: now.saturating_duration_since(info.captured).as_secs_f64() * 1e3,
                top: &self.top,
                fps: self.stats.rolling_fps(),
                window_p50_ms: self.stats.rolling_p50(),
                name: source.frame_name(),
            }));
        }
    }

    /// The figures so far; `corrupt` is the source's count of undecodable frames.
    pub fn summary(&self, corrupt: u64) -> Summary {
        Summary {
            frames: self.frames_read + self.dropped,
            processed: self.stats.count(),
            dropped: self.dropped,
            corrupt,
            skipped_every: self.skipped_every,
            elapsed_s: self.stats.elapsed_s(),
            fps: self.stats.overall_fps(),
            latency_ms: self.stats.latency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::synthetic::SyntheticSource;

    /// Scores = mean of each input channel, repeated.
    struct Stub;
    impl Model for Stub {
        fn input_shape(&self) -> [usize; 4] {
            [1, 3, 8, 8]
        }
        fn output_len(&self) -> usize {
            4
        }
        fn run_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<()> {
            for (c, o) in out.iter_mut().enumerate() {
                *o = input[(c % 3) * 64..(c % 3 + 1) * 64].iter().sum::<f32>() / 64.0 + c as f32 * 0.01;
            }
            Ok(())
        }
    }

    #[test]
    fn every_max_frames_and_summary() {
        let pre = Preprocess::torchvision(8);
        let opts = StreamOptions { top: 2, every: 3, max_frames: Some(4), softmax: true };
        let mut r = StreamRunner::new(Stub, pre, opts).unwrap();
        let mut src = SyntheticSource::new(20, 10, None);
        let mut idx = Vec::new();
        while let Some(f) = r.step(&mut src).unwrap() {
            assert_eq!(f.top.len(), 2);
            let s: f32 = f.top.iter().map(|p| p.score).sum();
            assert!(s > 0.0 && s <= 1.0 + 1e-6);
            idx.push(f.index);
        }
        assert_eq!(idx, [0, 3, 6, 9]);
        let s = r.summary(0);
        assert_eq!((s.frames, s.processed, s.skipped_every, s.dropped), (10, 4, 6, 0));
        assert!(s.latency_ms.p50 > 0.0 && s.latency_ms.max >= s.latency_ms.p99);
    }

    #[test]
    fn a_preprocessing_that_does_not_fit_is_refused() {
        assert!(StreamRunner::new(Stub, Preprocess::torchvision(9), StreamOptions::default()).is_err());
        let bad = StreamOptions { every: 0, ..StreamOptions::default() };
        assert!(StreamRunner::new(Stub, Preprocess::torchvision(8), bad).is_err());
    }
}
