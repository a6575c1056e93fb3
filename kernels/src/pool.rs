//! Max / average pooling (ONNX semantics), N-d spatial (rank 1..=3).

use crate::{threads_for, to3};
use rayon::prelude::*;

/// Pooling geometry. The caller computes `out_spatial` (including
/// `ceil_mode`); windows may extend past the padded input and the
/// out-of-range taps are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolGeom {
    /// Number of independent planes (`N * C`).
    pub batch_channels: usize,
    /// Input spatial size (rank 1..=3).
    pub in_spatial: Vec<usize>,
    /// Window size.
    pub kernel: Vec<usize>,
    /// Strides (≥ 1).
    pub strides: Vec<usize>,
    /// Dilations (≥ 1).
    pub dilations: Vec<usize>,
    /// Padding before each axis.
    pub pads_begin: Vec<usize>,
    /// Padding after each axis (only matters for `count_include_pad`).
    pub pads_end: Vec<usize>,
    /// Output spatial size.
    pub out_spatial: Vec<usize>,
}

/// Rank-3 view of a [`PoolGeom`].
#[derive(Clone, Copy)]
pub(crate) struct Pool3 {
    pub ins: [usize; 3],
    pub outs: [usize; 3],
    pub k: [usize; 3],
    pub s: [usize; 3],
    pub d: [usize; 3],
    pub pb: [usize; 3],
    pub pe: [usize; 3],
}

impl PoolGeom {
    pub(crate) fn p3(&self) -> Pool3 {
        let r = self.in_spatial.len();
        for v in [
            &self.kernel,
            &self.strides,
            &self.dilations,
            &self.pads_begin,
            &self.pads_end,
            &self.out_spatial,
        ] {
            assert_eq!(v.len(), r, "pool: rank mismatch");
        }
        assert!(self.strides.iter().chain(&self.dilations).chain(&self.kernel).all(|&v| v >= 1));
        Pool3 {
            ins: to3(&self.in_spatial, 1),
            outs: to3(&self.out_spatial, 1),
            k: to3(&self.kernel, 1),
            s: to3(&self.strides, 1),
            d: to3(&self.dilations, 1),
            pb: to3(&self.pads_begin, 0),
            pe: to3(&self.pads_end, 0),
        }
    }

    /// Input element count.
    pub fn in_len(&self) -> usize {
        self.batch_channels * self.in_spatial.iter().product::<usize>()
    }

    /// Output element count.
    pub fn out_len(&self) -> usize {
        self.batch_channels * self.out_spatial.iter().product::<usize>()
    }
}

/// Taps `kk < k` with `0 <= o*s + kk*d - pb < n`, as a range.
#[inline(always)]
pub(crate) fn taps(o: usize, s: usize, d: usize, pb: usize, k: usize, n: usize) -> (usize, usize) {
    let i0 = o * s;
    let lo = if i0 >= pb { 0 } else { (pb - i0).div_ceil(d) };
    let hi = if n + pb > i0 { ((n + pb - i0 - 1) / d + 1).min(k) } else { 0 };
    (lo.min(hi), hi)
}

/// Number of taps whose position lies inside the padded extent
/// `[-pb, n + pe)`.
#[inline(always)]
pub(crate) fn taps_padded(o: usize, s: usize, d: usize, pb: usize, pe: usize, k: usize, n: usize) -> usize {
    // position + pb = o*s + kk*d must be < n + pb + pe
    let ext = n + pb + pe;
    let i0 = o * s;
    if i0 >= ext { 0 } else { ((ext - i0 - 1) / d + 1).min(k) }
}

fn run_planes(geom: &PoolGeom, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let op: usize = geom.out_spatial.iter().product();
    let ks: usize = geom.kernel.iter().product();
    if op == 0 {
        return;
    }
    let out = &mut out[..geom.batch_channels * op];
    let work = (geom.batch_channels * op * ks) as u64;
    if threads_for(work * 4) > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 4) as usize / (op * ks).max(1)).max(1);
        out.par_chunks_mut(op).enumerate().with_min_len(min_len).for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(op).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// ONNX MaxPool. `argmax` (if given, same length as `out`) receives the
