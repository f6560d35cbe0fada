//! Throughput of edgenet's int8 kernels on typical layer shapes (GMAC/s, single thread).
//!
//! `cargo run --release --example kernels`
use edgenet::kernels::int8::{DenseQConv, DepthwiseQConv, Geometry, Requant, Sequential};
use edgenet::kernels::winograd::WinogradQConv;
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

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let geo = |cin, h, k, s, p| Geometry {
        cin,
        h,
        w: h,
        kh: k,
        kw: k,
        stride: (s, s),
        dilation: (1, 1),
        pads: [p; 4],
    };
    for (name, g) in [
        ("dw 144×56² 3×3 s1", geo(144, 56, 3, 1, 1)),
        ("dw 96×112² 3×3 s2", geo(96, 112, 3, 2, 1)),
        ("dw 480×14² 5×5 s1", geo(480, 14, 5, 1, 2)),
    ] {
        let c = g.cin;
        let conv = DepthwiseQConv::new(
            g,
            &data(c * g.kh * g.kw, 1),
            &vec![7; c],
            -3,
            Requant::new(vec![0.01; c], 5),
        )
        .unwrap();
        let x = data(c * g.h * g.w, 2);
        let (oh, ow) = conv.output_hw();
        let mut y = vec![0i8; c * oh * ow];
        let t = time(|| conv.run(&x, &mut y));
        println!(
            "{name:24} {:8.3} ms {:6.2} GMAC/s",
            t * 1e3,
            conv.macs() as f64 / t / 1e9
        );
    }
    for (name, g, m) in [
        ("1×1 144→24 56²", geo(144, 56, 1, 1, 0), 24),
        ("1×1 24→144 56²", geo(24, 56, 1, 1, 0), 144),
        ("1×1 256→64 56²", geo(256, 56, 1, 1, 0), 64),
        ("1×1 1024→256 14²", geo(1024, 14, 1, 1, 0), 256),
        ("3×3/2 128→128 56²", geo(128, 56, 3, 2, 1), 128),
        ("7×7/2 3→64 224²", geo(3, 224, 7, 2, 3), 64),
        ("1×1/2 256→512 56²", geo(256, 56, 1, 2, 0), 512),
    ] {
        let k = g.cin * g.kh * g.kw;
        let conv = DenseQConv::new(
            g,
            &data(m * k, 3),
            &vec![7; m],
            -3,
            Requant::new(vec![0.001; m], 5),
        )
        .unwrap();
        let x = data(g.cin * g.h * g.w, 4);
        let (oh, ow) = conv.output_hw();
        let mut y = vec![0i8; m * oh * ow];
        let t = time(|| conv.run(&x, &mut y));
        println!(
            "{name:24} {:8.3} ms {:6.2} GMAC/s",
            t * 1e3,
            conv.macs() as f64 / t / 1e9
        );
    }
    for (name, g, m) in [
        ("3×3 64→64 56²", geo(64, 56, 3, 1, 1), 64),
        ("3×3 128→128 28²", geo(128, 28, 3, 1, 1), 128),
        ("3×3 256→256 14²", geo(256, 14, 3, 1, 1), 256),
        ("3×3 512→512 7²", geo(512, 7, 3, 1, 1), 512),
    ] {
        let k = g.cin * 9;
        let (w, x) = (data(m * k, 3), data(g.cin * g.h * g.w, 4));
        let dense =
            DenseQConv::new(g, &w, &vec![7; m], -3, Requant::new(vec![0.001; m], 5)).unwrap();
        let wino =
            WinogradQConv::new(g, &w, &vec![7; m], -3, Requant::new(vec![0.001; m], 5)).unwrap();
        let (oh, ow) = wino.output_hw();
        let (mut y1, mut y2) = (vec![0i8; m * oh * ow], vec![0i8; m * oh * ow]);
        let t1 = time(|| dense.run(&x, &mut y1));
        let t2 = time(|| wino.run_par(&x, &mut y2, &Sequential));
        assert_eq!(y1, y2);
        println!("{name:24} dense {:8.3} ms, Winograd {:8.3} ms ({:.2}× faster, {:6.2} GMAC/s equivalent)", t1 * 1e3, t2 * 1e3, t1 / t2, wino.macs() as f64 / t2 / 1e9);
    }
    let (a, b) = (data(802816, 5), data(802816, 6));
    let mut y = vec![0i8; a.len()];
    let t = time(|| edgenet::kernels::int8::quantized_add(&a, (0.02, 3), &b, (0.03, -2), (0.04, -128), &mut y));
    println!("quantized add 256×56²    {:8.3} ms {:6.3} ns/element", t * 1e3, t * 1e9 / a.len() as f64);
}
