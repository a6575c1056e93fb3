//! Direct depthwise convolution (one input channel per group), rank 1 or 2,
//! vectorised along the output width.

use crate::act::{Act, bias_act};
use crate::conv::ConvGeom;
use crate::im2col::{Geom3, valid_range};
use crate::threads_for;
use rayon::prelude::*;

/// Depthwise conv: `geom.c_in / geom.groups == 1`; output channel `oc` reads
/// input channel `oc / (c_out / groups)`.
pub(crate) fn depthwise(
    geom: &ConvGeom,
    g3: &Geom3,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    debug_assert_eq!(g3.c, 1);
    debug_assert_eq!(g3.ins[0], 1);
    let mult = geom.c_out / geom.groups;
    let p = g3.out_plane();
    let in_plane = g3.in_plane();
    let ks = g3.ksize();
    let c_out = geom.c_out;
    let f = |(idx, o): (usize, &mut [f32])| {
        let (b, oc) = (idx / c_out, idx % c_out);
        let ic = oc / mult;
        let xi = &x[(b * geom.c_in + ic) * in_plane..][..in_plane];
        let wk = &w[oc * ks..][..ks];
        let bv = bias.map_or(0.0, |bb| bb[oc]);
        dw_plane(g3, xi, wk, bv, o);
        bias_act(o, 0.0, act);
    };
    let out = &mut out[..geom.batch * c_out * p];
    if mult == 1 && g3.outs[2] < SMALL_W && c_out >= CB {
        return depthwise_small(geom, g3, x, w, bias, act, out);
    }
    // A depthwise conv does few multiply-accumulates per byte and per plane set-up, so it
    // pays to split from an eighth of the MACs a GEMM-based conv needs (measured on
    // MobileNetV2's 7x7 and 14x14 layers: `kbench dw`).
    let threads = threads_for(geom.macs() * 8);
    if threads > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 32) as usize / (p * ks).max(1)).max(1);
        out.par_chunks_mut(p).enumerate().with_min_len(min_len).for_each(f);
    } else {
        out.chunks_mut(p).enumerate().for_each(f);
    }
}

/// Output rows narrower than this run channel-blocked ([`depthwise_small`]): a per-plane
/// kernel vectorised along the width wastes most of each vector and pays its set-up per
/// plane there. `kbench dw` (2 threads, AVX-512, per-plane → blocked): 576×14² stride 2
/// (7-wide rows) 92 → 49 µs, 960×7² 114 → 59 µs, at batch 32 3.0 → 2.4 ms and 3.7 → 2.3 ms;
/// but 576×14² stride 1 (14-wide rows) 101 → 150 µs, where the tile transposes cost more
/// than the vectors save, hence the bound.
const SMALL_W: usize = 12;
/// Channels per block of the channel-blocked kernel (one 512-bit vector).
const CB: usize = 16;

