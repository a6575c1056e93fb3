//! im2col for N-d (rank ≤ 3, padded to 3) convolution, tile-wise.

/// Convolution geometry for one group, with spatial dims padded to rank 3.
#[derive(Clone, Debug)]
pub(crate) struct Geom3 {
    /// Input channels of the group.
    pub c: usize,
    /// Input spatial size.
    pub ins: [usize; 3],
    /// Kernel size.
    pub k: [usize; 3],
    /// Strides.
    pub s: [usize; 3],
    /// Dilations.
    pub d: [usize; 3],
    /// Leading pads.
    pub pb: [usize; 3],
    /// Output spatial size.
    pub outs: [usize; 3],
}

impl Geom3 {
    /// Kernel spatial size.
    pub fn ksize(&self) -> usize {
        self.k[0] * self.k[1] * self.k[2]
    }
    /// Input plane size.
    pub fn in_plane(&self) -> usize {
        self.ins[0] * self.ins[1] * self.ins[2]
    }
    /// Output plane size.
    pub fn out_plane(&self) -> usize {
        self.outs[0] * self.outs[1] * self.outs[2]
    }
    /// Rows of the column matrix (`c * ksize`).
    pub fn col_rows(&self) -> usize {
        self.c * self.ksize()
    }
}

/// Range `[lo, hi)` of output indices `o < out` for which
/// `o*s + kk*d - pb` lies in `[0, n)`.
#[inline]
pub(crate) fn valid_range(out: usize, n: usize, s: usize, kk: usize, d: usize, pb: usize) -> (usize, usize) {
    let off = kk * d; // input index = o*s + off - pb
    let lo = if off >= pb { 0 } else { (pb - off).div_ceil(s) };
    let hi = if n + pb > off {
        // o*s + off - pb <= n - 1  <=>  o <= (n - 1 + pb - off) / s
        ((n - 1 + pb - off) / s + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Writes columns `p0 .. p0 + np` (flattened output positions) of the
/// im2col matrix of one group into `col` (row-major, leading dimension `ld`).
///
/// `x` holds the group's `c` input planes contiguously. Row order is
/// `(c, kd, kh, kw)` matching the ONNX weight layout.
pub(crate) fn im2col_tile(g: &Geom3, x: &[f32], p0: usize, np: usize, col: &mut [f32], ld: usize) {
    let [_, oh_n, ow_n] = g.outs;
    let [id_n, ih_n, iw_n] = g.ins;
    let in_plane = g.in_plane();
    // Split the tile into output-row segments once: (j, len, od, oh, ow0).
    let mut segs = Vec::with_capacity(np / ow_n.max(1) + 2);
    let mut j = 0;
    while j < np {
        let p = p0 + j;
        let ow0 = p % ow_n;
        let len = (ow_n - ow0).min(np - j);
        segs.push((j, len, p / (ow_n * oh_n), (p / ow_n) % oh_n, ow0));
        j += len;
    }
    // Valid output-column range per kw.
    let wr: Vec<(usize, usize)> =
        (0..g.k[2]).map(|kw| valid_range(ow_n, iw_n, g.s[2], kw, g.d[2], g.pb[2])).collect();
    let sw = g.s[2];
    let mut r = 0;
    for c in 0..g.c {
        let xc = &x[c * in_plane..(c + 1) * in_plane];
        for kd in 0..g.k[0] {
            for kh in 0..g.k[1] {
                for &(j, len, od, oh, ow0) in &segs {
                    let ow1 = ow0 + len;
                    let id = (od * g.s[0] + kd * g.d[0]).wrapping_sub(g.pb[0]);
                    let ih = (oh * g.s[1] + kh * g.d[1]).wrapping_sub(g.pb[1]);
                    if id >= id_n || ih >= ih_n {
                        for kw in 0..g.k[2] {
                            col[(r + kw) * ld + j..][..len].fill(0.0);
                        }
                        continue;
                    }
                    let row = &xc[(id * ih_n + ih) * iw_n..][..iw_n];
                    for (kw, &(wlo, whi)) in wr.iter().enumerate() {
                        let out = &mut col[(r + kw) * ld + j..][..len];
                        let lo = wlo.clamp(ow0, ow1);
                        let hi = whi.clamp(lo, ow1);
                        out[..lo - ow0].fill(0.0);
                        out[hi - ow0..].fill(0.0);
                        if hi > lo {
                            let dv = &mut out[lo - ow0..hi - ow0];
                            let start = lo * sw + kw * g.d[2] - g.pb[2];
                            match sw {
                                1 => dv.copy_from_slice(&row[start..start + (hi - lo)]),
                                2 => strided::<2>(dv, &row[start..]),
                                _ => strided_dyn(dv, &row[start..], sw),
                            }
                        }
                    }
                }
                r += g.k[2];
            }
        }
    }
}

#[inline(always)]
fn strided<const S: usize>(dst: &mut [f32], src: &[f32]) {
    let src = &src[..(dst.len() - 1) * S + 1];
    for (i, v) in dst.iter_mut().enumerate() {
        *v = src[i * S];
    }
}

fn strided_dyn(dst: &mut [f32], src: &[f32], s: usize) {
    let src = &src[..(dst.len() - 1) * s + 1];
    for (i, v) in dst.iter_mut().enumerate() {
        *v = src[i * s];
    }
}
