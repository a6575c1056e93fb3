//! Transposed convolution (ONNX `ConvTranspose`): GEMM into columns, then
//! col2im scatter-add.

use crate::gemm::gemm_strided;
use crate::im2col::valid_range;
use crate::{SendPtr, threads_for, to3, with_scratch};
use rayon::prelude::*;

/// ConvTranspose geometry (ONNX semantics). The caller resolves
/// `output_padding` / `output_shape` / auto_pad into `pads_begin` and the
/// final `out_spatial`: output position `o = i*stride + k*dilation -
/// pads_begin`, and positions outside `[0, out_spatial)` are dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTransposeGeom {
    /// Batch size N.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Groups.
    pub groups: usize,
    /// Input spatial size (rank 1..=3).
    pub in_spatial: Vec<usize>,
    /// Kernel spatial size.
    pub kernel: Vec<usize>,
    /// Strides (≥ 1).
    pub strides: Vec<usize>,
    /// Dilations (≥ 1).
    pub dilations: Vec<usize>,
    /// Padding removed at the beginning of each axis.
    pub pads_begin: Vec<usize>,
    /// Final output spatial size.
    pub out_spatial: Vec<usize>,
}

impl ConvTransposeGeom {
    /// Weight element count (`c_in * c_out/groups * prod(kernel)`).
    pub fn weight_len(&self) -> usize {
        self.c_in * (self.c_out / self.groups) * self.kernel.iter().product::<usize>()
    }

    /// Input element count.
    pub fn in_len(&self) -> usize {
        self.batch * self.c_in * self.in_spatial.iter().product::<usize>()
    }

    /// Output element count.
    pub fn out_len(&self) -> usize {
        self.batch * self.c_out * self.out_spatial.iter().product::<usize>()
    }

    /// Multiply-accumulates (before dropping out-of-range outputs).
    pub fn macs(&self) -> u64 {
        (self.in_len() as u64) * ((self.c_out / self.groups) * self.kernel.iter().product::<usize>()) as u64
    }

    pub(crate) fn validate(&self) {
        let r = self.in_spatial.len();
        assert!((1..=3).contains(&r), "conv_transpose: spatial rank must be 1..=3");
        for v in [&self.kernel, &self.strides, &self.dilations, &self.pads_begin, &self.out_spatial] {
            assert_eq!(v.len(), r, "conv_transpose: rank mismatch");
        }
        assert!(
            self.groups >= 1
                && self.c_in.is_multiple_of(self.groups)
                && self.c_out.is_multiple_of(self.groups)
        );
        assert!(self.strides.iter().chain(&self.dilations).chain(&self.kernel).all(|&v| v >= 1));
    }
}

/// Floats of column buffer per task.
const COL_BUDGET: usize = 256 * 1024;

