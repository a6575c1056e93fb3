//! Convolution (ONNX `Conv` semantics): im2col + GEMM, direct 1×1, and a
//! dedicated depthwise kernel.

use crate::act::{Act, bias_act};
use crate::gemm::gemm_strided;
use crate::im2col::{Geom3, im2col_tile};
use crate::{SendPtr, threads_for, to3, with_scratch};
use rayon::prelude::*;

/// N-d convolution geometry (ONNX Conv semantics, NCHW / NC(D)HW layout).
/// Spatial rank 1, 2 or 3; all spatial vectors have that rank.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGeom {
    /// Batch size N.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Groups (`c_in` and `c_out` are multiples of it).
    pub groups: usize,
    /// Input spatial size.
    pub in_spatial: Vec<usize>,
    /// Kernel spatial size.
    pub kernel: Vec<usize>,
    /// Strides (≥ 1).
    pub strides: Vec<usize>,
    /// Dilations (≥ 1).
    pub dilations: Vec<usize>,
    /// Padding before each spatial axis.
    pub pads_begin: Vec<usize>,
    /// Padding after each spatial axis.
    pub pads_end: Vec<usize>,
}

impl ConvGeom {
    /// Output spatial size: `(in + pb + pe - ((k-1)*d + 1)) / s + 1` per axis
    /// (0 when the dilated kernel does not fit).
    pub fn out_spatial(&self) -> Vec<usize> {
        (0..self.in_spatial.len())
            .map(|i| {
                let ext = self.in_spatial[i] + self.pads_begin[i] + self.pads_end[i];
                let ek = (self.kernel[i] - 1) * self.dilations[i] + 1;
                if ext < ek { 0 } else { (ext - ek) / self.strides[i] + 1 }
            })
            .collect()
    }

    /// Multiply-accumulates of the convolution (ignoring padding).
    pub fn macs(&self) -> u64 {
        let out: usize = self.out_spatial().iter().product();
        let k: usize = self.kernel.iter().product();
        (self.batch * self.c_out * out) as u64 * ((self.c_in / self.groups.max(1)) * k) as u64
    }

    /// Input element count.
    pub fn in_len(&self) -> usize {
        self.batch * self.c_in * self.in_spatial.iter().product::<usize>()
    }

    /// Output element count.
    pub fn out_len(&self) -> usize {
        self.batch * self.c_out * self.out_spatial().iter().product::<usize>()
    }

    /// Weight element count (`c_out * c_in/groups * prod(kernel)`).
    pub fn weight_len(&self) -> usize {
        self.c_out * (self.c_in / self.groups) * self.kernel.iter().product::<usize>()
    }

    pub(crate) fn validate(&self) {
        let r = self.in_spatial.len();
        assert!((1..=3).contains(&r), "conv: spatial rank must be 1..=3");
        for (name, v) in [
            ("kernel", &self.kernel),
            ("strides", &self.strides),
            ("dilations", &self.dilations),
            ("pads_begin", &self.pads_begin),
            ("pads_end", &self.pads_end),
        ] {
            assert_eq!(v.len(), r, "conv: {name} rank mismatch");
        }
        assert!(self.groups >= 1, "conv: groups must be ≥ 1");
        assert!(
            self.c_in.is_multiple_of(self.groups) && self.c_out.is_multiple_of(self.groups),
            "conv: channels not divisible by groups"
        );
        assert!(
            self.strides.iter().chain(&self.dilations).chain(&self.kernel).all(|&v| v >= 1),
            "conv: kernel/strides/dilations must be ≥ 1"
        );
    }

    /// Group geometry padded to rank 3.
    pub(crate) fn geom3(&self) -> Geom3 {
        Geom3 {
            c: self.c_in / self.groups,
            ins: to3(&self.in_spatial, 1),
            k: to3(&self.kernel, 1),
            s: to3(&self.strides, 1),
            d: to3(&self.dilations, 1),
            pb: to3(&self.pads_begin, 0),
            outs: to3(&self.out_spatial(), 1),
        }
    }
}

/// Pre-packed weights for repeated inference, built once per model load.
///
/// Holds a copy of the weights (`[c_out, c_in/groups, k...]`) together with
/// the static part of the geometry it was built for; batch and input spatial
/// size may differ at run time.
#[derive(Clone, Debug)]
pub struct PackedConv {
    c_in: usize,
    c_out: usize,
    groups: usize,
    kernel: Vec<usize>,
    weight: Vec<f32>,
}

impl PackedConv {
    /// Packs `weight` (`[c_out, c_in/groups, k...]`) for `geom_template`.
    pub fn new(geom_template: &ConvGeom, weight: &[f32]) -> PackedConv {
        geom_template.validate();
        let len = geom_template.weight_len();
        assert!(weight.len() >= len, "PackedConv: weight too short");
        PackedConv {
            c_in: geom_template.c_in,
            c_out: geom_template.c_out,
            groups: geom_template.groups,
            kernel: geom_template.kernel.clone(),
            weight: weight[..len].to_vec(),
        }
    }

    /// The packed weights in ONNX layout.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }
}

/// `out = act(conv(x, w) + bias)` with pre-packed weights; `geom` must agree
/// with the template the weights were packed for in channels, groups and
/// kernel.
pub fn conv_packed(
    geom: &ConvGeom,
    x: &[f32],
    packed: &PackedConv,
    bias: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    assert!(
        geom.c_in == packed.c_in
            && geom.c_out == packed.c_out
            && geom.groups == packed.groups
            && geom.kernel == packed.kernel,
        "conv_packed: geometry does not match packed weights"
    );
    conv(geom, x, &packed.weight, bias, act, out)
}

