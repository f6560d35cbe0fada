//! aarch64 NEON row moves: interleaving channel rows (the in-place convolution's input), even
//! bytes (stride-2 im2col), row copies and the stride-2 dealing of depthwise planes.

use std::arch::aarch64::*;

use super::simd::transpose16;

/// `dst[4i + c] = rows[c][i]`: four channel rows interleaved position by position (`st4`),
/// 16 positions at a time, the last chunk overlapping the previous one; rows shorter than 16 go
/// element by element.
///
/// # Panics
/// If the rows differ in length or `dst` is not 4 times as long.
pub(crate) fn interleave4(rows: [&[i8]; 4], dst: &mut [i8]) {
    let w = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == w) && dst.len() == 4 * w);
    if w < 16 {
        return interleave_scalar(rows, dst);
    }
    // SAFETY: every chunk starts at `i ≤ w − 16`: it reads 16 bytes of each row and writes 64
    // bytes at `4i` of `dst`, within `4w`.
    chunks16(w, |i| unsafe {
        let v = int8x16x4_t(
            vld1q_s8(rows[0].as_ptr().add(i)),
            vld1q_s8(rows[1].as_ptr().add(i)),
            vld1q_s8(rows[2].as_ptr().add(i)),
            vld1q_s8(rows[3].as_ptr().add(i)),
        );
        vst4q_s8(dst.as_mut_ptr().add(4 * i), v);
    });
}

/// `chunk(i)` for `i = 0, 16, 32, …` while `i + 16 ≤ w`, then once at `w − 16` if values are
/// left (overlapping the previous chunk). `w ≥ 16`.
#[inline(always)]
fn chunks16(w: usize, mut chunk: impl FnMut(usize)) {
    debug_assert!(w >= 16);
    let mut i = 0;
    while i + 16 <= w {
        chunk(i);
        i += 16;
    }
    if i < w {
        chunk(w - 16);
    }
}

/// `dst[C · i + c] = rows[c][i]`, one value at a time (rows shorter than a vector chunk).
fn interleave_scalar<const C: usize>(rows: [&[i8]; C], dst: &mut [i8]) {
    for (i, d) in dst.chunks_exact_mut(C).enumerate() {
        for (c, v) in d.iter_mut().enumerate() {
            *v = rows[c][i];
        }
    }
}

/// `dst[16i + c] = rows[c][i]`: sixteen channel rows interleaved position by position, by 16×16
/// byte transposes, the last chunk overlapping the previous one; rows shorter than 16 go element
/// by element.
///
/// # Panics
/// If the rows differ in length or `dst` is not 16 times as long.
pub(crate) fn interleave16(rows: [&[i8]; 16], dst: &mut [i8]) {
    let w = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == w) && dst.len() == 16 * w);
    if w < 16 {
        return interleave_scalar(rows, dst);
    }
    // SAFETY: every chunk starts at `i ≤ w − 16`: it reads 16 bytes of each row and writes 256
    // bytes at `16i` of `dst`, within `16w`.
    chunks16(w, |i| unsafe {
        let cols = transpose16(std::array::from_fn(|c| vld1q_s8(rows[c].as_ptr().add(i))));
        for (j, v) in cols.into_iter().enumerate() {
            vst1q_s8(dst.as_mut_ptr().add(16 * (i + j)), v);
        }
    });
}

/// `dst[i] = src[2i]` for the leading chunks of 16 whose 32 source bytes lie within `src`
/// (`ld2` takes the even bytes); returns how many were written, a multiple of 16.
pub(crate) fn evens(dst: &mut [i8], src: &[i8]) -> usize {
    let mut i = 0;
    // SAFETY: each chunk reads `src[2i..2i + 32]` and writes `dst[i..i + 16]`, both checked.
    unsafe {
        while i + 16 <= dst.len() && 2 * i + 32 <= src.len() {
            vst1q_s8(dst.as_mut_ptr().add(i), vld2q_s8(src.as_ptr().add(2 * i)).0);
            i += 16;
        }
    }
    i
}

