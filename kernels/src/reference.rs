//! Plain, obviously-correct reference kernels (slow). Used by the tests to
//! check the fast kernels; also usable as a fallback.

use crate::act::Act;
use crate::conv::ConvGeom;
use crate::conv_transpose::ConvTransposeGeom;
use crate::pool::PoolGeom;
use crate::to3;

/// Reference for [`crate::sgemm`]: triple loop.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_ref(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: bool,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                let av = if trans_a { a[p * lda + i] } else { a[i * lda + p] };
                let bv = if trans_b { b[j * ldb + p] } else { b[p * ldb + j] };
                s += av * bv;
            }
            let cv = &mut c[i * ldc + j];
            *cv = if beta == 0.0 { alpha * s } else { alpha * s + beta * *cv };
        }
    }
}

/// Iterates over all index triples of a rank-3 box.
fn box3(n: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
    (0..n[0]).flat_map(move |a| (0..n[1]).flat_map(move |b| (0..n[2]).map(move |c| [a, b, c])))
}

fn flat(i: [usize; 3], n: [usize; 3]) -> usize {
    (i[0] * n[1] + i[1]) * n[2] + i[2]
}

/// Input position `o*s + k*d - pb` if it lies in `[0, n)`.
fn in_pos(o: usize, s: usize, k: usize, d: usize, pb: usize, n: usize) -> Option<usize> {
    let p = (o * s + k * d) as isize - pb as isize;
    (p >= 0 && (p as usize) < n).then_some(p as usize)
}

/// Reference for [`crate::conv`]: direct nested loops.
pub fn conv_ref(geom: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>, act: Act, out: &mut [f32]) {
    let ins = to3(&geom.in_spatial, 1);
    let outs = to3(&geom.out_spatial(), 1);
    let k = to3(&geom.kernel, 1);
    let s = to3(&geom.strides, 1);
    let d = to3(&geom.dilations, 1);
    let pb = to3(&geom.pads_begin, 0);
    let (cig, cog) = (geom.c_in / geom.groups, geom.c_out / geom.groups);
    let (ip, op, ks) =
        (ins.iter().product::<usize>(), outs.iter().product::<usize>(), k.iter().product::<usize>());
    for b in 0..geom.batch {
        for oc in 0..geom.c_out {
            let g = oc / cog;
            for o in box3(outs) {
                let mut sum = bias.map_or(0.0, |bb| bb[oc]);
                for ci in 0..cig {
                    let ic = g * cig + ci;
                    for kk in box3(k) {
                        let pos = [0, 1, 2].map(|a| in_pos(o[a], s[a], kk[a], d[a], pb[a], ins[a]));
                        if let [Some(p0), Some(p1), Some(p2)] = pos {
                            let xv = x[(b * geom.c_in + ic) * ip + flat([p0, p1, p2], ins)];
                            let wv = weight[(oc * cig + ci) * ks + flat(kk, k)];
                            sum += xv * wv;
                        }
                    }
                }
                out[(b * geom.c_out + oc) * op + flat(o, outs)] = act.apply(sum);
            }
        }
    }
}

/// Reference for [`crate::conv_transpose`]: scatter over inputs and taps.
pub fn conv_transpose_ref(
    geom: &ConvTransposeGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let ins = to3(&geom.in_spatial, 1);
    let outs = to3(&geom.out_spatial, 1);
    let k = to3(&geom.kernel, 1);
    let s = to3(&geom.strides, 1);
    let d = to3(&geom.dilations, 1);
    let pb = to3(&geom.pads_begin, 0);
    let (cig, cog) = (geom.c_in / geom.groups, geom.c_out / geom.groups);
    let (ip, op, ks) =
        (ins.iter().product::<usize>(), outs.iter().product::<usize>(), k.iter().product::<usize>());
    for b in 0..geom.batch {
        for oc in 0..geom.c_out {
            let plane = &mut out[(b * geom.c_out + oc) * op..][..op];
            plane.fill(bias.map_or(0.0, |bb| bb[oc]));
        }
        for ic in 0..geom.c_in {
            let g = ic / cig;
            for i in box3(ins) {
                let xv = x[(b * geom.c_in + ic) * ip + flat(i, ins)];
                for ocg in 0..cog {
                    let oc = g * cog + ocg;
                    for kk in box3(k) {
                        // o = i*s + k*d - pb, kept if 0 <= o < out
                        let pos = [0, 1, 2].map(|a| in_pos(i[a], s[a], kk[a], d[a], pb[a], outs[a]));
                        if let [Some(p0), Some(p1), Some(p2)] = pos {
                            let wv = weight[(ic * cog + ocg) * ks + flat(kk, k)];
                            out[(b * geom.c_out + oc) * op + flat([p0, p1, p2], outs)] += xv * wv;
                        }
                    }
                }
            }
        }
    }
}

