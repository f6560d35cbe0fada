//! Parameter tensors: seeded initialisation, safetensors loading and saving, validation
//! against the names and shapes a [`Graph`] asks for.

use std::collections::{BTreeMap, BTreeSet};
#[cfg(feature = "tools")]
use std::path::Path;

use super::Graph;
use crate::error::{Error, Result};

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and data.
    ///
    /// # Errors
    /// `data.len()` differs from the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Config(format!("tensor of shape {shape:?} needs {n} values, got {}", data.len())));
        }
        Ok(Tensor { shape, data })
    }
}

/// Named parameter tensors of a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    map: BTreeMap<String, Tensor>,
}

/// Deterministic pseudo-random numbers (SplitMix64), so seeded weights are the same on every
/// machine and architecture.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.uniform()) as f32
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Keys in PyTorch state dicts that carry no inference data and are skipped on load.
#[cfg(feature = "tools")]
fn ignorable(key: &str) -> bool {
    key.ends_with(".num_batches_tracked")
}

impl Weights {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deterministic random weights for `graph`: He-normal conv and linear weights, small
    /// random biases, and BatchNorm layers with non-trivial scale, shift, mean and variance so
    /// that folding them is really exercised. The same seed gives the same weights everywhere.
    pub fn seeded(graph: &Graph, seed: u64) -> Self {
        let mut rng = SplitMix(seed ^ 0x5EED_ED6E_7000_0000);
        let mut map = BTreeMap::new();
        for node in graph.nodes() {
            let is_bn = matches!(node.op, super::Op::BatchNorm { .. });
            for spec in node.params() {
                let n: usize = spec.shape.iter().product();
                let suffix = spec.key.rsplit('.').next().unwrap_or("");
                let data: Vec<f32> = match (is_bn, suffix) {
                    (true, "weight") | (true, "running_var") => (0..n).map(|_| rng.range(0.5, 1.5)).collect(),
                    (true, _) => (0..n).map(|_| (0.1 * rng.normal()) as f32).collect(),
                    (false, "bias") => (0..n).map(|_| (0.05 * rng.normal()) as f32).collect(),
                    (false, _) => {
                        let fan_in: usize = spec.shape.iter().skip(1).product::<usize>().max(1);
                        let std = (2.0 / fan_in as f64).sqrt();
                        (0..n).map(|_| (std * rng.normal()) as f32).collect()
                    }
                };
                map.insert(spec.key, Tensor { shape: spec.shape, data });
            }
        }
        Weights { map }
    }

    /// The tensor called `key`.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.map.get(key)
    }

    /// The tensor called `key`, or an error naming it.
    ///
    /// # Errors
    /// [`Error::Weight`] when it is missing.
    pub fn require(&self, key: &str) -> Result<&Tensor> {
        self.map.get(key).ok_or_else(|| Error::weight(key, "missing"))
    }

    /// Inserts or replaces a tensor.
    pub fn insert(&mut self, key: impl Into<String>, t: Tensor) {
        self.map.insert(key.into(), t);
    }

    /// Removes a tensor.
    pub fn remove(&mut self, key: &str) -> Option<Tensor> {
        self.map.remove(key)
    }

    /// Tensor names and tensors, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.map.iter()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Checks that the weights are exactly what `graph` needs: every key present with the
    /// right shape and finite values, and no key left over.
    ///
    /// # Errors
    /// [`Error::Weight`] naming the first missing, mis-shaped, non-finite or unexpected key.
    pub fn validate(&self, graph: &Graph) -> Result<()> {
        let mut wanted = BTreeSet::new();
        for spec in graph.param_specs() {
            let t = self.require(&spec.key)?;
            if t.shape != spec.shape {
                return Err(Error::weight(&spec.key, format!("has shape {:?}, the graph needs {:?}", t.shape, spec.shape)));
            }
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(Error::weight(&spec.key, format!("value #{i} is {}", t.data[i])));
            }
            wanted.insert(spec.key);
        }
        if let Some(extra) = self.map.keys().find(|k| !wanted.contains(*k)) {
            return Err(Error::weight(extra, "unexpected: the graph has no parameter of this name"));
        }
        Ok(())
    }

    #[cfg(feature = "tools")]
    /// Loads a safetensors file and checks it against `graph` ([`validate`](Self::validate)).
    /// f32 tensors are read; PyTorch's `num_batches_tracked` counters are skipped.
    ///
    /// # Errors
    /// An unreadable or malformed file, a tensor of another dtype, or any
    /// [`validate`](Self::validate) failure.
    pub fn from_safetensors_file(path: &Path, graph: &Graph) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_safetensors_bytes(&bytes, path, graph)
    }

    #[cfg(feature = "tools")]
    /// Like [`from_safetensors_file`](Self::from_safetensors_file), from bytes already read
    /// (`origin` names them in errors).
    ///
    /// # Errors
    /// As [`from_safetensors_file`](Self::from_safetensors_file).
    pub fn from_safetensors_bytes(bytes: &[u8], origin: &Path, graph: &Graph) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Safetensors { path: origin.to_path_buf(), message: e.to_string() })?;
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            if ignorable(&name) {
                continue;
            }
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(Error::weight(&name, format!("has dtype {:?}; edgenet reads F32 tensors", view.dtype())));
            }
            let data: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let t = Tensor::new(view.shape().to_vec(), data).map_err(|e| Error::weight(&name, e.to_string()))?;
            map.insert(name, t);
        }
        let w = Weights { map };
        w.validate(graph)?;
        Ok(w)
    }

    #[cfg(feature = "tools")]
    /// Serialises all tensors as a safetensors file (f32, little-endian).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let bytes = self.to_safetensors_bytes()?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    #[cfg(feature = "tools")]
    /// The safetensors encoding of all tensors.
    ///
    /// # Errors
    /// Only if the encoder rejects a tensor (it should not).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
            self.map.iter().map(|(k, t)| (k.clone(), t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
        let mut views = Vec::with_capacity(raw.len());
        for (k, shape, bytes) in &raw {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).map_err(|e| Error::weight(k, e.to_string()))?;
            views.push((k.as_str(), v));
        }
        safetensors::serialize(views, &None).map_err(|e| Error::Config(format!("safetensors encoding failed: {e}")))
    }
}
