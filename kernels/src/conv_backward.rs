//! Convolution backward kernels (gradients wrt input, weight and bias) for
//! training: im2col + GEMM with col2im scatter, direct GEMM for 1×1 convs,
//! and direct loops for depthwise convs.

use crate::conv::ConvGeom;
use crate::gemm::gemm_strided;
use crate::im2col::{Geom3, im2col_tile, valid_range};
use crate::{SendPtr, threads_for, to3, with_scratch};
use rayon::prelude::*;

/// Defines `$vis fn $name(args)` that runs `$imp(args)` compiled for
/// AVX-512 or AVX2+FMA when the CPU has them (the impl must be
/// `#[inline(always)]` so its loops are vectorised for the wider ISA).
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) => $imp:path) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn v4($($a: $t),*) {
                    $imp($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($a: $t),*) {
                    $imp($($a),*)
                }
                if crate::has_avx512() {
                    // SAFETY: avx512f checked at run time.
                    return unsafe { v4($($a),*) };
                }
                if crate::has_avx2() {
                    // SAFETY: avx2 and fma checked at run time.
                    return unsafe { v3($($a),*) };
                }
            }
            $imp($($a),*)
        }
    };
}
pub(crate) use simd_fn;

/// Floats of column buffer per task (kept around L2 size).
const TILE_FLOATS: usize = 192 * 1024;

/// `dst[i * s] += a * src[i]` for `i < src.len()`.
#[inline(always)]
pub(crate) fn axpy_strided(dst: &mut [f32], a: f32, src: &[f32], s: usize) {
    let n = src.len();
    if n == 0 {
        return;
    }
    match s {
        1 => {
            for (d, v) in dst[..n].iter_mut().zip(src) {
                *d += a * v;
            }
        }
        2 => {
            let dst = &mut dst[..(n - 1) * 2 + 1];
            for (i, v) in src.iter().enumerate() {
                dst[i * 2] += a * v;
            }
        }
        _ => {
            let dst = &mut dst[..(n - 1) * s + 1];
            for (i, v) in src.iter().enumerate() {
                dst[i * s] += a * v;
            }
        }
    }
}

/// Accumulator lanes of the depthwise weight-gradient dot products.
const LANES: usize = 8;

/// `MASK[r..r + LANES]` has ones in its last `r` lanes.
const MASK: [f32; 2 * LANES] = {
    let mut m = [0.0; 2 * LANES];
    let mut i = LANES;
    while i < 2 * LANES {
        m[i] = 1.0;
        i += 1;
    }
    m
};

/// Adds `a[i] * b[i * s]` (`i < a.len()`) into the lanes of `acc`.
/// Whole chunks of `LANES`; a ragged tail is handled by one overlapping
/// chunk whose already-counted lanes are masked out.
#[inline(always)]
fn dot_acc(acc: &mut [f32; LANES], a: &[f32], b: &[f32], s: usize) {
    let n = a.len();
    if n == 0 {
        return;
    }
    let b = &b[..(n - 1) * s + 1];
    if n < LANES {
        let mut sum = 0.0;
        for (i, x) in a.iter().enumerate() {
            sum += x * b[i * s];
        }
        acc[0] += sum;
        return;
    }
    let full = n / LANES * LANES;
    let ones = &[1.0; LANES];
    for j in (0..full).step_by(LANES) {
        dot_chunk(acc, a, b, s, j, ones);
    }
    let r = n - full;
    if r > 0 {
        dot_chunk(acc, a, b, s, n - LANES, MASK[r..r + LANES].try_into().unwrap());
    }
}

#[inline(always)]
fn dot_chunk(acc: &mut [f32; LANES], a: &[f32], b: &[f32], s: usize, j: usize, m: &[f32; LANES]) {
    let x: &[f32; LANES] = a[j..j + LANES].try_into().unwrap();
    if s == 1 {
        let y: &[f32; LANES] = b[j..j + LANES].try_into().unwrap();
        for i in 0..LANES {
            acc[i] += x[i] * y[i] * m[i];
        }
    } else {
        let b = &b[j * s..][..(LANES - 1) * s + 1];
        for i in 0..LANES {
            acc[i] += x[i] * b[i * s] * m[i];
        }
    }
}

