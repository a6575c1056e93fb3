//! CPU kernels for pare: GEMM, convolution, transposed convolution, pooling
//! and fused activations.
//!
//! The crate knows nothing about graphs: every kernel works on plain slices
//! in row-major NC(D)HW layout and plain parameter structs.  Each fast kernel
//! has a plain reference implementation (see [`mod@reference`] and the `*_ref`
//! re-exports) used by the tests.
//!
//! Kernels parallelise with rayon on the *current* pool
//! ([`rayon::current_num_threads`]); tiny problems run single-threaded.

#![warn(missing_docs)]

mod act;
mod conv;
mod conv_backward;
mod conv_transpose;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx512;
mod gemm;
mod im2col;
mod isa;
mod nhwc;
mod pgemm;
mod pool;
mod pool_backward;
pub mod reference;
mod winograd;

pub use act::{Act, bias_act};
pub use conv::{ConvGeom, PackedConv, conv, conv_legacy, conv_packed, conv_packed_fused};
pub use conv_backward::{conv_grad_bias, conv_grad_input, conv_grad_weight};
pub use conv_transpose::{ConvTransposeGeom, conv_transpose};
pub use gemm::{sgemm, sgemm_batched};
pub use isa::{Isa, detected_isa, force_isa, isa};
pub use nhwc::{
    ConvNhwc, DepthwiseNhwc, conv_nhwc, depthwise_nhwc, global_avg_pool_nhwc, nchw_to_nhwc, nhwc_to_nchw,
    pointwise,
};
pub use pgemm::{PackedA, PackedB, gemm_packed_a, gemm_packed_a_ptr, gemm_packed_b};
pub use pool::{PoolGeom, avg_pool, global_avg_pool, max_pool};
pub use pool_backward::{avg_pool_grad, max_pool_grad};
pub use reference::{
    avg_pool_grad_ref, avg_pool_ref, conv_grad_input_ref, conv_grad_weight_ref, conv_ref, conv_transpose_ref,
    global_avg_pool_ref, max_pool_grad_ref, max_pool_ref, sgemm_ref,
};
pub use winograd::{WinoTile, WinogradConv};

/// Raw pointer that may be shared between rayon tasks writing disjoint parts.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
// SAFETY: users only write disjoint regions from different tasks.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Returns the wrapped pointer (method access keeps closures capturing
    /// the whole `Send` wrapper rather than the raw field).
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    isa::isa() >= Isa::Avx512
}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    isa::isa() >= Isa::Avx2
}

/// Work (multiply-accumulates) below which kernels stay single-threaded.
pub(crate) const PAR_MIN_MACS: u64 = 1 << 18;

/// Number of threads worth using for `work` multiply-accumulates.
#[inline]
pub(crate) fn threads_for(work: u64) -> usize {
    if work < PAR_MIN_MACS { 1 } else { rayon::current_num_threads().max(1) }
}

std::thread_local! {
    /// Free scratch buffers of this thread, one per nesting level in use.
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local scratch buffer of at least `len` floats
/// (contents unspecified). Nested calls get buffers of their own; every
/// buffer goes back to the thread's free list afterwards, so once each
/// nesting level has grown to its largest size no call allocates.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// Pads a spatial shape/param list of rank 1..=3 to rank 3 by prepending `fill`.
pub(crate) fn to3(v: &[usize], fill: usize) -> [usize; 3] {
    assert!((1..=3).contains(&v.len()), "spatial rank must be 1, 2 or 3, got {}", v.len());
    let mut r = [fill; 3];
    r[3 - v.len()..].copy_from_slice(v);
    r
}