/// Depthwise conv with channel multiplier 1 and narrow output rows, vectorised across
/// channels: each block of [`CB`] channels of one image is transposed into a zero-padded
/// `[h][w][CB]` tile, every output position is then `CB` independent multiply-adds per
/// tap, and results are written back to the planes. Channels past the last full block run
/// the per-plane kernel.
fn depthwise_small(
    geom: &ConvGeom,
    g3: &Geom3,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    let c = geom.c_out;
    let (p, in_plane, ks) = (g3.out_plane(), g3.in_plane(), g3.ksize());
    let [_, ih_n, iw_n] = g3.ins;
    let [_, oh_n, ow_n] = g3.outs;
    let [_, kh_n, kw_n] = g3.k;
    // Padded tile extent: every tap of every output lands inside it.
    let hp = ((oh_n - 1) * g3.s[1] + (kh_n - 1) * g3.d[1] + 1).max(g3.pb[1] + ih_n);
    let wp = ((ow_n - 1) * g3.s[2] + (kw_n - 1) * g3.d[2] + 1).max(g3.pb[2] + iw_n);
    let blocks = c / CB;
    let block = |(b, cb): (usize, usize), o: &mut [f32]| {
        // `o`: the CB output planes of this block.
        crate::with_scratch(hp * wp * CB + ks * CB + p * CB, |buf| {
            let (tile, rest) = buf.split_at_mut(hp * wp * CB);
            let (wt, otile) = rest.split_at_mut(ks * CB);
            // Transpose in: one output position's 16 channels at a time (16 sequential read
            // streams, contiguous 64-byte writes).
            let planes: [&[f32]; CB] =
                std::array::from_fn(|j| &x[(b * c + cb * CB + j) * in_plane..][..in_plane]);
            tile.fill(0.0);
            for ih in 0..ih_n {
                let trow = (ih + g3.pb[1]) * wp + g3.pb[2];
                for iw in 0..iw_n {
                    let at = (trow + iw) * CB;
                    let v: &mut [f32; CB] = (&mut tile[at..at + CB]).try_into().unwrap();
                    for j in 0..CB {
                        v[j] = planes[j][ih * iw_n + iw];
                    }
                }
            }
            for j in 0..CB {
                for t in 0..ks {
                    wt[t * CB + j] = w[(cb * CB + j) * ks + t];
                }
            }
            let bv: [f32; CB] = std::array::from_fn(|j| bias.map_or(0.0, |bb| bb[cb * CB + j]));
            small_block(g3, wp, tile, wt, &bv, act, otile);
            // Transpose out: plane by plane, contiguous writes.
            for (j, plane) in o.chunks_mut(p).enumerate() {
                for (q, v) in plane.iter_mut().enumerate() {
                    *v = otile[q * CB + j];
                }
            }
        })
    };
    // Whole blocks in parallel (no task list: a run allocates nothing), tail channels after.
    let par = threads_for(geom.macs() * 8) > 1;
    for (b, img) in out.chunks_mut(c * p).enumerate() {
        let full = &mut img[..blocks * CB * p];
        if par {
            full.par_chunks_mut(CB * p).enumerate().for_each(|(cb, o)| block((b, cb), o));
        } else {
            full.chunks_mut(CB * p).enumerate().for_each(|(cb, o)| block((b, cb), o));
        }
    }
    if blocks * CB < c {
        let tail = |(b, ch, o): (usize, usize, &mut [f32])| {
            let xi = &x[(b * c + ch) * in_plane..][..in_plane];
            dw_plane(g3, xi, &w[ch * ks..][..ks], bias.map_or(0.0, |bb| bb[ch]), o);
            bias_act(o, 0.0, act);
        };
        for (b, img) in out.chunks_mut(c * p).enumerate() {
            for (k, o) in img[blocks * CB * p..].chunks_mut(p).enumerate() {
                tail((b, blocks * CB + k, o));
            }
        }
    }
}