/// flattened row-major index over the whole input tensor of each maximum
/// (first occurrence on ties). Windows with no in-range tap produce `-inf`
/// and index `-1`.
pub fn max_pool(geom: &PoolGeom, x: &[f32], out: &mut [f32], argmax: Option<&mut [i64]>) {
    let g = geom.p3();
    assert!(x.len() >= geom.in_len(), "max_pool: input too short");
    assert!(out.len() >= geom.out_len(), "max_pool: output too short");
    let ip = g.ins.iter().product::<usize>();
    let op = g.outs.iter().product::<usize>();
    match argmax {
        Some(idx) => {
            assert!(idx.len() >= geom.out_len(), "max_pool: argmax too short");
            let idxp = crate::SendPtr(idx.as_mut_ptr());
            run_planes(geom, out, |pl, o| {
                // SAFETY: plane `pl` of idx belongs to this task.
                let id = unsafe { std::slice::from_raw_parts_mut(idxp.get().add(pl * op), op) };
                max_plane(&g, &x[pl * ip..(pl + 1) * ip], o, Some(id), (pl * ip) as i64);
            });
        }
        None => run_planes(geom, out, |pl, o| {
            let xp = &x[pl * ip..(pl + 1) * ip];
            if g.ins[0] == 1 && g.k[0] == 1 {
                pool2d_plane::<true>(&g, xp, o, false);
            } else {
                max_plane(&g, xp, o, None, 0);
            }
        }),
    }
}

fn max_plane(g: &Pool3, x: &[f32], o: &mut [f32], mut idx: Option<&mut [i64]>, base: i64) {
    let [_, ih_n, iw_n] = g.ins;
    let [od_n, oh_n, ow_n] = g.outs;
    // Fast path: 2-D, no padding or dilation, every window inside the input.
    let inside = (oh_n == 0 || (oh_n - 1) * g.s[1] + g.k[1] <= ih_n)
        && (ow_n == 0 || (ow_n - 1) * g.s[2] + g.k[2] <= iw_n);
    if let Some(id) = idx.as_deref_mut()
        && g.ins[0] == 1
        && g.k[0] == 1
        && g.pb == [0, 0, 0]
        && g.d == [1, 1, 1]
        && inside
    {
        let (kh_n, kw_n, sh, sw) = (g.k[1], g.k[2], g.s[1], g.s[2]);
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let start = oh * sh * iw_n + ow * sw;
                let mut best = x[start];
                let mut bi = start;
                for kh in 0..kh_n {
                    let row = start + kh * iw_n;
                    for (kw, &v) in x[row..row + kw_n].iter().enumerate() {
                        if v > best {
                            best = v;
                            bi = row + kw;
                        }
                    }
                }
                o[oh * ow_n + ow] = best;
                id[oh * ow_n + ow] = base + bi as i64;
            }
        }
        return;
    }
    let mut q = 0;
    for od in 0..od_n {
        let rd = taps(od, g.s[0], g.d[0], g.pb[0], g.k[0], g.ins[0]);
        for oh in 0..oh_n {
            let rh = taps(oh, g.s[1], g.d[1], g.pb[1], g.k[1], ih_n);
            for ow in 0..ow_n {
                let rw = taps(ow, g.s[2], g.d[2], g.pb[2], g.k[2], iw_n);
                let mut best = f32::NEG_INFINITY;
                let mut bi = -1i64;
                for kd in rd.0..rd.1 {
                    let id = od * g.s[0] + kd * g.d[0] - g.pb[0];
                    for kh in rh.0..rh.1 {
                        let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
                        let row = (id * ih_n + ih) * iw_n;
                        for kw in rw.0..rw.1 {
                            let iw = ow * g.s[2] + kw * g.d[2] - g.pb[2];
                            let v = x[row + iw];
                            if v > best || bi < 0 {
                                best = v;
                                bi = (row + iw) as i64;
                            }
                        }
                    }
                }
                o[q] = best;
                if let Some(id) = idx.as_deref_mut() {
                    id[q] = if bi < 0 { -1 } else { base + bi };
                }
                q += 1;
            }
        }
    }
}

