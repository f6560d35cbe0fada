//! Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
//! Equalization and Bias Correction", ICCV, arXiv:1906.04721, §4.1).
//!
//! For two convs joined by a positively homogeneous activation, output channel `i` of the
//! first is scaled by `1/sᵢ` and input channel `i` of the second by `sᵢ`, with
//! `sᵢ = √(r1ᵢ / r2ᵢ)`, so both channel weight ranges become `√(r1ᵢ r2ᵢ)`. The network
//! function is unchanged for ReLU; ReLU6 is not homogeneous, so, as in the paper, a ReLU6
//! between equalized convs becomes a ReLU (the int8 output range still clips).

use crate::error::Result;
use crate::graph::{Conv2d, Op};
use crate::model::Model;

/// A conv pair that can be equalized: conv1 → (activation) → conv2.
#[derive(Debug, Clone, Copy)]
struct Pair {
    conv1: usize,
    act: Option<usize>,
    conv2: usize,
}

fn pairs(model: &Model) -> Vec<Pair> {
    let g = &model.graph;
    let consumers = g.consumer_counts();
    let nodes = g.nodes();
    let mut out = Vec::new();
    for (j, n) in nodes.iter().enumerate() {
        let Op::Conv2d(c2) = &n.op else { continue };
        if !(c2.groups == 1 || c2.is_depthwise()) {
            continue;
        }
        let mut src = n.inputs[0].index();
        let mut act = None;
        if matches!(nodes[src].op, Op::Relu | Op::Relu6) {
            if consumers[src] != 1 {
                continue;
            }
            act = Some(src);
            src = nodes[src].inputs[0].index();
        }
        if let Op::Conv2d(c1) = &nodes[src].op {
            if consumers[src] == 1 && (c1.groups == 1 || c1.is_depthwise()) && c1.bias {
                out.push(Pair { conv1: src, act, conv2: j });
            }
        }
    }
    out
}

fn out_channel_range(w: &[f32], c: &Conv2d, o: usize) -> f32 {
    let per = w.len() / c.out_channels;
    w[o * per..(o + 1) * per].iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn in_channel_range(w: &[f32], c: &Conv2d, i: usize) -> f32 {
    let k = c.kernel[0] * c.kernel[1];
    if c.is_depthwise() {
        return w[i * k..(i + 1) * k].iter().fold(0f32, |m, v| m.max(v.abs()));
    }
    let per_out = c.in_channels * k;
    (0..c.out_channels).flat_map(|o| w[o * per_out + i * k..o * per_out + (i + 1) * k].iter()).fold(0f32, |m, v| m.max(v.abs()))
}

/// Equalizes every eligible conv pair of a BatchNorm-folded model, `iterations` sweeps.
/// Returns the equalized model and the number of pairs.
///
/// # Errors
/// Weights missing from the model (excluded by [`Model::new`]).
pub fn equalize(model: &Model, iterations: usize) -> Result<(Model, usize)> {
    let mut m = model.clone();
    let ps = pairs(&m);
    for _ in 0..iterations {
        for p in &ps {
            let nodes = m.graph.nodes();
            let (Op::Conv2d(c1), Op::Conv2d(c2)) = (&nodes[p.conv1].op, &nodes[p.conv2].op) else { continue };
            let (c1, c2) = (c1.clone(), c2.clone());
            let (n1, n2) = (nodes[p.conv1].name.clone(), nodes[p.conv2].name.clone());
            let w1 = m.weights.require(&format!("{n1}.weight"))?.clone();
            let b1 = m.weights.require(&format!("{n1}.bias"))?.clone();
            let w2 = m.weights.require(&format!("{n2}.weight"))?.clone();
            let scales: Vec<f32> = (0..c1.out_channels)
                .map(|i| {
                    let (r1, r2) = (out_channel_range(&w1.data, &c1, i), in_channel_range(&w2.data, &c2, i));
                    if r1 > 0.0 && r2 > 0.0 && (r1 / r2).is_finite() {
                        (r1 / r2).sqrt()
                    } else {
                        1.0
                    }
                })
                .collect();
            let (mut w1, mut b1, mut w2) = (w1, b1, w2);
            let per1 = w1.data.len() / c1.out_channels;
            for (i, s) in scales.iter().enumerate() {
                w1.data[i * per1..(i + 1) * per1].iter_mut().for_each(|v| *v /= s);
                b1.data[i] /= s;
            }
            let k = c2.kernel[0] * c2.kernel[1];
            if c2.is_depthwise() {
                for (i, s) in scales.iter().enumerate() {
                    w2.data[i * k..(i + 1) * k].iter_mut().for_each(|v| *v *= s);
                }
            } else {
                let per_out = c2.in_channels * k;
                for o in 0..c2.out_channels {
                    for (i, s) in scales.iter().enumerate() {
                        w2.data[o * per_out + i * k..o * per_out + (i + 1) * k].iter_mut().for_each(|v| *v *= s);
                    }
                }
            }
            m.weights.insert(format!("{n1}.weight"), w1);
            m.weights.insert(format!("{n1}.bias"), b1);
            m.weights.insert(format!("{n2}.weight"), w2);
        }
    }
    for p in &ps {
        if let Some(a) = p.act {
            if m.graph.nodes[a].op == Op::Relu6 {
                m.graph.nodes[a].op = Op::Relu;
            }
        }
    }
    Ok((m, ps.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::reference;
    use crate::zoo::{self, Arch, WeightSource, ZooConfig};

    #[test]
    fn equalization_keeps_a_relu_network_and_balances_ranges() {
        let cfg = ZooConfig { width_mult: 1.0, resolution: 32, num_classes: 10 };
        let m = zoo::build(Arch::ResNet18, &cfg, WeightSource::Seeded(4)).unwrap().fold_batch_norms().unwrap();
        let (e, n) = equalize(&m, 4).unwrap();
        assert!(n > 0);
        let x: Vec<f32> = (0..3 * 32 * 32).map(|i| ((i * 31 % 97) as f32 / 48.0) - 1.0).collect();
        let a = reference::run(&m.graph, &m.weights, &x).unwrap();
        let b = reference::run(&e.graph, &e.weights, &x).unwrap();
        let scale = a.iter().fold(0f32, |s, v| s.max(v.abs()));
        let diff = a.iter().zip(&b).fold(0f32, |s, (p, q)| s.max((p - q).abs()));
        assert!(diff <= 1e-4 * scale, "{diff} vs {scale}");
        // After equalization the two ranges of each channel of a pair agree.
        let p = pairs(&e)[0];
        let nodes = e.graph.nodes();
        let (Op::Conv2d(c1), Op::Conv2d(c2)) = (&nodes[p.conv1].op, &nodes[p.conv2].op) else { panic!() };
        let w1 = &e.weights.get(&format!("{}.weight", nodes[p.conv1].name)).unwrap().data;
        let w2 = &e.weights.get(&format!("{}.weight", nodes[p.conv2].name)).unwrap().data;
        for i in 0..c1.out_channels {
            let (r1, r2) = (out_channel_range(w1, c1, i), in_channel_range(w2, c2, i));
            assert!((r1 - r2).abs() <= 1e-3 * r1.max(r2), "channel {i}: {r1} vs {r2}");
        }
    }
}
