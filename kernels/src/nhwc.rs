//! Channels-last (NHWC) kernels for 2-D (and 1-D) convolution chains: layout reorders,
//! depthwise convolution vectorised across channels, 1×1 convolution as one GEMM over every
//! position of the batch, and global average pooling.
//!
//! Shapes and parameters are the usual NCHW ones ([`ConvGeom`]); only the memory order
//! differs: element `(n, c, h, w)` lives at `((n * H + h) * W + w) * C + c`. A 1-D conv is a
//! 2-D one with `H = 1`.

use crate::act::{Act, bias_act};
use crate::conv::ConvGeom;
use crate::pgemm::{PackedB, gemm_packed_b_ex};
use crate::{SendPtr, threads_for};
use rayon::prelude::*;

/// NCHW → NHWC: `n` images of `c` channels and `hw` positions (`x`, `y`: `n * c * hw`).
pub fn nchw_to_nhwc(n: usize, c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    transpose_batched(n, c, hw, x, y)
}

/// NHWC → NCHW: `n` images of `hw` positions and `c` channels.
pub fn nhwc_to_nchw(n: usize, c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    transpose_batched(n, hw, c, x, y)
}

/// Transposes `n` row-major `r × s` matrices into `s × r` ones.
fn transpose_batched(n: usize, r: usize, s: usize, x: &[f32], y: &mut [f32]) {
    let per = r * s;
    assert!(x.len() >= n * per && y.len() >= n * per, "transpose: buffers too short");
    if per == 0 {
        return;
    }
    // Tasks: blocks of TB output rows (input columns) of one image, 8 × 8 tiles inside.
    const TB: usize = 32;
    let blocks = s.div_ceil(TB);
    let yp = SendPtr(y.as_mut_ptr());
    let task = |t: usize| {
        let (i, b) = (t / blocks, t % blocks);
        let (j0, j1) = (b * TB, ((b + 1) * TB).min(s));
        // SAFETY: output rows j0..j1 of image i belong to this task only; the input is read.
        unsafe { transpose_block(r, s, x.as_ptr().add(i * per), yp.get().add(i * per), j0, j1) };
    };
    let tasks = n * blocks;
    // A copy moves a float per element: split from a sixteenth of a GEMM's threshold.
    if threads_for(per as u64 * n as u64 * 16) > 1 && tasks > 1 {
        (0..tasks).into_par_iter().with_min_len((8192 / (TB * r).max(1)).max(1)).for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// `y[j][k] = x[k][j]` for output rows `j0..j1` (`x`: `r × s`, `y`: `s × r`).
///
/// # Safety
/// `x` holds `r * s` floats; `y` rows `j0..j1` (of `r` floats) are writable.
unsafe fn transpose_block(r: usize, s: usize, x: *const f32, y: *mut f32, j0: usize, j1: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::has_avx2() {
        // SAFETY: avx2 checked at runtime; extents forwarded.
        return unsafe { transpose_block_avx(r, s, x, y, j0, j1) };
    }
    // SAFETY: forwarded.
    unsafe { transpose_scalar(r, s, x, y, (0, r), (j0, j1)) }
}

/// Scalar transpose of input rows `k` and columns `j` in the given ranges.
///
/// # Safety
/// As [`transpose_block`].
unsafe fn transpose_scalar(
    r: usize,
    s: usize,
    x: *const f32,
    y: *mut f32,
    (k0, k1): (usize, usize),
    (j0, j1): (usize, usize),
) {
    for k in k0..k1 {
        for j in j0..j1 {
            // SAFETY: k < r, j < s.
            unsafe { *y.add(j * r + k) = *x.add(k * s + j) };
        }
    }
}

/// 8 × 8 register transposes (AVX), scalar edges.
///
/// # Safety
/// As [`transpose_block`], and the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_block_avx(r: usize, s: usize, x: *const f32, y: *mut f32, j0: usize, j1: usize) {
    use std::arch::x86_64::*;
    let (r8, j8) = (r / 8 * 8, j0 + (j1 - j0) / 8 * 8);
    // SAFETY: every tile reads rows k..k+8 < r at columns j..j+8 <= j1 <= s and writes rows
    // j..j+8 of `y` at columns k..k+8.
    unsafe {
        for j in (j0..j8).step_by(8) {
            for k in (0..r8).step_by(8) {
                let l = |q: usize| _mm256_loadu_ps(x.add((k + q) * s + j));
                let (a0, a1, a2, a3, a4, a5, a6, a7) = (l(0), l(1), l(2), l(3), l(4), l(5), l(6), l(7));
                let t0 = _mm256_unpacklo_ps(a0, a1);
                let t1 = _mm256_unpackhi_ps(a0, a1);
                let t2 = _mm256_unpacklo_ps(a2, a3);
                let t3 = _mm256_unpackhi_ps(a2, a3);
                let t4 = _mm256_unpacklo_ps(a4, a5);
                let t5 = _mm256_unpackhi_ps(a4, a5);
                let t6 = _mm256_unpacklo_ps(a6, a7);
                let t7 = _mm256_unpackhi_ps(a6, a7);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let st = |q: usize, v: __m256| _mm256_storeu_ps(y.add((j + q) * r + k), v);
                st(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                st(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                st(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                st(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                st(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                st(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                st(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                st(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
            }
        }
        transpose_scalar(r, s, x, y, (r8, r), (j0, j8));
        transpose_scalar(r, s, x, y, (0, r), (j8, j1));
    }
}

/// Spatial geometry of a 1-D or 2-D conv as `[h, w]` pairs (1-D: `h = 1`).
struct G2 {
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
}

impl G2 {
    fn of(geom: &ConvGeom) -> G2 {
        let r = geom.in_spatial.len();
        assert!(r == 1 || r == 2, "NHWC conv: spatial rank must be 1 or 2, got {r}");
        // Output extents without `out_spatial` (which allocates).
        let out = |i: usize| {
            let ext = geom.in_spatial[i] + geom.pads_begin[i] + geom.pads_end[i];
            let ek = (geom.kernel[i] - 1) * geom.dilations[i] + 1;
            if ext < ek { 0 } else { (ext - ek) / geom.strides[i] + 1 }
        };
        let os = if r == 2 { [out(0), out(1)] } else { [out(0), 0] };
        let two = |v: &[usize], fill: usize| if r == 2 { [v[0], v[1]] } else { [fill, v[0]] };
        let [ih, iw] = two(&geom.in_spatial, 1);
        let [oh, ow] = two(&os, 1);
        let [kh, kw] = two(&geom.kernel, 1);
        let [sh, sw] = two(&geom.strides, 1);
        let [dh, dw] = two(&geom.dilations, 1);
        let [ph, pw] = two(&geom.pads_begin, 0);
        G2 { ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw }
    }
    /// Taps `k` of an output at `o` that land inside an input of extent `n`.
    fn range(o: usize, s: usize, d: usize, p: usize, k_n: usize, n: usize) -> (usize, usize) {
        crate::depthwise::valid_range_k(o * s, n, k_n, d, p)
    }
}

/// Depthwise weights (channel multiplier 1) in tap-major order: `w[tap * c + ch]`.
#[derive(Clone, Debug)]
pub struct DepthwiseNhwc {
    c: usize,
    taps: usize,
    w: Vec<f32>,
}

impl DepthwiseNhwc {
    /// Reorders ONNX depthwise weights `[c][1][kh][kw]` (`taps = kh * kw`).
    pub fn new(c: usize, taps: usize, weight: &[f32]) -> DepthwiseNhwc {
        assert!(weight.len() >= c * taps, "DepthwiseNhwc: weight too short");
        let mut w = vec![0.0; c * taps];
        for ch in 0..c {
            for t in 0..taps {
                w[t * c + ch] = weight[ch * taps + t];
            }
        }
        DepthwiseNhwc { c, taps, w }
    }
    /// Channels.
    pub fn channels(&self) -> usize {
        self.c
    }
}

/// Depthwise conv (`groups == c_in == c_out`) on NHWC tensors: `out = act(conv(x) + bias)`.
pub fn depthwise_nhwc(
    geom: &ConvGeom,
    w: &DepthwiseNhwc,
    bias: Option<&[f32]>,
    act: Act,
    x: &[f32],
    out: &mut [f32],
) {
    let c = geom.c_out;
    assert!(
        geom.groups == c && geom.c_in == c && w.c == c && w.taps == geom.kernel.iter().product::<usize>(),
        "depthwise_nhwc: not a depthwise conv with these weights"
    );
    assert!(x.len() >= geom.in_len() && out.len() >= geom.out_len(), "depthwise_nhwc: buffers too short");
    if let Some(b) = bias {
        assert!(b.len() >= c, "depthwise_nhwc: bias too short");
    }
    let g = G2::of(geom);
    let rows = geom.batch * g.oh;
    let row_len = g.ow * c;
    if row_len == 0 {
        return;
    }
    let f = |(r, o): (usize, &mut [f32])| {
        let (n, oh) = (r / g.oh, r % g.oh);
        let xi = &x[n * g.ih * g.iw * c..(n + 1) * g.ih * g.iw * c];
        dw_row(&g, c, xi, &w.w, bias, oh, o);
        bias_act(o, 0.0, act);
    };
    let out = &mut out[..rows * row_len];
    if threads_for(geom.macs() * 8) > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 32) as usize / (row_len * w.taps).max(1)).max(1);
        out.par_chunks_mut(row_len).enumerate().with_min_len(min_len).for_each(f);
    } else {
        out.chunks_mut(row_len).enumerate().for_each(f);
    }
}

fn dw_row(g: &G2, c: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, oh: usize, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: avx512f checked at runtime.
            return unsafe { dw_row_avx512(g, c, x, w, bias, oh, o) };
        }
        if crate::has_avx2() {
            // SAFETY: avx2 + fma checked at runtime.
            return unsafe { dw_row_avx2(g, c, x, w, bias, oh, o) };
        }
    }
    dw_row_impl::<0>(g, c, x, w, bias, oh, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dw_row_avx512(
    g: &G2,
    c: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    oh: usize,
    o: &mut [f32],
) {
    dw_row_impl::<2>(g, c, x, w, bias, oh, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dw_row_avx2(
    g: &G2,
    c: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    oh: usize,
    o: &mut [f32],
) {
    dw_row_impl::<1>(g, c, x, w, bias, oh, o)
}

/// One output row (`ow × c` values) of a depthwise conv, before the activation; `ISA`: 2
/// AVX-512, 1 AVX2 + FMA, 0 portable code.
#[inline(always)]
fn dw_row_impl<const ISA: u8>(
    g: &G2,
    c: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    oh: usize,
    o: &mut [f32],
) {
    let kr = G2::range(oh, g.sh, g.dh, g.ph, g.kh, g.ih);
    // Interior outputs: every kernel column inside the row.
    let (lo, hi) = {
        let mut lo = g.ow;
        let mut hi = 0;
        for ow in 0..g.ow {
            if G2::range(ow, g.sw, g.dw, g.pw, g.kw, g.iw) == (0, g.kw) {
                lo = lo.min(ow);
                hi = hi.max(ow + 1);
            }
        }
        if lo >= hi { (0, 0) } else { (lo, hi) }
    };
    assert!(x.len() >= g.ih * g.iw * c && o.len() >= g.ow * c && w.len() >= g.kh * g.kw * c);
    assert!(bias.is_none_or(|b| b.len() >= c));
    let cx = Cols { g, c, x, w, bias, kr, ohs: oh * g.sh };
    let mut ow = 0;
    while ow < g.ow {
        let full = (0, g.kw);
        if ow >= lo && ow + 8 <= hi {
            // SAFETY (all arms): interior outputs read inside the row; the buffers were
            // checked above.
            unsafe { cx.outputs::<8, ISA>(ow, full, o) };
            ow += 8;
        } else if ow >= lo && ow + 4 <= hi {
            unsafe { cx.outputs::<4, ISA>(ow, full, o) };
            ow += 4;
        } else {
            let kc = G2::range(ow, g.sw, g.dw, g.pw, g.kw, g.iw);
            unsafe { cx.outputs::<1, ISA>(ow, kc, o) };
            ow += 1;
        }
    }
}

struct Cols<'a> {
    g: &'a G2,
    c: usize,
    x: &'a [f32],
    w: &'a [f32],
    /// Per channel (`None`: zero).
    bias: Option<&'a [f32]>,
    kr: (usize, usize),
    /// `oh * stride_h`.
    ohs: usize,
}

impl Cols<'_> {
    /// `NW` consecutive outputs from `ow`, all with kernel columns `kc`, every channel.
    ///
    /// # Safety
    /// Every tap of these outputs in `kc` and the row's kernel rows lies inside the image;
    /// `o` holds the row; `ISA` is available.
    #[inline(always)]
    unsafe fn outputs<const NW: usize, const ISA: u8>(&self, ow: usize, kc: (usize, usize), o: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: forwarded.
            match ISA {
                2 => return unsafe { self.outputs_avx512::<NW>(ow, kc, o) },
                1 => return unsafe { self.outputs_avx2::<NW>(ow, kc, o) },
                _ => {}
            }
        }
        let mut c0 = 0;
        while c0 + 8 <= self.c {
            self.chunk::<NW, 8>(ow, kc, c0, o);
            c0 += 8;
        }
        while c0 < self.c {
            self.chunk::<NW, 1>(ow, kc, c0, o);
            c0 += 1;
        }
    }

    /// Portable block: channels `c0..c0 + CW`.
    #[inline(always)]
    fn chunk<const NW: usize, const CW: usize>(
        &self,
        ow: usize,
        kc: (usize, usize),
        c0: usize,
        o: &mut [f32],
    ) {
        let (g, c) = (self.g, self.c);
        let b: [f32; CW] = self.bias.map_or([0.0; CW], |b| b[c0..c0 + CW].try_into().unwrap());
        let mut acc = [b; NW];
        for kh in self.kr.0..self.kr.1 {
            let ih = self.ohs + kh * g.dh - g.ph;
            for kw in kc.0..kc.1 {
                let wv: &[f32; CW] = self.w[(kh * g.kw + kw) * c + c0..][..CW].try_into().unwrap();
                for (j, a) in acc.iter_mut().enumerate() {
                    let iw = (ow + j) * g.sw + kw * g.dw - g.pw;
                    let xv: &[f32; CW] = self.x[(ih * g.iw + iw) * c + c0..][..CW].try_into().unwrap();
                    for l in 0..CW {
                        a[l] += wv[l] * xv[l];
                    }
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            o[(ow + j) * c + c0..][..CW].copy_from_slice(a);
        }
    }

    /// AVX-512 block: 16 channels per vector, the last vector masked.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn outputs_avx512<const NW: usize>(&self, ow: usize, kc: (usize, usize), o: &mut [f32]) {
        use std::arch::x86_64::*;
        let (g, c) = (self.g, self.c);
        let (xp, wp, op) = (self.x.as_ptr(), self.w.as_ptr(), o.as_mut_ptr());
        let mut c0 = 0;
        while c0 < c {
            let m: __mmask16 = if c - c0 >= 16 { 0xffff } else { ((1u32 << (c - c0)) - 1) as u16 };
            // SAFETY: every offset is a tap inside the image, a weight, a bias or an output
            // of the row (caller's contract); masked-off lanes are not accessed.
            unsafe {
                let b0 =
                    self.bias.map_or(_mm512_setzero_ps(), |b| _mm512_maskz_loadu_ps(m, b.as_ptr().add(c0)));
                let mut acc = [b0; NW];
                for kh in self.kr.0..self.kr.1 {
                    let xrow = xp.add((self.ohs + kh * g.dh - g.ph) * g.iw * c + c0);
                    for kw in kc.0..kc.1 {
                        let wv = _mm512_maskz_loadu_ps(m, wp.add((kh * g.kw + kw) * c + c0));
                        let col = ow * g.sw + kw * g.dw - g.pw;
                        for (j, a) in acc.iter_mut().enumerate() {
                            let xv = _mm512_maskz_loadu_ps(m, xrow.add((col + j * g.sw) * c));
                            *a = _mm512_fmadd_ps(wv, xv, *a);
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    _mm512_mask_storeu_ps(op.add((ow + j) * c + c0), m, *a);
                }
            }
            c0 += 16;
        }
    }

    /// AVX2 block: 8 channels per vector; channels past the last full vector run the
    /// portable block.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn outputs_avx2<const NW: usize>(&self, ow: usize, kc: (usize, usize), o: &mut [f32]) {
        use std::arch::x86_64::*;
        let (g, c) = (self.g, self.c);
        let (xp, wp, op) = (self.x.as_ptr(), self.w.as_ptr(), o.as_mut_ptr());
        let mut c0 = 0;
        while c0 + 8 <= c {
            // SAFETY: as in `outputs_avx512`, 8 whole channels.
            unsafe {
                let b0 = self.bias.map_or(_mm256_setzero_ps(), |b| _mm256_loadu_ps(b.as_ptr().add(c0)));
                let mut acc = [b0; NW];
                for kh in self.kr.0..self.kr.1 {
                    let xrow = xp.add((self.ohs + kh * g.dh - g.ph) * g.iw * c + c0);
                    for kw in kc.0..kc.1 {
                        let wv = _mm256_loadu_ps(wp.add((kh * g.kw + kw) * c + c0));
                        let col = ow * g.sw + kw * g.dw - g.pw;
                        for (j, a) in acc.iter_mut().enumerate() {
                            let xv = _mm256_loadu_ps(xrow.add((col + j * g.sw) * c));
                            *a = _mm256_fmadd_ps(wv, xv, *a);
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(op.add((ow + j) * c + c0), *a);
                }
            }
            c0 += 8;
        }
        while c0 < c {
            self.chunk::<NW, 1>(ow, kc, c0, o);
            c0 += 1;
        }
    }
}

/// Weights of a 1×1 stride-1 unpadded conv (`groups == 1`) on NHWC activations, packed
/// once as the GEMM operand `B[c_in × c_out]`.
#[derive(Clone, Debug)]
pub struct ConvNhwc {
    b: PackedB,
}

impl ConvNhwc {
    /// Packs ONNX weights `[c_out][c_in][1][1]`; `None` unless the conv is 1×1, stride 1,
    /// unpadded, one group.
    pub fn new(geom: &ConvGeom, weight: &[f32]) -> Option<ConvNhwc> {
        if !pointwise(geom) {
            return None;
        }
        let (co, ci) = (geom.c_out, geom.c_in);
        assert!(weight.len() >= co * ci, "ConvNhwc: weight too short");
        let mut bt = vec![0.0; ci * co];
        for o in 0..co {
            for i in 0..ci {
                bt[i * co + o] = weight[o * ci + i];
            }
        }
        Some(ConvNhwc { b: PackedB::new(ci, co, &bt) })
    }
    /// Whether these weights fit `geom`.
    pub fn matches(&self, geom: &ConvGeom) -> bool {
        pointwise(geom) && self.b.n() == geom.c_out && self.b.k() == geom.c_in
    }
}

/// Whether a conv is a 1×1, stride-1, unpadded, one-group one: on NHWC activations it is a
/// single GEMM over every position of the batch.
pub fn pointwise(geom: &ConvGeom) -> bool {
    geom.groups == 1
        && geom.kernel.iter().all(|&k| k == 1)
        && geom.strides.iter().all(|&s| s == 1)
        && geom.pads_begin.iter().chain(&geom.pads_end).all(|&p| p == 0)
}

/// A 1×1 conv on NHWC activations, `out = act(x · W + bias (+ out))`, the previous contents
/// of `out` added when `accumulate` (a fused residual): one GEMM with `N·H·W` rows.
pub fn conv_nhwc(
    geom: &ConvGeom,
    w: &ConvNhwc,
    bias: Option<&[f32]>,
    act: Act,
    accumulate: bool,
    x: &[f32],
    out: &mut [f32],
) {
    assert!(w.matches(geom), "conv_nhwc: weights do not fit the geometry");
    assert!(x.len() >= geom.in_len() && out.len() >= geom.out_len(), "conv_nhwc: buffers too short");
    let m = geom.batch * geom.in_spatial.iter().product::<usize>();
    let threads = threads_for(geom.macs());
    gemm_packed_b_ex(m, x, geom.c_in, &w.b, bias, accumulate, act, out, geom.c_out, threads)
}

/// Global average pooling of `n` NHWC images of `hw` positions and `c` channels into
/// `out[n * c]` (the same memory order as NCHW `[n, c, 1, 1]`).
pub fn global_avg_pool_nhwc(n: usize, hw: usize, c: usize, x: &[f32], out: &mut [f32]) {
    assert!(x.len() >= n * hw * c && out.len() >= n * c, "global_avg_pool_nhwc: buffers too short");
    if c == 0 {
        return;
    }
    let inv = if hw == 0 { 0.0 } else { 1.0 / hw as f32 };
    let f = |(i, o): (usize, &mut [f32])| {
        o.fill(0.0);
        for p in x[i * hw * c..(i + 1) * hw * c].chunks_exact(c) {
            for (a, v) in o.iter_mut().zip(p) {
                *a += v;
            }
        }
        o.iter_mut().for_each(|a| *a *= inv);
    };
    let out = &mut out[..n * c];
    if threads_for((n * hw * c) as u64 * 4) > 1 && n > 1 {
        out.par_chunks_mut(c).enumerate().for_each(f);
    } else {
        out.chunks_mut(c).enumerate().for_each(f);
    }
}
