//! QuantizeLinear and DequantizeLinear, per tensor or per axis.

use crate::ir::{Fact, Op, fmt_shape};
use crate::ops::nn::shape_str;
use crate::ops::{fact_at, norm_axis, tensor_at};
use crate::tensor::{DType, Data, Tensor, numel};
use anyhow::{Result, bail};

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    let scale = fact_at(inputs, 1)?;
    let zp = inputs.get(2).copied().flatten();
    if !scale.dtype.is_float() {
        bail!("scale {scale} must be a float tensor");
    }
    let axis = match op {
        Op::QuantizeLinear { axis, .. } | Op::DequantizeLinear { axis } | Op::FakeQuant { axis, .. } => *axis,
        _ => bail!("{} is not a quantization op", op.onnx_name()),
    };
    if scale.rank() > 1 {
        bail!("scale {scale} must be a scalar or 1-D (blocked quantization is not supported)");
    }
    if scale.rank() == 1 && scale.shape[0].known() != Some(1) {
        let ax = norm_axis(axis, x.rank())?;
        if let (Some(c), Some(s)) = (x.shape[ax].known(), scale.shape[0].known())
            && c != s
        {
            bail!(
                "per-axis scale {scale} must have {c} elements (axis {axis} of input {})",
                fmt_shape(&x.shape)
            );
        }
    }
    if let Some(z) = zp
        && z.shape != scale.shape
        && z.numel() != scale.numel()
    {
        bail!("zero point {z} must have the shape of scale {scale}");
    }
    let dtype = match op {
        Op::FakeQuant { to, .. } => {
            if !x.dtype.is_float() {
                bail!("FakeQuant input {x} must be a float tensor");
            }
            let q = zp.map_or(*to, |z| z.dtype);
            if !matches!(q, DType::I8 | DType::U8 | DType::I16 | DType::U16) {
                bail!("FakeQuant to {q} is not supported (int8, uint8, int16, uint16)");
            }
            x.dtype
        }
        Op::QuantizeLinear { to, .. } => {
            if !x.dtype.is_float() {
                bail!("QuantizeLinear input {x} must be a float tensor");
            }
            let out = zp.map_or(*to, |z| z.dtype);
            if !matches!(out, DType::I8 | DType::U8 | DType::I16 | DType::U16) {
                bail!("QuantizeLinear to {out} is not supported (int8, uint8, int16, uint16)");
            }
            out
        }
        _ => {
            if !matches!(x.dtype, DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32) {
                bail!("DequantizeLinear input {x} must be int8, uint8, int16, uint16 or int32");
            }
            if let Some(z) = zp
                && z.dtype != x.dtype
            {
                bail!("zero point {z} must have the input's type {}", x.dtype);
            }
            scale.dtype
        }
    };
    Ok(vec![Fact::new(dtype, x.shape.clone())])
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let x = tensor_at(&inputs, 0)?;
    let scale = tensor_at(&inputs, 1)?;
    let zp = inputs.get(2).and_then(|t| t.as_ref());
    match op {
        Op::QuantizeLinear { axis, to } => quantize(x, scale, zp, *axis, *to),
        Op::DequantizeLinear { axis } => dequantize(x, scale, zp, *axis),
        Op::FakeQuant { axis, to } => {
            let q = quantize(x, scale, zp, *axis, *to)?;
            dequantize(&q[0], scale, zp, *axis)
        }
        _ => bail!("{} is not a quantization op", op.onnx_name()),
    }
}

/// (channels, inner) of the per-axis layout, or (1, len) for a per-tensor scale.
fn layout(x: &Tensor, scale: &Tensor, axis: i64) -> Result<(usize, usize)> {
    let n = scale.len();
    if scale.rank() > 1 {
        bail!(
            "scale {} must be a scalar or 1-D (blocked quantization is not supported)",
            shape_str(scale.shape())
        );
    }
    if n == 1 {
        return Ok((1, x.len()));
    }
    let ax = norm_axis(axis, x.rank())?;
    if x.shape()[ax] != n {
        bail!(
            "per-axis scale has {n} elements, axis {axis} of input {} has {}",
            shape_str(x.shape()),
            x.shape()[ax]
        );
    }
    Ok((n, numel(&x.shape()[ax + 1..])))
}

/// Zero points as i64 (zeros when absent), checked against the scale's length.
fn zero_points(zp: Option<&Tensor>, n: usize) -> Result<Vec<i64>> {
    let Some(z) = zp else { return Ok(vec![0; n]) };
    let v = z
        .to_i64_vec()
        .ok_or_else(|| anyhow::anyhow!("zero point must be an integer tensor, got {}", z.dtype()))?;
    if v.len() != n {
        bail!("zero point has {} elements, scale has {n}", v.len());
    }
    Ok(v)
}

