//! Max / average pooling backward kernels (gradients wrt the pool input).

use crate::conv_backward::{axpy_strided, simd_fn};
use crate::im2col::valid_range;
use crate::pool::{Pool3, PoolGeom, taps, taps_padded};
use crate::{threads_for, with_scratch};
use rayon::prelude::*;

/// Runs `f(plane_index, dx_plane)` over the `batch_channels` input planes,
/// in parallel when `work` is large enough; returns the `or` of the results.
fn over_planes(
    geom: &PoolGeom,
    dx: &mut [f32],
    work: u64,
    f: impl Fn(usize, &mut [f32]) -> bool + Sync + Send,
) -> bool {
    let ip: usize = geom.in_spatial.iter().product();
    let dx = &mut dx[..geom.in_len()];
    if ip == 0 {
        return false;
    }
    if threads_for(work) > 1 {
        let min_len = (crate::PAR_MIN_MACS as usize / (work as usize / geom.batch_channels).max(1)).max(1);
        dx.par_chunks_mut(ip)
            .enumerate()
            .with_min_len(min_len)
            .map(|(i, d)| f(i, d))
            .reduce(|| false, |a, b| a | b)
    } else {
        dx.chunks_mut(ip).enumerate().fold(false, |acc, (i, d)| f(i, d) | acc)
    }
}

/// MaxPool backward: overwrites `dx` (`geom.in_len()` elements) with `dy`
/// scattered (accumulated) at the `argmax` indices produced by
/// [`crate::max_pool`] (flattened over the whole input; negative = no
/// input contributed).
pub fn max_pool_grad(geom: &PoolGeom, dy: &[f32], argmax: &[i64], dx: &mut [f32]) {
    let _ = geom.p3();
    let (n_in, n_out) = (geom.in_len(), geom.out_len());
    assert!(dy.len() >= n_out, "max_pool_grad: dy has {} elements, need {n_out}", dy.len());
    assert!(argmax.len() >= n_out, "max_pool_grad: argmax has {} elements, need {n_out}", argmax.len());
    assert!(dx.len() >= n_in, "max_pool_grad: dx has {} elements, need {n_in}", dx.len());
    let ip: usize = geom.in_spatial.iter().product();
    let op: usize = geom.out_spatial.iter().product();
    // Indices produced by max_pool stay inside their own plane; any other
    // index is applied afterwards in a serial pass.
    let foreign = over_planes(geom, dx, (n_out * 4) as u64, |pl, d| {
        d.fill(0.0);
        let base = (pl * ip) as i64;
        let mut foreign = false;
        for (&g, &i) in dy[pl * op..][..op].iter().zip(&argmax[pl * op..][..op]) {
            let l = i.wrapping_sub(base);
            if i < 0 {
                continue;
            } else if (l as u64) < ip as u64 {
                d[l as usize] += g;
            } else {
                foreign = true;
            }
        }
        foreign
    });
    if foreign {
        for q in 0..n_out {
            let (i, pl) = (argmax[q], q / op);
            if i >= 0 && !(pl * ip..(pl + 1) * ip).contains(&(i as usize)) {
                assert!(
                    (i as usize) < n_in,
                    "max_pool_grad: argmax index {i} out of range for {n_in} inputs"
                );
                dx[i as usize] += dy[q];
            }
        }
    }
}

/// AveragePool backward: overwrites `dx` (`geom.in_len()` elements); each
/// output spreads `dy / count` over its in-range taps, with the divisor rule
/// of [`crate::avg_pool`] (`count_include_pad`).
pub fn avg_pool_grad(geom: &PoolGeom, dy: &[f32], dx: &mut [f32], count_include_pad: bool) {
    let g = geom.p3();
    let (n_in, n_out) = (geom.in_len(), geom.out_len());
    assert!(dy.len() >= n_out, "avg_pool_grad: dy has {} elements, need {n_out}", dy.len());
    assert!(dx.len() >= n_in, "avg_pool_grad: dx has {} elements, need {n_in}", dx.len());
    let op: usize = geom.out_spatial.iter().product();
    // Per axis and output index: tap range and 1 / divisor factor.
    let axes: [Vec<(usize, usize, f32)>; 3] = [0, 1, 2].map(|a| {
        (0..g.outs[a])
            .map(|o| {
                let (lo, hi) = taps(o, g.s[a], g.d[a], g.pb[a], g.k[a], g.ins[a]);
                let cnt = if count_include_pad {
                    taps_padded(o, g.s[a], g.d[a], g.pb[a], g.pe[a], g.k[a], g.ins[a])
                } else {
                    hi - lo
                };
                (lo, hi, if cnt == 0 { 0.0 } else { 1.0 / cnt as f32 })
            })
            .collect()
    });
    let wr: Vec<(usize, usize)> =
        (0..g.k[2]).map(|kw| valid_range(g.outs[2], g.ins[2], g.s[2], kw, g.d[2], g.pb[2])).collect();
    let ks: usize = geom.kernel.iter().product();
    over_planes(geom, dx, (n_out * ks) as u64, |pl, d| {
        d.fill(0.0);
        if op > 0 {
            with_scratch(g.outs[2], |tmp| avg_scatter(&g, &axes, &wr, &dy[pl * op..][..op], tmp, d));
        }
        false
    });
}

simd_fn! {
    /// Average-pool backward of one plane (`dx` zeroed by the caller).
    fn avg_scatter(g: &Pool3, axes: &[Vec<(usize, usize, f32)>; 3], wr: &[(usize, usize)], dy: &[f32], tmp: &mut [f32], dx: &mut [f32]) => avg_scatter_impl
}

#[inline(always)]
fn avg_scatter_impl(
    g: &Pool3,
    axes: &[Vec<(usize, usize, f32)>; 3],
    wr: &[(usize, usize)],
    dy: &[f32],
    tmp: &mut [f32],
    dx: &mut [f32],
) {
    let [_, ih_n, iw_n] = g.ins;
    let [_, oh_n, ow_n] = g.outs;
    let (sw, dw, pw) = (g.s[2], g.d[2], g.pb[2]);
    for (od, &(d0, d1, fd)) in axes[0].iter().enumerate() {
        for (oh, &(h0, h1, fh)) in axes[1].iter().enumerate() {
            let f = fd * fh;
            if f == 0.0 || d0 == d1 || h0 == h1 {
                continue;
            }
            let row = &dy[(od * oh_n + oh) * ow_n..][..ow_n];
            for ((t, v), a) in tmp.iter_mut().zip(row).zip(&axes[2]) {
                *t = v * f * a.2;
            }
            for kd in d0..d1 {
                let id = od * g.s[0] + kd * g.d[0] - g.pb[0];
                for kh in h0..h1 {
                    let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
                    let drow = &mut dx[(id * ih_n + ih) * iw_n..][..iw_n];
                    for (kw, &(lo, hi)) in wr.iter().enumerate() {
                        if hi > lo {
                            axpy_strided(&mut drow[lo * sw + kw * dw - pw..], 1.0, &tmp[lo..hi], sw);
                        }
                    }
                }
            }
        }
    }
}