/// ONNX AveragePool. With `count_include_pad` the divisor counts window
/// positions inside the padded extent (`pads_begin + input + pads_end`),
/// excluding positions beyond it (ceil_mode overhang); otherwise it counts
/// in-range taps only. Empty windows produce 0.
pub fn avg_pool(geom: &PoolGeom, x: &[f32], out: &mut [f32], count_include_pad: bool) {
    let g = geom.p3();
    assert!(x.len() >= geom.in_len(), "avg_pool: input too short");
    assert!(out.len() >= geom.out_len(), "avg_pool: output too short");
    let ip = g.ins.iter().product::<usize>();
    run_planes(geom, out, |pl, o| {
        let xp = &x[pl * ip..(pl + 1) * ip];
        if g.ins[0] == 1 && g.k[0] == 1 {
            pool2d_plane::<false>(&g, xp, o, count_include_pad);
        } else {
            avg_plane(&g, xp, o, count_include_pad);
        }
    });
}

fn avg_plane(g: &Pool3, x: &[f32], o: &mut [f32], include_pad: bool) {
    let [_, ih_n, iw_n] = g.ins;
    let [od_n, oh_n, ow_n] = g.outs;
    let mut q = 0;
    for od in 0..od_n {
        let rd = taps(od, g.s[0], g.d[0], g.pb[0], g.k[0], g.ins[0]);
        let pd = taps_padded(od, g.s[0], g.d[0], g.pb[0], g.pe[0], g.k[0], g.ins[0]);
        for oh in 0..oh_n {
            let rh = taps(oh, g.s[1], g.d[1], g.pb[1], g.k[1], ih_n);
            let ph = taps_padded(oh, g.s[1], g.d[1], g.pb[1], g.pe[1], g.k[1], ih_n);
            for ow in 0..ow_n {
                let rw = taps(ow, g.s[2], g.d[2], g.pb[2], g.k[2], iw_n);
                let mut sum = 0.0f32;
                for kd in rd.0..rd.1 {
                    let id = od * g.s[0] + kd * g.d[0] - g.pb[0];
                    for kh in rh.0..rh.1 {
                        let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
                        let row = (id * ih_n + ih) * iw_n;
                        for kw in rw.0..rw.1 {
                            sum += x[row + ow * g.s[2] + kw * g.d[2] - g.pb[2]];
                        }
                    }
                }
                let cnt = if include_pad {
                    pd * ph * taps_padded(ow, g.s[2], g.d[2], g.pb[2], g.pe[2], g.k[2], iw_n)
                } else {
                    (rd.1 - rd.0) * (rh.1 - rh.0) * (rw.1 - rw.0)
                };
                o[q] = if cnt == 0 { 0.0 } else { sum / cnt as f32 };
                q += 1;
            }
        }
    }
}

/// 2-D (or 1-D) max (`MAX`) / average pooling of one plane: interior
/// output columns are processed tap by tap over whole row segments (which
/// vectorises); edge columns use the generic per-output walk.
fn pool2d_plane<const MAX: bool>(g: &Pool3, x: &[f32], o: &mut [f32], include_pad: bool) {
    let [_, ih_n, iw_n] = g.ins;
    let [_, oh_n, ow_n] = g.outs;
    let (kw_n, sw, dw, pw) = (g.k[2], g.s[2], g.d[2], g.pb[2]);
    let (mut ilo, mut ihi) = (0, ow_n);
    for kw in 0..kw_n {
        let (lo, hi) = crate::im2col::valid_range(ow_n, iw_n, sw, kw, dw, pw);
        ilo = ilo.max(lo);
        ihi = ihi.min(hi);
    }
    ihi = ihi.max(ilo);
    for oh in 0..oh_n {
        let orow = &mut o[oh * ow_n..(oh + 1) * ow_n];
        let rh = taps(oh, g.s[1], g.d[1], g.pb[1], g.k[1], ih_n);
        if rh.1 == rh.0 || ihi == ilo || ow_n - (ihi - ilo) > ihi - ilo {
            // Degenerate or mostly-edge rows: generic walk for the whole row.
            for (ow, v) in orow.iter_mut().enumerate() {
                *v = pool_one::<MAX>(g, x, oh, ow, include_pad);
            }
            continue;
        }
        let seg = &mut orow[ilo..ihi];
        let n = seg.len();
        let mut first = true;
        for kh in rh.0..rh.1 {
            let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
            let row = &x[ih * iw_n..(ih + 1) * iw_n];
            for kw in 0..kw_n {
                let src = &row[ilo * sw + kw * dw - pw..];
                match sw {
                    1 => tap::<1, MAX>(seg, src, n, first),
                    2 => tap::<2, MAX>(seg, src, n, first),
                    _ => tap_dyn::<MAX>(seg, src, n, sw, first),
                }
                first = false;
            }
        }
        if !MAX {
            let cnt = if include_pad {
                taps_padded(oh, g.s[1], g.d[1], g.pb[1], g.pe[1], g.k[1], ih_n) * kw_n
            } else {
                (rh.1 - rh.0) * kw_n
            };
            let c = cnt as f32;
            seg.iter_mut().for_each(|v| *v /= c);
        }
        // Edge columns.
        for ow in (0..ilo).chain(ihi..ow_n) {
            orow[ow] = pool_one::<MAX>(g, x, oh, ow, include_pad);
        }
    }
}