/// Copies `rows` runs of `width` bytes from `src` (one every `src_pitch`) to `dst` (one every
/// `dst_pitch`): a depthwise input row into its padded plane, or flat depthwise outputs back to
/// rows. 16 bytes at a time, the last chunk of a run overlapping the previous one (the same bytes
/// written twice), 8 or 4 likewise for short runs: no call to `memcpy` per row.
///
/// # Panics
/// If a run lies past `src` or `dst`.
#[inline(never)]
pub(crate) fn copy_rows(src: &[i8], src_pitch: usize, dst: &mut [i8], dst_pitch: usize, width: usize, rows: usize) {
    if rows == 0 || width == 0 {
        return;
    }
    assert!((rows - 1) * src_pitch + width <= src.len() && (rows - 1) * dst_pitch + width <= dst.len(), "row copy past a buffer");
    // SAFETY: every chunk lies within `0..width` of a run, and the runs within the buffers
    // (asserted above); `src` and `dst` are distinct borrows, so they do not overlap.
    unsafe {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // One loop over the rows per width class, with the row addresses stepped: a 14-byte
        // row (the 14×14 layers, the most rows) costs 8 instructions.
        if width >= 16 {
            // In `asm!`: 32 bytes per `ldp`/`stp` pair, then 16 if at least 16 are left, then the
            // run's last 16 bytes (overlapping what came before, the same bytes written twice):
            // a 112-byte row in 25 instructions, a 56-byte one in 17.
            let (n32, tail) = (width / 32, width - 16);
            let has16 = width % 32 >= 16;
            std::arch::asm!(
                "2:",
                "mov {i}, {n32}",
                "mov {a}, {s}",
                "mov {b}, {d}",
                "cbz {i}, 4f",
                "3:",
                "ldp q0, q1, [{a}], #32",
                "stp q0, q1, [{b}], #32",
                "subs {i}, {i}, #1",
                "b.ne 3b",
                "4:",
                "cbz {has16:w}, 5f",
                "ldr q0, [{a}]",
                "str q0, [{b}]",
                "5:",
                "ldr q1, [{s}, {tail}]",
                "str q1, [{d}, {tail}]",
                "add {s}, {s}, {sp}",
                "add {d}, {d}, {dp}",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                s = inout(reg) s => _, d = inout(reg) d => _, n32 = in(reg) n32, tail = in(reg) tail,
                has16 = in(reg) u32::from(has16), sp = in(reg) src_pitch, dp = in(reg) dst_pitch,
                n = inout(reg) rows => _, i = out(reg) _, a = out(reg) _, b = out(reg) _,
                out("v0") _, out("v1") _,
                options(nostack),
            );
        } else if width >= 4 {
            // In `asm!`: two loads and two stores of 8 bytes (4 below 8), the second pair at
            // `width − 8` (overlapping the first), then the next row: 8 instructions per row.
            let t = width - if width >= 8 { 8 } else { 4 };
            macro_rules! short_rows {
                ($reg:literal) => {
                    std::arch::asm!(
                        "2:",
                        concat!("ldr ", $reg, "0, [{s}]"),
                        concat!("ldr ", $reg, "1, [{s}, {t}]"),
                        concat!("str ", $reg, "0, [{d}]"),
                        concat!("str ", $reg, "1, [{d}, {t}]"),
                        "add {s}, {s}, {sp}",
                        "add {d}, {d}, {dp}",
                        "subs {n}, {n}, #1",
                        "b.ne 2b",
                        s = inout(reg) s => _, d = inout(reg) d => _, t = in(reg) t, sp = in(reg) src_pitch,
                        dp = in(reg) dst_pitch, n = inout(reg) rows => _, out("v0") _, out("v1") _,
                        options(nostack),
                    )
                };
            }
            if width >= 8 {
                short_rows!("d");
            } else {
                short_rows!("s");
            }
        } else {
            for r in 0..rows {
                for i in 0..width {
                    *d.add(r * dst_pitch + i) = *s.add(r * src_pitch + i);
                }
            }
        }
    }
}

