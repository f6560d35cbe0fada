//! Folding inference-mode BatchNorm into the convolution that feeds it.

use super::{Graph, Op, Tensor, TensorId, Weights};
use crate::error::{Error, Result};

/// Folds every BatchNorm whose input is a convolution used by nothing else into that
/// convolution's weight and bias:
/// `W' = W · γ/√(σ²+ε)` per output channel, `b' = (b − μ) · γ/√(σ²+ε) + β`, in f64.
/// The conv keeps its name and gains a bias; the BN node and its tensors disappear.
/// BatchNorms that cannot be folded are kept.
///
/// # Errors
/// A weight the graph needs is missing or mis-shaped.
pub fn fold_batch_norms(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights)> {
    weights.validate(graph)?;
    let consumers = graph.consumer_counts();
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    let mut remap: Vec<TensorId> = Vec::with_capacity(graph.nodes.len());
    let mut w = weights.clone();
    for node in &graph.nodes {
        if let Op::BatchNorm { eps, .. } = node.op {
            let src = node.inputs[0];
            if matches!(graph.nodes[src.0].op, Op::Conv2d(_)) && consumers[src.0] == 1 {
                let target = remap[src.0];
                let conv_node: &mut super::Node = &mut nodes[target.0];
                let Op::Conv2d(conv) = &mut conv_node.op else {
                    return Err(Error::shape(&node.name, "internal: folding target is not a conv"));
                };
                let bn = |s: &str| w.require(&format!("{}.{s}", node.name)).map(|t| t.data.clone());
                let (gamma, beta, mean, var) = (bn("weight")?, bn("bias")?, bn("running_mean")?, bn("running_var")?);
                let wkey = format!("{}.weight", conv_node.name);
                let bkey = format!("{}.bias", conv_node.name);
                let mut wt = w.require(&wkey)?.clone();
                let old_bias = if conv.bias { w.require(&bkey)?.data.clone() } else { vec![0.0; conv.out_channels] };
                let per_out = wt.data.len() / conv.out_channels;
                let mut bias = Vec::with_capacity(conv.out_channels);
                for o in 0..conv.out_channels {
                    let s = gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt();
                    for v in &mut wt.data[o * per_out..(o + 1) * per_out] {
                        *v = (*v as f64 * s) as f32;
                    }
                    bias.push(((old_bias[o] as f64 - mean[o] as f64) * s + beta[o] as f64) as f32);
                }
                conv.bias = true;
                w.insert(wkey, wt);
                w.insert(bkey, Tensor { shape: vec![conv.out_channels], data: bias });
                for s in ["weight", "bias", "running_mean", "running_var"] {
                    w.remove(&format!("{}.{s}", node.name));
                }
                remap.push(target);
                continue;
            }
        }
        let mut n = node.clone();
        n.inputs = node.inputs.iter().map(|t| remap[t.0]).collect();
        nodes.push(n);
        remap.push(TensorId(nodes.len() - 1));
    }
    let g = Graph { nodes, output: remap[graph.output.0] };
    w.validate(&g)?;
    Ok((g, w))
}