#[inline(always)]
fn tap<const S: usize, const MAX: bool>(seg: &mut [f32], src: &[f32], n: usize, first: bool) {
    let src = &src[..(n - 1) * S + 1];
    if first {
        for (i, v) in seg.iter_mut().enumerate() {
            *v = src[i * S];
        }
    } else if MAX {
        for (i, v) in seg.iter_mut().enumerate() {
            let t = src[i * S];
            *v = if t > *v { t } else { *v };
        }
    } else {
        for (i, v) in seg.iter_mut().enumerate() {
            *v += src[i * S];
        }
    }
}

fn tap_dyn<const MAX: bool>(seg: &mut [f32], src: &[f32], n: usize, s: usize, first: bool) {
    let src = &src[..(n - 1) * s + 1];
    for (i, v) in seg.iter_mut().enumerate() {
        let t = src[i * s];
        *v = if first {
            t
        } else if MAX {
            if t > *v { t } else { *v }
        } else {
            *v + t
        };
    }
}

/// Generic evaluation of one output of a rank-≤2 plane.
fn pool_one<const MAX: bool>(g: &Pool3, x: &[f32], oh: usize, ow: usize, include_pad: bool) -> f32 {
    let [_, ih_n, iw_n] = g.ins;
    let rh = taps(oh, g.s[1], g.d[1], g.pb[1], g.k[1], ih_n);
    let rw = taps(ow, g.s[2], g.d[2], g.pb[2], g.k[2], iw_n);
    let mut acc = 0.0f32;
    let mut any = false;
    for kh in rh.0..rh.1 {
        let ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
        for kw in rw.0..rw.1 {
            let v = x[ih * iw_n + ow * g.s[2] + kw * g.d[2] - g.pb[2]];
            if MAX {
                if !any || v > acc {
                    acc = v;
                }
            } else {
                acc += v;
            }
            any = true;
        }
    }
    if MAX {
        return if any { acc } else { f32::NEG_INFINITY };
    }
    let cnt = if include_pad {
        taps_padded(oh, g.s[1], g.d[1], g.pb[1], g.pe[1], g.k[1], ih_n)
            * taps_padded(ow, g.s[2], g.d[2], g.pb[2], g.pe[2], g.k[2], iw_n)
    } else {
        (rh.1 - rh.0) * (rw.1 - rw.0)
    };
    if cnt == 0 { 0.0 } else { acc / cnt as f32 }
}

/// Global average pooling: `out[i] = mean(x[i*spatial..(i+1)*spatial])` for
/// each of the `batch_channels` planes.
pub fn global_avg_pool(batch_channels: usize, spatial: usize, x: &[f32], out: &mut [f32]) {
    assert!(x.len() >= batch_channels * spatial, "global_avg_pool: input too short");
    assert!(out.len() >= batch_channels, "global_avg_pool: output too short");
    if spatial == 0 {
        out[..batch_channels].fill(0.0);
        return;
    }
    let inv = 1.0 / spatial as f32;
    let f = |(i, o): (usize, &mut f32)| {
        *o = sum8(&x[i * spatial..(i + 1) * spatial]) * inv;
    };
    let out = &mut out[..batch_channels];
    if threads_for((batch_channels * spatial) as u64 * 2) > 1 {
        let min_len = ((crate::PAR_MIN_MACS / 4) as usize / spatial).max(1);
        out.par_iter_mut().enumerate().with_min_len(min_len).for_each(f);
    } else {
        out.iter_mut().enumerate().for_each(f);
    }
}

/// Sum with 8 independent accumulators (vectorisable, deterministic).
fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}
