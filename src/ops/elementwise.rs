//! Element-wise ops: Unary, Binary (numpy broadcasting), Variadic (Sum/Mean/Max/Min), Clip, Where
//! and Cast. f32 is the hot path (see `bcast` for the loop structure); f16 inputs are widened to
//! f32, computed, and narrowed back.

mod bcast;
mod binary;
pub mod math;
#[cfg(test)]
mod tests;
mod unary;

use crate::ir::{
    Binary, Dim, Fact, Op, Shape, Variadic, broadcast_concrete, broadcast_shapes, fmt_shape, known_shape,
};
use crate::ops::{fact_at, tensor_at};
use crate::tensor::{DType, Elem, Tensor};
use anyhow::{Result, anyhow, bail};
use bcast::{slice_of, unary_same, zip3};

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let fact = match op {
        Op::Unary(u) => {
            let x = fact_at(inputs, 0)?;
            Fact::new(unary::out_dtype(*u, x.dtype)?, x.shape.clone())
        }
        Op::Binary(b) => {
            let (x, y) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?);
            Fact::new(binary::out_dtype(*b, x.dtype, y.dtype)?, broadcast_facts(&[x, y])?)
        }
        Op::Variadic(v) => {
            let xs: Vec<&Fact> = inputs.iter().flatten().copied().collect();
            Fact::new(
                variadic_dtype(*v, &xs.iter().map(|f| f.dtype).collect::<Vec<_>>())?,
                broadcast_facts(&xs)?,
            )
        }
        Op::Clip => {
            let x = fact_at(inputs, 0)?;
            let bounds: Vec<DType> = inputs.iter().skip(1).flatten().map(|f| f.dtype).collect();
            clip_check(x.dtype, &bounds)?;
            Fact::new(x.dtype, x.shape.clone())
        }
        Op::Where => {
            let (c, x, y) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?, fact_at(inputs, 2)?);
            Fact::new(where_dtype(c.dtype, x.dtype, y.dtype)?, broadcast_facts(&[c, x, y])?)
        }
        Op::Cast(to) => Fact::new(*to, fact_at(inputs, 0)?.shape.clone()),
        _ => bail!("{} is not an element-wise op", op.onnx_name()),
    };
    Ok(vec![fact])
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let out = match op {
        Op::Cast(to) => tensor_at(&inputs, 0)?.cast(*to),
        Op::Where => eval_where(&inputs)?,
        _ => {
            let want = out_dtype(op, &inputs)?;
            // f16 is computed in f32 (exact for add/mul/compare; one rounding at the end otherwise).
            let inputs: Vec<Option<Tensor>> = inputs
                .into_iter()
                .map(|t| t.map(|t| if t.dtype() == DType::F16 { t.cast(DType::F32) } else { t }))
                .collect();
            let out = eval_math(op, inputs)?;
            if out.dtype() != want { out.cast(want) } else { out }
        }
    };
    Ok(vec![out])
}

fn out_dtype(op: &Op, inputs: &[Option<Tensor>]) -> Result<DType> {
    let dt = |i: usize| tensor_at(inputs, i).map(|t| t.dtype());
    match op {
        Op::Unary(u) => unary::out_dtype(*u, dt(0)?),
        Op::Binary(b) => binary::out_dtype(*b, dt(0)?, dt(1)?),
        Op::Variadic(v) => {
            variadic_dtype(*v, &inputs.iter().flatten().map(|t| t.dtype()).collect::<Vec<_>>())
        }
        Op::Clip => {
            let bounds: Vec<DType> = inputs.iter().skip(1).flatten().map(|t| t.dtype()).collect();
            clip_check(dt(0)?, &bounds)?;
            dt(0)
        }
        _ => bail!("{} is not an element-wise op", op.onnx_name()),
    }
}

fn eval_math(op: &Op, mut inputs: Vec<Option<Tensor>>) -> Result<Tensor> {
    let mut take = |i: usize| {
        inputs.get_mut(i).and_then(Option::take).ok_or_else(|| anyhow!("required input {i} is missing"))
    };
    match op {
        Op::Unary(u) => unary::eval(*u, take(0)?),
        Op::Binary(b) => {
            let (x, y) = (take(0)?, take(1)?);
            let osh = broadcast_tensors(&[&x, &y])?;
            binary::eval(*b, x, y, &osh)
        }
        Op::Variadic(v) => eval_variadic(*v, inputs.into_iter().flatten().collect()),
        Op::Clip => {
            let x = take(0)?;
            let (lo, hi) =
                (inputs.get_mut(1).and_then(Option::take), inputs.get_mut(2).and_then(Option::take));
            eval_clip(x, lo.as_ref(), hi.as_ref())
        }
        _ => bail!("{} is not an element-wise op", op.onnx_name()),
    }
}

/// Broadcasts fact shapes, or errors with every shape (`cannot broadcast [2,3] with [4]`).
fn broadcast_facts(fs: &[&Fact]) -> Result<Shape> {
    let shapes: Vec<&[Dim]> = fs.iter().map(|f| f.shape.as_slice()).collect();
    broadcast_shapes(&shapes).ok_or_else(|| {
        let s: Vec<String> = shapes.iter().map(|s| fmt_shape(s)).collect();
        anyhow!("cannot broadcast {}", s.join(" with "))
    })
}

/// Broadcasts concrete tensor shapes with the same error text as `broadcast_facts`.
fn broadcast_tensors(ts: &[&Tensor]) -> Result<Vec<usize>> {
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    broadcast_concrete(&shapes).ok_or_else(|| {
        let s: Vec<String> = shapes.iter().map(|s| fmt_shape(&known_shape(s))).collect();
        anyhow!("cannot broadcast {}", s.join(" with "))
    })
}

