//! Conv and ConvTranspose: shape inference and evaluation through `pare-kernels`.

use super::geom::{Window, conv_transpose_axis, pads_attr, per_axis};
use super::{check_float, f32_data, f32_tensor, kernel_act, shape_str};
use crate::ir::{AutoPad, Conv, ConvTranspose, Dim, Fact, fmt_shape};
use crate::ops::{fact_at, tensor_at};
use crate::tensor::Tensor;
use anyhow::{Result, bail};
use pare_kernels::{ConvGeom, ConvTransposeGeom};

fn check_rank(x: &[Dim], w: &[Dim]) -> Result<()> {
    if !(3..=5).contains(&x.len()) {
        bail!("input {} must have rank 3 to 5 (N, C and 1 to 3 spatial axes)", fmt_shape(x));
    }
    if w.len() != x.len() {
        bail!("weight {} must have the same rank as input {}", fmt_shape(w), fmt_shape(x));
    }
    Ok(())
}

fn check_group(group: usize) -> Result<usize> {
    if group == 0 {
        bail!("group must be at least 1");
    }
    Ok(group)
}

/// Kernel from the attribute or the weight's spatial dims (`None` when neither is known).
fn kernel_of(attr: &[usize], w: &[Dim]) -> Result<Option<Vec<usize>>> {
    let from_w: Option<Vec<usize>> = w[2..].iter().map(|d| d.known()).collect();
    if attr.is_empty() {
        return Ok(from_w);
    }
    if attr.len() != w.len() - 2 {
        bail!(
            "kernel_shape {attr:?} does not match the {} spatial axes of weight {}",
            w.len() - 2,
            fmt_shape(w)
        );
    }
    if let Some(k) = &from_w
        && k != attr
    {
        bail!("kernel_shape {attr:?} does not match weight {}", fmt_shape(w));
    }
    Ok(Some(attr.to_vec()))
}

fn check_bias(b: Option<&Fact>, channels: &Dim, w: &[Dim]) -> Result<()> {
    let Some(b) = b else { return Ok(()) };
    let ok = b.rank() == 1
        && (b.shape[0] == *channels || b.shape[0].known().is_none() || channels.known().is_none());
    if !ok {
        bail!(
            "bias {} must be 1-D with {} elements (output channels of weight {})",
            b,
            channels,
            fmt_shape(w)
        );
    }
    Ok(())
}

/// Conv: X [N, C, ...], W [M, C/group, k...], B [M] -> [N, M, ...].
pub(super) fn infer_conv(c: &Conv, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let (x, w) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?);
    check_float(x, "input")?;
    check_rank(&x.shape, &w.shape)?;
    let group = check_group(c.group)?;
    if let (Some(cx), Some(w1)) = (x.shape[1].known(), w.shape[1].known())
        && cx != w1 * group
    {
        bail!(
            "weight {} needs {} input channels (x group {group}), got {cx} in input {}",
            fmt_shape(&w.shape),
            w1 * group,
            fmt_shape(&x.shape)
        );
    }
    if let Some(m) = w.shape[0].known()
        && m % group != 0
    {
        bail!("weight {} has {m} output channels, not divisible by group {group}", fmt_shape(&w.shape));
    }
    check_bias(inputs.get(2).copied().flatten(), &w.shape[0], &w.shape)?;
    let mut shape = vec![x.shape[0].clone(), w.shape[0].clone()];
    match kernel_of(&c.kernel, &w.shape)? {
        Some(k) => {
            let win = Window::new(k, &c.strides, &c.dilations, &c.pads, c.auto_pad, false)?;
            for (i, d) in x.shape[2..].iter().enumerate() {
                shape.push(win.infer_axis(i, d)?);
            }
        }
        None => shape.extend(std::iter::repeat_n(Dim::Unknown, x.rank() - 2)),
    }
    Ok(vec![Fact::new(x.dtype, shape)])
}