/// `saturate(round_half_even(x / scale) + zero_point)`.
fn quantize(x: &Tensor, scale: &Tensor, zp: Option<&Tensor>, axis: i64, to: DType) -> Result<Vec<Tensor>> {
    let (c, inner) = layout(x, scale, axis)?;
    let xf = crate::ops::nn::f32_data(x)?;
    let sf = crate::ops::nn::f32_data(scale)?;
    let z = zero_points(zp, c)?;
    let out = zp.map_or(to, |t| t.dtype());
    fn run<T: Copy + Default>(
        x: &[f32],
        s: &[f32],
        z: &[i64],
        inner: usize,
        (lo, hi): (f32, f32),
        cast: impl Fn(f32) -> T,
    ) -> Vec<T> {
        let mut out = vec![T::default(); x.len()];
        if inner == 0 {
            return out;
        }
        let c = s.len();
        for (bi, (o, xs)) in out.chunks_mut(inner).zip(x.chunks(inner)).enumerate() {
            let (sc, zc) = (s[bi % c], z[bi % c] as f32);
            for (o, &v) in o.iter_mut().zip(xs) {
                *o = cast(((v / sc).round_ties_even() + zc).clamp(lo, hi));
            }
        }
        out
    }
    let range = qrange(out).map_err(|_| {
        anyhow::anyhow!("QuantizeLinear to {out} is not supported (int8, uint8, int16, uint16)")
    })?;
    let data = match out {
        DType::I8 => Data::I8(run(&xf, &sf, &z, inner, range, |v| v as i8)),
        DType::U8 => Data::U8(run(&xf, &sf, &z, inner, range, |v| v as u8)),
        DType::I16 => Data::I16(run(&xf, &sf, &z, inner, range, |v| v as i16)),
        DType::U16 => Data::U16(run(&xf, &sf, &z, inner, range, |v| v as u16)),
        _ => unreachable!("qrange accepts only the four types above"),
    };
    Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
}

/// `(x - zero_point) * scale`, in the scale's float type.
fn dequantize(x: &Tensor, scale: &Tensor, zp: Option<&Tensor>, axis: i64) -> Result<Vec<Tensor>> {
    let (c, inner) = layout(x, scale, axis)?;
    if !matches!(x.dtype(), DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32) {
        bail!("DequantizeLinear input must be int8, uint8, int16, uint16 or int32, got {}", x.dtype());
    }
    let sf = crate::ops::nn::f32_data(scale)?;
    let z = zero_points(zp, c)?;
    let mut out = vec![0f32; x.len()];
    fn run<T: Copy>(x: &[T], out: &mut [f32], s: &[f32], z: &[i64], inner: usize, f: impl Fn(T) -> i64) {
        if inner == 0 {
            return;
        }
        let c = s.len();
        for (bi, (o, xs)) in out.chunks_mut(inner).zip(x.chunks(inner)).enumerate() {
            let (sc, zc) = (s[bi % c], z[bi % c]);
            for (o, &v) in o.iter_mut().zip(xs) {
                *o = (f(v) - zc) as f32 * sc;
            }
        }
    }
    match x.data() {
        Data::I8(v) => run(v, &mut out, &sf, &z, inner, |a| a as i64),
        Data::U8(v) => run(v, &mut out, &sf, &z, inner, |a| a as i64),
        Data::I16(v) => run(v, &mut out, &sf, &z, inner, |a| a as i64),
        Data::U16(v) => run(v, &mut out, &sf, &z, inner, |a| a as i64),
        Data::I32(v) => run(v, &mut out, &sf, &z, inner, |a| a as i64),
        _ => unreachable!("dtype checked above"),
    }
    let t = Tensor::from_vec(x.shape().to_vec(), out);
    Ok(vec![if scale.dtype() == DType::F32 { t } else { t.cast(scale.dtype()) }])
}

/// The integer range of a quantized type.
fn qrange(to: DType) -> Result<(f32, f32)> {
    Ok(match to {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U16 => (0.0, 65535.0),
        other => bail!("quantization to {other} is not supported (int8, uint8, int16, uint16)"),
    })
}

