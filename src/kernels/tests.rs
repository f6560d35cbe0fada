//! The kernel tests: every kernel set this CPU runs against the i64 oracle
//! ([`reference`](super::reference)), whole-layer and per element-wise kernel.

use super::elementwise::*;
use super::geometry::Geometry;
#[cfg(target_arch = "aarch64")]
use super::plan::DenseAlgorithm;
use super::plan::{DenseSplit, Tile};
use super::portable::{dequantize_body, quantize_body, quantized_add_body};
use super::reference::{data, reference};
use super::tasks::{Out, Parallel, Work};
use super::{DenseQConv, DepthwiseQConv, KernelSet, Requant};
use proptest::prelude::*;

fn geo(cin: usize, h: usize, w: usize, k: usize, s: usize, p: [usize; 4], d: usize) -> Geometry {
    Geometry { cin, h, w, kh: k, kw: k, stride: (s, s), dilation: (d, d), pads: p }
}

#[test]
fn quantize_divides_clamps_and_rounds_half_to_even() {
    let x = [0.25, 0.75, -0.25, -0.75, 100.0, -100.0, 0.5, f32::NAN];
    let mut y = [0i8; 8];
    quantize(&x, 0.5, 3, &mut y);
    // 0.5 → 3+0, 1.5 → 3+2, −0.5 → 3−0, −1.5 → 3−2, saturated, saturated, 1.0 → 4, NaN → qmin (as MLAS on x86)
    assert_eq!(y, [3, 5, 3, 1, 127, -128, 4, -128]);
}

#[test]
fn quantized_add_equals_the_three_steps() {
    let a = data(31, 1000);
    let b = data(32, 1000);
    let (qa, qb, qy) = ((0.037, -5i8), (0.052, 17i8), (0.061, -128i8));
    let (mut fa, mut fb) = (vec![0f32; 1000], vec![0f32; 1000]);
    dequantize(&a, qa.0, qa.1, &mut fa);
    dequantize(&b, qb.0, qb.1, &mut fb);
    let sum: Vec<f32> = fa.iter().zip(&fb).map(|(x, y)| x + y).collect();
    let mut want = vec![0i8; 1000];
    quantize(&sum, qy.0, qy.1, &mut want);
    let mut got = vec![0i8; 1000];
    quantized_add(&a, qa, &b, qb, qy, &mut got);
    assert_eq!(got, want);
    assert!(want.contains(&-128) && want.iter().any(|&v| v > 0), "the data exercises clamping and positives");
}

#[test]
fn elementwise_kernels_agree_for_every_set() {
    // Lengths around the 16-element vectors, ties, saturation, NaN and infinities.
    let mut x: Vec<f32> = (0..203).map(|i| (i as f32 - 100.0) * 0.25 + if i % 7 == 0 { 0.125 } else { 0.0 }).collect();
    x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.5, 1.5, -2.5]);
    let a = data(41, x.len());
    let b = data(42, x.len());
    for n in [0, 1, 15, 16, 17, 33, x.len()] {
        for &(scale, zp) in &[(0.5f32, 3i8), (0.07, -128), (1.0, 127), (3e-3, 0)] {
            let mut want = vec![0i8; n];
            quantize_body(&x[..n], scale, zp, &mut want);
            let mut want_f = vec![0f32; n];
            dequantize_body(&a[..n], scale, zp, &mut want_f);
            let mut want_add = vec![0i8; n];
            quantized_add_body(&a[..n], (scale, zp), &b[..n], (0.03, -7), (0.05, zp), &mut want_add);
            for set in sets() {
                let mut got = vec![0i8; n];
                quantize_with(set, &x[..n], scale, zp, &mut got);
                assert_eq!(got, want, "{set} quantize n={n} scale={scale} zp={zp}");
                let mut got_f = vec![0f32; n];
                dequantize_with(set, &a[..n], scale, zp, &mut got_f);
                assert!(got_f.iter().zip(&want_f).all(|(g, w)| g.to_bits() == w.to_bits()), "{set} dequantize n={n}");
                let mut got_add = vec![0i8; n];
                quantized_add_with(set, &a[..n], (scale, zp), &b[..n], (0.03, -7), (0.05, zp), &mut got_add);
                assert_eq!(got_add, want_add, "{set} quantized add n={n}");
            }
        }
    }
    // Quantized add with scales that make infinities and NaN (0/0, ∞ − ∞, ∞/∞), ties, and
    // outputs far past the int8 range, where a NEON path leaves the clamp to saturation.
    let (a, b) = (data(43, 67), data(44, 67));
    let scales = [
        ((0.5, 0), (0.5, 0), (1.0, 0)),
        ((0.02, -3), (0.03, 5), (1e-30, 7)),
        ((0.02, 0), (0.03, 0), (0.0, 0)),
        ((3e38, 1), (3e38, -1), (0.5, 0)),
        ((f32::INFINITY, 0), (0.5, 0), (f32::INFINITY, 0)),
        ((1e37, 2), (1e-3, 0), (1e30, -128)),
        ((0.25, -128), (0.25, 127), (0.125, 127)),
    ];
    for (qa, qb, qy) in scales {
        let mut want = vec![0i8; a.len()];
        quantized_add_body(&a, qa, &b, qb, qy, &mut want);
        for set in sets() {
            let mut got = vec![0i8; a.len()];
            quantized_add_with(set, &a, qa, &b, qb, qy, &mut got);
            assert_eq!(got, want, "{set} quantized add {qa:?} {qb:?} {qy:?}");
        }
    }
}