/// `out = act(conv(x, w) + bias)`.
///
/// `x`: `[batch, c_in, spatial...]`, `weight`: `[c_out, c_in/groups, k...]`,
/// `bias`: `[c_out]`, `out`: `[batch, c_out, out_spatial...]`.
pub fn conv(geom: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>, act: Act, out: &mut [f32]) {
    geom.validate();
    assert!(x.len() >= geom.in_len(), "conv: input too short");
    assert!(weight.len() >= geom.weight_len(), "conv: weight too short");
    assert!(out.len() >= geom.out_len(), "conv: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= geom.c_out, "conv: bias too short");
    }
    let g3 = geom.geom3();
    if geom.out_len() == 0 {
        return;
    }
    if g3.c == 0 {
        // No input channels: output is act(bias).
        let p = g3.out_plane();
        for (i, o) in out[..geom.out_len()].chunks_mut(p).enumerate() {
            o.fill(0.0);
            bias_act(o, bias.map_or(0.0, |b| b[i % geom.c_out]), act);
        }
        return;
    }
    if g3.c == 1 && geom.in_spatial.len() <= 2 {
        crate::depthwise::depthwise(geom, &g3, x, weight, bias, act, out);
        return;
    }
    conv_gemm(geom, &g3, x, weight, bias, act, out);
}

/// Largest im2col tile (floats) for the tiled path.
const TILE_FLOATS: usize = 192 * 1024;

fn conv_gemm(
    geom: &ConvGeom,
    g3: &Geom3,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    let groups = geom.groups;
    let cog = geom.c_out / groups;
    let kk = g3.col_rows();
    let p = g3.out_plane();
    let in_plane = g3.in_plane();
    let direct = g3.ksize() == 1 && g3.s == [1, 1, 1] && g3.pb == [0, 0, 0] && g3.outs == g3.ins;
    let threads = threads_for(geom.macs());
    let bg = geom.batch * groups;
    let outp = SendPtr(out.as_mut_ptr());

    // Tile the output positions; each tile is im2col'ed into a thread-local
    // buffer that stays in L2, then multiplied.
    let tmax = (TILE_FLOATS / kk).max(64);
    let mut ntiles = p.div_ceil(tmax);
    if threads > 1 && bg * (p / 32).max(1) >= threads {
        // Make the task count a multiple of the thread count for balance.
        while !(bg * ntiles).is_multiple_of(threads) && ntiles < p {
            ntiles += 1;
        }
    }
    let tile = p.div_ceil(ntiles).next_multiple_of(16).min(p);
    let ntiles = p.div_ceil(tile);
    let tasks = bg * ntiles;
    let parallel_tasks = threads > 1 && tasks >= threads;
    let gemm_threads = if parallel_tasks { 1 } else { threads };
    let split_rows = !parallel_tasks && threads > 1 && cog >= 32;

    let task = |t: usize| {
        let (b, g, ti) = (t / (groups * ntiles), (t / ntiles) % groups, t % ntiles);
        let p0 = ti * tile;
        let np = tile.min(p - p0);
        let xg = &x[(b * geom.c_in + g * g3.c) * in_plane..(b * geom.c_in + (g + 1) * g3.c) * in_plane];
        let wg = &weight[g * cog * kk..(g + 1) * cog * kk];
        let oc0 = b * geom.c_out + g * cog;
        // Output rows r0..r1 of this tile: GEMM, then bias + activation
        // while the block is still in cache.
        let rows = |col: SendPtr<f32>, ld: usize, r0: usize, r1: usize, threads: usize| {
            // SAFETY: `col` covers kk rows of ld (≥ np) floats; output rows
            // oc0+r0..oc0+r1, columns p0..p0+np are written by this call only.
            unsafe {
                gemm_strided(
                    r1 - r0,
                    np,
                    kk,
                    1.0,
                    wg.as_ptr().add(r0 * kk),
                    kk,
                    1,
                    col.get(),
                    ld,
                    1,
                    0.0,
                    outp.get().add((oc0 + r0) * p + p0),
                    p,
                    1,
                    threads,
                )
            }
            if bias.is_some() || !act.is_none() {
                for r in r0..r1 {
                    let bv = bias.map_or(0.0, |bb| bb[g * cog + r]);
                    // SAFETY: this call's own output row segment.
                    let row =
                        unsafe { std::slice::from_raw_parts_mut(outp.get().add((oc0 + r) * p + p0), np) };
                    bias_act(row, bv, act);
                }
            }
        };
        let mm = |col: *const f32, ld: usize| {
            let col = SendPtr(col as *mut f32);
            if split_rows {
                // Few tiles: split the output channels across threads.
                let chunk = cog.div_ceil(threads).next_multiple_of(16);
                (0..cog.div_ceil(chunk))
                    .into_par_iter()
                    .for_each(|i| rows(col, ld, i * chunk, ((i + 1) * chunk).min(cog), 1));
            } else {
                rows(col, ld, 0, cog, gemm_threads);
            }
        };
        if direct {
            mm(xg[p0..].as_ptr(), p);
        } else {
            with_scratch(kk * np, |col| {
                im2col_tile(g3, xg, p0, np, col, np);
                mm(col.as_ptr(), np);
            });
        }
    };
    if parallel_tasks {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}
