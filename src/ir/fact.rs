//! What is known about a value before running: dtype, (partly symbolic) shape, maybe its constant.

use crate::tensor::{DType, Tensor};
use std::fmt;
use std::sync::Arc;

/// One dimension of a shape: known, named (e.g. a batch symbol), or unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(usize),
    /// A named symbolic size, equal wherever the same name appears.
    Sym(Arc<str>),
    /// A size known only at run time.
    Unknown,
}

impl Dim {
    /// The size if known.
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => write!(f, "{s}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// A shape whose rank is known (unknown-rank values are not supported).
pub type Shape = Vec<Dim>;

/// Formats a shape as `[1,3,N,?]`.
pub fn fmt_shape(s: &[Dim]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Turns a concrete shape into a fact shape.
pub fn known_shape(s: &[usize]) -> Shape {
    s.iter().map(|&n| Dim::Known(n)).collect()
}

/// What is known about a value: its dtype, its shape and, for constants, its content.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    /// Element type.
    pub dtype: DType,
    /// Shape, with symbolic or unknown dims allowed.
    pub shape: Shape,
    /// The value itself, when it is a constant.
    pub konst: Option<Tensor>,
}

impl Fact {
    /// A fact about a non-constant value.
    pub fn new(dtype: DType, shape: Shape) -> Fact {
        Fact { dtype, shape, konst: None }
    }
    /// A fact about a constant.
    pub fn konst(t: Tensor) -> Fact {
        Fact { dtype: t.dtype(), shape: known_shape(t.shape()), konst: Some(t) }
    }
    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The concrete shape, if every dim is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(|d| d.known()).collect()
    }
    /// Number of elements, if known.
    pub fn numel(&self) -> Option<usize> {
        self.concrete_shape().map(|s| s.iter().product())
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, fmt_shape(&self.shape))
    }
}

/// Broadcasts two dims (numpy rules); `None` when they are incompatible.
pub fn broadcast_dim(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(1), x) | (x, Dim::Known(1)) => Some(x.clone()),
        (Dim::Known(x), Dim::Known(y)) => (x == y).then_some(Dim::Known(*x)),
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Some(Dim::Known(*x)),
        (Dim::Sym(x), Dim::Sym(y)) if x == y => Some(a.clone()),
        _ => Some(Dim::Unknown),
    }
}

/// Broadcasts several shapes (numpy rules); `None` when incompatible.
pub fn broadcast_shapes(shapes: &[&[Dim]]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, d) in s.iter().enumerate() {
            out[off + i] = broadcast_dim(&out[off + i], d)?;
        }
    }
    Some(out)
}

/// Broadcasts concrete shapes; `None` when incompatible.
pub fn broadcast_concrete(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        let n: Dim = Dim::Sym("N".into());
        let a = vec![n.clone(), Dim::Known(3), Dim::Known(1)];
        let b = vec![Dim::Known(4)];
        assert_eq!(broadcast_shapes(&[&a, &b]).unwrap(), vec![n, Dim::Known(3), Dim::Known(4)]);
        assert!(broadcast_shapes(&[&[Dim::Known(2)], &[Dim::Known(3)]]).is_none());
        assert_eq!(broadcast_concrete(&[&[2, 1], &[3]]).unwrap(), vec![2, 3]);
        assert!(broadcast_concrete(&[&[2], &[3]]).is_none());
    }
}
