//! The plan's kernels on arena slices: element-wise maps with broadcasting, softmax, layer
//! norm, constant-weight dense layers and the per-layer convolution variants. The heavy
//! lifting (GEMM, conv, pooling) is in `pare-kernels`.

use super::plan::Variant;
use crate::ops::elementwise::math::{erf_f32, exp_f32, tanh_f32};
use pare_kernels::{
    Act, ConvGeom, ConvNhwc, DepthwiseNhwc, PackedB, PackedConv, WinoTile, WinogradConv, bias_act,
};
use rayon::prelude::*;

/// Defines `fn name(args)` whose body is compiled three times (AVX-512, AVX2+FMA, baseline)
/// and dispatched on [`pare_kernels::isa`], so that plain element loops get the widest vectors
/// this CPU has (and `PARE_ISA` forces the narrower paths for testing).
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256($($arg: $ty),*) {
                    body($($arg),*)
                }
                match pare_kernels::isa() {
                    // SAFETY: isa() reports only features this CPU has.
                    pare_kernels::Isa::Avx512 => return unsafe { v512($($arg),*) },
                    // SAFETY: as above.
                    pare_kernels::Isa::Avx2 => return unsafe { v256($($arg),*) },
                    pare_kernels::Isa::Scalar => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// Element-wise work below this many elements stays on the calling thread.
const PAR_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// Weights of one conv layer, packed once for one algorithm.
pub(crate) struct ConvWeights {
    c_in: usize,
    c_out: usize,
    groups: usize,
    kernel: Vec<usize>,
    packed: Packed,
}

enum Packed {
    /// im2col / direct GEMM (or depthwise) weights.
    Gemm(PackedConv),
    /// Winograd-transformed 3×3 weights.
    Winograd(WinogradConv),
    /// Row-major `[c_out, c_in]` weights of a 1×1 stride-1 unpadded conv, run per image as
    /// one `sgemm` (the `gemm` crate) over the input planes.
    Plain(Vec<f32>),
    /// Channels-last depthwise weights, `[tap][channel]`.
    NhwcDepthwise(DepthwiseNhwc),
    /// Channels-last 1×1 weights (`[c_in][c_out]` packed).
    NhwcGemm(ConvNhwc),
}

impl ConvWeights {
    /// Packs `w` for the channels-last kernels: the depthwise one for depthwise convs, the
    /// GEMM one for 1×1 stride-1 unpadded convs; `None` for other convs.
    pub(crate) fn nhwc(geom: &ConvGeom, w: &[f32]) -> Option<ConvWeights> {
        let packed = if geom.groups > 1 && geom.groups == geom.c_in && geom.c_out == geom.c_in {
            Packed::NhwcDepthwise(DepthwiseNhwc::new(geom.c_out, geom.kernel.iter().product(), w))
        } else {
            Packed::NhwcGemm(ConvNhwc::new(geom, w)?)
        };
        Some(ConvWeights {
            c_in: geom.c_in,
            c_out: geom.c_out,
            groups: geom.groups,
            kernel: geom.kernel.clone(),
            packed,
        })
    }

    /// Whether these are channels-last weights.
    pub(crate) fn is_nhwc(&self) -> bool {
        matches!(self.packed, Packed::NhwcDepthwise(_) | Packed::NhwcGemm(_))
    }

    /// Packs `w` (`[c_out, c_in/groups, k...]`) for `algo`; an algorithm that does not apply
    /// to `geom` falls back to GEMM.
    pub(crate) fn new(geom: &ConvGeom, w: &[f32], algo: Variant) -> ConvWeights {
        let packed = match algo {
            Variant::WinogradF2 if winograd_applies(geom) => {
                Packed::Winograd(WinogradConv::new(WinoTile::F2, geom.c_in, geom.c_out, w))
            }
            Variant::WinogradF4 if winograd_applies(geom) => {
                Packed::Winograd(WinogradConv::new(WinoTile::F4, geom.c_in, geom.c_out, w))
            }
            Variant::Sgemm if pointwise_applies(geom) => Packed::Plain(w[..geom.c_out * geom.c_in].to_vec()),
            _ => Packed::Gemm(PackedConv::new(geom, w)),
        };
        ConvWeights {
            c_in: geom.c_in,
            c_out: geom.c_out,
            groups: geom.groups,
            kernel: geom.kernel.clone(),
            packed,
        }
    }

    /// Whether these packed weights fit a conv of this geometry (channels, groups, kernel,
    /// and for Winograd weights stride and dilation).
    pub(crate) fn matches(&self, geom: &ConvGeom) -> bool {
        self.c_in == geom.c_in
            && self.c_out == geom.c_out
            && self.groups == geom.groups
            && self.kernel == geom.kernel
            && match self.packed {
                Packed::Gemm(_) => true,
                Packed::Winograd(_) => winograd_applies(geom),
                Packed::Plain(_) => pointwise_applies(geom),
                Packed::NhwcDepthwise(_) => true,
                Packed::NhwcGemm(ref c) => c.matches(geom),
            }
    }
}

/// Whether a conv is a plain matrix product per image: 1×1 kernel, stride 1, no padding,
/// one group (dilation does not matter for a 1×1 kernel).
pub(crate) fn pointwise_applies(g: &ConvGeom) -> bool {
    pare_kernels::pointwise(g)
}

/// Whether a Winograd kernel can run this conv (2-D 3×3, stride 1, dilation 1, one group).
pub(crate) fn winograd_applies(g: &ConvGeom) -> bool {
    WinogradConv::applies(g)
}

/// The algorithm a conv gets without a measurement.
///
/// Winograd F(4×4) for 3×3 stride-1 convs with enough channels and spatial extent that the
/// transforms amortise (measured with `cargo run --release -p pare-kernels --example
/// wino_bench`); GEMM otherwise.
pub(crate) fn heuristic_conv(g: &ConvGeom) -> Variant {
    let spatial: usize = g.in_spatial.iter().product();
    if winograd_applies(g) && g.c_in >= 32 && g.c_out >= 32 && spatial >= 14 * 14 {
        Variant::WinogradF4
    } else {
        Variant::Gemm
    }
}

/// `out = act(conv(x) + bias (+ out when accumulate))`.
pub(crate) fn conv(
    geom: &ConvGeom,
    w: &ConvWeights,
    x: &[f32],
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    out: &mut [f32],
) {
    match &w.packed {
        Packed::Gemm(p) => pare_kernels::conv_packed_fused(geom, x, p, bias, accumulate, act, out),
        Packed::Winograd(wc) => wc.run(geom, x, bias, accumulate, act, out),
        Packed::NhwcDepthwise(_) | Packed::NhwcGemm(_) => {
            unreachable!("channels-last weights run through conv_nhwc")
        }
        Packed::Plain(wt) => {
            let (ci, co) = (geom.c_in, geom.c_out);
            let p: usize = geom.in_spatial.iter().product();
            for b in 0..geom.batch {
                let xb = &x[b * ci * p..][..ci * p];
                let ob = &mut out[b * co * p..][..co * p];
                let beta = if accumulate { 1.0 } else { 0.0 };
                pare_kernels::sgemm(co, p, ci, 1.0, wt, ci, false, xb, p, false, beta, ob, p);
                for (c, row) in ob.chunks_mut(p).enumerate() {
                    bias_act(row, bias.map_or(0.0, |bb| bb[c]), act);
                }
            }
        }
    }
}

/// Channels-last conv: `out = act(conv(x) + bias (+ out when accumulate))`, `x` and `out`
/// NHWC. Depthwise convs take no residual.
pub(crate) fn conv_nhwc(
    geom: &ConvGeom,
    w: &ConvWeights,
    x: &[f32],
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    out: &mut [f32],
) {
    match &w.packed {
        Packed::NhwcDepthwise(d) => {
            assert!(!accumulate, "conv_nhwc: a depthwise conv takes no residual");
            pare_kernels::depthwise_nhwc(geom, d, bias, act, x, out)
        }
        Packed::NhwcGemm(c) => pare_kernels::conv_nhwc(geom, c, bias, act, accumulate, x, out),
        _ => unreachable!("conv_nhwc needs channels-last weights"),
    }
}

/// The dense variant without a measurement: from 512 rows the blocked `sgemm` (the `gemm`
/// crate, which packs both operands per call), below that the pre-packed-B kernel. The row
/// count is overridable with `PARE_DENSE_SGEMM_M` for measurement.
pub(crate) fn heuristic_dense(m: usize) -> Variant {
    static M: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let from = *M.get_or_init(|| {
        std::env::var("PARE_DENSE_SGEMM_M").ok().and_then(|v| v.parse().ok()).unwrap_or(DENSE_SGEMM_M)
    });
    if m >= from { Variant::Sgemm } else { Variant::PackedB }
}
const DENSE_SGEMM_M: usize = 512;

/// A constant right operand `W[k × n]` (scaled by alpha) with an optional bias per column,
/// in the layout of the kernel chosen for the layer's row count.
pub(crate) struct DenseWeights {
    k: usize,
    n: usize,
    w: DenseW,
    bias: Option<Vec<f32>>,
}

enum DenseW {
    /// Pre-packed into GEMM panels (small row counts: GEMV-like layers).
    Packed(PackedB),
    /// Row-major `[k, n]` for `sgemm` (large row counts).
    Plain(Vec<f32>),
}

impl DenseWeights {
    /// `b` is `[k, n]`, or `[n, k]` when `trans`, laid out for `variant` (`Sgemm`: plain,
    /// anything else: packed panels).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        variant: Variant,
        k: usize,
        n: usize,
        b: &[f32],
        trans: bool,
        alpha: f32,
        bias: Option<Vec<f32>>,
    ) -> DenseWeights {
        let mut w = vec![0f32; k * n];
        for i in 0..k {
            for j in 0..n {
                w[i * n + j] = alpha * if trans { b[j * k + i] } else { b[i * n + j] };
            }
        }
        let w = match variant {
            Variant::Sgemm => DenseW::Plain(w),
            _ => DenseW::Packed(PackedB::new(k, n, &w)),
        };
        DenseWeights { k, n, w, bias }
    }

    /// `(k, n)`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// `out[m × n] = act(x[m × k] · W + bias)`.
pub(crate) fn dense(m: usize, w: &DenseWeights, x: &[f32], act: Act, out: &mut [f32]) {
    let (k, n) = (w.k, w.n);
    debug_assert_eq!(x.len(), m * k);
    match &w.w {
        DenseW::Packed(p) => pare_kernels::gemm_packed_b(m, x, k, p, w.bias.as_deref(), act, out, n),
        DenseW::Plain(wp) => {
            pare_kernels::sgemm(m, n, k, 1.0, x, k, false, wp, n, false, 0.0, out, n);
            if w.bias.is_some() || !act.is_none() {
                for r in out.chunks_mut(n) {
                    if let Some(b) = &w.bias {
                        r.iter_mut().zip(b).for_each(|(o, b)| *o += b);
                    }
                    bias_act(r, 0.0, act);
                }
            }
        }
    }
}

/// Element-wise unary functions with native loops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UnaryK {
    Act(Act),
    Tanh,
    Erf,
    Exp,
    Gelu,
    GeluTanh,
    Neg,
    Abs,
    Sqrt,
    Reciprocal,
}

