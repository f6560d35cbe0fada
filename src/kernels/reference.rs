//! The i64 oracle every kernel set is tested against: a direct convolution with the same
//! requantization, written for clarity, not speed. Test-only.

use super::geometry::Geometry;
use super::requant::Requant;

/// The definition, for tests: a direct convolution in i64 with the same requantization.
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference(g: &Geometry, groups: usize, weights: &[i8], bias: &[i32], x_zp: i8, rq: &Requant, x: &[i8]) -> Vec<i8> {
    let (oh, ow) = g.output_hw().unwrap();
    let cin_g = g.cin / groups;
    let m = bias.len();
    let m_g = m / groups;
    let mut y = vec![0i8; m * oh * ow];
    for co in 0..m {
        let grp = co / m_g;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc: i64 = 0;
                for ci in 0..cin_g {
                    let c = grp * cin_g + ci;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.pads[0] as isize;
                            let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.pads[1] as isize;
                            let v = if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                0
                            } else {
                                i64::from(x[(c * g.h + iy as usize) * g.w + ix as usize]) - i64::from(x_zp)
                            };
                            acc += v * i64::from(weights[((co * cin_g + ci) * g.kh + ky) * g.kw + kx]);
                        }
                    }
                }
                let acc = i32::try_from(acc + i64::from(bias[co])).unwrap();
                y[(co * oh + oy) * ow + ox] = rq.one(acc, rq.scale[co]);
            }
        }
    }
    y
}

/// Deterministic pseudo-random int8 data (xorshift) for the kernel tests.
pub(crate) fn data(seed: u64, n: usize) -> Vec<i8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as i8
        })
        .collect()
}
