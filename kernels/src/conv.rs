//! Convolution (ONNX `Conv` semantics): im2col + GEMM, direct 1×1, and a
//! dedicated depthwise kernel.

use crate::act::{Act, bias_act};
use crate::gemm::gemm_strided;
use crate::im2col::{Geom3, im2col_tile, valid_range};
use crate::isa::{Isa, isa};
use crate::pgemm::{BSrc, Epi, MR, NR, PackedA, Plan, gemm_block, pack_b, pack_b_pays, run_tasks};
use crate::{SendPtr, threads_for, to3, with_scratch};
use rayon::prelude::*;
use std::sync::OnceLock;

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
        (0..self.in_spatial.len()).map(|i| self.out_dim(i)).collect()
    }

    /// Output size along spatial axis `i` (see [`ConvGeom::out_spatial`]).
    fn out_dim(&self, i: usize) -> usize {
        let ext = self.in_spatial[i] + self.pads_begin[i] + self.pads_end[i];
        let ek = (self.kernel[i] - 1) * self.dilations[i] + 1;
        if ext < ek { 0 } else { (ext - ek) / self.strides[i] + 1 }
    }

    /// Output positions per image and channel (no allocation, unlike `out_spatial`).
    fn out_positions(&self) -> usize {
        (0..self.in_spatial.len()).map(|i| self.out_dim(i)).product()
    }

    /// Multiply-accumulates of the convolution (ignoring padding).
    pub fn macs(&self) -> u64 {
        let out = self.out_positions();
        let k: usize = self.kernel.iter().product();
        (self.batch * self.c_out * out) as u64 * ((self.c_in / self.groups.max(1)) * k) as u64
    }

    /// Input element count.
    pub fn in_len(&self) -> usize {
        self.batch * self.c_in * self.in_spatial.iter().product::<usize>()
    }

    /// Output element count.
    pub fn out_len(&self) -> usize {
        self.batch * self.c_out * self.out_positions()
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
            outs: {
                let r = self.in_spatial.len();
                assert!((1..=3).contains(&r), "spatial rank must be 1, 2 or 3, got {r}");
                let mut o = [1; 3];
                (0..r).for_each(|i| o[3 - r + i] = self.out_dim(i));
                o
            },
        }
    }
}

/// Weights of a packed layer, in the form its kernel reads.
#[derive(Clone, Debug)]
enum Weights {
    /// Depthwise kernel: ONNX layout `[c_out, 1, k...]`.
    Depthwise(Vec<f32>),
    /// GEMM: one packed `[c_out/groups × c_in/groups·prod(k)]` matrix per group.
    Gemm(Vec<PackedA>),
}