impl UnaryK {
    pub(crate) fn of(u: crate::ir::Unary) -> Option<UnaryK> {
        use crate::ir::Unary as U;
        Some(match u {
            U::Relu => UnaryK::Act(Act::Relu),
            U::Sigmoid => UnaryK::Act(Act::Sigmoid),
            U::LeakyRelu(a) => UnaryK::Act(Act::LeakyRelu(a)),
            U::HardSigmoid { alpha, beta } => UnaryK::Act(Act::HardSigmoid { alpha, beta }),
            U::HardSwish => UnaryK::Act(Act::HardSwish),
            U::Tanh => UnaryK::Tanh,
            U::Erf => UnaryK::Erf,
            U::Exp => UnaryK::Exp,
            U::Gelu { tanh: false } => UnaryK::Gelu,
            U::Gelu { tanh: true } => UnaryK::GeluTanh,
            U::Neg => UnaryK::Neg,
            U::Abs => UnaryK::Abs,
            U::Sqrt => UnaryK::Sqrt,
            U::Reciprocal => UnaryK::Reciprocal,
            _ => return None,
        })
    }
}

fn par_map(o: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    if o.len() >= PAR_MIN {
        o.par_chunks_mut(CHUNK).for_each(f);
    } else {
        f(o)
    }
}