/// Shared window walk: calls `f(input_flat_index_within_plane)` for each
/// in-range tap, returns the number of taps within the padded extent.
fn window(geom: &PoolGeom, o: [usize; 3], mut f: impl FnMut(usize)) -> usize {
    let ins = to3(&geom.in_spatial, 1);
    let k = to3(&geom.kernel, 1);
    let s = to3(&geom.strides, 1);
    let d = to3(&geom.dilations, 1);
    let pb = to3(&geom.pads_begin, 0);
    let pe = to3(&geom.pads_end, 0);
    let mut padded = 0;
    for kk in box3(k) {
        // Position relative to the padded origin.
        let rel = [0, 1, 2].map(|a| o[a] * s[a] + kk[a] * d[a]);
        if (0..3).all(|a| rel[a] < pb[a] + ins[a] + pe[a]) {
            padded += 1;
        }
        let pos = [0, 1, 2].map(|a| in_pos(o[a], s[a], kk[a], d[a], pb[a], ins[a]));
        if let [Some(p0), Some(p1), Some(p2)] = pos {
            f(flat([p0, p1, p2], ins));
        }
    }
    padded
}

/// Reference for [`crate::max_pool`].
pub fn max_pool_ref(geom: &PoolGeom, x: &[f32], out: &mut [f32], mut argmax: Option<&mut [i64]>) {
    let ip: usize = geom.in_spatial.iter().product();
    let outs = to3(&geom.out_spatial, 1);
    let op: usize = outs.iter().product();
    for pl in 0..geom.batch_channels {
        for o in box3(outs) {
            let mut best: Option<(f32, usize)> = None;
            window(geom, o, |i| {
                let v = x[pl * ip + i];
                if best.is_none_or(|(bv, _)| v > bv) {
                    best = Some((v, i));
                }
            });
            let q = pl * op + flat(o, outs);
            out[q] = best.map_or(f32::NEG_INFINITY, |b| b.0);
            if let Some(am) = argmax.as_deref_mut() {
                am[q] = best.map_or(-1, |b| (pl * ip + b.1) as i64);
            }
        }
    }
}

/// Reference for [`crate::avg_pool`].
pub fn avg_pool_ref(geom: &PoolGeom, x: &[f32], out: &mut [f32], count_include_pad: bool) {
    let ip: usize = geom.in_spatial.iter().product();
    let outs = to3(&geom.out_spatial, 1);
    let op: usize = outs.iter().product();
    for pl in 0..geom.batch_channels {
        for o in box3(outs) {
            let (mut sum, mut n) = (0.0f32, 0usize);
            let padded = window(geom, o, |i| {
                sum += x[pl * ip + i];
                n += 1;
            });
            let cnt = if count_include_pad { padded } else { n };
            out[pl * op + flat(o, outs)] = if cnt == 0 { 0.0 } else { sum / cnt as f32 };
        }
    }
}

/// Reference for [`crate::global_avg_pool`].
pub fn global_avg_pool_ref(batch_channels: usize, spatial: usize, x: &[f32], out: &mut [f32]) {
    for i in 0..batch_channels {
        let s: f32 = x[i * spatial..(i + 1) * spatial].iter().sum();
        out[i] = if spatial == 0 { 0.0 } else { s / spatial as f32 };
    }
}

