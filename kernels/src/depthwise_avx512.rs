//! AVX-512 intrinsics version of the direct depthwise kernel (rank ≤ 2).

use crate::depthwise::valid_range_k;
use crate::im2col::{Geom3, valid_range};
use std::arch::x86_64::*;

/// Loads 16 outputs' worth of input taps `p[i * sw]`, `i < 16`, reading no
/// element past `p[15 * sw]`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load16(p: *const f32, sw: usize, even: __m512i, gidx: __m512i) -> __m512 {
    // SAFETY (all arms): caller guarantees p[0..=15*sw] is readable; masked
    // lanes of maskz loads are not accessed.
    unsafe {
        match sw {
            1 => _mm512_loadu_ps(p),
            2 => {
                let a = _mm512_loadu_ps(p);
                let b = _mm512_maskz_loadu_ps(0x7fff, p.add(16));
                _mm512_permutex2var_ps(a, even, b)
            }
            _ => _mm512_i32gather_ps::<4>(gidx, p),
        }
    }
}

/// A block of 16 consecutive outputs: (`oh * stride_h`, first `ow`,
/// offset of the first output in the plane, store mask).
type Desc = (usize, usize, usize, u16);

/// `NB` independent blocks of 16 outputs sharing the kernel-row range `kr`
/// (independent accumulators hide the FMA latency).
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks<const NB: usize>(
    g: &Geom3,
    sw: usize,
    x: *const f32,
    w: &[f32],
    kr: (usize, usize),
    descs: &[Desc],
    bias: f32,
    dst: *mut f32,
    even: __m512i,
    gidx: __m512i,
) {
    let (iw_n, kw_n) = (g.ins[2], g.k[2]);
    let mut acc = [_mm512_set1_ps(bias); NB];
    for kh in kr.0..kr.1 {
        let mut rows = [x; NB];
        for (r, d) in rows.iter_mut().zip(descs) {
            let ih = d.0 + kh * g.d[1] - g.pb[1];
            // SAFETY: kh is in the valid range, so ih < ih_n.
            *r = unsafe { x.add(ih * iw_n + d.1 * sw) };
        }
        for kw in 0..kw_n {
            let wv = _mm512_set1_ps(w[kh * kw_n + kw]);
            let off = kw * g.d[2] - g.pb[2];
            for (a, r) in acc.iter_mut().zip(rows) {
                // SAFETY: interior outputs only read inside the row.
                let v = unsafe { load16(r.add(off), sw, even, gidx) };
                *a = _mm512_fmadd_ps(wv, v, *a);
            }
        }
    }
    for (a, d) in acc.iter().zip(descs) {
        // SAFETY: each block has the outputs selected by its mask writable.
        unsafe { _mm512_mask_storeu_ps(dst.add(d.2), d.3, *a) };
    }
}

/// Two vertically adjacent output rows (`oh`, `oh + 1`, both with the full
/// kernel-row range) × `NB` blocks of 16 outputs. Input rows are shared:
/// with `t = s_h / d_h`, output row 1 uses kernel row `v - t` where row 0
/// uses `v`, so each loaded vector feeds up to two accumulators.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks_pair<const NB: usize>(
    g: &Geom3,
    sw: usize,
    x: *const f32,
    w: &[f32],
    oh: usize,
    t: usize,
    starts: &[(usize, u16)],
    bias: f32,
    dst: *mut f32,
    even: __m512i,
    gidx: __m512i,
) {
    let (iw_n, kh_n, kw_n, ow_n) = (g.ins[2], g.k[1], g.k[2], g.outs[2]);
    let mut acc0 = [_mm512_set1_ps(bias); NB];
    let mut acc1 = [_mm512_set1_ps(bias); NB];
    let ih0 = oh * g.s[1];
    for v in 0..kh_n + t {
        let ih = ih0 + v * g.d[1] - g.pb[1];
        // SAFETY: both rows have the full kernel-row range, so every
        // virtual row v in 0..kh_n+t is inside the plane.
        let row = unsafe { x.add(ih * iw_n) };
        for kw in 0..kw_n {
            let off = kw * g.d[2] - g.pb[2];
            let w0 = (v < kh_n).then(|| _mm512_set1_ps(w[v * kw_n + kw]));
            let w1 = (v >= t).then(|| _mm512_set1_ps(w[(v - t) * kw_n + kw]));
            for b in 0..NB {
                // SAFETY: interior outputs only read inside the row.
                let val = unsafe { load16(row.add(starts[b].0 * sw + off), sw, even, gidx) };
                if let Some(w0) = w0 {
                    acc0[b] = _mm512_fmadd_ps(w0, val, acc0[b]);
                }
                if let Some(w1) = w1 {
                    acc1[b] = _mm512_fmadd_ps(w1, val, acc1[b]);
                }
            }
        }
    }
    for b in 0..NB {
        let (st, m) = starts[b];
        // SAFETY: rows oh and oh+1 exist; masked lanes are in-row.
        unsafe {
            _mm512_mask_storeu_ps(dst.add(oh * ow_n + st), m, acc0[b]);
            _mm512_mask_storeu_ps(dst.add((oh + 1) * ow_n + st), m, acc1[b]);
        }
    }
}