multiversion! {
fn map_inplace(u: UnaryK, o: &mut [f32]) {
    // Plain loops, no closures: a closure is a function of its own, compiled without the
    // target features of the multiversioned copy, and LLVM may keep calling it per element.
    const R: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let k = (2.0f32 / std::f32::consts::PI).sqrt();
    // `map!(x => f(x))`: a plain loop over `o` with each element bound to `x`.
    macro_rules! map {
        ($x:ident => $e:expr) => {
            for v in o.iter_mut() {
                let $x = *v;
                *v = $e;
            }
        };
    }
    match u {
        UnaryK::Act(a) => bias_act(o, 0.0, a),
        UnaryK::Tanh => map!(x => tanh_f32(x)),
        UnaryK::Erf => map!(x => erf_f32(x)),
        UnaryK::Exp => map!(x => exp_f32(x)),
        UnaryK::Gelu => map!(x => 0.5 * x * (1.0 + erf_f32(x * R))),
        UnaryK::GeluTanh => map!(x => 0.5 * x * (1.0 + tanh_f32(k * (x + 0.044_715 * x * x * x)))),
        UnaryK::Neg => map!(x => -x),
        UnaryK::Abs => map!(x => x.abs()),
        UnaryK::Sqrt => map!(x => x.sqrt()),
        UnaryK::Reciprocal => map!(x => 1.0 / x),
    }
}
}

