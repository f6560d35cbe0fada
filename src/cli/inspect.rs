//! `edgenet inspect`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub fn run(path: &Path, kernels: Option<edgenet::kernels::KernelSet>, out: &mut dyn Write) -> anyhow::Result<()> {
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
            let quantized = graph.node.iter().any(|n| n.op_type.starts_with("QLinear"));
            if !quantized {
                writeln!(out, "per-layer table unavailable: {e}")?;
            }
        }
    }
    kernel_plan(&bytes, &origin, kernels, out)
}

/// The int8 layers' kernel plan: what runs on this CPU, or what the planner picks for `kernels`
/// (also a set of another architecture). Loads the model with tract, as `bench` does.
fn kernel_plan(bytes: &[u8], origin: &str, kernels: Option<edgenet::kernels::KernelSet>, out: &mut dyn Write) -> anyhow::Result<()> {
    use edgenet::kernels::plan::Target;
    // Load with the forced set when this CPU runs it, else with its own: the plan for another
    // set is made from the same layer facts.
    let runs_here = kernels.filter(|k| k.available());
    let opts = edgenet::engine::EngineOptions { kernels: runs_here, ..Default::default() };
    let engine = edgenet::engine::Engine::from_bytes(bytes, origin, &opts)?;
    let target = kernels.map(Target::for_set);
    let layers = engine.layer_plans(target);
    writeln!(out)?;
    if layers.is_empty() {
        writeln!(out, "int8 kernel plan: none (no int8 convolution or matmul runs on edgenet's kernels; f32 layers run on tract's kernels)")?;
        return Ok(());
    }
    let for_what = match target {
        Some(t) if runs_here.is_none() => format!("{t} (planned: this CPU runs {})", engine.kernel_set()),
        Some(t) => t.to_string(),
        None => format!("{} (this CPU)", Target::host(engine.kernel_set())),
    };
    writeln!(out, "int8 kernel plan for {for_what}, {} layers:", layers.len())?;
    write_layer_plans(&layers, out)
}

/// The per-layer plan as a table, one line per layer.
pub(crate) fn write_layer_plans(layers: &[edgenet::engine::LayerPlan], out: &mut dyn Write) -> anyhow::Result<()> {
    let w = layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "{:<w$}  {:<9} {:>16} {:>7} {:>6} {:>5} {:>12}  {:<22} plan", "name", "kind", "input c×h×w", "kernel", "stride", "out", "MACs", "kernels")?;
    for l in layers {
        let input = format!("{}×{}×{}", l.input[0], l.input[1], l.input[2]);
        let kernel = format!("{}×{}", l.kernel[0], l.kernel[1]);
        let stride = format!("{},{}", l.stride[0], l.stride[1]);
        writeln!(
            out,
            "{:<w$}  {:<9} {:>16} {:>7} {:>6} {:>5} {:>12}  {:<22} {}",
            l.name, l.kind, input, kernel, stride, l.output_channels, l.macs, l.target, l.plan
        )?;
    }
    Ok(())
}