/// Pending blocks, flushed in groups of up to 4.
struct Pending {
    descs: [Desc; 4],
    n: usize,
    kr: (usize, usize),
}

impl Pending {
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn flush(
        &mut self,
        g: &Geom3,
        sw: usize,
        x: *const f32,
        w: &[f32],
        bias: f32,
        dst: *mut f32,
        even: __m512i,
        gidx: __m512i,
    ) {
        let d = &self.descs[..self.n];
        // SAFETY: forwarded; descriptors are interior blocks.
        unsafe {
            match self.n {
                1 => blocks::<1>(g, sw, x, w, self.kr, d, bias, dst, even, gidx),
                2 => blocks::<2>(g, sw, x, w, self.kr, d, bias, dst, even, gidx),
                3 => blocks::<3>(g, sw, x, w, self.kr, d, bias, dst, even, gidx),
                4 => blocks::<4>(g, sw, x, w, self.kr, d, bias, dst, even, gidx),
                _ => {}
            }
        }
        self.n = 0;
    }
}

/// One output plane of a depthwise convolution (bias added, no activation).
///
/// Rows that need horizontal padding (or are narrower than one vector) are
/// first copied into a zero-padded scratch plane so that every output is
/// computed by the vector blocks; the vertical padding is handled by
/// restricting the kernel-row range.
///
/// # Safety
/// Requires AVX-512F. `x` must be one input plane of `g`, `o` one output plane.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dw_plane(g: &Geom3, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    let [_, ih_n, iw_n] = g.ins;
    let [_, oh_n, ow_n] = g.outs;
    let [_, kh_n, kw_n] = g.k;
    let sw = g.s[2];
    assert!(x.len() >= ih_n * iw_n && o.len() >= oh_n * ow_n && w.len() >= kh_n * kw_n);
    let (mut ilo, mut ihi) = (0, ow_n);
    for kw in 0..kw_n {
        let (lo, hi) = valid_range(ow_n, iw_n, sw, kw, g.d[2], g.pb[2]);
        ilo = ilo.max(lo);
        ihi = ihi.min(hi);
    }
    if ilo == 0 && ihi == ow_n && ow_n >= 16 {
        // SAFETY: every output is interior.
        unsafe { dw_rows(g, x, w, bias, o) };
        return;
    }
    // Padded copy: row length covers both the padded input and the reads of
    // the (at least one) 16-wide output block.
    let need = (ow_n.max(16) - 1) * sw + (kw_n - 1) * g.d[2] + 1;
    let wp = need.max(g.pb[2] + iw_n);
    crate::with_scratch(ih_n * wp, |buf| {
        for (ih, row) in buf.chunks_exact_mut(wp).enumerate() {
            row[..g.pb[2]].fill(0.0);
            row[g.pb[2]..g.pb[2] + iw_n].copy_from_slice(&x[ih * iw_n..(ih + 1) * iw_n]);
            row[g.pb[2] + iw_n..].fill(0.0);
        }
        let mut gp = g.clone();
        gp.ins[2] = wp;
        gp.pb[2] = 0;
        // SAFETY: in the padded plane every output's taps are in-row.
        unsafe { dw_rows(&gp, buf, w, bias, o) };
    });
}