/// Straight-through gradient of quantization (inputs x, scale, zero point, dY): dY where
/// `round(x / scale) + zero_point` lies inside the integer range, 0 where it saturates;
/// divided by the scale when `rescale` (QuantizeLinear, whose output is in integer units).
#[allow(clippy::too_many_arguments)]
pub fn quant_grad(
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    dy: &Tensor,
    axis: i64,
    to: DType,
    rescale: bool,
) -> Result<Tensor> {
    if x.shape() != dy.shape() {
        bail!("gradient {} does not match input {}", shape_str(dy.shape()), shape_str(x.shape()));
    }
    let (c, inner) = layout(x, scale, axis)?;
    let (lo, hi) = qrange(zp.map_or(to, |t| t.dtype()))?;
    let xf = crate::ops::nn::f32_data(x)?;
    let sf = crate::ops::nn::f32_data(scale)?;
    let df = crate::ops::nn::f32_data(dy)?;
    let z = zero_points(zp, c)?;
    let mut out = vec![0f32; x.len()];
    if inner > 0 {
        for (bi, ((o, xs), ds)) in
            out.chunks_mut(inner).zip(xf.chunks(inner)).zip(df.chunks(inner)).enumerate()
        {
            let (sc, zc) = (sf[bi % c], z[bi % c] as f32);
            let k = if rescale { 1.0 / sc } else { 1.0 };
            for ((o, &v), &d) in o.iter_mut().zip(xs).zip(ds) {
                let q = (v / sc).round_ties_even() + zc;
                *o = if (lo..=hi).contains(&q) { d * k } else { 0.0 };
            }
        }
    }
    Ok(Tensor::from_vec(x.shape().to_vec(), out))
}