pub(crate) fn unary_inplace(u: UnaryK, o: &mut [f32]) {
    par_map(o, |c| map_inplace(u, c));
}

pub(crate) fn unary(u: UnaryK, x: &[f32], o: &mut [f32]) {
    o.copy_from_slice(x);
    unary_inplace(u, o);
}

multiversion! {
fn silu_chunk(o: &mut [f32]) {
    for v in o.iter_mut() {
        *v /= 1.0 + exp_f32(-*v);
    }
}
}

pub(crate) fn silu_inplace(o: &mut [f32]) {
    par_map(o, silu_chunk);
}

pub(crate) fn silu(x: &[f32], o: &mut [f32]) {
    o.copy_from_slice(x);
    silu_inplace(o);
}

/// Binary element-wise ops with native loops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BinK {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinK {
    pub(crate) fn of(b: crate::ir::Binary) -> Option<BinK> {
        use crate::ir::Binary as B;
        Some(match b {
            B::Add => BinK::Add,
            B::Sub => BinK::Sub,
            B::Mul => BinK::Mul,
            B::Div => BinK::Div,
            _ => return None,
        })
    }
}

const MAXR: usize = 6;

/// Coalesced broadcast layout of two inputs against an output.
#[derive(Clone, Debug)]
pub(crate) struct Bcast {
    nd: usize,
    dims: [usize; MAXR],
    sa: [usize; MAXR],
    sb: [usize; MAXR],
}