/// All rows of a plane whose every output has in-row taps (after padding),
/// `ow_n ≥ 16` or rows wide enough to read a full 16-block.
#[target_feature(enable = "avx512f")]
unsafe fn dw_rows(g: &Geom3, x: &[f32], w: &[f32], bias: f32, o: &mut [f32]) {
    let [_, ih_n, _] = g.ins;
    let [_, oh_n, ow_n] = g.outs;
    let kh_n = g.k[1];
    let sw = g.s[2];
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let gidx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(sw as i32),
    );
    let xp = x.as_ptr();
    let op = o.as_mut_ptr();
    let mut pend = Pending { descs: [(0, 0, 0, 0); 4], n: 0, kr: (0, 0) };
    // Block starts (and store masks) of one output row, on the stack (no allocation per
    // plane); rows wider than MAX_BLOCKS blocks skip the row-pair path.
    const MAX_BLOCKS: usize = 128;
    let mut starts_buf = [(0usize, 0u16); MAX_BLOCKS];
    let mut nb = 0;
    let mut ow = 0;
    while ow < ow_n && nb < MAX_BLOCKS {
        let (start, mask) =
            if ow_n >= 16 { (ow.min(ow_n - 16), 0xffff) } else { (0, ((1u32 << ow_n) - 1) as u16) };
        starts_buf[nb] = (start, mask);
        nb += 1;
        ow = start + 16;
    }
    let starts = &starts_buf[..nb];
    let pair_t = if g.s[1].is_multiple_of(g.d[1]) && ow >= ow_n { g.s[1] / g.d[1] } else { 0 };
    let mut oh = 0;
    while oh < oh_n {
        let ih0 = oh * g.s[1];
        let kr = valid_range_k(ih0, ih_n, kh_n, g.d[1], g.pb[1]);
        if pair_t > 0
            && oh + 1 < oh_n
            && kr == (0, kh_n)
            && valid_range_k(ih0 + g.s[1], ih_n, kh_n, g.d[1], g.pb[1]) == (0, kh_n)
        {
            for ch in starts.chunks(4) {
                // SAFETY: both rows have full kernel ranges; blocks are
                // interior (caller contract).
                unsafe {
                    match ch.len() {
                        1 => blocks_pair::<1>(g, sw, xp, w, oh, pair_t, ch, bias, op, even, gidx),
                        2 => blocks_pair::<2>(g, sw, xp, w, oh, pair_t, ch, bias, op, even, gidx),
                        3 => blocks_pair::<3>(g, sw, xp, w, oh, pair_t, ch, bias, op, even, gidx),
                        _ => blocks_pair::<4>(g, sw, xp, w, oh, pair_t, ch, bias, op, even, gidx),
                    }
                }
            }
            oh += 2;
            continue;
        }
        let mut ow = 0;
        while ow < ow_n {
            // The last block overlaps already computed outputs; a row
            // narrower than 16 uses a masked store.
            let (start, mask) =
                if ow_n >= 16 { (ow.min(ow_n - 16), 0xffff) } else { (0, ((1u32 << ow_n) - 1) as u16) };
            if pend.n > 0 && pend.kr != kr {
                // SAFETY: blocks have in-row taps (caller contract).
                unsafe { pend.flush(g, sw, xp, w, bias, op, even, gidx) };
            }
            pend.kr = kr;
            pend.descs[pend.n] = (ih0, start, oh * ow_n + start, mask);
            pend.n += 1;
            if pend.n == 4 {
                // SAFETY: as above.
                unsafe { pend.flush(g, sw, xp, w, bias, op, even, gidx) };
            }
            ow = start + 16;
        }
        oh += 1;
    }
    // SAFETY: as above.
    unsafe { pend.flush(g, sw, xp, w, bias, op, even, gidx) };
}