fn variadic_dtype(v: Variadic, dts: &[DType]) -> Result<DType> {
    let name = Op::Variadic(v).onnx_name();
    let Some(&first) = dts.first() else { bail!("{name} needs at least one input") };
    if let Some(other) = dts.iter().find(|&&d| d != first) {
        bail!("{name} needs inputs of one dtype, got {first} and {other}");
    }
    if first == DType::Bool || (v == Variadic::Mean && !first.is_float()) {
        bail!("{name} does not support {first}");
    }
    Ok(first)
}

fn eval_variadic(v: Variadic, xs: Vec<Tensor>) -> Result<Tensor> {
    let n = xs.len();
    let mut it = xs.into_iter();
    let mut acc =
        it.next().ok_or_else(|| anyhow!("{} needs at least one input", Op::Variadic(v).onnx_name()))?;
    for x in it {
        let osh = broadcast_tensors(&[&acc, &x])?;
        acc = match v {
            Variadic::Sum | Variadic::Mean => binary::eval(Binary::Add, acc, x, &osh)?,
            Variadic::Max => binary::max_min(true, acc, x, &osh)?,
            Variadic::Min => binary::max_min(false, acc, x, &osh)?,
        };
    }
    if v == Variadic::Mean && n > 1 {
        let d = Tensor::scalar(n as f32).cast(acc.dtype());
        let osh = acc.shape().to_vec();
        acc = binary::eval(Binary::Div, acc, d, &osh)?;
    }
    Ok(acc)
}

fn clip_check(x: DType, bounds: &[DType]) -> Result<()> {
    if x == DType::Bool {
        bail!("Clip does not support bool");
    }
    if let Some(b) = bounds.iter().find(|&&b| b != x) {
        bail!("Clip bounds must have the input's dtype {x}, got {b}");
    }
    Ok(())
}

fn eval_clip(x: Tensor, lo: Option<&Tensor>, hi: Option<&Tensor>) -> Result<Tensor> {
    fn scalar<T: Elem>(t: Option<&Tensor>, what: &str) -> Result<Option<T>> {
        let Some(t) = t else { return Ok(None) };
        match slice_of::<T>(t)? {
            [v] => Ok(Some(*v)),
            s => bail!("Clip {what} must hold one value, got shape {:?} ({} values)", t.shape(), s.len()),
        }
    }
    fn clip<T: Elem + Default + PartialOrd>(
        x: Tensor,
        lo: Option<&Tensor>,
        hi: Option<&Tensor>,
    ) -> Result<Tensor> {
        match (scalar::<T>(lo, "min")?, scalar::<T>(hi, "max")?) {
            (Some(l), Some(h)) => unary_same::<T>(x, move |v| {
                let v = if v < l { l } else { v };
                if v > h { h } else { v }
            }),
            (Some(l), None) => unary_same::<T>(x, move |v| if v < l { l } else { v }),
            (None, Some(h)) => unary_same::<T>(x, move |v| if v > h { h } else { v }),
            (None, None) => Ok(x),
        }
    }
    match x.dtype() {
        DType::F32 => clip::<f32>(x, lo, hi),
        DType::F64 => clip::<f64>(x, lo, hi),
        DType::I8 => clip::<i8>(x, lo, hi),
        DType::U8 => clip::<u8>(x, lo, hi),
        DType::I16 => clip::<i16>(x, lo, hi),
        DType::U16 => clip::<u16>(x, lo, hi),
        DType::I32 => clip::<i32>(x, lo, hi),
        DType::U32 => clip::<u32>(x, lo, hi),
        DType::I64 => clip::<i64>(x, lo, hi),
        DType::U64 => clip::<u64>(x, lo, hi),
        dt => bail!("Clip does not support {dt}"),
    }
}

fn where_dtype(c: DType, x: DType, y: DType) -> Result<DType> {
    if c != DType::Bool {
        bail!("Where needs a bool condition, got {c}");
    }
    if x != y {
        bail!("Where needs X and Y of one dtype, got {x} and {y}");
    }
    Ok(x)
}

fn eval_where(inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let (c, x, y) = (tensor_at(inputs, 0)?, tensor_at(inputs, 1)?, tensor_at(inputs, 2)?);
    where_dtype(c.dtype(), x.dtype(), y.dtype())?;
    let osh = broadcast_tensors(&[c, x, y])?;
    fn sel<T: Elem + Default>(c: &Tensor, x: &Tensor, y: &Tensor, osh: &[usize]) -> Result<Tensor> {
        let (cs, xs, ys) = (slice_of::<bool>(c)?, slice_of::<T>(x)?, slice_of::<T>(y)?);
        let out =
            zip3((cs, c.shape()), (xs, x.shape()), (ys, y.shape()), osh, |c, a, b| if c { a } else { b });
        Ok(Tensor::from_vec(osh.to_vec(), out))
    }
    match x.dtype() {
        DType::F32 => sel::<f32>(c, x, y, &osh),
        DType::F64 => sel::<f64>(c, x, y, &osh),
        DType::F16 => sel::<half::f16>(c, x, y, &osh),
        DType::I8 => sel::<i8>(c, x, y, &osh),
        DType::U8 => sel::<u8>(c, x, y, &osh),
        DType::I16 => sel::<i16>(c, x, y, &osh),
        DType::U16 => sel::<u16>(c, x, y, &osh),
        DType::I32 => sel::<i32>(c, x, y, &osh),
        DType::U32 => sel::<u32>(c, x, y, &osh),
        DType::I64 => sel::<i64>(c, x, y, &osh),
        DType::U64 => sel::<u64>(c, x, y, &osh),
        DType::Bool => sel::<bool>(c, x, y, &osh),
    }
}
