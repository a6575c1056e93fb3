//! Multiply-accumulate counts per op, from input and output facts.

use crate::ir::{Fact, Op};

fn dims(f: Option<&Fact>) -> Vec<u64> {
    f.map(|f| f.shape.iter().map(|d| d.known().unwrap_or(1) as u64).collect()).unwrap_or_default()
}

fn numel(f: Option<&Fact>) -> u64 {
    dims(f).iter().product()
}

impl Op {
    /// Multiply-accumulates of one application (unknown dims count as 1). Linear layers
    /// count one MAC per weight use; normalisation one per output element; element-wise,
    /// shape and pooling ops count none (they are memory-bound, and "MACs" in the
    /// literature means the linear layers). Training-only ops count none.
    pub fn macs(&self, inputs: &[Option<&Fact>], outputs: &[&Fact]) -> u64 {
        let input = |i: usize| inputs.get(i).copied().flatten();
        let out = numel(outputs.first().copied());
        match self {
            Op::Conv(_) => out * dims(input(1)).iter().skip(1).product::<u64>(),
            Op::ConvTranspose(_) => numel(input(0)) * dims(input(1)).iter().skip(1).product::<u64>(),
            Op::Gemm(m) => {
                let a = dims(input(0));
                let k = if m.trans_a { a.first() } else { a.last() }.copied().unwrap_or(1);
                out * k
            }
            Op::MatMul => out * dims(input(0)).last().copied().unwrap_or(1),
            Op::BatchNorm(_) | Op::LayerNorm(_) => out,
            Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Softmax { .. }
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Clip
            | Op::Where
            | Op::Cast(_)
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape(_)
            | Op::Expand
            | Op::Range
            | Op::Tile
            | Op::Identity
            | Op::Dropout { .. }
            | Op::Pad(_)
            | Op::Resize(_)
            | Op::Reduce(_)
            | Op::ArgReduce { .. }
            | Op::QuantizeLinear { .. }
            | Op::DequantizeLinear { .. }
            | Op::FakeQuant { .. }
            | Op::Train(_) => 0,
        }
    }
}
