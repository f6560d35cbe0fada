//! Where the time goes in tract's plan of an ONNX file: per-op-kind totals and the slowest nodes.
//!
//! `cargo run --release --example profile -- MODEL.onnx [RUNS] [--plan] [--allocs]`
//!
//! `--allocs`: also the heap allocations of one steady-state run of a `Session` (after
//! `RUNS` warm-up runs), by node.
use edgenet::alloc::CountingAlloc;
use edgenet::engine::{Engine, EngineOptions};
use std::collections::BTreeMap;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: profile MODEL.onnx [RUNS] [--plan]")?;
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads: usize = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let engine = Engine::from_path(path.as_ref(), &EngineOptions { threads, ..Default::default() })?;
    if args.iter().any(|a| a == "--plan") {
        print!("{}", engine.describe_plan());
    }
    let x: Vec<f32> = (0..engine.input_len()).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    if args.iter().any(|a| a == "--allocs") {
        let mut session = engine.session()?;
        let mut y = vec![0.0; engine.output_len()];
        for _ in 0..runs.max(1) {
            session.run_into(&x, &mut y)?;
        }
        let live = ALLOC.snapshot().live_bytes;
        let r = session.allocations_by_node(&x, &mut y, &|| ALLOC.snapshot().allocations)?;
        println!(
            "allocations in one steady-state session run: {} ({} outside the nodes); heap live {live} bytes, {} in the session's output buffers",
            r.total,
            r.outside_nodes,
            session.buffer_bytes()
        );
        let mut by_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for n in &r.nodes {
            let e = by_op.entry(&n.op).or_default();
            e.0 += n.allocations;
            e.1 += 1;
        }
        for (op, (a, n)) in by_op {
            println!("{a:>6} allocations in {n:4} nodes {op}");
        }
    }
    let mut nodes = engine.profile(&x, runs)?;
    for n in &mut nodes {
        if n.op == "EdgeQConv" {
            let kind = if n.info.starts_with("depthwise") {
                "depthwise"
            } else if n.info.contains("Winograd") {
                "3x3 Winograd"
            } else if n.info.contains(" 1×1") {
                "1x1"
            } else {
                "kxk"
            };
            n.op = format!("EdgeQConv/{kind}");
        }
    }
    let total: f64 = nodes.iter().map(|n| n.seconds).sum();
    let mut by_op: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for n in &nodes {
        let e = by_op.entry(&n.op).or_default();
        e.0 += n.seconds;
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("total {:.2} ms over {} nodes", total * 1e3, nodes.len());
    for (op, (t, n)) in ops {
        println!("{:>9.3} ms {:5.1}% {:4}× {}", t * 1e3, 100.0 * t / total, n, op);
    }
    let mut slow = nodes.clone();
    slow.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    println!("slowest nodes:");
    for n in slow.iter().take(15) {
        println!("{:>9.3} ms {} {}", n.seconds * 1e3, n.op, n.name);
    }
    Ok(())
}