/// Borrowed form of [`Weights`].
#[derive(Clone, Copy)]
enum WeightsRef<'a> {
    Depthwise(&'a [f32]),
    Gemm(&'a [PackedA]),
}

/// Whether a conv with `cig` input channels per group and spatial rank
/// `rank` runs on the depthwise kernel.
fn uses_depthwise(cig: usize, rank: usize) -> bool {
    cig == 1 && rank <= 2
}

/// Packs the weights of every group (`[c_out, c_in/groups, k...]`).
fn pack_groups(geom: &ConvGeom, weight: &[f32]) -> Vec<PackedA> {
    let cog = geom.c_out / geom.groups;
    let kk = (geom.c_in / geom.groups) * geom.kernel.iter().product::<usize>();
    (0..geom.groups).map(|g| PackedA::new(cog, kk, &weight[g * cog * kk..(g + 1) * cog * kk])).collect()
}

/// Pre-packed weights for repeated inference, built once per model load.
///
/// Holds the weights packed for the GEMM microkernels (one [`PackedA`] of
/// `[c_out/groups × c_in/groups·prod(kernel)]` per group), or in ONNX layout
/// for depthwise convolutions, together with the static part of the geometry
/// it was built for; batch and input spatial size may differ at run time.
#[derive(Clone, Debug)]
pub struct PackedConv {
    c_in: usize,
    c_out: usize,
    groups: usize,
    kernel: Vec<usize>,
    weights: Weights,
    /// ONNX-layout copy, rebuilt on demand by [`PackedConv::weight`].
    onnx: OnceLock<Vec<f32>>,
}

impl PackedConv {
    /// Packs `weight` (`[c_out, c_in/groups, k...]`) for `geom_template`.
    pub fn new(geom_template: &ConvGeom, weight: &[f32]) -> PackedConv {
        geom_template.validate();
        let len = geom_template.weight_len();
        assert!(weight.len() >= len, "PackedConv: weight too short");
        let g = geom_template;
        let weights = if uses_depthwise(g.c_in / g.groups, g.kernel.len()) {
            Weights::Depthwise(weight[..len].to_vec())
        } else {
            Weights::Gemm(pack_groups(g, weight))
        };
        PackedConv {
            c_in: g.c_in,
            c_out: g.c_out,
            groups: g.groups,
            kernel: g.kernel.clone(),
            weights,
            onnx: OnceLock::new(),
        }
    }

    /// The weights in ONNX layout (`[c_out, c_in/groups, k...]`); for packed
    /// GEMM weights this unpacks them on first use.
    pub fn weight(&self) -> &[f32] {
        match &self.weights {
            Weights::Depthwise(w) => w,
            Weights::Gemm(packs) => {
                self.onnx.get_or_init(|| packs.iter().flat_map(PackedA::unpack).collect())
            }
        }
    }

    fn as_ref(&self) -> WeightsRef<'_> {
        match &self.weights {
            Weights::Depthwise(w) => WeightsRef::Depthwise(w),
            Weights::Gemm(p) => WeightsRef::Gemm(p),
        }
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
    conv_packed_fused(geom, x, packed, bias, false, act, out)
}

/// `out = act(conv(x, w) + bias (+ out))` with pre-packed weights.
///
/// With `accumulate`, `out` must already hold a tensor of the output's shape
/// (a residual) which is added before the activation:
/// `out = act(conv(x) + bias + out_old)`; otherwise its contents are ignored.
/// `geom` must agree with the packing template in channels, groups and kernel.
pub fn conv_packed_fused(
    geom: &ConvGeom,
    x: &[f32],
    packed: &PackedConv,
    bias: Option<&[f32]>,
    accumulate: bool,
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
    check_args(geom, x, bias, out);
    conv_impl(geom, x, packed.as_ref(), bias, accumulate, act, out)
}

/// `out = act(conv(x, w) + bias)`.
///
/// `x`: `[batch, c_in, spatial...]`, `weight`: `[c_out, c_in/groups, k...]`,
/// `bias`: `[c_out]`, `out`: `[batch, c_out, out_spatial...]`. Packs the
/// weights on every call; use [`PackedConv`] for repeated inference.
pub fn conv(geom: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>, act: Act, out: &mut [f32]) {
    check_args(geom, x, bias, out);
    assert!(weight.len() >= geom.weight_len(), "conv: weight too short");
    if uses_depthwise(geom.c_in / geom.groups, geom.kernel.len()) {
        conv_impl(geom, x, WeightsRef::Depthwise(weight), bias, false, act, out)
    } else {
        let packs = pack_groups(geom, weight);
        conv_impl(geom, x, WeightsRef::Gemm(&packs), bias, false, act, out)
    }
}

fn check_args(geom: &ConvGeom, x: &[f32], bias: Option<&[f32]>, out: &[f32]) {
    geom.validate();
    assert!(x.len() >= geom.in_len(), "conv: input too short");
    assert!(out.len() >= geom.out_len(), "conv: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= geom.c_out, "conv: bias too short");
    }
}

fn conv_impl(
    geom: &ConvGeom,
    x: &[f32],
    w: WeightsRef<'_>,
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    out: &mut [f32],
) {
    let g3 = geom.geom3();
    let out_len = geom.out_len();
    if out_len == 0 {
        return;
    }
    let out = &mut out[..out_len];
    if g3.c == 0 {
        // No input channels: output is act(bias (+ out)).
        let p = g3.out_plane();
        for (i, o) in out.chunks_mut(p).enumerate() {
            if !accumulate {
                o.fill(0.0);
            }
            bias_act(o, bias.map_or(0.0, |b| b[i % geom.c_out]), act);
        }
        return;
    }
    match w {
        WeightsRef::Depthwise(wt) => {
            if !accumulate {
                crate::depthwise::depthwise(geom, &g3, x, wt, bias, act, out);
                return;
            }
            with_scratch(out_len, |tmp| {
                crate::depthwise::depthwise(geom, &g3, x, wt, bias, Act::None, tmp);
                let add = |(o, t): (&mut [f32], &[f32])| {
                    o.iter_mut().zip(t).for_each(|(o, t)| *o += t);
                    bias_act(o, 0.0, act);
                };
                const CH: usize = 1 << 14;
                if threads_for(out_len as u64 * 16) > 1 {
                    out.par_chunks_mut(CH).zip(tmp.par_chunks(CH)).for_each(add);
                } else {
                    out.chunks_mut(CH).zip(tmp.chunks(CH)).for_each(add);
                }
            })
        }
        WeightsRef::Gemm(packs) => conv_pgemm(geom, &g3, x, packs, bias, accumulate, act, out),
    }
}

/// im2col (or, for 1×1 stride-1 unpadded convs, the input itself) times the
/// packed weights, one parallel loop over (image, group, column chunk, row
/// group) tasks. Each task writes its im2col columns (or, for 1×1 convs
/// with enough row panels, a copy of its input columns) into [`NR`]-column
/// panels in a thread-local buffer that stays in L2 while every row panel of
/// the weights runs over it.
#[allow(clippy::too_many_arguments)]
fn conv_pgemm(
    geom: &ConvGeom,
    g3: &Geom3,
    x: &[f32],
    packs: &[PackedA],
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    out: &mut [f32],
) {
    let isa = isa();
    let groups = geom.groups;
    let cog = geom.c_out / groups;
    let kk = g3.col_rows();
    let p = g3.out_plane();
    let in_plane = g3.in_plane();
    let direct = g3.ksize() == 1 && g3.s == [1, 1, 1] && g3.pb == [0, 0, 0] && g3.outs == g3.ins;
    let jobs = geom.batch * groups;
    let threads = threads_for(geom.macs());
    let panels = cog.div_ceil(MR);
    let plan = Plan::new(jobs, p, panels, threads, kk);
    let tpj = plan.tasks_per_job();
    let outp = SendPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (job, rest) = (t / tpj, t % tpj);
        let (ci, mg) = (rest / plan.m_groups, rest % plan.m_groups);
        let (b, g) = (job / groups, job % groups);
        let n0 = ci * plan.nc;
        let nc = plan.nc.min(p - n0);
        let q0 = mg * plan.qpg;
        let q1 = (q0 + plan.qpg).min(panels);
        let x0 = (b * geom.c_in + g * g3.c) * in_plane;
        let xg = &x[x0..x0 + g3.c * in_plane];
        let c = outp.get().wrapping_add((b * geom.c_out + g * cog) * p + n0);
        let ep = Epi {
            accumulate,
            bias_row: bias.map_or(std::ptr::null(), |bb| bb[g * cog..].as_ptr()),
            bias_col: std::ptr::null(),
            act,
        };
        let a = packs[g].view();
        if direct && !pack_b_pays(q1 - q0) {
            let bsrc = BSrc::Rows { ptr: xg[n0..].as_ptr(), ldb: p };
            // SAFETY: xg holds kk rows of p floats; the task owns output rows
            // of this group, columns n0..n0 + nc.
            unsafe { gemm_block(isa, a, q0, q1, bsrc, nc, c, p, ep) }
            return;
        }
        with_scratch(kk * nc.next_multiple_of(NR), |buf| {
            if direct {
                // SAFETY: xg holds kk rows of p ≥ n0 + nc floats.
                unsafe { pack_b(xg[n0..].as_ptr(), p, kk, nc, buf, true) }
            } else {
                let mut filler = PanelFill::new(isa, g3, xg);
                for (j, panel) in buf.chunks_mut(kk * NR).take(nc.div_ceil(NR)).enumerate() {
                    let w = NR.min(nc - j * NR);
                    filler.fill(n0 + j * NR, w, 0, g3.c, &mut panel[..kk * w]);
                }
            }
            let bsrc = BSrc::Panels { ptr: buf.as_ptr(), compact: true };
            // SAFETY: buf holds the packed block; the task owns its output.
            unsafe { gemm_block(isa, a, q0, q1, bsrc, nc, c, p, ep) }
        });
    };
    run_tasks(jobs * tpj, threads, task);
}

