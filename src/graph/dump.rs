//! A stable, human-readable text dump of a graph: one line per node.

use std::fmt::Write;

use super::{Graph, Op};

fn attrs(op: &Op) -> String {
    match op {
        Op::Conv2d(c) => {
            let mut s = format!("k{}x{} s{} p{},{},{},{}", c.kernel[0], c.kernel[1], c.stride[0], c.pads[0], c.pads[1], c.pads[2], c.pads[3]);
            if c.dilation != [1, 1] {
                let _ = write!(s, " d{}", c.dilation[0]);
            }
            if c.groups != 1 {
                let _ = write!(s, " g{}", c.groups);
            }
            if c.bias {
                s.push_str(" +bias");
            }
            s
        }
        Op::BatchNorm { eps, .. } => format!("eps={eps:e}"),
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let mut s = if p.pads[1..].iter().all(|&v| v == p.pads[0]) && p.stride[0] == p.stride[1] {
                format!("k{}x{} s{} p{}", p.kernel[0], p.kernel[1], p.stride[0], p.pads[0])
            } else {
                format!("k{}x{} s{},{} p{},{},{},{}", p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.pads[0], p.pads[1], p.pads[2], p.pads[3])
            };
            if p.ceil_mode {
                s.push_str(" ceil");
            }
            if p.count_include_pad {
                s.push_str(" count_pad");
            }
            s
        }
        Op::HardSigmoid { alpha, beta } => format!("alpha={alpha} beta={beta}"),
        Op::Concat { axis } => format!("axis={axis}"),
        Op::ReduceMean { axes, keepdims } => format!("axes={axes:?}{}", if *keepdims { " keepdims" } else { "" }),
        Op::Transpose { perm } => format!("perm={perm:?}"),
        Op::Slice { axis, start, end } => format!("axis={axis} {start}..{end}"),
        Op::Linear { bias, .. } => {
            if *bias {
                "+bias".into()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

impl Graph {
    /// One line per node: name, op and attributes, inputs, output shape, parameters and MACs;
    /// then totals. Stable across runs, so it serves as a golden file.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let inputs: Vec<&str> = n.inputs.iter().map(|t| self.nodes[t.0].name.as_str()).collect();
            let params: u64 = n.params().iter().filter(|p| p.trainable).map(|p| p.shape.iter().map(|&d| d as u64).product::<u64>()).sum();
            let _ = writeln!(out, "{} = {}({}) {}  {:?}  params={} macs={}", n.name, n.op.kind(), inputs.join(", "), attrs(&n.op), n.shape, params, n.macs());
        }
        let _ = writeln!(out, "output: {}", self.nodes[self.output.0].name);
        let _ = writeln!(out, "total params={} macs={}", self.param_count(), self.macs());
        out
    }
}