simd_fn! {
    /// Adjoint of `im2col_tile` over whole planes: scatter-adds the rows
    /// `(c, kd, kh, kw)` of `col` (leading dimension `ld`, one column per
    /// output position) into the `nc` input planes of `x`.
    fn col2im_add(g: &Geom3, col: &[f32], ld: usize, nc: usize, x: &mut [f32]) => col2im_impl
}

#[inline(always)]
fn col2im_impl(g: &Geom3, col: &[f32], ld: usize, nc: usize, x: &mut [f32]) {
    let [od_n, oh_n, ow_n] = g.outs;
    let [id_n, ih_n, iw_n] = g.ins;
    let in_plane = g.in_plane();
    let mut r = 0;
    for xc in x[..nc * in_plane].chunks_mut(in_plane) {
        for kd in 0..g.k[0] {
            for kh in 0..g.k[1] {
                for kw in 0..g.k[2] {
                    let crow = &col[r * ld..];
                    r += 1;
                    let (lo, hi) = valid_range(ow_n, iw_n, g.s[2], kw, g.d[2], g.pb[2]);
                    if hi <= lo {
                        continue;
                    }
                    let start = lo * g.s[2] + kw * g.d[2] - g.pb[2];
                    for od in 0..od_n {
                        let id = (od * g.s[0] + kd * g.d[0]).wrapping_sub(g.pb[0]);
                        if id >= id_n {
                            continue;
                        }
                        for oh in 0..oh_n {
                            let ih = (oh * g.s[1] + kh * g.d[1]).wrapping_sub(g.pb[1]);
                            if ih >= ih_n {
                                continue;
                            }
                            let src = &crow[(od * oh_n + oh) * ow_n..][lo..hi];
                            axpy_strided(&mut xc[(id * ih_n + ih) * iw_n + start..], 1.0, src, g.s[2]);
                        }
                    }
                }
            }
        }
    }
}

fn check_conv(geom: &ConvGeom, what: &str, lens: &[(&str, usize, usize)]) {
    geom.validate();
    for &(name, have, need) in lens {
        assert!(have >= need, "{what}: {name} has {have} elements, need {need} for {geom:?}");
    }
}

/// Gradient wrt the convolution input: `dx = conv_transpose(dy, weight)`,
/// overwriting `dx` (`geom.in_len()` elements).
///
/// `geom` is the forward geometry; `dy`: `[batch, c_out, out_spatial...]`,
/// `weight`: `[c_out, c_in/groups, k...]`, `dx`: `[batch, c_in, in_spatial...]`.
pub fn conv_grad_input(geom: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    check_conv(
        geom,
        "conv_grad_input",
        &[
            ("dy", dy.len(), geom.out_len()),
            ("weight", weight.len(), geom.weight_len()),
            ("dx", dx.len(), geom.in_len()),
        ],
    );
    let dx = &mut dx[..geom.in_len()];
    if dx.is_empty() {
        return;
    }
    if geom.out_len() == 0 {
        dx.fill(0.0);
        return;
    }
    let g3 = geom.geom3();
    if use_depthwise(geom, &g3) {
        dw_grad_input(geom, &g3, dy, weight, dx);
    } else {
        gemm_grad_input(geom, &g3, dy, weight, dx);
    }
}

/// Direct depthwise loops for one input channel per group and few output
/// channels per group; otherwise GEMMs are faster.
fn use_depthwise(geom: &ConvGeom, g3: &Geom3) -> bool {
    g3.c == 1 && geom.c_out / geom.groups <= 4
}

fn is_direct(g3: &Geom3) -> bool {
    g3.ksize() == 1 && g3.s == [1, 1, 1] && g3.pb == [0, 0, 0] && g3.outs == g3.ins
}

