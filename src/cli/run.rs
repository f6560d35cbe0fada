//! `edgenet run`: classify a stream of frames (camera, pipe, files, synthetic) and report
//! top-K, latency and FPS per frame, then a summary (also on Ctrl-C).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use edgenet::frames::spec::parse_size;
use edgenet::frames::{LiveMode, SourceKind, SourceSpec, StreamFormat, YuvRange};
use edgenet::onnx::OUTPUT_PROBABILITIES;
use edgenet::runner::{FrameReport, Labels, StreamOptions, StreamRunner, Summary, MAX_TOP_K};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Range {
    /// 16–235 (cameras, video).
    Limited,
    /// 0–255 (JPEG, "PC" range).
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Live {
    /// Live for cameras, pipes, FIFOs and paced synthetic sources; every frame for files.
    Auto,
    /// Always work on the newest frame and count the ones skipped.
    On,
    /// Process every frame in order (a recording through a pipe).
    Off,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// ONNX model (edgenet's own files carry their preprocessing and label set; for others,
    /// give --preset or the preprocessing options, else ImageNet's is assumed with a warning);
    /// optional in a binary built with a model inside (EDGENET_EMBED_MODEL).
    pub model: Option<PathBuf>,
    /// Frames: an image file or directory, a raw/MJPEG file or FIFO, `-` (stdin), /dev/videoN,
    /// or synthetic[:WxH][@FPS].
    #[arg(long, value_name = "SPEC")]
    pub source: String,
    /// Stream format: rgb24, bgr24, yuv420, nv12, yuyv or mjpeg.
    #[arg(long, value_name = "FMT", value_parser = parse_format)]
    pub format: Option<StreamFormat>,
    /// Same as --format mjpeg.
    #[arg(long, conflicts_with = "format")]
    pub mjpeg: bool,
    /// Frame size of raw streams (requested size for cameras), WxH.
    #[arg(long, value_name = "WxH", value_parser = parse_size_arg)]
    pub size: Option<(usize, usize)>,
    /// YUV range of the stream.
    #[arg(long, value_enum, default_value_t = Range::Limited)]
    pub yuv_range: Range,
    /// Newest-frame-wins (drop frames the model has no time for) or every frame.
    #[arg(long, value_enum, default_value_t = Live::Auto)]
    pub live: Live,
    /// How many classes to show per frame.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=MAX_TOP_K as i64))]
    pub top: u16,
    /// One JSON object per line (frames, then a summary with "type": "summary").
    #[arg(long)]
    pub json: bool,
    /// Classify every N-th frame read.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Stop after this many classified frames.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_frames: Option<u64>,
    /// Class names, one per line (default: the model's label set, if edgenet ships it).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[command(flatten)]
    pub engine: super::EngineArgs,
    #[command(flatten)]
    pub preprocess: super::preprocess::PreprocessArgs,
}

fn parse_format(s: &str) -> Result<StreamFormat, String> {
    StreamFormat::parse(s).ok_or_else(|| format!("unknown format `{s}` (rgb24, bgr24, yuv420, nv12, yuyv, mjpeg)"))
}

fn parse_size_arg(s: &str) -> Result<(usize, usize), String> {
    parse_size(s).ok_or_else(|| format!("`{s}` is not a size WxH like 640x480"))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: stop at once.
        // SAFETY: `_exit` is async-signal-safe and does not return.
        unsafe { libc::_exit(130) };
    }
}