/// The outputs of one channel block, `[position][CB]` into `o`, from its padded
/// `[h][w][CB]` tile and `[tap][CB]` weights, on the widest vector ISA present.
fn small_block(g3: &Geom3, wp: usize, tile: &[f32], wt: &[f32], bv: &[f32; CB], act: Act, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: avx512f checked at runtime.
            return unsafe { small_block_avx512(g3, wp, tile, wt, bv, act, o) };
        }
        if crate::has_avx2() {
            // SAFETY: avx2+fma checked at runtime.
            return unsafe { small_block_avx2(g3, wp, tile, wt, bv, act, o) };
        }
    }
    small_block_impl::<false>(g3, wp, tile, wt, bv, act, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn small_block_avx512(
    g3: &Geom3,
    wp: usize,
    tile: &[f32],
    wt: &[f32],
    bv: &[f32; CB],
    act: Act,
    o: &mut [f32],
) {
    small_block_impl::<true>(g3, wp, tile, wt, bv, act, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn small_block_avx2(
    g3: &Geom3,
    wp: usize,
    tile: &[f32],
    wt: &[f32],
    bv: &[f32; CB],
    act: Act,
    o: &mut [f32],
) {
    small_block_impl::<true>(g3, wp, tile, wt, bv, act, o)
}

#[inline(always)]
fn small_block_impl<const FMA: bool>(
    g3: &Geom3,
    wp: usize,
    tile: &[f32],
    wt: &[f32],
    bv: &[f32; CB],
    act: Act,
    o: &mut [f32],
) {
    let [_, oh_n, ow_n] = g3.outs;
    let [_, kh_n, kw_n] = g3.k;
    for oh in 0..oh_n {
        for ow in 0..ow_n {
            let mut acc = *bv;
            for kh in 0..kh_n {
                let r = (oh * g3.s[1] + kh * g3.d[1]) * wp;
                for kw in 0..kw_n {
                    let at = (r + ow * g3.s[2] + kw * g3.d[2]) * CB;
                    let xv: &[f32; CB] = tile[at..at + CB].try_into().unwrap();
                    let wv: &[f32; CB] = wt[(kh * kw_n + kw) * CB..][..CB].try_into().unwrap();
                    for j in 0..CB {
                        acc[j] = fmadd::<FMA>(wv[j], xv[j], acc[j]);
                    }
                }
            }
            bias_act(&mut acc, 0.0, act);
            let q = oh * ow_n + ow;
            o[q * CB..(q + 1) * CB].copy_from_slice(&acc);
        }
    }
}

fn dw_plane(g: &Geom3, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: avx512f checked at runtime.
            return unsafe { crate::depthwise_avx512::dw_plane(g, x, w, bias, o) };
        }
        if crate::has_avx2() {
            // SAFETY: avx2+fma checked at runtime.
            return unsafe { dw_plane_avx2(g, x, w, bias, o) };
        }
    }
    dw_plane_dispatch::<false>(g, x, w, bias, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dw_plane_avx2(g: &Geom3, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    dw_plane_dispatch::<true>(g, x, w, bias, o)
}

#[inline(always)]
fn dw_plane_dispatch<const FMA: bool>(g: &Geom3, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    // Specialise the hot strides so the strided loads are compile-time.
    match g.s[2] {
        1 => dw_plane_impl::<FMA>(g, 1, x, w, bias, o),
        2 => dw_plane_impl::<FMA>(g, 2, x, w, bias, o),
        s => dw_plane_impl::<FMA>(g, s, x, w, bias, o),
    }
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Computes a block of `N` consecutive interior outputs starting at `ow`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const N: usize, const FMA: bool>(
    g: &Geom3,
    sw: usize,
    x: &[f32],
    w: &[f32],
    kh_range: (usize, usize),
    ih0: usize,
    ow: usize,
    bias: f32,
    dst: &mut [f32],
) {
    let (iw_n, kw_n) = (g.ins[2], g.k[2]);
    let mut acc = [bias; N];
    for kh in kh_range.0..kh_range.1 {
        let ih = ih0 + kh * g.d[1] - g.pb[1];
        let row = &x[ih * iw_n..(ih + 1) * iw_n];
        for kw in 0..kw_n {
            let wv = w[kh * kw_n + kw];
            let base = ow * sw + kw * g.d[2] - g.pb[2];
            let seg = &row[base..base + (N - 1) * sw + 1];
            for i in 0..N {
                acc[i] = fmadd::<FMA>(wv, seg[i * sw], acc[i]);
            }
        }
    }
    dst[..N].copy_from_slice(&acc);
}

#[inline(always)]
fn dw_plane_impl<const FMA: bool>(g: &Geom3, sw: usize, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    let [_, ih_n, iw_n] = g.ins;
    let [_, oh_n, ow_n] = g.outs;
    let [_, kh_n, kw_n] = g.k;
    // Interior: output columns for which every kw tap is inside the row.
    let (mut ilo, mut ihi) = (0, ow_n);
    for kw in 0..kw_n {
        let (lo, hi) = valid_range(ow_n, iw_n, sw, kw, g.d[2], g.pb[2]);
        ilo = ilo.max(lo);
        ihi = ihi.min(hi);
    }
    if ihi < ilo {
        ihi = ilo;
    }
    for oh in 0..oh_n {
        let orow = &mut o[oh * ow_n..(oh + 1) * ow_n];
        let ih0 = oh * g.s[1];
        // Valid kh: 0 <= ih0 + kh*dh - ph < ih_n.
        let kr = valid_range_k(ih0, ih_n, kh_n, g.d[1], g.pb[1]);
        let scalar = |ow: usize| {
            let mut acc = bias;
            for kh in kr.0..kr.1 {
                let ih = ih0 + kh * g.d[1] - g.pb[1];
                let row = &x[ih * iw_n..(ih + 1) * iw_n];
                for kw in 0..kw_n {
                    let iw = (ow * sw + kw * g.d[2]).wrapping_sub(g.pb[2]);
                    if iw < iw_n {
                        acc = fmadd::<FMA>(w[kh * kw_n + kw], row[iw], acc);
                    }
                }
            }
            acc
        };
        for ow in (0..ilo).chain(ihi..ow_n) {
            orow[ow] = scalar(ow);
        }
        let mut ow = ilo;
        while ow + 32 <= ihi {
            block::<32, FMA>(g, sw, x, w, kr, ih0, ow, bias, &mut orow[ow..]);
            ow += 32;
        }
        if ihi - ilo >= 16 {
            while ow < ihi {
                // Overlap the final block with already computed outputs.
                let start = ow.min(ihi - 16);
                block::<16, FMA>(g, sw, x, w, kr, ih0, start, bias, &mut orow[start..]);
                ow = start + 16;
            }
        } else {
            for (i, v) in orow[ow..ihi].iter_mut().enumerate() {
                *v = scalar(ow + i);
            }
        }
    }
}

/// Range of kernel taps `kk < k_n` with `0 <= i0 + kk*d - pb < n`.
#[inline(always)]
pub(crate) fn valid_range_k(i0: usize, n: usize, k_n: usize, d: usize, pb: usize) -> (usize, usize) {
    let lo = if i0 >= pb { 0 } else { (pb - i0).div_ceil(d) };
    let hi = if i0 + (k_n - 1) * d < n + pb {
        k_n
    } else if n + pb > i0 {
        (n + pb - i0 - 1) / d + 1
    } else {
        0
    };
    (lo.min(hi), hi.min(k_n))
}