/// Writes im2col rows of one group for one panel: output positions
/// `p .. p + w` (`w ≤ 48`) and input channels `c0 .. c1`, row-major with row
/// stride `w` (row `(c - c0) · ks + kernel offset`). Caches the fast path's
/// tables of the last panel.
struct PanelFill<'a> {
    g: &'a Geom3,
    x: &'a [f32],
    /// Whether the AVX-512 path applies to this geometry.
    fast: bool,
    /// Panel (start, width) the table was built for, and whether it is usable.
    built: Option<(usize, usize, bool)>,
    #[cfg(target_arch = "x86_64")]
    table: x86::Table,
}

impl<'a> PanelFill<'a> {
    fn new(isa: Isa, g: &'a Geom3, x: &'a [f32]) -> PanelFill<'a> {
        assert!(x.len() >= g.c * g.in_plane());
        #[cfg(target_arch = "x86_64")]
        let fast = isa >= Isa::Avx512 && x86::fast_ok(g);
        #[cfg(not(target_arch = "x86_64"))]
        let fast = {
            let _ = isa;
            false
        };
        PanelFill {
            g,
            x,
            fast,
            built: None,
            #[cfg(target_arch = "x86_64")]
            table: x86::Table::default(),
        }
    }

    fn fill(&mut self, p: usize, w: usize, c0: usize, c1: usize, dst: &mut [f32]) {
        let ks = self.g.ksize();
        assert!(c1 <= self.g.c && dst.len() >= (c1 - c0) * ks * w);
        #[cfg(target_arch = "x86_64")]
        {
            if self.fast {
                if self.built.is_none_or(|(bp, bw, _)| bp != p || bw != w) {
                    let ok = self.table.build(self.g, p, w);
                    self.built = Some((p, w, ok));
                }
                if let Some((_, _, true)) = self.built {
                    // SAFETY: avx512f available (fast); extents asserted.
                    return unsafe { self.table.fill(self.g, self.x, c0, c1, dst) };
                }
            }
        }
        im2col_panel_generic(self.g, self.x, p, w, c0, c1, dst)
    }
}