/// Conv evaluation (f32 kernels; other float types go through f32).
pub(super) fn eval_conv(c: &Conv, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let (x, w) = (tensor_at(inputs, 0)?, tensor_at(inputs, 1)?);
    let b = inputs.get(2).and_then(|t| t.as_ref());
    let (xs, ws) = (x.shape(), w.shape());
    let geom = conv_geom(c, xs, ws)?;
    let bias = b.map(f32_data).transpose()?;
    if let Some(bv) = &bias
        && bv.len() != ws[0]
    {
        bail!("bias has {} elements, weight {} has {} output channels", bv.len(), shape_str(ws), ws[0]);
    }
    let (xf, wf) = (f32_data(x)?, f32_data(w)?);
    let mut out = vec![0f32; geom.out_len()];
    pare_kernels::conv(&geom, &xf, &wf, bias.as_deref(), kernel_act(c.act), &mut out);
    let mut shape = vec![xs[0], ws[0]];
    shape.extend(geom.out_spatial());
    Ok(vec![f32_tensor(shape, out, x.dtype())])
}

/// The kernels' geometry for a Conv with input shape `xs` and weight shape `ws`, checked.
pub(crate) fn conv_geom(c: &Conv, xs: &[usize], ws: &[usize]) -> Result<ConvGeom> {
    if !(3..=5).contains(&xs.len()) || ws.len() != xs.len() {
        bail!("input {} and weight {} must both have rank 3 to 5", shape_str(xs), shape_str(ws));
    }
    let group = check_group(c.group)?;
    if xs[1] != ws[1] * group {
        bail!(
            "weight {} needs {} input channels (x group {group}), got {} in input {}",
            shape_str(ws),
            ws[1] * group,
            xs[1],
            shape_str(xs)
        );
    }
    if !ws[0].is_multiple_of(group) {
        bail!("weight {} has {} output channels, not divisible by group {group}", shape_str(ws), ws[0]);
    }
    if !c.kernel.is_empty() && c.kernel != ws[2..] {
        bail!("kernel_shape {:?} does not match weight {}", c.kernel, shape_str(ws));
    }
    let win = Window::new(ws[2..].to_vec(), &c.strides, &c.dilations, &c.pads, c.auto_pad, false)?;
    let (_, pb, pe) = win.resolve(&xs[2..])?;
    Ok(ConvGeom {
        batch: xs[0],
        c_in: xs[1],
        c_out: ws[0],
        groups: group,
        in_spatial: xs[2..].to_vec(),
        kernel: ws[2..].to_vec(),
        strides: win.strides,
        dilations: win.dilations,
        pads_begin: pb,
        pads_end: pe,
    })
}

/// Resolved ConvTranspose attributes for concrete sizes: (output spatial, pads begin).
fn resolve_transpose(
    c: &ConvTranspose,
    input: &[usize],
    kernel: &[usize],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let r = kernel.len();
    let s = per_axis(&c.strides, r, 1, "strides")?;
    let d = per_axis(&c.dilations, r, 1, "dilations")?;
    let op = per_axis(&c.output_padding, r, 0, "output_padding")?;
    let pads = pads_attr(&c.pads, r)?;
    let os = output_shape_attr(c, r)?;
    let mut out = Vec::with_capacity(r);
    let mut pb = Vec::with_capacity(r);
    for i in 0..r {
        if kernel[i] == 0 {
            bail!("kernel shape {kernel:?} must be positive");
        }
        let (o, b) = conv_transpose_axis(
            input[i],
            kernel[i],
            s[i],
            d[i],
            op[i],
            (pads[i], pads[r + i]),
            os.map(|v| v[i]),
            c.auto_pad,
        )?;
        out.push(o);
        pb.push(b);
    }
    Ok((out, pb))
}

/// The spatial part of `output_shape` (some exporters include N and C).
fn output_shape_attr(c: &ConvTranspose, r: usize) -> Result<Option<&[usize]>> {
    let v = c.output_shape.as_slice();
    match v.len() {
        0 => Ok(None),
        n if n == r => Ok(Some(v)),
        n if n == r + 2 => Ok(Some(&v[2..])),
        _ => bail!("output_shape {v:?} does not have {r} spatial values"),
    }
}