/// The `_par` forms on a thread pool of 1–4 threads and of more threads than chunks, on lengths
/// below, at and past the split threshold and not a multiple of the chunk: the same bytes as
/// one call on the whole.
#[test]
fn elementwise_kernels_split_over_threads_give_the_same_bytes() {
    let len = 3 * 8192 + 77;
    let x: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1001) as f32 * 0.37 - 170.0).collect();
    let (a, b) = (data(45, len), data(46, len));
    let table: [i8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(91).wrapping_add(3) as i8);
    for threads in [1, 2, 3, 4, 16] {
        let pool = super::ThreadPool::new(threads);
        for n in [100, 8191, 8192, 8193, len] {
            for set in sets() {
                let (mut want, mut got) = (vec![0i8; n], vec![0i8; n]);
                quantize_with(set, &x[..n], 0.7, -3, &mut want);
                quantize_par(set, &x[..n], 0.7, -3, &mut got, &pool);
                assert_eq!(got, want, "{set} quantize n={n} threads {threads}");
                let (mut want_f, mut got_f) = (vec![0f32; n], vec![0f32; n]);
                dequantize_with(set, &a[..n], 0.05, 4, &mut want_f);
                dequantize_par(set, &a[..n], 0.05, 4, &mut got_f, &pool);
                assert!(got_f.iter().zip(&want_f).all(|(g, w)| g.to_bits() == w.to_bits()), "{set} dequantize n={n} threads {threads}");
                quantized_add_with(set, &a[..n], (0.02, 1), &b[..n], (0.03, -2), (0.04, 5), &mut want);
                quantized_add_par(set, &a[..n], (0.02, 1), &b[..n], (0.03, -2), (0.04, 5), &mut got, &pool);
                assert_eq!(got, want, "{set} quantized add n={n} threads {threads}");
                lookup_with(set, &table, &a[..n], &mut want);
                lookup_par(set, &table, &a[..n], &mut got, &pool);
                assert_eq!(got, want, "{set} lookup n={n} threads {threads}");
            }
        }
    }
}

#[test]
fn table_lookup_agrees_for_every_set() {
    // Every index, in lengths around the 16-value vectors.
    let table: [i8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11) as i8);
    let x: Vec<i8> = (0..600).map(|i| (i * 7 + i / 256) as u8 as i8).collect();
    for n in [0, 1, 15, 16, 17, 255, 256, 600] {
        let want: Vec<i8> = x[..n].iter().map(|&v| table[v as u8 as usize]).collect();
        for set in sets() {
            let mut got = vec![0i8; n];
            lookup_with(set, &table, &x[..n], &mut got);
            assert_eq!(got, want, "{set} lookup n={n}");
        }
    }
}

#[test]
fn rounding_is_half_to_even_like_mlas() {
    let rq = Requant::new(vec![0.5], 0);
    let got: Vec<i8> = [-5, -3, -1, 1, 3, 5, 7].iter().map(|&a| rq.one(a, 0.5)).collect();
    assert_eq!(got, vec![-2, -2, 0, 0, 2, 2, 4]);
    let rq = Requant::new(vec![1.0], -128);
    assert_eq!(rq.one(-1, 1.0), -128, "clamped below at qmin");
    assert_eq!(rq.one(1000, 1.0), 127, "clamped above at qmax");
    assert_eq!(rq.one(3, 1.0), -125);
}

/// Tasks as for `threads` threads, run in reverse order on this one.
struct Reverse(usize);
impl Parallel for Reverse {
    fn threads(&self) -> usize {
        self.0
    }
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..n).rev().for_each(task)
    }
}

/// Every kernel set this CPU runs.
pub(crate) fn sets() -> Vec<KernelSet> {
    KernelSet::ALL.into_iter().filter(|k| k.available()).collect()
}

fn check_dense(g: Geometry, m: usize, seed: u64) {
    check_dense_zp(g, m, seed, 5, -7)
}

/// Weights in −127..=127 (what symmetric quantizers write, and what NEON needs), every
/// kernel set against the i64 reference, then split into tasks.
fn check_dense_zp(g: Geometry, m: usize, seed: u64, x_zp: i8, y_zp: i8) {
    let k = g.cin * g.kh * g.kw;
    let w: Vec<i8> = data(seed, m * k).into_iter().map(|v| v.max(-127)).collect();
    let x = data(seed + 1, g.cin * g.h * g.w);
    let bias: Vec<i32> = (0..m as i32).map(|i| i * 37 - 500).collect();
    let rq = Requant::new((0..m).map(|i| 0.0004 + 0.0001 * (i % 5) as f32).collect(), y_zp);
    let want = reference(&g, 1, &w, &bias, x_zp, &rq, &x);
    for set in sets() {
        let conv = DenseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
        assert_eq!(conv.kernel_set(), set, "{set} took the layer");
        let (oh, ow) = conv.output_hw();
        let mut y = vec![0i8; m * oh * ow];
        conv.run(&x, &mut y);
        assert_eq!(y, want, "{set} {g:?} m={m}");
        // Split into tasks as for several threads (run here in reverse order).
        let mut y3 = vec![0i8; y.len()];
        conv.run_par(&x, &mut y3, &Reverse(3));
        assert_eq!(y3, want, "{set} split into tasks");
        // Grids of column blocks by row blocks, whatever their size (the planner splits only
        // layers worth waking threads for): one tile of rows, two, all; 13 columns, one panel.
        let tile = Tile::dense(conv.plan().target);
        let n = oh * ow;
        for rows in [tile.mr, 2 * tile.mr, m] {
            for cols in [13, tile.nr, n] {
                let split = DenseSplit { cols, col_blocks: n.div_ceil(cols), rows, row_blocks: m.div_ceil(rows) };
                y3.fill(0);
                conv.run_split(&x, &mut y3, split, &Reverse(4));
                assert_eq!(y3, want, "{set} {g:?} m={m} in a grid {split:?}");
            }
        }
    }
    let conv = DenseQConv::with_kernels(KernelSet::Portable, g, &w, &bias, x_zp, rq.clone()).unwrap();
    let (oh, ow) = conv.output_hw();
    let mut y2 = vec![0i8; m * oh * ow];
    let n = oh * ow;
    // The portable kernel, in blocks of 13 columns (crossing output rows).
    let mut work = Work::default();
    for c0 in (0..n).step_by(13) {
        conv.block(&x, &[], 0..m, c0, 13.min(n - c0), &mut work, Out::new(&mut y2));
    }
    assert_eq!(y2, want, "portable kernel in blocks of 13 columns");
}

