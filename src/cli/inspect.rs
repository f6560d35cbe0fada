//! `edgenet inspect`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub fn run(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let origin = path.display().to_string();
    let proto = edgenet::onnx::decode(&bytes, &origin)?;
    let opset = proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    writeln!(out, "{}: {} bytes, producer {} {}, IR {}, opset {}", origin, bytes.len(), proto.producer_name, proto.producer_version, proto.ir_version, opset)?;
    for m in &proto.metadata_props {
        writeln!(out, "  {} = {}", m.key, m.value)?;
    }
    let graph = proto.graph.as_ref().context("no graph")?;
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.node {
        *ops.entry(n.op_type.as_str()).or_default() += 1;
    }
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    writeln!(out, "ops: {}", ops.join(" "))?;
    match edgenet::onnx::import_proto(&proto, &origin) {
        Ok(model) => {
            let g = &model.graph;
            writeln!(out, "input {:?} → output {:?}", g.input_shape(), g.output_shape())?;
            writeln!(out, "parameters: {}", g.param_count())?;
            writeln!(out, "MACs: {} ({:.3} G)", g.macs(), g.macs() as f64 / 1e9)?;
            writeln!(out)?;
            let w = g.nodes().iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
            writeln!(out, "{:<w$}  {:<14} {:<20} {:>10} {:>12}", "name", "op", "output", "params", "MACs")?;
            for n in g.nodes() {
                let params: u64 = n.params().iter().filter(|p| p.trainable).map(|p| p.shape.iter().map(|&d| d as u64).product::<u64>()).sum();
                writeln!(out, "{:<w$}  {:<14} {:<20} {:>10} {:>12}", n.name, n.op.kind(), format!("{:?}", n.shape), params, n.macs())?;
            }
        }
        Err(e) => {
            let params: u64 = graph.initializer.iter().map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>()).sum();
            writeln!(out, "initializer values: {params}")?;
            writeln!(out, "per-layer table unavailable: {e}")?;
        }
    }
    Ok(())
}