/// Deals the `h` rows of `w` bytes of `src` into the two column phases of a stride-2 depthwise
/// plane `planes` (`[2][hp][pw]`): input row `iy`, column `ix` lands at padded row `pt + iy`,
/// padded column `x = pl + ix`, index `x / 2` of phase `x % 2`. Each row 32 bytes at a time with `ld2`
/// (16 with its 8-byte form, 8 with `uzp1`/`uzp2`), the last chunk overlapping the previous one
/// at an even offset;
/// the row addresses computed here, so a row costs no slicing or call of its own (that cost
/// about 39 instructions per row, as much as dealing a 112-byte row).
///
/// # Panics
/// If `src` is not `h · w` long or a row would land past its phase.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deal_plane(src: &[i8], w: usize, h: usize, planes: &mut [i8], hp: usize, pw: usize, pt: usize, pl: usize) {
    assert_eq!(src.len(), w * h);
    // Even input columns run from index ⌊pl / 2⌋ of phase pl % 2, odd ones from ⌈pl / 2⌉ of the
    // other phase.
    let (e0, o0) = ((pl % 2) * hp * pw + pl / 2, ((pl + 1) % 2) * hp * pw + pl.div_ceil(2));
    assert!(pt + h <= hp && pl / 2 + w.div_ceil(2) <= pw && pl.div_ceil(2) + w / 2 <= pw && planes.len() >= 2 * hp * pw, "deal_plane past a phase");
    let (s, p) = (src.as_ptr(), planes.as_mut_ptr());
    for iy in 0..h {
        let row = (pt + iy) * pw;
        // SAFETY: row `pt + iy < hp` of each phase holds the row's half from its start index
        // (asserted above), and `src` holds `h` rows of `w`.
        unsafe { deal_raw(s.add(iy * w), w, p.add(e0 + row), p.add(o0 + row)) }
    }
}

/// One row of [`deal_plane`]: `e[j] = s[2j]`, `o[j] = s[2j + 1]`.
///
/// # Safety
/// `s` is readable for `len` bytes, `e` writable for `⌈len / 2⌉` and `o` for `⌊len / 2⌋`.
#[inline(always)]
unsafe fn deal_raw(s: *const i8, len: usize, e: *mut i8, o: *mut i8) {
    let mut done = 0;
    // Every chunk starts at an even offset `i` with `i + 32 ≤ len` (`i + 16` for the 8-byte
    // form, `i + 8` for `chunk4`): it reads within `s` and writes indices < len / 2 of `e`
    // and `o`.
    let chunk = |i: usize| {
        let v = vld2q_s8(s.add(i));
        vst1q_s8(e.add(i / 2), v.0);
        vst1q_s8(o.add(i / 2), v.1);
    };
    if len >= 32 {
        while done + 32 <= len {
            chunk(done);
            done += 32;
        }
        if done + 1 < len {
            chunk((len - 32) & !1);
            done = ((len - 32) & !1) + 32;
        }
    } else if len >= 16 {
        // The 8-byte form, twice, the second overlapping the first at an even offset.
        let chunk8 = |i: usize| {
            let v = vld2_s8(s.add(i));
            vst1_s8(e.add(i / 2), v.0);
            vst1_s8(o.add(i / 2), v.1);
        };
        chunk8(0);
        chunk8((len - 16) & !1);
        done = ((len - 16) & !1) + 16;
    } else if len >= 8 {
        // 8 bytes at a time (4 pairs), twice, the second overlapping the first at an even
        // offset: rows of 8 to 15 (a 14×14 map at stride 2) without the byte loop.
        let chunk4 = |i: usize| {
            let v = vld1_s8(s.add(i));
            let (ev, od) = (vreinterpret_u32_s8(vuzp1_s8(v, v)), vreinterpret_u32_s8(vuzp2_s8(v, v)));
            std::ptr::write_unaligned(e.add(i / 2) as *mut u32, vget_lane_u32::<0>(ev));
            std::ptr::write_unaligned(o.add(i / 2) as *mut u32, vget_lane_u32::<0>(od));
        };
        chunk4(0);
        chunk4((len - 8) & !1);
        done = ((len - 8) & !1) + 8;
    }
    for j in done..len {
        let v = *s.add(j);
        if j % 2 == 0 {
            *e.add(j / 2) = v;
        } else {
            *o.add(j / 2) = v;
        }
    }
}