impl Bcast {
    /// `None` when the shapes do not broadcast or need more than six coalesced dims.
    pub(crate) fn new(out: &[usize], a: &[usize], b: &[usize]) -> Option<Bcast> {
        let r = out.len();
        if a.len() > r || b.len() > r {
            return None;
        }
        let strides = |s: &[usize]| -> Option<Vec<usize>> {
            let off = r - s.len();
            let mut st = vec![0usize; r];
            let mut acc = 1;
            for d in (0..s.len()).rev() {
                if s[d] == out[off + d] && s[d] != 1 {
                    st[off + d] = acc;
                } else if s[d] != 1 {
                    return None;
                }
                acc *= s[d];
            }
            Some(st)
        };
        let (ta, tb) = (strides(a)?, strides(b)?);
        let mut dims: Vec<usize> = Vec::new();
        let mut sa: Vec<usize> = Vec::new();
        let mut sb: Vec<usize> = Vec::new();
        for d in 0..r {
            if out[d] == 1 {
                continue;
            }
            if let (Some(ld), Some(la), Some(lb)) = (dims.last_mut(), sa.last_mut(), sb.last_mut())
                && *la == ta[d] * out[d]
                && *lb == tb[d] * out[d]
            {
                *ld *= out[d];
                *la = ta[d];
                *lb = tb[d];
                continue;
            }
            dims.push(out[d]);
            sa.push(ta[d]);
            sb.push(tb[d]);
        }
        if dims.is_empty() {
            dims.push(1);
            sa.push(0);
            sb.push(0);
        }
        if dims.len() > MAXR {
            return None;
        }
        let mut bc = Bcast { nd: dims.len(), dims: [1; MAXR], sa: [0; MAXR], sb: [0; MAXR] };
        bc.dims[..dims.len()].copy_from_slice(&dims);
        bc.sa[..dims.len()].copy_from_slice(&sa);
        bc.sb[..dims.len()].copy_from_slice(&sb);
        Some(bc)
    }
}

/// A binary operand: a slice, or the output buffer itself (in place).
pub(crate) enum Src<'a> {
    Slice(&'a [f32]),
    Out,
}

#[derive(Clone, Copy)]
enum Row<'a> {
    V(&'a [f32]),
    S(f32),
    Out,
}

#[inline(always)]
fn row_op<F: Fn(f32, f32) -> f32>(f: &F, o: &mut [f32], a: Row, b: Row) {
    let n = o.len();
    match (a, b) {
        (Row::V(a), Row::V(b)) => {
            o.iter_mut().zip(&a[..n]).zip(&b[..n]).for_each(|((o, a), b)| *o = f(*a, *b))
        }
        (Row::V(a), Row::S(b)) => o.iter_mut().zip(&a[..n]).for_each(|(o, a)| *o = f(*a, b)),
        (Row::S(a), Row::V(b)) => o.iter_mut().zip(&b[..n]).for_each(|(o, b)| *o = f(a, *b)),
        (Row::S(a), Row::S(b)) => o.fill(f(a, b)),
        (Row::Out, Row::V(b)) => o.iter_mut().zip(&b[..n]).for_each(|(o, b)| *o = f(*o, *b)),
        (Row::Out, Row::S(b)) => o.iter_mut().for_each(|o| *o = f(*o, b)),
        (Row::V(a), Row::Out) => o.iter_mut().zip(&a[..n]).for_each(|(o, a)| *o = f(*a, *o)),
        (Row::S(a), Row::Out) => o.iter_mut().for_each(|o| *o = f(a, *o)),
        (Row::Out, Row::Out) => o.iter_mut().for_each(|o| *o = f(*o, *o)),
    }
}

fn range_op<F: Fn(f32, f32) -> f32>(f: &F, bc: &Bcast, a: &Src, b: &Src, start: usize, o: &mut [f32]) {
    let nd = bc.nd;
    let inner = bc.dims[nd - 1];
    let (ia, ib) = (bc.sa[nd - 1], bc.sb[nd - 1]);
    let mut pos = start;
    let mut done = 0;
    while done < o.len() {
        let (r, c) = (pos / inner, pos % inner);
        let len = (inner - c).min(o.len() - done);
        // Offsets of row r in each input.
        let (mut oa, mut ob, mut rr) = (0usize, 0usize, r);
        for d in (0..nd - 1).rev() {
            let i = rr % bc.dims[d];
            rr /= bc.dims[d];
            oa += i * bc.sa[d];
            ob += i * bc.sb[d];
        }
        fn pick<'a>(s: &Src<'a>, off: usize, st: usize, c: usize, len: usize) -> Row<'a> {
            match s {
                Src::Out => Row::Out,
                Src::Slice(v) if st == 0 => Row::S(v[off]),
                Src::Slice(v) => Row::V(&v[off + c..off + c + len]),
            }
        }
        let (ra, rb) = (pick(a, oa, ia, c, len), pick(b, ob, ib, c, len));
        row_op(f, &mut o[done..done + len], ra, rb);
        done += len;
        pos += len;
    }
}