/// ConvTranspose: X [N, C, ...], W [C, M/group, k...], B [M] -> [N, M, ...].
pub(super) fn infer_conv_transpose(c: &ConvTranspose, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let (x, w) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?);
    check_float(x, "input")?;
    check_rank(&x.shape, &w.shape)?;
    let group = check_group(c.group)?;
    if let (Some(cx), Some(w0)) = (x.shape[1].known(), w.shape[0].known())
        && cx != w0
    {
        bail!(
            "weight {} needs {w0} input channels, got {cx} in input {}",
            fmt_shape(&w.shape),
            fmt_shape(&x.shape)
        );
    }
    if let Some(w0) = w.shape[0].known()
        && w0 % group != 0
    {
        bail!("weight {} has {w0} input channels, not divisible by group {group}", fmt_shape(&w.shape));
    }
    let m = match w.shape[1].known() {
        Some(m) => Dim::Known(m * group),
        None => Dim::Unknown,
    };
    check_bias(inputs.get(2).copied().flatten(), &m, &w.shape)?;
    let r = x.rank() - 2;
    let mut shape = vec![x.shape[0].clone(), m];
    let input: Option<Vec<usize>> = x.shape[2..].iter().map(|d| d.known()).collect();
    match (kernel_of(&c.kernel, &w.shape)?, input) {
        (Some(k), Some(input)) => {
            shape.extend(resolve_transpose(c, &input, &k)?.0.into_iter().map(Dim::Known))
        }
        (Some(k), None) => {
            let s = per_axis(&c.strides, r, 1, "strides")?;
            let d = per_axis(&c.dilations, r, 1, "dilations")?;
            let op = per_axis(&c.output_padding, r, 0, "output_padding")?;
            let pads = pads_attr(&c.pads, r)?;
            let os = output_shape_attr(c, r)?;
            for i in 0..r {
                let same = matches!(c.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
                let grow = op[i] + (k[i].max(1) - 1) * d[i] + 1;
                let keeps = s[i] == 1
                    && (same
                        || (c.auto_pad == AutoPad::Valid && grow == 1)
                        || (c.auto_pad == AutoPad::NotSet && grow == 1 + pads[i] + pads[r + i]));
                shape.push(match (os, &x.shape[2 + i]) {
                    (Some(v), _) => Dim::Known(v[i]),
                    (None, Dim::Known(n)) => Dim::Known(resolve_transpose(c, &[*n], &k[i..=i])?.0[0]),
                    (None, d) if keeps => d.clone(),
                    _ => Dim::Unknown,
                });
            }
        }
        (None, _) => shape.extend(std::iter::repeat_n(Dim::Unknown, r)),
    }
    Ok(vec![Fact::new(x.dtype, shape)])
}

/// ConvTranspose evaluation.
pub(super) fn eval_conv_transpose(c: &ConvTranspose, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let (x, w) = (tensor_at(inputs, 0)?, tensor_at(inputs, 1)?);
    let b = inputs.get(2).and_then(|t| t.as_ref());
    let (xs, ws) = (x.shape(), w.shape());
    if !(3..=5).contains(&xs.len()) || ws.len() != xs.len() {
        bail!("input {} and weight {} must both have rank 3 to 5", shape_str(xs), shape_str(ws));
    }
    let group = check_group(c.group)?;
    if xs[1] != ws[0] || ws[0] % group != 0 {
        bail!(
            "weight {} needs {} input channels (divisible by group {group}), got {} in input {}",
            shape_str(ws),
            ws[0],
            xs[1],
            shape_str(xs)
        );
    }
    if !c.kernel.is_empty() && c.kernel != ws[2..] {
        bail!("kernel_shape {:?} does not match weight {}", c.kernel, shape_str(ws));
    }
    let r = xs.len() - 2;
    let (out_sp, pb) = resolve_transpose(c, &xs[2..], &ws[2..])?;
    let c_out = ws[1] * group;
    let bias = b.map(f32_data).transpose()?;
    if let Some(bv) = &bias
        && bv.len() != c_out
    {
        bail!("bias has {} elements, weight {} gives {c_out} output channels", bv.len(), shape_str(ws));
    }
    let geom = ConvTransposeGeom {
        batch: xs[0],
        c_in: xs[1],
        c_out,
        groups: group,
        in_spatial: xs[2..].to_vec(),
        kernel: ws[2..].to_vec(),
        strides: per_axis(&c.strides, r, 1, "strides")?,
        dilations: per_axis(&c.dilations, r, 1, "dilations")?,
        pads_begin: pb,
        out_spatial: out_sp.clone(),
    };
    let (xf, wf) = (f32_data(x)?, f32_data(w)?);
    let mut out = vec![0f32; geom.out_len()];
    pare_kernels::conv_transpose(&geom, &xf, &wf, bias.as_deref(), &mut out);
    let mut shape = vec![xs[0], c_out];
    shape.extend(out_sp);
    Ok(vec![f32_tensor(shape, out, x.dtype())])
}
