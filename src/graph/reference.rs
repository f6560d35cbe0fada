//! A naive, obviously-correct interpreter of the IR in f64. It is slow and meant for tests
//! on small networks, as a judge of the exported files that needs no external runtime (it
//! also runs on ARM under emulation).

use super::{Graph, Op, Weights};
use crate::error::{Error, Result};

fn param<'a>(w: &'a Weights, node: &str, s: &str) -> Result<&'a [f32]> {
    Ok(&w.require(&format!("{node}.{s}"))?.data)
}

/// Runs `graph` on `input` (`[1, C, H, W]`, row-major) and returns the flattened output.
///
/// # Errors
/// `input` of the wrong length, or weights that do not fit the graph.
pub fn run(graph: &Graph, weights: &Weights, input: &[f32]) -> Result<Vec<f32>> {
    weights.validate(graph)?;
    let want: usize = graph.input_shape().iter().product();
    if input.len() != want {
        return Err(Error::Input(format!("reference run needs {want} values, got {}", input.len())));
    }
    let mut values: Vec<Vec<f64>> = Vec::with_capacity(graph.nodes().len());
    for node in graph.nodes() {
        let inp = |i: usize| -> &Vec<f64> { &values[node.inputs[i].index()] };
        let in_shape = |i: usize| -> &[usize] { &graph.nodes()[node.inputs[i].index()].shape };
        let v: Vec<f64> = match &node.op {
            Op::Input => input.iter().map(|&x| x as f64).collect(),
            Op::Conv2d(c) => {
                let x = inp(0);
                let (ih, iw) = (in_shape(0)[2], in_shape(0)[3]);
                let (oh, ow) = (node.shape[2], node.shape[3]);
                let w = param(weights, &node.name, "weight")?;
                let b = if c.bias { Some(param(weights, &node.name, "bias")?) } else { None };
                let cin_g = c.in_channels / c.groups;
                let cout_g = c.out_channels / c.groups;
                let (kh, kw) = (c.kernel[0], c.kernel[1]);
                let mut y = vec![0.0; c.out_channels * oh * ow];
                for o in 0..c.out_channels {
                    let g = o / cout_g;
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = b.map_or(0.0, |b| b[o] as f64);
                            for ci in 0..cin_g {
                                let ch = g * cin_g + ci;
                                for ky in 0..kh {
                                    let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - c.pads[0] as isize;
                                    if iy < 0 || iy >= ih as isize {
                                        continue;
                                    }
                                    for kx in 0..kw {
                                        let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - c.pads[1] as isize;
                                        if ix < 0 || ix >= iw as isize {
                                            continue;
                                        }
                                        let xv = x[(ch * ih + iy as usize) * iw + ix as usize];
                                        acc += xv * w[((o * cin_g + ci) * kh + ky) * kw + kx] as f64;
                                    }
                                }
                            }
                            y[(o * oh + oy) * ow + ox] = acc;
                        }
                    }
                }
                y
            }
            Op::BatchNorm { channels, eps } => {
                let x = inp(0);
                let hw = x.len() / channels;
                let (g, b, m, var) = (
                    param(weights, &node.name, "weight")?,
                    param(weights, &node.name, "bias")?,
                    param(weights, &node.name, "running_mean")?,
                    param(weights, &node.name, "running_var")?,
                );
                x.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let c = i / hw;
                        (v - m[c] as f64) / (var[c] as f64 + *eps as f64).sqrt() * g[c] as f64 + b[c] as f64
                    })
                    .collect()
            }
            Op::Relu => inp(0).iter().map(|&v| v.max(0.0)).collect(),
            Op::Relu6 => inp(0).iter().map(|&v| v.clamp(0.0, 6.0)).collect(),
            Op::Add => inp(0).iter().zip(inp(1)).map(|(a, b)| a + b).collect(),
            Op::AvgPool(p) => {
                let x = inp(0);
                let (ih, iw) = (in_shape(0)[2] as isize, in_shape(0)[3] as isize);
                let (c, oh, ow) = (node.shape[1], node.shape[2], node.shape[3]);
                let mut y = vec![0.0; c * oh * ow];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let y0 = (oy * p.stride[0]) as isize - p.pads[0] as isize;
                            let x0 = (ox * p.stride[1]) as isize - p.pads[1] as isize;
                            let (y1, x1) = (y0 + p.kernel[0] as isize, x0 + p.kernel[1] as isize);
                            let (mut sum, mut valid) = (0.0, 0usize);
                            for iy in y0.max(0)..y1.min(ih) {
                                for ix in x0.max(0)..x1.min(iw) {
                                    sum += x[(ch * ih as usize + iy as usize) * iw as usize + ix as usize];
                                    valid += 1;
                                }
                            }
                            // With padding counted, the window is clipped to the padded input.
                            let padded = (y1.min(ih + p.pads[2] as isize) - y0) * (x1.min(iw + p.pads[3] as isize) - x0);
                            let div = if p.count_include_pad { padded as usize } else { valid };
                            y[(ch * oh + oy) * ow + ox] = sum / div.max(1) as f64;
                        }
                    }
                }
                y
            }
            Op::Sigmoid => inp(0).iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
            Op::HardSigmoid { alpha, beta } => inp(0).iter().map(|&v| (*alpha as f64 * v + *beta as f64).clamp(0.0, 1.0)).collect(),
            Op::HardSwish => inp(0).iter().map(|&v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)).collect(),
            Op::Mul => {
                let (a, b) = (inp(0), inp(1));
                let (sa, sb) = (in_shape(0), in_shape(1));
                let out = &node.shape;
                let n: usize = out.iter().product();
                (0..n).map(|i| a[broadcast_index(i, out, sa)] * b[broadcast_index(i, out, sb)]).collect()
            }
            Op::Concat { axis } => {
                let outer: usize = node.shape[..*axis].iter().product();
                let mut y = Vec::with_capacity(node.shape.iter().product());
                for o in 0..outer {
                    for k in 0..node.inputs.len() {
                        let inner: usize = in_shape(k)[*axis..].iter().product();
                        y.extend_from_slice(&inp(k)[o * inner..(o + 1) * inner]);
                    }
                }
                y
            }
            Op::ReduceMean { axes, .. } => {
                let s = in_shape(0);
                let kept: Vec<usize> = (0..s.len()).map(|i| if axes.contains(&i) { 1 } else { s[i] }).collect();
                let n: usize = kept.iter().product();
                let count: usize = axes.iter().map(|&a| s[a]).product();
                let mut y = vec![0.0; n];
                for (i, v) in inp(0).iter().enumerate() {
                    y[broadcast_index(i, s, &kept)] += v;
                }
                y.iter().map(|v| v / count as f64).collect()
            }
            Op::Reshape => inp(0).clone(),
            Op::Transpose { perm } => {
                let s = in_shape(0);
                let strides = strides_of(s);
                let n: usize = node.shape.iter().product();
                (0..n)
                    .map(|i| {
                        let mut rem = i;
                        let mut src = 0;
                        for (d, &p) in perm.iter().enumerate() {
                            let inner: usize = node.shape[d + 1..].iter().product();
                            src += rem / inner * strides[p];
                            rem %= inner;
                        }
                        inp(0)[src]
                    })
                    .collect()
            }
            Op::Slice { axis, start, end } => {
                let s = in_shape(0);
                let outer: usize = s[..*axis].iter().product();
                let inner: usize = s[axis + 1..].iter().product();
                let mut y = Vec::with_capacity(node.shape.iter().product());
                for o in 0..outer {
                    let base = o * s[*axis] * inner;
                    y.extend_from_slice(&inp(0)[base + start * inner..base + end * inner]);
                }
                y
            }
            Op::MaxPool(p) => {
                let x = inp(0);
                let (ih, iw) = (in_shape(0)[2], in_shape(0)[3]);
                let (c, oh, ow) = (node.shape[1], node.shape[2], node.shape[3]);
                let mut y = vec![f64::NEG_INFINITY; c * oh * ow];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for ky in 0..p.kernel[0] {
                                for kx in 0..p.kernel[1] {
                                    let iy = (oy * p.stride[0] + ky) as isize - p.pads[0] as isize;
                                    let ix = (ox * p.stride[1] + kx) as isize - p.pads[1] as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < ih && (ix as usize) < iw {
                                        let v = x[(ch * ih + iy as usize) * iw + ix as usize];
                                        let o = &mut y[(ch * oh + oy) * ow + ox];
                                        *o = o.max(v);
                                    }
                                }
                            }
                        }
                    }
                }
                y
            }
            Op::GlobalAvgPool => {
                let x = inp(0);
                let c = node.shape[1];
                let hw = x.len() / c;
                (0..c).map(|ch| x[ch * hw..(ch + 1) * hw].iter().sum::<f64>() / hw as f64).collect()
            }
            Op::Flatten => inp(0).clone(),
            Op::Linear { in_features, out_features, bias } => {
                let x = inp(0);
                let w = param(weights, &node.name, "weight")?;
                let b = if *bias { Some(param(weights, &node.name, "bias")?) } else { None };
                (0..*out_features)
                    .map(|o| {
                        let dot: f64 = (0..*in_features).map(|i| x[i] * w[o * in_features + i] as f64).sum();
                        dot + b.map_or(0.0, |b| b[o] as f64)
                    })
                    .collect()
            }
            Op::Softmax => {
                let x = inp(0);
                let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }
        };
        values.push(v);
    }
    Ok(values[graph.output().index()].iter().map(|&v| v as f32).collect())
}

fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// Index into a tensor of shape `from` (broadcast to `out`, NumPy rules) of flat output index `i`.
fn broadcast_index(i: usize, out: &[usize], from: &[usize]) -> usize {
    let st = strides_of(from);
    let lead = out.len() - from.len();
    let mut rem = i;
    let mut idx = 0;
    for d in 0..out.len() {
        let inner: usize = out[d + 1..].iter().product();
        let c = rem / inner;
        rem %= inner;
        if d >= lead && from[d - lead] != 1 {
            idx += c * st[d - lead];
        }
    }
    idx
}