fn gemm_grad_input(geom: &ConvGeom, g3: &Geom3, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    let (batch, groups, cig) = (geom.batch, geom.groups, g3.c);
    let cog = geom.c_out / groups;
    let (ks, p, ip) = (g3.ksize(), g3.out_plane(), g3.in_plane());
    let kk = cig * ks;
    let direct = is_direct(g3);
    let threads = threads_for(geom.macs());
    // Images per task (small planes) or input channels per task (large).
    let per_img = kk * p;
    let (mut nb, mut cb) = if direct || per_img > TILE_FLOATS {
        (1, (TILE_FLOATS / (ks * p).max(1)).clamp(1, cig))
    } else {
        ((TILE_FLOATS / per_img).clamp(1, batch), cig)
    };
    if direct {
        cb = cig;
    }
    let ntasks = |nb: usize, cb: usize| batch.div_ceil(nb) * groups * cig.div_ceil(cb);
    if threads > 1 {
        while nb > 1 && ntasks(nb, cb) < 2 * threads {
            nb = nb.div_ceil(2);
        }
        while cb > 16 && ntasks(nb, cb) < threads {
            cb = cb.div_ceil(2);
        }
    }
    let (nbt, nct) = (batch.div_ceil(nb), cig.div_ceil(cb));
    let tasks = nbt * groups * nct;
    let parallel = threads > 1 && tasks >= threads;
    let gemm_threads = if parallel { 1 } else { threads };
    let dxp = SendPtr(dx.as_mut_ptr());
    let task = |t: usize| {
        let (bi, g, ci) = (t / (groups * nct), (t / nct) % groups, t % nct);
        let (b0, c0) = (bi * nb, ci * cb);
        let (nbb, ncb) = (nb.min(batch - b0), cb.min(cig - c0));
        // SAFETY: planes of channels c0..c0+ncb of group g for images
        // b0..b0+nbb belong to this task only.
        let dx_of = |j: usize| unsafe {
            std::slice::from_raw_parts_mut(
                dxp.get().add(((b0 + j) * geom.c_in + g * cig + c0) * ip),
                ncb * ip,
            )
        };
        let dy_of = |j: usize| &dy[((b0 + j) * geom.c_out + g * cog) * p..][..cog * p];
        // A[r, o] = weight[g, o, c0 * ks + r] (W_g^T restricted to our rows).
        let wa = weight[(g * cog * kk + c0 * ks)..].as_ptr();
        if direct {
            for j in 0..nbb {
                let out = dx_of(j);
                // SAFETY: A is ncb × cog within weight, B is dy_of(j), C is ours.
                unsafe {
                    gemm_strided(
                        ncb,
                        p,
                        cog,
                        1.0,
                        wa,
                        1,
                        kk,
                        dy_of(j).as_ptr(),
                        p,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        p,
                        1,
                        gemm_threads,
                    )
                };
            }
            return;
        }
        let (rows, ncols) = (ncb * ks, nbb * p);
        let dyc_len = if nbb > 1 { cog * ncols } else { 0 };
        with_scratch(rows * ncols + dyc_len, |buf| {
            let (col, dyc) = buf.split_at_mut(rows * ncols);
            let bmat = if nbb > 1 {
                for j in 0..nbb {
                    for (o, src) in dy_of(j).chunks(p).enumerate() {
                        dyc[o * ncols + j * p..][..p].copy_from_slice(src);
                    }
                }
                dyc.as_ptr()
            } else {
                dy_of(0).as_ptr()
            };
            // SAFETY: col is rows × ncols, B is cog × ncols, A within weight.
            unsafe {
                gemm_strided(
                    rows,
                    ncols,
                    cog,
                    1.0,
                    wa,
                    1,
                    kk,
                    bmat,
                    ncols,
                    1,
                    0.0,
                    col.as_mut_ptr(),
                    ncols,
                    1,
                    gemm_threads,
                )
            };
            for j in 0..nbb {
                let out = dx_of(j);
                out.fill(0.0);
                col2im_add(g3, &col[j * p..], ncols, ncb, out);
            }
        });
    };
    if parallel {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Gradient wrt the convolution weight, summed over the batch, overwriting
/// `dw` (`geom.weight_len()` elements, layout `[c_out, c_in/groups, k...]`).
///
/// `x`: forward input `[batch, c_in, in_spatial...]`, `dy`: `[batch, c_out,
/// out_spatial...]`.
pub fn conv_grad_weight(geom: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    check_conv(
        geom,
        "conv_grad_weight",
        &[
            ("x", x.len(), geom.in_len()),
            ("dy", dy.len(), geom.out_len()),
            ("dw", dw.len(), geom.weight_len()),
        ],
    );
    let wl = geom.weight_len();
    let dw = &mut dw[..wl];
    dw.fill(0.0);
    if wl == 0 || geom.out_len() == 0 {
        return;
    }
    let g3 = geom.geom3();
    if use_depthwise(geom, &g3) {
        dw_grad_weight(geom, &g3, x, dy, dw);
        return;
    }
    let threads = threads_for(geom.macs());
    let nchunks = threads.min(geom.batch).max(1);
    let gemm_threads = (threads / nchunks).max(1);
    let bounds = |i: usize| (i * geom.batch / nchunks, (i + 1) * geom.batch / nchunks);
    // Per-chunk partial sums of dW^T (per group `[kk, cog]`: the GEMM is
    // much faster in this orientation when c_out is small), then a
    // transposing reduction into `dw`.
    let mut partials = vec![0.0f32; nchunks * wl];
    let run = |(i, buf): (usize, &mut [f32])| {
        let (lo, hi) = bounds(i);
        accumulate_grad_weight_t(geom, &g3, x, dy, lo, hi, buf, gemm_threads);
    };
    if nchunks > 1 {
        partials.par_chunks_mut(wl).enumerate().for_each(run);
    } else {
        run((0, &mut partials[..]));
    }
    let (cog, kk) = (geom.c_out / geom.groups, g3.col_rows());
    let reduce = |(row, d): (usize, &mut [f32])| {
        let (g, o) = (row / cog, row % cog);
        for part in partials.chunks(wl) {
            let pg = &part[g * kk * cog..][..kk * cog];
            for (r, v) in d.iter_mut().enumerate() {
                *v += pg[r * cog + o];
            }
        }
    };
    if threads > 1 && wl * nchunks >= 1 << 15 {
        dw.par_chunks_mut(kk).enumerate().with_min_len((4096 / kk).max(1)).for_each(reduce);
    } else {
        dw.chunks_mut(kk).enumerate().for_each(reduce);
    }
}

/// `dwt += Σ_{b in b_lo..b_hi} im2col(x_b) · dY_b^T`, per group (`dwt` holds
/// `[kk, cog]` per group).
#[allow(clippy::too_many_arguments)]
fn accumulate_grad_weight_t(
    geom: &ConvGeom,
    g3: &Geom3,
    x: &[f32],
    dy: &[f32],
    b_lo: usize,
    b_hi: usize,
    dwt: &mut [f32],
    threads: usize,
) {
    let (groups, cig) = (geom.groups, g3.c);
    let cog = geom.c_out / groups;
    let (kk, p, ip) = (g3.col_rows(), g3.out_plane(), g3.in_plane());
    let x_of = |b: usize, g: usize| &x[(b * geom.c_in + g * cig) * ip..][..cig * ip];
    let dy_of = |b: usize, g: usize| &dy[(b * geom.c_out + g * cog) * p..][..cog * p];
    // dWt_g (kk × cog) += col (kk × n, ldc) · dY^T (dY: cog × n, ldy).
    let mm = |dwg: &mut [f32], n: usize, dyp: *const f32, ldy: usize, col: *const f32, ldc: usize| {
        // SAFETY: callers pass matrices of the stated extents; dwg is ours.
        unsafe {
            gemm_strided(kk, cog, n, 1.0, col, ldc, 1, dyp, 1, ldy, 1.0, dwg.as_mut_ptr(), cog, 1, threads)
        }
    };
    let per_img = kk * p;
    for (g, dwg) in dwt.chunks_mut(cog * kk).enumerate() {
        if is_direct(g3) {
            for b in b_lo..b_hi {
                mm(dwg, p, dy_of(b, g).as_ptr(), p, x_of(b, g).as_ptr(), p);
            }
        } else if per_img <= TILE_FLOATS / 2 {
            // Several images per GEMM: columns of all images side by side.
            let nb = (TILE_FLOATS / per_img).max(1);
            let mut b0 = b_lo;
            while b0 < b_hi {
                let nbb = nb.min(b_hi - b0);
                let ncols = nbb * p;
                with_scratch((kk + cog) * ncols, |buf| {
                    let (col, dyc) = buf.split_at_mut(kk * ncols);
                    for j in 0..nbb {
                        im2col_tile(g3, x_of(b0 + j, g), 0, p, &mut col[j * p..], ncols);
                        for (o, src) in dy_of(b0 + j, g).chunks(p).enumerate() {
                            dyc[o * ncols + j * p..][..p].copy_from_slice(src);
                        }
                    }
                    mm(dwg, ncols, dyc.as_ptr(), ncols, col.as_ptr(), ncols);
                });
                b0 += nbb;
            }
        } else {
            // Large planes: tiles of output positions of one image.
            let tile = (TILE_FLOATS / kk).max(256).min(p);
            for b in b_lo..b_hi {
                for p0 in (0..p).step_by(tile) {
                    let np = tile.min(p - p0);
                    with_scratch(kk * np, |col| {
                        im2col_tile(g3, x_of(b, g), p0, np, col, np);
                        mm(dwg, np, dy_of(b, g)[p0..].as_ptr(), p, col.as_ptr(), np);
                    });
                }
            }
        }
    }
}

/// Gradient wrt the convolution bias: `db[c] = Σ_{b, pos} dy[b, c, pos]`,
/// overwriting `db` (`c_out` elements).
pub fn conv_grad_bias(geom: &ConvGeom, dy: &[f32], db: &mut [f32]) {
    check_conv(geom, "conv_grad_bias", &[("dy", dy.len(), geom.out_len()), ("db", db.len(), geom.c_out)]);
    let p: usize = geom.out_spatial().iter().product();
    let c_out = geom.c_out;
    let f = |(c, v): (usize, &mut f32)| {
        let mut acc = [0.0f32; 8];
        for b in 0..geom.batch {
            let row = &dy[(b * c_out + c) * p..][..p];
            let (chunks, rest) = row.as_chunks::<8>();
            for ch in chunks {
                for i in 0..8 {
                    acc[i] += ch[i];
                }
            }
            for (i, r) in rest.iter().enumerate() {
                acc[i] += r;
            }
        }
        *v = acc.iter().sum();
    };
    let db = &mut db[..c_out];
    if threads_for(geom.out_len() as u64) > 1 {
        let min_len = (crate::PAR_MIN_MACS as usize / (geom.batch * p).max(1)).max(1);
        db.par_iter_mut().enumerate().with_min_len(min_len).for_each(f);
    } else {
        db.iter_mut().enumerate().for_each(f);
    }
}

/// Padded plane dimensions (`pads_begin + in + pads_end` per axis); every
/// tap of every output lands inside.
fn padded_dims(geom: &ConvGeom, g3: &Geom3) -> [usize; 3] {
    let pe = to3(&geom.pads_end, 0);
    [0, 1, 2].map(|a| g3.ins[a] + g3.pb[a] + pe[a])
}

/// Row pairs `(plane_row_offset, padded_row_offset)` of the interior.
fn interior_rows(g3: &Geom3, pd: [usize; 3]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let [id_n, ih_n, iw_n] = g3.ins;
    (0..id_n).flat_map(move |id| {
        (0..ih_n).map(move |ih| {
            ((id * ih_n + ih) * iw_n, ((id + g3.pb[0]) * pd[1] + ih + g3.pb[1]) * pd[2] + g3.pb[2])
        })
    })
}

simd_fn! {
    /// Depthwise input gradient of one (image, output channel) plane,
    /// scatter-added into a padded input plane.
    fn dw_scatter(g: &Geom3, pd: [usize; 3], dy: &[f32], w: &[f32], pad: &mut [f32]) => dw_scatter_impl
}

#[inline(always)]
fn dw_scatter_impl(g: &Geom3, pd: [usize; 3], dy: &[f32], w: &[f32], pad: &mut [f32]) {
    let [od_n, oh_n, ow_n] = g.outs;
    for od in 0..od_n {
        for oh in 0..oh_n {
            let src = &dy[(od * oh_n + oh) * ow_n..][..ow_n];
            let mut t = 0;
            for kd in 0..g.k[0] {
                for kh in 0..g.k[1] {
                    let prow = ((od * g.s[0] + kd * g.d[0]) * pd[1] + oh * g.s[1] + kh * g.d[1]) * pd[2];
                    for kw in 0..g.k[2] {
                        axpy_strided(&mut pad[prow + kw * g.d[2]..], w[t], src, g.s[2]);
                        t += 1;
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// Depthwise weight gradient of one (image, output channel) plane:
    /// `acc[tap] += Σ dy · x(tap)` over the in-range taps.
    fn dw_dot(g: &Geom3, dy: &[f32], x: &[f32], acc: &mut [[f32; LANES]]) => dw_dot_impl
}

#[inline(always)]
fn dw_dot_impl(g: &Geom3, dy: &[f32], x: &[f32], acc: &mut [[f32; LANES]]) {
    let [od_n, oh_n, ow_n] = g.outs;
    let [id_n, ih_n, iw_n] = g.ins;
    let mut t = 0;
    for kd in 0..g.k[0] {
        let (d0, d1) = valid_range(od_n, id_n, g.s[0], kd, g.d[0], g.pb[0]);
        for kh in 0..g.k[1] {
            let (h0, h1) = valid_range(oh_n, ih_n, g.s[1], kh, g.d[1], g.pb[1]);
            for kw in 0..g.k[2] {
                let (w0, w1) = valid_range(ow_n, iw_n, g.s[2], kw, g.d[2], g.pb[2]);
                if w1 > w0 {
                    // Tap-outer order keeps the accumulator in registers.
                    let mut a = acc[t];
                    let xoff = w0 * g.s[2] + kw * g.d[2] - g.pb[2];
                    for od in d0..d1 {
                        let id = od * g.s[0] + kd * g.d[0] - g.pb[0];
                        for oh in h0..h1 {
                            let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
                            let dyr = &dy[(od * oh_n + oh) * ow_n..][w0..w1];
                            dot_acc(&mut a, dyr, &x[(id * ih_n + ih) * iw_n + xoff..], g.s[2]);
                        }
                    }
                    acc[t] = a;
                }
                t += 1;
            }
        }
    }
}

/// Copies a short row inline (a `memcpy` call per row costs more than the
/// copy; `+ 0.0` keeps LLVM from turning the loop back into one).
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s + 0.0;
    }
}

simd_fn! {
    /// `acc[t] += wide · pad[offs[t]..]` for every tap `t`.
    fn dw_flat_dots(wide: &[f32], pad: &[f32], offs: &[usize], acc: &mut [[f32; LANES]]) => dw_flat_dots_impl
}

#[inline(always)]
fn dw_flat_dots_impl(wide: &[f32], pad: &[f32], offs: &[usize], acc: &mut [[f32; LANES]]) {
    for (a, &off) in acc.iter_mut().zip(offs) {
        let mut v = *a;
        dot_acc(&mut v, wide, &pad[off..], 1);
        *a = v;
    }
}

/// Depthwise (`c_in / groups == 1`) input gradient: one task per input
/// plane, accumulating all of its output channels in a padded buffer.
fn dw_grad_input(geom: &ConvGeom, g3: &Geom3, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let mult = geom.c_out / geom.groups;
    if mult == 1 && g3.s == [1, 1, 1] && geom.in_spatial.len() <= 2 {
        // Stride 1: dx is the forward depthwise conv of dy with the flipped
        // kernel and complementary padding.
        let ext: Vec<usize> =
            (0..geom.kernel.len()).map(|a| (geom.kernel[a] - 1) * geom.dilations[a]).collect();
        if (0..ext.len()).all(|a| geom.pads_begin[a] <= ext[a] && geom.pads_end[a] <= ext[a]) {
            let tg = ConvGeom {
                batch: geom.batch,
                c_in: geom.c_out,
                c_out: geom.c_in,
                groups: geom.groups,
                in_spatial: geom.out_spatial(),
                kernel: geom.kernel.clone(),
                strides: geom.strides.clone(),
                dilations: geom.dilations.clone(),
                pads_begin: (0..ext.len()).map(|a| ext[a] - geom.pads_begin[a]).collect(),
                pads_end: (0..ext.len()).map(|a| ext[a] - geom.pads_end[a]).collect(),
            };
            debug_assert_eq!(tg.out_spatial(), geom.in_spatial);
            let ks = g3.ksize();
            let mut wf = w[..geom.weight_len()].to_vec();
            wf.chunks_mut(ks).for_each(|c| c.reverse());
            crate::conv(&tg, dy, &wf, None, crate::Act::None, dx);
            return;
        }
    }
    let (ks, op, ip) = (g3.ksize(), g3.out_plane(), g3.in_plane());
    let pd = padded_dims(geom, g3);
    let pp = pd.iter().product::<usize>();
    let f = |(idx, dxp): (usize, &mut [f32])| {
        let (b, ic) = (idx / geom.c_in, idx % geom.c_in);
        with_scratch(pp, |pad| {
            pad.fill(0.0);
            for oc in ic * mult..(ic + 1) * mult {
                dw_scatter(g3, pd, &dy[(b * geom.c_out + oc) * op..][..op], &w[oc * ks..][..ks], pad);
            }
            let n = g3.ins[2];
            for (r, pr) in interior_rows(g3, pd) {
                dxp[r..r + n].copy_from_slice(&pad[pr..pr + n]);
            }
        });
    };
    if threads_for(geom.macs()) > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 4) as usize / (mult * op * ks).max(1)).max(1);
        dx.par_chunks_mut(ip).enumerate().with_min_len(min_len).for_each(f);
    } else {
        dx.chunks_mut(ip).enumerate().for_each(f);
    }
}

/// Depthwise weight gradient: one task per output channel, summing over
/// the batch.
fn dw_grad_weight(geom: &ConvGeom, g3: &Geom3, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let mult = geom.c_out / geom.groups;
    let (ks, op, ip) = (g3.ksize(), g3.out_plane(), g3.in_plane());
    // Stride 1, rank ≤ 2: with x zero-padded and dy rows widened to the
    // padded row length (zero tail columns), every tap is one long dot
    // product `dy_wide · x_pad[offset..]`.
    let flat = g3.s == [1, 1, 1] && g3.ins[0] == 1 && g3.k[0] == 1;
    let pd = padded_dims(geom, g3);
    let pp = pd.iter().product::<usize>();
    let [_, oh_n, ow_n] = g3.outs;
    let wide_len = if flat && oh_n > 0 { (oh_n - 1) * pd[2] + ow_n } else { 0 };
    let f = |(oc, dwc): (usize, &mut [f32])| {
        let ic = oc / mult;
        let mut acc = vec![[0.0f32; LANES]; ks];
        if flat {
            let offs: Vec<usize> =
                (0..ks).map(|t| (t / g3.k[2]) * g3.d[1] * pd[2] + (t % g3.k[2]) * g3.d[2]).collect();
            with_scratch(pp + oh_n * pd[2], |buf| {
                let (pad, wide) = buf.split_at_mut(pp);
                pad.fill(0.0);
                wide.fill(0.0);
                for b in 0..geom.batch {
                    let xp = &x[(b * geom.c_in + ic) * ip..][..ip];
                    let n = g3.ins[2];
                    for (r, pr) in interior_rows(g3, pd) {
                        copy_row(&mut pad[pr..pr + n], &xp[r..r + n]);
                    }
                    let dyp = &dy[(b * geom.c_out + oc) * op..][..op];
                    for (src, dst) in dyp.chunks(ow_n).zip(wide.chunks_mut(pd[2])) {
                        copy_row(&mut dst[..ow_n], src);
                    }
                    dw_flat_dots(&wide[..wide_len], pad, &offs, &mut acc);
                }
            });
        } else {
            for b in 0..geom.batch {
                let xp = &x[(b * geom.c_in + ic) * ip..][..ip];
                dw_dot(g3, &dy[(b * geom.c_out + oc) * op..][..op], xp, &mut acc);
            }
        }
        for (d, a) in dwc.iter_mut().zip(&acc) {
            *d = a.iter().sum();
        }
    };
    if threads_for(geom.macs()) > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 4) as usize / (geom.batch * op * ks).max(1)).max(1);
        dw.par_chunks_mut(ks).enumerate().with_min_len(min_len).for_each(f);
    } else {
        dw.chunks_mut(ks).enumerate().for_each(f);
    }
}