/// Calls `f(out_flat, in_flat, weight_flat)` (all within one plane / one
/// filter) for every in-range tap of a convolution: shared by the gradient
/// references.
fn conv_taps(geom: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let ins = to3(&geom.in_spatial, 1);
    let outs = to3(&geom.out_spatial(), 1);
    let k = to3(&geom.kernel, 1);
    let s = to3(&geom.strides, 1);
    let d = to3(&geom.dilations, 1);
    let pb = to3(&geom.pads_begin, 0);
    for o in box3(outs) {
        for kk in box3(k) {
            let pos = [0, 1, 2].map(|a| in_pos(o[a], s[a], kk[a], d[a], pb[a], ins[a]));
            if let [Some(p0), Some(p1), Some(p2)] = pos {
                f(flat(o, outs), flat([p0, p1, p2], ins), flat(kk, k));
            }
        }
    }
}

/// Reference for [`crate::conv_grad_input`]: scatter `dy * w` over every tap.
pub fn conv_grad_input_ref(geom: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    let (cig, cog) = (geom.c_in / geom.groups, geom.c_out / geom.groups);
    let ip: usize = geom.in_spatial.iter().product();
    let op: usize = geom.out_spatial().iter().product();
    let ks: usize = geom.kernel.iter().product();
    dx[..geom.in_len()].fill(0.0);
    for b in 0..geom.batch {
        for oc in 0..geom.c_out {
            let g = oc / cog;
            for ci in 0..cig {
                let ic = g * cig + ci;
                conv_taps(geom, |o, i, t| {
                    dx[(b * geom.c_in + ic) * ip + i] +=
                        dy[(b * geom.c_out + oc) * op + o] * weight[(oc * cig + ci) * ks + t];
                });
            }
        }
    }
}

/// Reference for [`crate::conv_grad_weight`]: `dw += dy * x` over every tap
/// and image.
pub fn conv_grad_weight_ref(geom: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (cig, cog) = (geom.c_in / geom.groups, geom.c_out / geom.groups);
    let ip: usize = geom.in_spatial.iter().product();
    let op: usize = geom.out_spatial().iter().product();
    let ks: usize = geom.kernel.iter().product();
    dw[..geom.weight_len()].fill(0.0);
    for b in 0..geom.batch {
        for oc in 0..geom.c_out {
            let g = oc / cog;
            for ci in 0..cig {
                let ic = g * cig + ci;
                conv_taps(geom, |o, i, t| {
                    dw[(oc * cig + ci) * ks + t] +=
                        dy[(b * geom.c_out + oc) * op + o] * x[(b * geom.c_in + ic) * ip + i];
                });
            }
        }
    }
}

/// Reference for [`crate::max_pool_grad`]: `dx[argmax[q]] += dy[q]`.
pub fn max_pool_grad_ref(geom: &PoolGeom, dy: &[f32], argmax: &[i64], dx: &mut [f32]) {
    dx[..geom.in_len()].fill(0.0);
    for q in 0..geom.out_len() {
        if argmax[q] >= 0 {
            dx[argmax[q] as usize] += dy[q];
        }
    }
}

/// Reference for [`crate::avg_pool_grad`]: each output spreads `dy / count`
/// over its in-range taps.
pub fn avg_pool_grad_ref(geom: &PoolGeom, dy: &[f32], dx: &mut [f32], count_include_pad: bool) {
    let ip: usize = geom.in_spatial.iter().product();
    let outs = to3(&geom.out_spatial, 1);
    let op: usize = outs.iter().product();
    dx[..geom.in_len()].fill(0.0);
    for pl in 0..geom.batch_channels {
        for o in box3(outs) {
            let mut n = 0usize;
            let padded = window(geom, o, |_| n += 1);
            let cnt = if count_include_pad { padded } else { n };
            if cnt == 0 {
                continue;
            }
            let g = dy[pl * op + flat(o, outs)] / cnt as f32;
            window(geom, o, |i| dx[pl * ip + i] += g);
        }
    }
}