/// `out = conv_transpose(x, weight) + bias`.
///
/// `x`: `[batch, c_in, in...]`, `weight`: `[c_in, c_out/groups, k...]`,
/// `bias`: `[c_out]`, `out`: `[batch, c_out, out_spatial...]`.
pub fn conv_transpose(
    geom: &ConvTransposeGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    geom.validate();
    assert!(x.len() >= geom.in_len(), "conv_transpose: input too short");
    assert!(weight.len() >= geom.weight_len(), "conv_transpose: weight too short");
    assert!(out.len() >= geom.out_len(), "conv_transpose: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= geom.c_out, "conv_transpose: bias too short");
    }
    let ins = to3(&geom.in_spatial, 1);
    let outs = to3(&geom.out_spatial, 1);
    let k = to3(&geom.kernel, 1);
    let s = to3(&geom.strides, 1);
    let d = to3(&geom.dilations, 1);
    let pb = to3(&geom.pads_begin, 0);
    let (groups, cig, cog) = (geom.groups, geom.c_in / geom.groups, geom.c_out / geom.groups);
    let pin: usize = ins.iter().product();
    let pout: usize = outs.iter().product();
    let ks: usize = k.iter().product();
    if geom.out_len() == 0 {
        return;
    }
    let threads = threads_for(geom.macs());
    let bg = geom.batch * groups;
    let mut ocb = (COL_BUDGET / (ks * pin).max(1)).clamp(1, cog.max(1));
    if threads > 1 {
        while ocb > 1 && bg * cog.div_ceil(ocb) < threads {
            ocb = ocb.div_ceil(2);
        }
    }
    let nchunks = cog.div_ceil(ocb).max(1);
    let tasks = bg * nchunks;
    let parallel_tasks = threads > 1 && tasks >= threads;
    let gemm_threads = if parallel_tasks { 1 } else { threads };
    let outp = SendPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (b, g, ci) = (t / (groups * nchunks), (t / nchunks) % groups, t % nchunks);
        let oc0 = ci * ocb;
        let noc = ocb.min(cog.saturating_sub(oc0));
        if noc == 0 {
            return;
        }
        // SAFETY: planes of output channels oc0..oc0+noc of (b, g) belong
        // to this task only.
        let oplanes = unsafe {
            std::slice::from_raw_parts_mut(
                outp.get().add((b * geom.c_out + g * cog + oc0) * pout),
                noc * pout,
            )
        };
        for (j, pl) in oplanes.chunks_mut(pout).enumerate() {
            pl.fill(bias.map_or(0.0, |bb| bb[g * cog + oc0 + j]));
        }
        if cig == 0 || pin == 0 {
            return;
        }
        let xg = &x[(b * geom.c_in + g * cig) * pin..][..cig * pin];
        let wg = &weight[g * cig * cog * ks..][..cig * cog * ks];
        let rows = noc * ks;
        with_scratch(rows * pin, |col| {
            // col[rows × pin] = Wg[:, oc0*ks..][cig × rows]^T · Xg[cig × pin]
            // SAFETY: extents are within the slices; col is exclusively ours.
            unsafe {
                gemm_strided(
                    rows,
                    pin,
                    cig,
                    1.0,
                    wg.as_ptr().add(oc0 * ks),
                    1,
                    cog * ks,
                    xg.as_ptr(),
                    pin,
                    1,
                    0.0,
                    col.as_mut_ptr(),
                    pin,
                    1,
                    gemm_threads,
                )
            };
            for (j, pl) in oplanes.chunks_mut(pout).enumerate() {
                let cj = &col[j * ks * pin..(j + 1) * ks * pin];
                col2im_plane(cj, pl, ins, outs, k, s, d, pb);
            }
        });
    };
    if parallel_tasks {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Scatter-adds the `ks × pin` column block of one output channel.
#[allow(clippy::too_many_arguments)]
fn col2im_plane(
    col: &[f32],
    out: &mut [f32],
    ins: [usize; 3],
    outs: [usize; 3],
    k: [usize; 3],
    s: [usize; 3],
    d: [usize; 3],
    pb: [usize; 3],
) {
    let pin = ins[0] * ins[1] * ins[2];
    let mut r = 0;
    for kd in 0..k[0] {
        for kh in 0..k[1] {
            for kw in 0..k[2] {
                let crow = &col[r * pin..(r + 1) * pin];
                r += 1;
                let (wlo, whi) = valid_range(ins[2], outs[2], s[2], kw, d[2], pb[2]);
                if whi <= wlo {
                    continue;
                }
                for id in 0..ins[0] {
                    let od = (id * s[0] + kd * d[0]).wrapping_sub(pb[0]);
                    if od >= outs[0] {
                        continue;
                    }
                    for ih in 0..ins[1] {
                        let oh = (ih * s[1] + kh * d[1]).wrapping_sub(pb[1]);
                        if oh >= outs[1] {
                            continue;
                        }
                        let src = &crow[(id * ins[1] + ih) * ins[2]..][wlo..whi];
                        let obase = (od * outs[1] + oh) * outs[2];
                        let o0 = wlo * s[2] + kw * d[2] - pb[2];
                        let orow = &mut out[obase + o0..obase + o0 + (whi - wlo - 1) * s[2] + 1];
                        if s[2] == 1 {
                            for (o, v) in orow.iter_mut().zip(src) {
                                *o += v;
                            }
                        } else {
                            for (i, v) in src.iter().enumerate() {
                                orow[i * s[2]] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}