/// Gradient of DequantizeLinear with respect to its integer input, as float32 (inputs
/// scale, dY): `dY * scale` per tensor or along `axis`.
pub fn dequant_grad(scale: &Tensor, dy: &Tensor, axis: i64) -> Result<Tensor> {
    let (c, inner) = layout(dy, scale, axis)?;
    let sf = crate::ops::nn::f32_data(scale)?;
    let df = crate::ops::nn::f32_data(dy)?;
    let mut out = df.to_vec();
    if inner > 0 {
        for (bi, o) in out.chunks_mut(inner).enumerate() {
            let sc = sf[bi % c];
            o.iter_mut().for_each(|v| *v *= sc);
        }
    }
    Ok(Tensor::from_vec(dy.shape().to_vec(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: Vec<f32>, scale: Tensor, zp: Option<Tensor>, axis: i64, to: DType) -> Tensor {
        let shape = vec![x.len()];
        let op = Op::QuantizeLinear { axis, to };
        let x = Tensor::from_vec(shape, x);
        let facts: Vec<Option<Fact>> =
            [Some(&x), Some(&scale), zp.as_ref()].iter().map(|t| t.map(|t| Fact::konst(t.clone()))).collect();
        let f: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
        let inferred = op.infer(&f).unwrap();
        let out = op.eval(&[Some(&x), Some(&scale), zp.as_ref()]).unwrap().remove(0);
        assert_eq!(inferred[0].dtype, out.dtype());
        out
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let x = vec![0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 300.0, -300.0];
        let y = q(x.clone(), Tensor::scalar(1.0f32), None, 1, DType::I8);
        assert_eq!(y.as_slice::<i8>().unwrap(), &[0, 2, 2, 0, -2, -2, 0, 127, -128]);
        let y = q(x.clone(), Tensor::scalar(1.0f32), Some(Tensor::scalar(128u8)), 1, DType::I8);
        assert_eq!(y.as_slice::<u8>().unwrap(), &[128, 130, 130, 128, 126, 126, 128, 255, 0]);
        // x / scale = 2.5 exactly -> 2; 3.5 -> 4; saturation happens after adding the zero point.
        let y = q(vec![5.0, 7.0, 250.0], Tensor::scalar(2.0f32), Some(Tensor::scalar(10i8)), 1, DType::U8);
        assert_eq!(y.as_slice::<i8>().unwrap(), &[12, 14, 127]);
        let y = q(vec![-1.0, 70000.0], Tensor::scalar(1.0f32), Some(Tensor::scalar(0u16)), 1, DType::U8);
        assert_eq!(y.as_slice::<u16>().unwrap(), &[0, 65535]);
    }

    #[test]
    fn per_axis_quantize_and_dequantize() {
        // x [2, 3] with per-channel (axis 1) scales.
        let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, -1.0, -2.0, -3.0]);
        let scale = Tensor::from_vec(vec![3], vec![0.5f32, 1.0, 2.0]);
        let zp = Tensor::from_vec(vec![3], vec![0i8, 1, -1]);
        let y =
            Op::QuantizeLinear { axis: 1, to: DType::U8 }.eval(&[Some(&x), Some(&scale), Some(&zp)]).unwrap();
        assert_eq!(y[0].as_slice::<i8>().unwrap(), &[2, 3, 1, -2, -1, -3]);
        let back = Op::DequantizeLinear { axis: -1 }.eval(&[Some(&y[0]), Some(&scale), Some(&zp)]).unwrap();
        assert_eq!(back[0].f32s().unwrap(), &[1.0, 2.0, 4.0, -1.0, -2.0, -4.0]);
        let xi = Tensor::from_vec(vec![2, 2], vec![100i32, -7, 3, 0]);
        let s = Tensor::from_vec(vec![2], vec![0.5f32, 0.25]);
        let d = Op::DequantizeLinear { axis: 0 }.eval(&[Some(&xi), Some(&s), None]).unwrap();
        assert_eq!(d[0].f32s().unwrap(), &[50.0, -3.5, 0.75, 0.0]);
        let bad = Tensor::from_vec(vec![4], vec![1.0f32; 4]);
        let err =
            Op::QuantizeLinear { axis: 1, to: DType::U8 }.eval(&[Some(&x), Some(&bad), None]).unwrap_err();
        assert!(err.to_string().contains("4 elements"), "{err}");
        let u = Tensor::from_vec(vec![3], vec![0u8, 128, 255]);
        let d = Op::DequantizeLinear { axis: 1 }.eval(&[
            Some(&u),
            Some(&Tensor::scalar(0.5f32)),
            Some(&Tensor::scalar(128u8)),
        ]);
        assert_eq!(d.unwrap()[0].f32s().unwrap(), &[-64.0, 0.0, 63.5]);
    }

    /// Cases from the ONNX node suite (opset 28 files, which the importer does not read).
    #[test]
    fn node_suite_quant_cases() {
        let x = Tensor::from_vec(vec![6], vec![0.0f32, 2.0, 3.0, 1000.0, -254.0, -1000.0]);
        let y = Op::QuantizeLinear { axis: 1, to: DType::U8 }
            .eval(&[Some(&x), Some(&Tensor::scalar(2.0f32)), Some(&Tensor::scalar(128u8))])
            .unwrap();
        assert_eq!(y[0].as_slice::<u8>().unwrap(), &[128, 129, 130, 255, 1, 0]);
        let xa: Vec<f32> = vec![
            -162.0, 10.0, -100.0, 232.0, -20.0, -50.0, -76.0, 0.0, 0.0, 252.0, 32.0, -44.0, 245.0, -485.0,
            -960.0, -270.0, -375.0, -470.0,
        ];
        let qa: Vec<u8> = vec![3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245, 99, 4, 142, 121, 102];
        let x = Tensor::from_vec(vec![1, 3, 3, 2], xa.clone());
        let s = Tensor::from_vec(vec![3], vec![2.0f32, 4.0, 5.0]);
        let z = Tensor::from_vec(vec![3], vec![84u8, 24, 196]);
        let y = Op::QuantizeLinear { axis: 1, to: DType::U8 }.eval(&[Some(&x), Some(&s), Some(&z)]).unwrap();
        assert_eq!(y[0].as_slice::<u8>().unwrap(), &qa[..]);
        let d = Op::DequantizeLinear { axis: 1 }.eval(&[Some(&y[0]), Some(&s), Some(&z)]).unwrap();
        assert_eq!(d[0].f32s().unwrap(), &xa[..]);
        let x = Tensor::from_vec(
            vec![16],
            vec![
                0.0f32, -514.0, 3.0, -3.0, 2.9, -2.9, 3.1, -3.1, 65022.0, -66046.0, 65023.0, -66047.0,
                65024.0, -66048.0, 70000.0, -70000.0,
            ],
        );
        let y = Op::QuantizeLinear { axis: 1, to: DType::U8 }
            .eval(&[Some(&x), Some(&Tensor::scalar(2.0f32)), Some(&Tensor::scalar(256i16))])
            .unwrap();
        let want: [i16; 16] = [
            256, -1, 258, 254, 257, 255, 258, 254, 32767, -32767, 32767, -32768, 32767, -32768, 32767, -32768,
        ];
        assert_eq!(y[0].as_slice::<i16>().unwrap(), &want);
        let x = Tensor::from_vec(vec![4], vec![30000u16, 31000, 32768, 33000]);
        let d = Op::DequantizeLinear { axis: 1 }
            .eval(&[Some(&x), Some(&Tensor::scalar(2.0f32)), Some(&Tensor::scalar(32767u16))])
            .unwrap();
        assert_eq!(d[0].f32s().unwrap(), &[-5534.0, -3534.0, 2.0, 466.0]);
    }
}