fn binary_with<F: Fn(f32, f32) -> f32 + Sync>(f: F, bc: &Bcast, a: Src, b: Src, o: &mut [f32]) {
    if o.len() >= PAR_MIN {
        o.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| range_op(&f, bc, &a, &b, i * CHUNK, c));
    } else {
        range_op(&f, bc, &a, &b, 0, o);
    }
}

// SAFETY-free: Src holds shared slices only.
unsafe impl Sync for Src<'_> {}

pub(crate) fn binary(op: BinK, bc: &Bcast, a: Src, b: Src, o: &mut [f32]) {
    match op {
        BinK::Add => binary_with(|x, y| x + y, bc, a, b, o),
        BinK::Sub => binary_with(|x, y| x - y, bc, a, b, o),
        BinK::Mul => binary_with(|x, y| x * y, bc, a, b, o),
        BinK::Div => binary_with(|x, y| x / y, bc, a, b, o),
    }
}

/// Sum with 16 independent lanes (vectorisable; the order differs from a serial sum).
#[inline(always)]
fn lane_sum(r: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut it = r.chunks_exact(16);
    for c in &mut it {
        acc.iter_mut().zip(c).for_each(|(a, v)| *a += v);
    }
    acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
}

multiversion! {
fn softmax_row(r: &mut [f32]) {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut it = r.chunks_exact(16);
    for c in &mut it {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = if v > *a { v } else { *a });
    }
    let m = acc.iter().chain(it.remainder()).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for v in r.iter_mut() {
        *v = exp_f32(*v - m);
    }
    let inv = 1.0 / lane_sum(r);
    r.iter_mut().for_each(|v| *v *= inv);
}
}

multiversion! {
fn layer_norm_row(r: &mut [f32], eps: f32, scale: &[f32], bias: Option<&[f32]>) {
    let n = r.len() as f32;
    let mean = lane_sum(r) / n;
    let mut acc = [0f32; 16];
    let mut it = r.chunks_exact(16);
    for c in &mut it {
        acc.iter_mut().zip(c).for_each(|(a, v)| *a += (v - mean) * (v - mean));
    }
    let var = (acc.iter().sum::<f32>() + it.remainder().iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()) / n;
    let inv = 1.0 / (var + eps).sqrt();
    match bias {
        Some(b) => r.iter_mut().zip(scale).zip(b).for_each(|((v, s), b)| *v = (*v - mean) * inv * s + b),
        None => r.iter_mut().zip(scale).for_each(|(v, s)| *v = (*v - mean) * inv * s),
    }
}
}

/// Softmax over each row of `n` values, in place.
pub(crate) fn softmax_rows(o: &mut [f32], n: usize) {
    if o.len() >= PAR_MIN {
        o.par_chunks_mut(n).for_each(softmax_row);
    } else {
        o.chunks_mut(n).for_each(softmax_row);
    }
}

/// Layer normalisation over each row of `n` values, in place.
pub(crate) fn layer_norm_rows(o: &mut [f32], n: usize, eps: f32, scale: &[f32], bias: Option<&[f32]>) {
    let f = |r: &mut [f32]| layer_norm_row(r, eps, scale, bias);
    if o.len() >= PAR_MIN {
        o.par_chunks_mut(n).for_each(f);
    } else {
        o.chunks_mut(n).for_each(f);
    }
}
