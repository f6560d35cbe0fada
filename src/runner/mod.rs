//! Classification: preprocessing, the engine, top-K and labels, for still images and frames.

pub mod labels;
pub mod stats;
pub mod stream;
pub mod topk;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frames::image_file::RgbFrame;
use crate::frames::preprocess::{Preprocess, Preprocessor};
use crate::onnx::meta;

pub use labels::Labels;
pub use stream::{FrameReport, Model, StreamOptions, StreamRunner, Summary};
pub use topk::{softmax_in_place, top_k, Prediction, TopK, MAX_TOP_K};

/// An engine with its preprocessing and reusable buffers: frame in, logits out.
#[derive(Debug)]
pub struct Classifier {
    engine: Engine,
    preprocess: Preprocess,
    pre: Option<Preprocessor>,
    input: Vec<f32>,
    output: Vec<f32>,
}

/// The preprocessing recorded in an engine's model metadata.
///
/// # Errors
/// [`Error::Config`] when the metadata is absent or malformed.
pub fn preprocess_from_metadata(engine: &Engine) -> Result<Preprocess> {
    preprocess_metadata(engine)?.ok_or_else(|| {
        Error::Config(format!(
            "the model has no `{}` metadata: give the preprocessing explicitly (see `PreprocessOptions::resolve`, or the command line's --preset)",
            meta::PREPROCESS
        ))
    })
}

/// The preprocessing recorded in an engine's model metadata, `None` when the model has none
/// (a model edgenet did not write).
///
/// # Errors
/// [`Error::Config`] when the metadata is there but malformed or unusable.
pub fn preprocess_metadata(engine: &Engine) -> Result<Option<Preprocess>> {
    let Some(json) = engine.metadata(meta::PREPROCESS) else { return Ok(None) };
    let p: Preprocess = serde_json::from_str(json).map_err(|e| Error::Config(format!("metadata {}: {e}", meta::PREPROCESS)))?;
    p.validate().map_err(|e| Error::Config(format!("metadata {}: {e}", meta::PREPROCESS)))?;
    Ok(Some(p))
}

impl Classifier {
    /// Wraps `engine`; `preprocess` defaults to the model's metadata.
    ///
    /// # Errors
    /// No usable preprocessing, or one whose size does not match the model input.
    pub fn new(engine: Engine, preprocess: Option<Preprocess>) -> Result<Self> {
        let preprocess = match preprocess {
            Some(p) => p,
            None => preprocess_from_metadata(&engine)?,
        };
        preprocess.validate()?;
        let [_, c, h, w] = engine.input_shape();
        if c != 3 || h != preprocess.height || w != preprocess.width {
            return Err(Error::Config(format!("preprocessing makes 3×{}×{} tensors but the model takes {c}×{h}×{w}", preprocess.height, preprocess.width)));
        }
        let input = vec![0.0; engine.input_len()];
        let output = vec![0.0; engine.output_len()];
        Ok(Classifier { engine, preprocess, pre: None, input, output })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The preprocessing in use.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.output.len()
    }

    /// Preprocesses a packed RGB8 frame of `width`×`height` into the reused input buffer.
    /// Resampling coefficients are rebuilt only when the frame size changes.
    ///
    /// # Errors
    /// A frame whose byte count does not match its size.
    pub fn load_frame(&mut self, rgb: &[u8], width: usize, height: usize) -> Result<()> {
        if self.pre.as_ref().map(Preprocessor::source_size) != Some((width, height)) {
            self.pre = Some(Preprocessor::new(&self.preprocess, width, height)?);
        }
        match self.pre.as_mut() {
            Some(p) => p.run(rgb, &mut self.input),
            None => Err(Error::Input("no preprocessor".into())),
        }
    }

    /// The current input tensor (after [`load_frame`](Self::load_frame)).
    pub fn input(&self) -> &[f32] {
        &self.input
    }

    /// Runs the model on the current input and returns the logits.
    ///
    /// # Errors
    /// An engine failure.
    pub fn infer(&mut self) -> Result<&[f32]> {
        self.engine.run_into(&self.input, &mut self.output)?;
        Ok(&self.output)
    }

    /// Preprocesses and runs one frame; returns the logits.
    ///
    /// # Errors
    /// As [`load_frame`](Self::load_frame) and [`infer`](Self::infer).
    pub fn classify(&mut self, frame: &RgbFrame) -> Result<&[f32]> {
        self.load_frame(&frame.data, frame.width, frame.height)?;
        self.infer()
    }
}