/// Ctrl-C (SIGINT) and SIGTERM (what `systemctl stop` and `kill` send) end the stream after the
/// current frame, with the summary.
fn catch_ctrl_c() {
    #[cfg(unix)]
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_sigint` has the C signature `signal` expects (`extern "C" fn(c_int)`)
        // and does only what is async-signal-safe (an atomic swap, `_exit`); installing it
        // changes no memory of this program.
        unsafe {
            libc::signal(signal, on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct TopItem<'a> {
    index: usize,
    label: Option<&'a str>,
    probability: f32,
}

#[derive(Debug, Serialize)]
struct FrameLine<'a> {
    r#type: &'static str,
    index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    width: usize,
    height: usize,
    dropped: u64,
    latency_ms: f64,
    age_ms: f64,
    fps: f64,
    top: &'a [TopItem<'a>],
}

#[derive(Debug, Serialize)]
struct SummaryLine<'a> {
    r#type: &'static str,
    source: &'a str,
    interrupted: bool,
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Resident memory (VmRSS), where the system reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    resident: Option<Resident>,
}

/// Resident memory over a run: after warm-up ([`WARM_UP_FRAMES`] frames classified) and at the
/// end, so that growth over a long run shows (a leak would).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Resident {
    /// VmRSS after the warm-up frames, in bytes (absent if fewer were classified).
    #[serde(skip_serializing_if = "Option::is_none")]
    after_warm_up_bytes: Option<u64>,
    /// VmRSS when the stream ended, in bytes.
    end_bytes: u64,
    /// VmHWM, the peak, in bytes.
    peak_bytes: u64,
}

/// Frames classified before the warm-up reading of resident memory.
const WARM_UP_FRAMES: u64 = 100;

fn write_frame(out: &mut dyn Write, f: &FrameReport<'_>, labels: Option<&Labels>, json: bool) -> std::io::Result<()> {
    let mut items = [TopItem::default(); MAX_TOP_K];
    let n = f.top.len();
    for (item, p) in items.iter_mut().zip(f.top.iter()) {
        *item = TopItem { index: p.index, label: labels.and_then(|l| l.get(p.index)), probability: p.score };
    }
    if json {
        let line = FrameLine {
            r#type: "frame",
            index: f.index,
            file: f.name,
            width: f.width,
            height: f.height,
            dropped: f.dropped,
            latency_ms: f.latency_ms,
            age_ms: f.age_ms,
            fps: f.fps,
            top: &items[..n],
        };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        writeln!(out)
    } else {
        write!(out, "frame {:>6}", f.index)?;
        if let Some(name) = f.name {
            write!(out, " {name}")?;
        }
        write!(out, "  {:7.2} ms  {:6.1} fps", f.latency_ms, f.fps)?;
        if f.dropped > 0 {
            write!(out, "  ({} dropped)", f.dropped)?;
        }
        for (rank, it) in items[..n].iter().enumerate() {
            write!(out, "{}", if rank == 0 { "  " } else { " | " })?;
            match it.label {
                Some(l) => write!(out, "{l}")?,
                None => write!(out, "class {}", it.index)?,
            }
            write!(out, " {:.1}%", it.probability * 100.0)?;
        }
        writeln!(out)
    }
}

fn write_summary(
    out: &mut dyn Write,
    s: &Summary,
    source: &str,
    interrupted: bool,
    error: Option<String>,
    resident: Option<Resident>,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = SummaryLine { r#type: "summary", source, interrupted, summary: s, error, resident };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        writeln!(out)
    } else {
        writeln!(
            out,
            "summary{}: {} frames, {} classified, {} dropped (busy), {} corrupt (skipped), {} passed over (--every); {:.1} fps over {:.2} s",
            if interrupted { " (interrupted)" } else { "" },
            s.frames,
            s.processed,
            s.dropped,
            s.corrupt,
            s.skipped_every,
            s.fps,
            s.elapsed_s
        )?;
        let l = &s.latency_ms;
        writeln!(out, "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  mean {:.2}  min {:.2}  max {:.2}", l.p50, l.p90, l.p99, l.mean, l.min, l.max)?;
        if let Some(r) = resident {
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            write!(out, "resident MiB: peak {:.1}, end {:.1}", mib(r.peak_bytes), mib(r.end_bytes))?;
            if let Some(w) = r.after_warm_up_bytes {
                write!(out, ", after {WARM_UP_FRAMES} frames {:.1}", mib(w))?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

pub fn run(args: &RunArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let kind = SourceKind::parse(&args.source)?;
    let format = if args.mjpeg { Some(StreamFormat::Mjpeg) } else { args.format };
    let spec = SourceSpec {
        kind,
        format,
        size: args.size,
        range: match args.yuv_range {
            Range::Limited => YuvRange::Limited,
            Range::Full => YuvRange::Full,
        },
        live: match args.live {
            Live::Auto => LiveMode::Auto,
            Live::On => LiveMode::On,
            Live::Off => LiveMode::Off,
        },
        limit: None,
    };
    let opts = args.engine.options();
    let model = super::ModelSource::from_arg(args.model.as_deref())?;
    let engine = model.load_sized(&opts, &args.preprocess, &mut |_| {})?;
    // Loading frees more than it keeps (the decoded protobuf, tract's intermediate graphs): give
    // those pages back before the stream starts, as `bench` and `footprint` do.
    edgenet::alloc::release_free_heap();
    let preprocess = args.preprocess.resolve_for(&model, &engine)?;
    let (labels, label_err) = super::classify::resolve_labels(args.labels.as_deref(), &engine);
    if let Some(e) = label_err {
        return Err(e.context("--labels"));
    }
    let stream_opts =
        StreamOptions { top: args.top as usize, every: args.every, max_frames: args.max_frames, softmax: engine.output_name() != OUTPUT_PROBABILITIES };
    let session = engine.session()?;
    let mut runner = StreamRunner::new(session, preprocess, stream_opts)?;
    let mut source = spec.open()?;
    log::info!("{model}: {} on {}{}", engine.origin(), source.name(), if source.is_live() { " (live)" } else { "" });
    catch_ctrl_c();
    let mut error = None;
    let mut classified = 0u64;
    let mut after_warm_up = None;
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        match runner.step(&mut *source) {
            Ok(Some(f)) => {
                write_frame(out, &f, labels.as_ref(), args.json)?;
                classified += 1;
                if classified == WARM_UP_FRAMES {
                    after_warm_up = edgenet::alloc::rss().map(|r| r.1);
                }
            }
            Ok(None) => break,
            // After Ctrl-C the producer (rpicam-vid in the same process group) may die mid-frame:
            // that is how the stream ends, not an error.
            Err(e) if INTERRUPTED.load(Ordering::Relaxed) => {
                log::info!("after Ctrl-C: {e}");
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let corrupt = source.corrupt();
    let summary = runner.summary(corrupt);
    let interrupted = INTERRUPTED.load(Ordering::Relaxed);
    let resident = edgenet::alloc::rss().map(|(peak_bytes, end_bytes)| Resident { after_warm_up_bytes: after_warm_up, end_bytes, peak_bytes });
    write_summary(out, &summary, source.name(), interrupted, error.as_ref().map(|e| e.to_string()), resident, args.json)?;
    out.flush()?;
    if let Some(e) = error {
        return Err(e.into());
    }
    if corrupt > 0 {
        anyhow::bail!("{}: {corrupt} corrupt frame(s) skipped (see the warnings above)", source.name());
    }
    Ok(())
}
