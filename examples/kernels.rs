//! Throughput of edgenet's int8 kernels on typical layer shapes, single thread.
//!
//! `cargo run --release --example kernels` times every case (GMAC/s, best of `ITERS` runs,
//! default 20) with the kernel set this CPU runs best (`EDGENET_KERNELS` forces another).
//!
//! On ARM nothing can be timed here; `scripts/arm_insns.py --kernels-example` counts the guest
//! instructions of `kernels --case NAME --reps N` under qemu for N = 1 and 3 and reports
//! multiply-accumulates per instruction per kernel and shape. `--list` prints the cases and
//! their MACs.
use edgenet::kernels::winograd::WinogradQConv;
use edgenet::kernels::KernelSet;
use edgenet::kernels::{DenseQConv, DepthwiseQConv, Geometry, Requant, Sequential};
use std::time::Instant;

fn data(n: usize, seed: u32) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as i8
        })
        .collect()
}

/// Weights as a symmetric quantizer writes them (−127..=127).
fn weights(n: usize, seed: u32) -> Vec<i8> {
    data(n, seed).into_iter().map(|v| v.max(-127)).collect()
}

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    let iters: usize = std::env::var("ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// One kernel on one shape: its name, multiply-accumulates per run, and the run.
struct Case {
    name: String,
    macs: usize,
    run: Box<dyn FnMut()>,
}

fn geo(cin: usize, h: usize, k: usize, s: usize, p: usize) -> Geometry {
    Geometry { cin, h, w: h, kh: k, kw: k, stride: (s, s), dilation: (1, 1), pads: [p; 4] }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, g) in [
        ("dw 144×56² 3×3 s1", geo(144, 56, 3, 1, 1)),
        ("dw 96×112² 3×3 s2", geo(96, 112, 3, 2, 1)),
        ("dw 480×14² 5×5 s1", geo(480, 14, 5, 1, 2)),
        ("dw 960×7² 3×3 s1", geo(960, 7, 3, 1, 1)),
    ] {
        let c = g.cin;
        let conv = DepthwiseQConv::new(g, &weights(c * g.kh * g.kw, 1), &vec![7; c], -3, Requant::new(vec![0.01; c], 5)).unwrap();
        let x = data(c * g.h * g.w, 2);
        let (oh, ow) = conv.output_hw();
        let mut y = vec![0i8; c * oh * ow];
        cases.push(Case { name: name.into(), macs: conv.macs(), run: Box::new(move || conv.run(&x, &mut y)) });
    }
    for (name, g, m) in [
        ("1×1 144→24 56²", geo(144, 56, 1, 1, 0), 24),
        ("1×1 24→144 56²", geo(24, 56, 1, 1, 0), 144),
        ("1×1 256→64 56²", geo(256, 56, 1, 1, 0), 64),
        ("1×1 1024→256 14²", geo(1024, 14, 1, 1, 0), 256),
        ("1×1 960→160 7²", geo(960, 7, 1, 1, 0), 160),
        ("3×3/2 128→128 56²", geo(128, 56, 3, 2, 1), 128),
        ("7×7/2 3→64 224²", geo(3, 224, 7, 2, 3), 64),
        ("1×1/2 256→512 56²", geo(256, 56, 1, 2, 0), 512),
    ] {
        let k = g.cin * g.kh * g.kw;
        let conv = DenseQConv::new(g, &weights(m * k, 3), &vec![7; m], -3, Requant::new(vec![0.001; m], 5)).unwrap();
        let x = data(g.cin * g.h * g.w, 4);
        let (oh, ow) = conv.output_hw();
        let mut y = vec![0i8; m * oh * ow];
        cases.push(Case { name: name.into(), macs: conv.macs(), run: Box::new(move || conv.run(&x, &mut y)) });
    }
    for (name, g, m) in [
        ("3×3 64→64 56²", geo(64, 56, 3, 1, 1), 64),
        ("3×3 128→128 28²", geo(128, 28, 3, 1, 1), 128),
        ("3×3 256→256 14²", geo(256, 14, 3, 1, 1), 256),
        ("3×3 512→512 7²", geo(512, 7, 3, 1, 1), 512),
    ] {
        let k = g.cin * 9;
        let (w, x) = (weights(m * k, 3), data(g.cin * g.h * g.w, 4));
        let dense = DenseQConv::new(g, &w, &vec![7; m], -3, Requant::new(vec![0.001; m], 5)).unwrap();
        let wino = WinogradQConv::new(g, &w, &vec![7; m], -3, Requant::new(vec![0.001; m], 5)).unwrap();
        let (oh, ow) = wino.output_hw();
        let (mut y1, mut y2) = (vec![0i8; m * oh * ow], vec![0i8; m * oh * ow]);
        let x2 = x.clone();
        cases.push(Case { name: format!("{name} dense"), macs: dense.macs(), run: Box::new(move || dense.run(&x, &mut y1)) });
        cases.push(Case { name: format!("{name} Winograd"), macs: wino.macs(), run: Box::new(move || wino.run_par(&x2, &mut y2, &Sequential)) });
    }
    let (a, b) = (data(802816, 5), data(802816, 6));
    let mut y = vec![0i8; a.len()];
    cases.push(Case {
        name: "quantized add 256×56²".into(),
        macs: a.len(),
        run: Box::new(move || edgenet::kernels::elementwise::quantized_add(&a, (0.02, 3), &b, (0.03, -2), (0.04, -128), &mut y)),
    });
    cases
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let mut cases = cases();
    if args.iter().any(|a| a == "--list") {
        for c in &cases {
            println!("{}\t{}", c.name, c.macs);
        }
        return;
    }
    if let Some(name) = value("--case") {
        let reps: usize = value("--reps").and_then(|r| r.parse().ok()).unwrap_or(1);
        let Some(case) = cases.iter_mut().find(|c| c.name == name) else {
            eprintln!("no case named {name:?} (--list shows them)");
            std::process::exit(2);
        };
        for _ in 0..reps {
            (case.run)();
        }
        return;
    }
    println!("int8 kernel set: {}", KernelSet::detect());
    for c in &mut cases {
        let t = time(&mut c.run);
        if c.name.starts_with("quantized add") {
            println!("{:28} {:8.3} ms {:6.3} ns/element", c.name, t * 1e3, t * 1e9 / c.macs as f64);
        } else {
            println!("{:28} {:8.3} ms {:6.2} GMAC/s", c.name, t * 1e3, c.macs as f64 / t / 1e9);
        }
    }
}