/// Real threads: every set, on layers whose planned grid splits channels (a 7×7 map) or
/// columns (a 28×28 map), with 1 to 4 threads and with more threads than the layer has tasks,
/// bit for bit against the reference; the pool reused from layer to layer.
#[test]
fn dense_layers_on_a_thread_pool_match_the_reference() {
    let cases = [(geo(96, 7, 7, 1, 1, [0; 4], 1), 160), (geo(24, 28, 28, 3, 1, [1; 4], 1), 40), (geo(8, 4, 4, 1, 1, [0; 4], 1), 8)];
    for threads in [1, 2, 3, 4, 16] {
        let pool = super::ThreadPool::new(threads);
        for (i, &(g, m)) in cases.iter().enumerate() {
            let k = g.cin * g.kh * g.kw;
            let w: Vec<i8> = data(90 + i as u64, m * k).into_iter().map(|v| v.max(-127)).collect();
            let x = data(91 + i as u64, g.cin * g.h * g.w);
            let bias: Vec<i32> = (0..m as i32).map(|i| 7 * i - 90).collect();
            let rq = Requant::new((0..m).map(|i| 0.0003 + 0.0001 * (i % 7) as f32).collect(), -4);
            let want = reference(&g, 1, &w, &bias, 3, &rq, &x);
            for set in sets() {
                let conv = DenseQConv::with_kernels(set, g, &w, &bias, 3, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run_par(&x, &mut y, &pool);
                assert_eq!(y, want, "{set} {g:?} m={m} on {threads} threads: {:?}", conv.split(threads));
            }
        }
    }
}

/// Winograd (a 7×7 map, whose grid splits channels and transforms once in a job of its own; a
/// 28×28 map, split by tile rows) and depthwise layers on real threads, 1 to 4 and more
/// threads than tasks, bit for bit against the reference, every set.
#[test]
fn winograd_and_depthwise_layers_on_a_thread_pool_match_the_reference() {
    use super::WinogradQConv;
    let winograd = [(geo(64, 7, 7, 3, 1, [1; 4], 1), 128), (geo(16, 28, 28, 3, 1, [1; 4], 1), 24)];
    let depthwise = [geo(96, 14, 14, 3, 1, [1; 4], 1), geo(40, 29, 31, 5, 2, [2; 4], 1)];
    for threads in [1, 2, 3, 4, 16] {
        let pool = super::ThreadPool::new(threads);
        for (i, &(g, m)) in winograd.iter().enumerate() {
            let w = data(95 + i as u64, m * g.cin * 9);
            let x = data(96 + i as u64, g.cin * g.h * g.w);
            let bias: Vec<i32> = (0..m as i32).map(|i| 11 * i - 300).collect();
            let rq = Requant::new((0..m).map(|i| 0.0002 + 0.00005 * (i % 5) as f32).collect(), 2);
            let want = reference(&g, 1, &w, &bias, -6, &rq, &x);
            for set in sets() {
                let conv = WinogradQConv::with_kernels(set, g, &w, &bias, -6, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run_par(&x, &mut y, &pool);
                assert_eq!(y, want, "winograd {set} {g:?} m={m} on {threads} threads: {:?}", conv.split(threads));
                if threads == 4 && i == 0 {
                    assert!(conv.split(4).row_blocks > 1, "the 7×7 layer splits its channels: {:?}", conv.split(4));
                }
            }
        }
        for (i, &g) in depthwise.iter().enumerate() {
            let c = g.cin;
            let w: Vec<i8> = data(97 + i as u64, c * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
            let x = data(98 + i as u64, c * g.h * g.w);
            let bias: Vec<i32> = (0..c as i32).map(|i| 5 * i - 70).collect();
            let rq = Requant::new((0..c).map(|i| 0.002 + 0.0005 * (i % 3) as f32).collect(), -1);
            let want = reference(&g, c, &w, &bias, 4, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, 4, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run_par(&x, &mut y, &pool);
                assert_eq!(y, want, "depthwise {set} {g:?} on {threads} threads");
            }
        }
    }
}

#[test]
fn dense_kernel_sets_agree_at_extreme_zero_points_and_saturation() {
    // Input zero points at both ends, outputs saturating at both ends (large scales).
    for (i, (x_zp, y_zp)) in [(-128i8, 127i8), (127, -128), (0, 0)].into_iter().enumerate() {
        let g = geo(37, 6, 7, 3, 1, [1, 0, 2, 1], 1);
        let m = 11;
        let k = g.cin * 9;
        let w: Vec<i8> = data(70 + i as u64, m * k).into_iter().map(|v| v.max(-127)).collect();
        let x = data(80 + i as u64, g.cin * g.h * g.w);
        let bias: Vec<i32> = (0..m as i32).map(|i| i * 9001 - 40000).collect();
        let rq = Requant::new((0..m).map(|i| 0.001 * (1 + i) as f32).collect(), y_zp);
        let want = reference(&g, 1, &w, &bias, x_zp, &rq, &x);
        assert!(want.contains(&127) && want.contains(&-128), "the case saturates both ways");
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set} x_zp={x_zp} y_zp={y_zp}");
        }
    }
}

#[test]
fn a_weight_of_minus_128_keeps_neon_exact() {
    // NEON sums two products in i16, which −128 · −128 twice would overflow: such a layer
    // runs the portable kernel (the dot-product and AVX2 kernels take it as it is).
    let g = geo(16, 4, 4, 1, 1, [0; 4], 1);
    let m = 8;
    let w = vec![-128i8; m * 16];
    let x = vec![-128i8; 16 * 16];
    let bias = vec![0i32; m];
    let rq = Requant::new(vec![1e-6; m], 0);
    let want = reference(&g, 1, &w, &bias, 0, &rq, &x);
    for set in sets() {
        let conv = DenseQConv::with_kernels(set, g, &w, &bias, 0, rq.clone()).unwrap();
        if set == KernelSet::Neon {
            assert_eq!(conv.kernel_set(), KernelSet::Portable);
        }
        let mut y = vec![0i8; want.len()];
        conv.run(&x, &mut y);
        assert_eq!(y, want, "{set}");
    }
}

#[test]
fn dead_channels_and_zero_weights() {
    // Rows of zeros (pruned channels) and a zero input: the output is the bias alone.
    let g = geo(20, 5, 5, 1, 1, [0; 4], 1);
    let m = 9;
    let mut w: Vec<i8> = data(5, m * 20).into_iter().map(|v| v.max(-127)).collect();
    for r in [0usize, 4, 8] {
        w[r * 20..(r + 1) * 20].fill(0);
    }
    let x = vec![3i8; 20 * 25];
    let bias: Vec<i32> = (0..m as i32).map(|i| 1000 * i - 4000).collect();
    let rq = Requant::new(vec![0.01; m], 2);
    let want = reference(&g, 1, &w, &bias, 3, &rq, &x);
    for set in sets() {
        let conv = DenseQConv::with_kernels(set, g, &w, &bias, 3, rq.clone()).unwrap();
        let mut y = vec![0i8; want.len()];
        conv.run(&x, &mut y);
        assert_eq!(y, want, "{set}");
    }
}

#[test]
fn dense_matches_reference() {
    check_dense(geo(16, 7, 9, 1, 1, [0; 4], 1), 12, 1);
    check_dense(geo(3, 11, 10, 3, 2, [1, 1, 1, 1], 1), 10, 2);
    check_dense(geo(9, 8, 8, 3, 1, [1, 1, 1, 1], 1), 9, 3);
    check_dense(geo(5, 9, 9, 5, 2, [2, 1, 2, 1], 1), 7, 4);
    check_dense(geo(4, 9, 9, 3, 1, [2, 2, 2, 2], 2), 5, 5);
    check_dense(geo(7, 1, 1, 1, 1, [0; 4], 1), 33, 6);
    // Enough columns for several packed blocks (K = 576 gives blocks of 160 columns).
    check_dense(geo(64, 20, 21, 3, 1, [1, 1, 1, 1], 1), 9, 7);
    // Full 16-column blocks with row, column and k tails for the ARM packings.
    check_dense(geo(40, 8, 33, 1, 1, [0; 4], 1), 21, 8);
    check_dense(geo(32, 16, 16, 1, 1, [0; 4], 1), 16, 9);
    // NEON's half last group (`k % 16` in 1..=8 after full groups): k = 24, 17 and 9 · 2;
    // k = 8 is a single group (no half form), k = 25 a last group of 9.
    check_dense(geo(24, 9, 11, 1, 1, [0; 4], 1), 13, 10);
    check_dense(geo(17, 6, 7, 1, 1, [0; 4], 1), 5, 11);
    check_dense(geo(2, 7, 8, 3, 1, [1, 1, 1, 1], 1), 6, 12);
    check_dense(geo(8, 5, 6, 1, 1, [0; 4], 1), 7, 13);
    check_dense(geo(25, 4, 9, 1, 1, [0; 4], 1), 6, 14);
    // Last panels with 1, 2 and 3 real columns of NEON's 4 and 1 to 4 of the dot product's 8
    // (their narrow tiles): 49, 50, 51, 52, 5 and 3 columns, with odd and even group
    // counts, NEON's half last group (k = 40, 36, 20), a single group (k = 12) and partial
    // row blocks.
    check_dense(geo(48, 7, 7, 1, 1, [0; 4], 1), 16, 15);
    check_dense(geo(40, 5, 10, 1, 1, [0; 4], 1), 12, 16);
    check_dense(geo(36, 3, 17, 1, 1, [0; 4], 1), 9, 17);
    check_dense(geo(64, 4, 13, 1, 1, [0; 4], 1), 8, 18);
    check_dense(geo(20, 1, 5, 1, 1, [0; 4], 1), 5, 19);
    check_dense(geo(12, 1, 3, 1, 1, [0; 4], 1), 3, 20);
    // A stem-like stride-2 convolution on 3 channels, rows wide enough for aarch64's
    // 16-at-a-time stride-2 im2col copy (`neon::evens`) and its tail.
    check_dense(geo(3, 9, 70, 3, 2, [1, 1, 1, 1], 1), 8, 21);
    // NEON's runs of full tiles with a half last group after an odd group and a pair
    // (k = 72) or a pair alone (k = 56), and with whole groups: a pair alone (k = 48).
    check_dense(geo(72, 4, 5, 1, 1, [0; 4], 1), 8, 22);
    check_dense(geo(56, 4, 4, 1, 1, [0; 4], 1), 8, 23);
    check_dense(geo(48, 4, 4, 1, 1, [0; 4], 1), 8, 24);
}

/// ARM's in-place form of convolutions: taken where it should be, and exact for rows
/// narrower and wider than 16, channel counts that are not a multiple of the group,
/// dilation, asymmetric padding, a padded 1×1, strides 2 and 3 (column phases), and output
/// rows that are not a multiple of the panel width (checked by `check_dense_zp` for every
/// set, split into tasks too).
#[cfg(target_arch = "aarch64")]
#[test]
fn arm_convolutions_read_their_input_in_place() {
    let x_for = |g: &Geometry, i: usize| data(80 + i as u64, g.cin * g.h * g.w);
    let strided = |mut g: Geometry, s: (usize, usize)| {
        g.stride = s;
        g
    };
    for (i, (g, m)) in [
        (geo(32, 9, 13, 3, 1, [1, 1, 1, 1], 1), 12),
        (geo(64, 7, 7, 3, 1, [1, 1, 1, 1], 1), 9),
        (geo(28, 6, 21, 3, 1, [0, 2, 1, 0], 2), 5),
        (geo(48, 5, 35, 1, 1, [1, 0, 0, 1], 1), 17),
        (geo(16, 18, 19, 5, 1, [2, 2, 2, 2], 1), 8),
        (geo(32, 14, 14, 3, 2, [1, 1, 1, 1], 1), 10),
        (geo(64, 9, 37, 1, 2, [0; 4], 1), 7),
        (strided(geo(16, 13, 29, 3, 1, [1, 0, 2, 1], 2), (2, 3)), 6),
        (geo(32, 11, 10, 5, 2, [2, 2, 1, 1], 1), 5),
    ]
    .into_iter()
    .enumerate()
    {
        for set in sets().into_iter().filter(|s| matches!(s, KernelSet::Neon | KernelSet::Dotprod)) {
            let w: Vec<i8> = data(60 + i as u64, m * g.cin * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
            let bias: Vec<i32> = (0..m as i32).map(|i| 50 - 29 * i).collect();
            let rq = Requant::new((0..m).map(|i| 0.0005 + 0.0002 * (i % 3) as f32).collect(), 6);
            let conv = DenseQConv::with_kernels(set, g, &w, &bias, -3, rq.clone()).unwrap();
            // The dot product keeps im2col for strided layers (see `plan::in_place_pays`).
            assert_eq!((conv.plan().algorithm == DenseAlgorithm::InPlace), set == KernelSet::Neon || g.stride == (1, 1), "{set} {g:?}");
            // Where the in-place form does not pay, it is still exact.
            let forced = DenseQConv::build(set, g, &w, &bias, -3, rq.clone(), true).unwrap();
            assert!(forced.plan().algorithm == DenseAlgorithm::InPlace);
            let want = reference(&g, 1, &w, &bias, -3, &rq, &x_for(&g, i));
            let mut y = vec![0i8; want.len()];
            forced.run_par(&x_for(&g, i), &mut y, &Reverse(3));
            assert_eq!(y, want, "{set} {g:?} in place");
        }
        check_dense_zp(g, m, 70 + i as u64, -3, 9);
    }
    // 12 channels: three groups of 4 for the dot product, in place; a third of a group of 16
    // wasted for NEON, which keeps im2col. 3 channels: both keep im2col.
    for (cin, dot, neon) in [(12, true, false), (3, false, false)] {
        let g = geo(cin, 9, 9, 3, 1, [1, 1, 1, 1], 1);
        for set in sets().into_iter().filter(|s| matches!(s, KernelSet::Neon | KernelSet::Dotprod)) {
            let conv = DenseQConv::with_kernels(set, g, &vec![1; 9 * cin], &[0], 0, Requant::new(vec![0.01], 0)).unwrap();
            assert_eq!((conv.plan().algorithm == DenseAlgorithm::InPlace), if set == KernelSet::Dotprod { dot } else { neon }, "{set} {cin} channels");
        }
        check_dense_zp(g, 7, 90 + cin as u64, 4, -2);
    }
}

#[test]
fn depthwise_matches_reference() {
    // 3×3 stride 1 on rows wide enough to run by rows, not flat (the dot product's form
    // takes them two output rows at a time): 9 rows (odd), 8 (even), and a row tail.
    let by_rows = [geo(5, 9, 32, 3, 1, [1, 1, 1, 1], 1), geo(3, 8, 48, 3, 1, [1, 1, 1, 1], 1), geo(4, 7, 47, 3, 1, [1, 1, 1, 1], 1)];
    for g in &by_rows {
        assert!(!super::plan::flat_pays(g.h, g.w, g.w + 2), "{g:?} runs flat");
    }
    for (i, g) in [
        geo(8, 9, 11, 3, 1, [1, 1, 1, 1], 1),
        geo(5, 10, 10, 3, 2, [0, 0, 1, 1], 1),
        geo(6, 13, 12, 5, 2, [1, 2, 2, 1], 1),
        geo(3, 7, 7, 5, 1, [2, 2, 2, 2], 1),
        geo(4, 9, 9, 3, 1, [2, 2, 2, 2], 2),
        // Rows longer than a 16-output tile, with a tail; a 5×5 stride 2 as in EfficientNet.
        geo(7, 20, 37, 3, 1, [1, 1, 1, 1], 1),
        geo(4, 21, 40, 5, 2, [1, 2, 2, 1], 1),
        geo(3, 33, 34, 3, 2, [0, 0, 1, 1], 1),
    ]
    .into_iter()
    .chain(by_rows)
    .enumerate()
    {
        let c = g.cin;
        // Weights in −127..=127 (NEON's form needs it) and then with a −128 (the sets fall
        // back where they must, with the same results).
        let mut w: Vec<i8> = data(10 + i as u64, c * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
        let x = data(20 + i as u64, c * g.h * g.w);
        let bias: Vec<i32> = (0..c as i32).map(|i| 100 - 41 * i).collect();
        let rq = Requant::new((0..c).map(|i| 0.002 + 0.0005 * i as f32).collect(), 3);
        let want = reference(&g, c, &w, &bias, -11, &rq, &x);
        for set in sets() {
            let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, -11, rq.clone()).unwrap();
            // Every set has a depthwise kernel of its own for these layers (the dot product
            // and AVX-512 VNNI none with dilation: NEON's and AVX2's then).
            let used = match set {
                KernelSet::Dotprod if g.dilation != (1, 1) => KernelSet::Neon,
                KernelSet::Avx512Vnni if g.dilation != (1, 1) => KernelSet::Avx2,
                set => set,
            };
            assert_eq!(conv.kernel_set(), used, "{g:?}");
            let (oh, ow) = conv.output_hw();
            let mut y = vec![0i8; c * oh * ow];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set} {g:?}");
            let mut y2 = vec![0i8; y.len()];
            conv.run_par(&x, &mut y2, &Reverse(2));
            assert_eq!(y2, want, "{set} {g:?} split into tasks");
        }
        w[i] = -128;
        let want = reference(&g, c, &w, &bias, -11, &rq, &x);
        for set in sets() {
            let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, -11, rq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            assert_eq!(y, want, "{set} {g:?} with a weight of −128");
        }
    }
}

/// aarch64 NEON's depthwise sums groups of taps in i16, sized per channel by its weights
/// (`plan_groups`): weights scaled down to reach every group size, and channels at the
/// bound of a group of 3 (positive sums of 255 and 256, which fit, and 257, which must not
/// be grouped so; negative ones of 255, which fits, and 256, which does not), on inputs at
/// both ends of int8 as well as random ones, against the reference.
#[test]
fn depthwise_groups_of_taps_stay_exact() {
    let g3 = geo(6, 9, 21, 3, 1, [1, 1, 1, 1], 1);
    let g5 = geo(5, 12, 19, 5, 2, [2, 2, 1, 2], 1);
    let at_bound: [[i8; 9]; 6] = [
        [127, 64, 64, 127, 64, 64, 127, 64, 64],
        [127, 64, 65, 127, 64, 65, 127, 64, 65],
        [127, 65, 65, 127, 65, 65, 127, 65, 65],
        [-127, -64, -64, -127, -64, -64, -127, -64, -64],
        [-127, -64, -65, -127, -64, -65, -127, -64, -65],
        [127, -64, 65, -127, 64, -65, 127, -64, 65],
    ];
    for (i, (g, div)) in [(g3, 1i8), (g3, 3), (g3, 6), (g3, 14), (g3, 40), (g5, 2), (g5, 6), (g5, 10), (g5, 20), (g5, 60), (g3, 0)].into_iter().enumerate() {
        let (c, taps) = (g.cin, g.kh * g.kw);
        let w: Vec<i8> = if div == 0 { at_bound.concat() } else { data(300 + i as u64, c * taps).into_iter().map(|v| v.max(-127) / div).collect() };
        let bias: Vec<i32> = (0..c as i32).map(|i| 7 - 300 * i).collect();
        let rq = Requant::new(vec![0.0004; c], -5);
        for (j, x) in [vec![-128i8; c * g.h * g.w], vec![127; c * g.h * g.w], data(400 + i as u64, c * g.h * g.w)].into_iter().enumerate() {
            let x_zp = [3i8, -2, 9][j];
            let want = reference(&g, c, &w, &bias, x_zp, &rq, &x);
            for set in sets() {
                let conv = DepthwiseQConv::with_kernels(set, g, &w, &bias, x_zp, rq.clone()).unwrap();
                let mut y = vec![0i8; want.len()];
                conv.run(&x, &mut y);
                assert_eq!(y, want, "{set} {g:?} weights / {div}, input {j}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn dense_matches_reference_on_random_shapes(
        cin in 1usize..40, m in 1usize..20, h in 1usize..10, w in 1usize..24,
        k in prop::sample::select(vec![1usize, 3, 5]), s in 1usize..3, p in 0usize..3, seed in 0u64..1000,
        x_zp in any::<i8>(), y_zp in any::<i8>(),
    ) {
        let g = geo(cin, h + k, w + k, k, s, [p; 4], 1);
        check_dense_zp(g, m, seed, x_zp, y_zp);
    }

    /// A stride past the input (a defective file's 2³⁰) gives one output position, equal
    /// to the reference, without sizing any buffer by the stride.
    #[test]
    fn strides_past_the_input_are_exact_and_cheap(
        c in 1usize..5, h in 1usize..9, w in 1usize..9, k in prop::sample::select(vec![1usize, 3]),
        p in 0usize..2, big in prop::sample::select(vec![1usize << 30, 1 << 20, 64]), seed in 0u64..100,
    ) {
        let g = Geometry { cin: c, h: h + k, w: w + k, kh: k, kw: k, stride: (big, 1 + big % 3), dilation: (1, 1), pads: [p; 4] };
        let wts = data(seed, c * k * k);
        let x = data(seed + 1, c * g.h * g.w);
        let bias: Vec<i32> = (0..c as i32).map(|i| 5 - 3 * i).collect();
        let rq = Requant::new(vec![0.01; c], 3);
        let want = reference(&g, c, &wts, &bias, -2, &rq, &x);
        for set in sets() {
            let conv = DepthwiseQConv::with_kernels(set, g, &wts, &bias, -2, rq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            prop_assert_eq!(&y, &want, "{} {:?}", set, g);
        }
        let m = 3;
        let dw = data(seed + 2, m * c * k * k);
        let dbias: Vec<i32> = (0..m as i32).collect();
        let drq = Requant::new(vec![0.002; m], -1);
        let want = reference(&g, 1, &dw, &dbias, 4, &drq, &x);
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &dw, &dbias, 4, drq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            prop_assert_eq!(&y, &want, "dense {} {:?}", set, g);
        }
    }

    #[test]
    fn depthwise_matches_reference_on_random_shapes(
        c in 1usize..6, h in 0usize..12, w in 0usize..40,
        k in prop::sample::select(vec![1usize, 3, 5]), s in 1usize..3, d in 1usize..3,
        pads in prop::array::uniform4(0usize..3), seed in 0u64..1000,
        x_zp in any::<i8>(), y_zp in any::<i8>(),
    ) {
        let g = Geometry { cin: c, h: h + k * d, w: w + k * d, kh: k, kw: k, stride: (s, s), dilation: (d, d), pads };
        // Mostly weights in −127..=127 (NEON's form needs it), sometimes the full range.
        let wts: Vec<i8> = data(seed, c * k * k).into_iter().map(|v| if seed % 4 == 0 { v } else { v.max(-127) }).collect();
        let x = data(seed + 1, c * g.h * g.w);
        let bias: Vec<i32> = (0..c as i32).map(|i| 300 - 97 * i).collect();
        let rq = Requant::new((0..c).map(|i| 0.001 + 0.003 * i as f32).collect(), y_zp);
        let want = reference(&g, c, &wts, &bias, x_zp, &rq, &x);
        for set in sets() {
            let conv = DepthwiseQConv::with_kernels(set, g, &wts, &bias, x_zp, rq.clone()).unwrap();
            let mut y = vec![0i8; want.len()];
            conv.run(&x, &mut y);
            prop_assert_eq!(&y, &want, "{} {:?}", set, g);
        }
    }
}

/// `k`, column and row counts at, just below and just above each boundary of a tile: one
/// group, half a group (NEON's half form), two groups; one panel, a register tile.
fn around(unit: usize, extra: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> =
        [1, unit - 1, unit, unit + 1, 2 * unit - 1, 2 * unit, 2 * unit + 1].into_iter().chain(extra.iter().copied()).filter(|&x| x >= 1).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The dense cases generated from each kernel set's tile (`plan::Tile`, whose constants the
/// ISA folders' tests tie to their own): every set this CPU runs, pointwise layers of `k`
/// input channels, `n` output columns and `m` output channels around the tile's boundaries,
/// exact against the reference, and the path taken asserted from the constants alone (the
/// trace of `trace.rs`), so a changed constant or a decision that no longer reaches its
/// kernel fails here.
#[test]
fn dense_paths_follow_the_tiles() {
    use super::plan::{Target, Tile};
    use super::trace;
    for set in sets() {
        let target = Target::host(set);
        let t = Tile::dense(target);
        let tile_cols = t.nr * t.panels;
        for k in around(t.kc, &[t.kc / 2, t.kc / 2 + 1, 2 * t.kc + t.kc / 2, 3 * t.kc + 1]) {
            for n in around(tile_cols, &[t.nr - 1, t.nr, t.nr + 1]) {
                for m in around(t.mr, &[]) {
                    let g = Geometry { cin: k, h: 1, w: n, kh: 1, kw: 1, stride: (1, 1), dilation: (1, 1), pads: [0; 4] };
                    let w: Vec<i8> = data(k as u64 * 131 + n as u64, m * k).into_iter().map(|v| v.max(-127)).collect();
                    let x = data(k as u64 + 7 * n as u64, k * n);
                    let bias: Vec<i32> = (0..m as i32).map(|i| 11 * i - 40).collect();
                    let rq = Requant::new((0..m).map(|i| 0.001 + 0.0003 * (i % 3) as f32).collect(), -2);
                    let want = reference(&g, 1, &w, &bias, 4, &rq, &x);
                    let conv = DenseQConv::with_kernels(set, g, &w, &bias, 4, rq).unwrap();
                    assert_eq!(conv.kernel_set(), set);
                    trace::take();
                    let mut y = vec![0i8; want.len()];
                    conv.run(&x, &mut y);
                    let hits = trace::take();
                    let case = format!("{set}: k {k}, n {n}, m {m}, paths {hits:?}");
                    assert_eq!(y, want, "{case}");
                    assert!(trace::took(&hits, "dense.pointwise"), "{case}");
                    let full_block = m >= t.mr;
                    let (rem_cols, rem_rows) = (n % t.nr, m % t.mr);
                    match (set, target.arch) {
                        (KernelSet::Portable, _) => assert!(trace::took(&hits, "portable.gemm"), "{case}"),
                        (KernelSet::Avx512Vnni, _) => {
                            assert_eq!(trace::took(&hits, "vnni.partial"), rem_rows != 0 || n % tile_cols != 0, "{case}");
                            assert_eq!(trace::took(&hits, "vnni.one_panel"), n.div_ceil(t.nr) % 2 == 1, "{case}");
                            assert_eq!(trace::took(&hits, "vnni.two_panels"), n > t.nr, "{case}");
                        }
                        (KernelSet::Avx2, _) => {
                            assert_eq!(trace::took(&hits, "avx2.full"), full_block && n >= tile_cols, "{case}");
                            assert_eq!(trace::took(&hits, "avx2.partial"), rem_rows != 0 || n % tile_cols != 0, "{case}");
                            assert_eq!(trace::took(&hits, "avx2.one_panel"), n.div_ceil(t.nr) % 2 == 1, "{case}");
                        }
                        (KernelSet::Neon, super::Arch::Aarch64) => {
                            let kb = k.div_ceil(t.kc);
                            assert_eq!(trace::took(&hits, "neon.half"), kb >= 2 && (1..=t.kc / 2).contains(&(k % t.kc)), "{case}");
                            assert_eq!(trace::took(&hits, "neon.full_tiles"), full_block && n >= t.nr, "{case}");
                            assert_eq!(trace::took(&hits, "neon.cols"), rem_cols != 0, "{case}");
                            assert_eq!(trace::took(&hits, "neon.partial"), rem_cols != 0 || rem_rows != 0, "{case}");
                        }
                        (KernelSet::Dotprod, _) => {
                            assert_eq!(trace::took(&hits, "dot.full_tiles"), full_block && n >= t.nr, "{case}");
                            assert_eq!(trace::took(&hits, "dot.cols"), (1..=t.nr / 2).contains(&rem_cols), "{case}");
                            let wide_partial = rem_cols > t.nr / 2 || (rem_rows != 0 && n >= t.nr);
                            assert_eq!(trace::took(&hits, "dot.partial"), wide_partial, "{case}");
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The plan's algorithm and depthwise form are what runs: a convolution planned in place
/// takes the in-place kernel, one planned im2col the im2col path, and a depthwise layer the
/// form its plan names (for every set this CPU runs, on the layers of the other tests).
#[test]
fn plans_are_what_runs() {
    use super::plan::{DenseAlgorithm, DepthwiseForm};
    use super::trace;
    for (i, g) in [
        geo(3, 20, 20, 3, 2, [1; 4], 1),
        geo(12, 9, 9, 3, 1, [1; 4], 1),
        geo(32, 9, 13, 3, 1, [1; 4], 1),
        geo(32, 14, 14, 3, 2, [1; 4], 1),
        geo(64, 7, 7, 1, 1, [0; 4], 1),
        geo(16, 18, 19, 5, 1, [2; 4], 1),
    ]
    .into_iter()
    .enumerate()
    {
        let m = 6;
        let w: Vec<i8> = data(300 + i as u64, m * g.cin * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
        let x = data(400 + i as u64, g.cin * g.h * g.w);
        let rq = Requant::new(vec![0.001; m], 1);
        for set in sets() {
            let conv = DenseQConv::with_kernels(set, g, &w, &[0; 6], -1, rq.clone()).unwrap();
            let (oh, ow) = conv.output_hw();
            trace::take();
            conv.run(&x, &mut vec![0i8; m * oh * ow]);
            let hits = trace::take();
            let path = match conv.plan().algorithm {
                DenseAlgorithm::Pointwise => "dense.pointwise",
                DenseAlgorithm::Im2col => "dense.im2col",
                DenseAlgorithm::InPlace => "dense.in_place",
            };
            assert!(trace::took(&hits, path), "{set} {g:?}: planned {path}, ran {hits:?}");
        }
        let c = g.cin;
        let wd: Vec<i8> = data(500 + i as u64, c * g.kh * g.kw).into_iter().map(|v| v.max(-127)).collect();
        let rq = Requant::new(vec![0.002; c], 0);
        for set in sets() {
            let conv = DepthwiseQConv::with_kernels(set, g, &wd, &vec![0; c], 2, rq.clone()).unwrap();
            let (oh, ow) = conv.output_hw();
            trace::take();
            conv.run(&x, &mut vec![0i8; c * oh * ow]);
            let hits = trace::take();
            let form = match conv.plan().form {
                DepthwiseForm::Planes16 => "dw.planes16",
                DepthwiseForm::Neon => "dw.neon",
                DepthwiseForm::Dot => "dw.dot",
                DepthwiseForm::Vnni => "dw.vnni",
            };
            assert!(trace::took(&hits, form), "{set} {g:?}: planned {form}, ran {hits:?}");
            assert_eq!(trace::took(&hits, "dw.flat"), conv.plan().flat, "{set} {g:?}");
        }
    }
}