/// One output-row piece of a panel: (first column in the panel, length,
/// od, oh, first ow).
type Seg = (usize, usize, usize, usize, usize);

/// Splits panel columns `p .. p + w` (flattened output positions) into
/// output-row segments; returns their count.
fn panel_segments(g: &Geom3, p: usize, w: usize, segs: &mut [Seg; NR]) -> usize {
    let [_, oh_n, ow_n] = g.outs;
    let (mut j, mut ns) = (0, 0);
    while j < w {
        let q = p + j;
        let ow0 = q % ow_n;
        let len = (ow_n - ow0).min(w - j);
        segs[ns] = (j, len, q / (ow_n * oh_n), (q / ow_n) % oh_n, ow0);
        ns += 1;
        j += len;
    }
    ns
}

/// Portable im2col of one panel (any stride, dilation, padding): see
/// [`PanelFill`].
fn im2col_panel_generic(g: &Geom3, x: &[f32], p: usize, w: usize, c0: usize, c1: usize, dst: &mut [f32]) {
    let [id_n, ih_n, iw_n] = g.ins;
    let ow_n = g.outs[2];
    let in_plane = g.in_plane();
    let sw = g.s[2];
    let mut segs = [(0, 0, 0, 0, 0); NR];
    let ns = panel_segments(g, p, w, &mut segs);
    let mut r = 0;
    for c in c0..c1 {
        let xc = &x[c * in_plane..(c + 1) * in_plane];
        for kd in 0..g.k[0] {
            for kh in 0..g.k[1] {
                for kw in 0..g.k[2] {
                    let (wlo, whi) = valid_range(ow_n, iw_n, sw, kw, g.d[2], g.pb[2]);
                    let row = &mut dst[r * w..(r + 1) * w];
                    for &(j, len, od, oh, ow0) in &segs[..ns] {
                        let out = &mut row[j..j + len];
                        let id = (od * g.s[0] + kd * g.d[0]).wrapping_sub(g.pb[0]);
                        let ih = (oh * g.s[1] + kh * g.d[1]).wrapping_sub(g.pb[1]);
                        if id >= id_n || ih >= ih_n {
                            out.fill(0.0);
                            continue;
                        }
                        let ow1 = ow0 + len;
                        let lo = wlo.clamp(ow0, ow1);
                        let hi = whi.clamp(lo, ow1);
                        out[..lo - ow0].fill(0.0);
                        out[hi - ow0..].fill(0.0);
                        if hi > lo {
                            let src = &xc[(id * ih_n + ih) * iw_n..][..iw_n];
                            let start = lo * sw + kw * g.d[2] - g.pb[2];
                            let dv = &mut out[lo - ow0..hi - ow0];
                            if sw == 1 {
                                dv.copy_from_slice(&src[start..start + dv.len()]);
                            } else {
                                for (i, v) in dv.iter_mut().enumerate() {
                                    *v = src[start + i * sw];
                                }
                            }
                        }
                    }
                    r += 1;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{NR, Seg, panel_segments};
    use crate::im2col::{Geom3, valid_range};
    use std::arch::x86_64::*;

    /// Most kernel offsets / panel segments the fast path handles.
    const MAX_KS: usize = 64;
    const MAX_SEGS: usize = 16;

    /// `SPREAD[b]` has bit `2i` set for every bit `i` of `b`.
    const SPREAD: [u16; 256] = {
        let mut t = [0u16; 256];
        let mut b = 0;
        while b < 256 {
            let mut i = 0;
            while i < 8 {
                if b & (1 << i) != 0 {
                    t[b] |= 1 << (2 * i);
                }
                i += 1;
            }
            b += 1;
        }
        t
    };

    #[inline]
    fn mask16(rem: usize) -> __mmask16 {
        if rem >= 16 { 0xFFFF } else { ((1u32 << rem) - 1) as __mmask16 }
    }

    /// The fast path needs a width stride of 1 or 2, rows of ≥ 4 outputs
    /// and a kernel of ≤ 64 offsets.
    pub(super) fn fast_ok(g: &Geom3) -> bool {
        g.s[2] <= 2 && g.outs[2] >= 4 && g.ksize() <= MAX_KS
    }

    /// Loads of one panel: for each kernel offset and 16-lane vector, at
    /// most two masked loads (source offset relative to the channel plane,
    /// lane mask; a zero mask loads nothing).
    pub(super) struct Table {
        w: usize,
        off: [[[isize; 2]; 3]; MAX_KS],
        mask: [[[u16; 2]; 3]; MAX_KS],
    }

    impl Default for Table {
        fn default() -> Table {
            Table { w: 0, off: [[[0; 2]; 3]; MAX_KS], mask: [[[0; 2]; 3]; MAX_KS] }
        }
    }

    impl Table {
        /// Builds the loads of panel `p .. p + w`; false when some vector
        /// needs more than two loads (rows narrower than the vectors).
        pub(super) fn build(&mut self, g: &Geom3, p: usize, w: usize) -> bool {
            let [id_n, ih_n, iw_n] = g.ins;
            let ow_n = g.outs[2];
            let sw = g.s[2];
            let mut segs: [Seg; NR] = [(0, 0, 0, 0, 0); NR];
            let ns = panel_segments(g, p, w, &mut segs);
            if ns > MAX_SEGS {
                return false;
            }
            self.w = w;
            let mut shift = [0isize; MAX_SEGS];
            for (s, &(j, _, od, oh, ow0)) in segs[..ns].iter().enumerate() {
                let id0 = (od * g.s[0]) as isize - g.pb[0] as isize;
                let ih0 = (oh * g.s[1]) as isize - g.pb[1] as isize;
                let iw0 = (ow0 * sw) as isize - g.pb[2] as isize;
                shift[s] = (id0 * ih_n as isize + ih0) * iw_n as isize + iw0 - (sw * j) as isize;
            }
            let mut koff = 0;
            for kd in 0..g.k[0] {
                for kh in 0..g.k[1] {
                    for kw in 0..g.k[2] {
                        let (wlo, whi) = valid_range(ow_n, iw_n, sw, kw, g.d[2], g.pb[2]);
                        let delta = (((kd * g.d[0]) * ih_n + kh * g.d[1]) * iw_n + kw * g.d[2]) as isize;
                        let mut count = [0usize; 3];
                        self.mask[koff] = [[0; 2]; 3];
                        self.off[koff] = [[0; 2]; 3];
                        for (s, &(j, len, od, oh, ow0)) in segs[..ns].iter().enumerate() {
                            let id = (od * g.s[0] + kd * g.d[0]).wrapping_sub(g.pb[0]);
                            let ih = (oh * g.s[1] + kh * g.d[1]).wrapping_sub(g.pb[1]);
                            let ow1 = ow0 + len;
                            let lo = wlo.clamp(ow0, ow1);
                            let hi = whi.clamp(lo, ow1);
                            if id >= id_n || ih >= ih_n || hi == lo {
                                continue;
                            }
                            let bits = ((1u64 << (hi - lo)) - 1) << (j + lo - ow0);
                            for (v, cv) in count.iter_mut().enumerate() {
                                let m = (bits >> (16 * v)) as u16;
                                if m == 0 {
                                    continue;
                                }
                                if *cv == 2 {
                                    return false;
                                }
                                self.off[koff][v][*cv] = shift[s] + delta + (16 * sw * v) as isize;
                                self.mask[koff][v][*cv] = m;
                                *cv += 1;
                            }
                        }
                        koff += 1;
                    }
                }
            }
            true
        }

        /// Writes the rows of channels `c0 .. c1` (see `PanelFill`).
        ///
        /// # Safety
        /// AVX-512F must be available; the table was built for `g`;
        /// `x` holds the group's planes and `dst` `(c1 - c0) · ks · w` floats.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn fill(&self, g: &Geom3, x: &[f32], c0: usize, c1: usize, dst: &mut [f32]) {
            let ks = g.ksize();
            let w = self.w;
            let nv = w.div_ceil(16);
            let in_plane = g.in_plane();
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let mut drow = dst.as_mut_ptr();
            for c in c0..c1 {
                let xc = x.as_ptr().wrapping_add(c * in_plane);
                for (offs, masks) in self.off[..ks].iter().zip(&self.mask[..ks]) {
                    for v in 0..nv {
                        let ([o0, o1], [m0, m1]) = (offs[v], masks[v]);
                        // SAFETY: the lanes set in the masks address valid
                        // input elements of channel c (a zero mask accesses
                        // nothing); the row has w floats in dst.
                        unsafe {
                            let val = if g.s[2] == 1 {
                                let t = _mm512_maskz_loadu_ps(m0, xc.wrapping_offset(o0));
                                _mm512_mask_loadu_ps(t, m1, xc.wrapping_offset(o1))
                            } else {
                                let mut acc = _mm512_setzero_ps();
                                for (o, m) in [(o0, m0), (o1, m1)] {
                                    if m != 0 {
                                        let src = xc.wrapping_offset(o);
                                        let lo = _mm512_maskz_loadu_ps(SPREAD[(m & 0xFF) as usize], src);
                                        let hi = _mm512_maskz_loadu_ps(
                                            SPREAD[(m >> 8) as usize],
                                            src.wrapping_add(16),
                                        );
                                        acc =
                                            _mm512_mask_mov_ps(acc, m, _mm512_permutex2var_ps(lo, even, hi));
                                    }
                                }
                                acc
                            };
                            if w == NR {
                                _mm512_storeu_ps(drow.add(16 * v), val);
                            } else {
                                _mm512_mask_storeu_ps(drow.add(16 * v), mask16(w - 16 * v), val);
                            }
                        }
                    }
                    drow = drow.wrapping_add(w);
                }
            }
        }
    }
}

/// Largest im2col tile (floats) for the legacy tiled path.
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

/// The previous implementation (im2col tiles + the `gemm` crate, weights
/// repacked on every call), kept for benchmarks: `out = act(conv(x, w) + bias)`.
#[doc(hidden)]
pub fn conv_legacy(
    geom: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    check_args(geom, x, bias, out);
    assert!(weight.len() >= geom.weight_len(), "conv: weight too short");
    let g3 = geom.geom3();
    if geom.out_len() == 0 || g3.c == 0 || uses_depthwise(g3.c, geom.kernel.len()) {
        return conv(geom, x, weight, bias, act, out);
    }
    conv_gemm(geom, &g3, x, weight, bias, act, out);
}
