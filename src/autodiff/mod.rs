//! Reverse-mode automatic differentiation as a graph rewrite.
//!
//! [`build`] turns a forward graph into a *training graph* that the ordinary runtime executes:
//! its inputs are the data, the target, an optional dropout seed and the parameters; its
//! outputs are the loss, the prediction, one gradient per parameter and the updated running
//! statistics of batch normalisation. Gradient rules live in `rules.rs`, one per op.

mod rules;
#[cfg(test)]
mod tests;

use crate::ir::{BatchNorm, Binary, Graph, Loss, Op, Rebuild, TrainOp, ValueId};
use crate::tensor::DType;
use anyhow::{Context, Result, bail};
use std::collections::{HashMap, HashSet};

/// What to train and how the loss is formed.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    /// The loss applied to the prediction.
    pub loss: Loss,
    /// Which forward output is the prediction.
    pub output: usize,
    /// Names of parameters to keep fixed.
    pub frozen: HashSet<String>,
    /// Batch size the training graph is built for.
    pub batch: usize,
    /// Names of further float constants to train (beyond [`param_candidates`]).
    pub extra: HashSet<String>,
    /// Cross-entropy against float probabilities `[N, C]` (distillation) instead of int64 labels.
    pub soft_target: bool,
}

impl TrainSpec {
    /// Cross-entropy on output 0 with hard labels, nothing frozen.
    pub fn classification(batch: usize) -> TrainSpec {
        TrainSpec {
            loss: Loss::CrossEntropy { label_smoothing: 0.0, temperature: 1.0 },
            output: 0,
            frozen: HashSet::new(),
            batch,
            extra: HashSet::new(),
            soft_target: false,
        }
    }
}

/// A trainable parameter: a float constant of the forward graph that is a run-time input of
/// the training graph.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name of the constant in the forward graph.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Index among the training graph's inputs.
    pub input: usize,
    /// Index of its gradient among the training graph's outputs.
    pub grad_output: usize,
}

/// A forward constant (a running statistic) that the training graph reads as an input and
/// whose updated value it outputs; the caller feeds the output back at the next step.
#[derive(Clone, Debug)]
pub struct StateUpdate {
    /// Name of the constant in the forward graph.
    pub name: String,
    /// Index among the training graph's inputs.
    pub input: usize,
    /// Index among the training graph's outputs.
    pub output: usize,
}

/// A training graph and how its inputs and outputs map to the forward model.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    /// The graph: inputs `[data..., target, seed?, params..., states...]`, outputs
    /// `[loss, prediction, grads..., states...]`.
    pub graph: Graph,
    /// Number of data inputs (the forward graph's inputs).
    pub data_inputs: usize,
    /// Index of the target input.
    pub target_input: usize,
    /// Index of the dropout seed input (int64 scalar), when the model has dropout.
    pub seed_input: Option<usize>,
    /// Trained parameters, in input order.
    pub params: Vec<Param>,
    /// Running statistics to copy back after each step.
    pub states: Vec<StateUpdate>,
}

/// Index of the loss among the training graph's outputs.
pub const LOSS_OUTPUT: usize = 0;
/// Index of the prediction among the training graph's outputs.
pub const PRED_OUTPUT: usize = 1;

/// Where in a forward graph a float constant counts as a trainable parameter: the inputs
/// each op declares in [`Op::param_slots`] (weights and biases of Conv / Gemm / MatMul,
/// normalisation scales and biases, embedding tables), and the constant operand of an Add
/// that follows a Conv, Gemm or MatMul (a bias). Other element-wise constants (input
/// normalisation, scalars) stay fixed.
pub fn param_candidates(g: &Graph) -> Vec<ValueId> {
    let is_param_const = |v: ValueId| {
        let val = g.value(v);
        val.producer.is_none()
            && val.fact.dtype == DType::F32
            && val.fact.konst.as_ref().is_some_and(|t| !t.is_empty())
    };
    let produced_by_linear =
        |v: ValueId| g.producer(v).is_some_and(|n| matches!(n.op, Op::Conv(_) | Op::Gemm(_) | Op::MatMul));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let order = g.topo_order().unwrap_or_default();
    for n in order {
        let Ok(node) = g.node(n) else { continue };
        let mut positions: Vec<usize> = node.op.param_slots().to_vec();
        if let (Op::Binary(Binary::Add), [Some(a), Some(b)]) = (&node.op, node.inputs.as_slice()) {
            if produced_by_linear(*a) {
                positions.push(1);
            } else if produced_by_linear(*b) {
                positions.push(0);
            }
        }
        for p in positions {
            if let Some(Some(v)) = node.inputs.get(p)
                && is_param_const(*v)
                && seen.insert(*v)
            {
                out.push(*v);
            }
        }
    }
    out
}

/// True for element types that carry gradients: floats, and the integer types of quantized
/// tensors (whose gradient is a float tensor of the same shape; see the Q/DQ rules).
fn carries_gradient(d: DType) -> bool {
    matches!(d, DType::F32 | DType::I8 | DType::U8)
}

/// Builds the training graph for `forward` (any batch dimension is fixed to `spec.batch`).
/// A parameter from which no gradient reaches the loss is an error that names it.
pub fn build(forward: &Graph, spec: &TrainSpec) -> Result<TrainGraph> {
    if spec.batch == 0 {
        bail!("batch size must be at least 1");
    }
    let fwd = crate::passes::set_batch(forward, spec.batch).context("fixing the batch size for training")?;
    if spec.output >= fwd.outputs().len() {
        bail!("the model has {} output(s); output {} does not exist", fwd.outputs().len(), spec.output);
    }
    let mut params = param_candidates(&fwd);
    for name in &spec.extra {
        let v = fwd.find(name).ok_or_else(|| anyhow::anyhow!("no constant named \"{name}\" to train"))?;
        if fwd.fact(v).konst.is_none() || fwd.fact(v).dtype != DType::F32 {
            bail!("\"{name}\" is not a float32 constant, so it cannot be trained");
        }
        if !params.contains(&v) {
            params.push(v);
        }
    }
    params.retain(|v| !spec.frozen.contains(&fwd.value(*v).name));
    if params.is_empty() {
        bail!("the model has no trainable parameters (float weights of Conv, Gemm, MatMul, normalisation)");
    }
    let order = fwd.topo_order()?;
    let mut has_dropout = false;
    for &n in &order {
        has_dropout |= matches!(fwd.node(n)?.op, Op::Dropout { ratio } if ratio > 0.0);
    }

    let mut r = Rebuild::new(&fwd);
    // Parameters become inputs of the training graph, so nothing that depends on one folds.
    r.copy_inputs(|_, v| v.fact.shape.clone());
    let pred_fwd = fwd.outputs()[spec.output];
    let pred_fact = fwd.fact(pred_fwd).clone();
    let target = match (&spec.loss, pred_fact.shape.first()) {
        (Loss::CrossEntropy { .. }, Some(n)) if !spec.soft_target => {
            r.dst.add_input("target", DType::I64, vec![n.clone()])
        }
        _ => r.dst.add_input("target", DType::F32, pred_fact.shape.clone()),
    };
    let target_input = r.dst.inputs().len() - 1;
    let seed = has_dropout.then(|| r.dst.add_input("dropout_seed", DType::I64, vec![]));
    let seed_input = seed.map(|_| r.dst.inputs().len() - 1);
    let mut param_inputs = Vec::new();
    for &p in &params {
        let v = fwd.value(p);
        let id = r.dst.add_input(&v.name, DType::F32, v.fact.shape.clone());
        r.map(p, id);
        param_inputs.push(id);
    }
    // Running statistics of batch normalisation are inputs too, so each step starts from the
    // previous step's values.
    let mut state_inputs: HashMap<String, usize> = HashMap::new();
    for &n in &order {
        let node = fwd.node(n)?;
        if let Op::BatchNorm(_) = node.op {
            for k in [3, 4] {
                if let Some(Some(v)) = node.inputs.get(k)
                    && r.get(*v).is_none()
                    && fwd.fact(*v).konst.is_some()
                    && fwd.value(*v).producer.is_none()
                {
                    let val = fwd.value(*v);
                    let id = r.dst.add_input(&val.name, val.fact.dtype, val.fact.shape.clone());
                    r.map(*v, id);
                    state_inputs.insert(val.name.clone(), r.dst.inputs().len() - 1);
                }
            }
        }
    }
    r.copy_consts();

    // Forward pass, with training-mode ops; `needs` marks values that depend on a parameter.
    let mut needs: HashSet<ValueId> = param_inputs.iter().copied().collect();
    let mut copied = Vec::new();
    let mut states = Vec::new();
    for &n in &order {
        let node = fwd.node(n)?;
        let mut ins = r.inputs_of(node)?;
        let op = match &node.op {
            Op::BatchNorm(BatchNorm { epsilon, momentum, .. }) => {
                Op::Train(TrainOp::BatchNormTrain { epsilon: *epsilon, momentum: *momentum })
            }
            Op::LayerNorm(l) => Op::LayerNorm(crate::ir::LayerNorm { stats: true, ..l.clone() }),
            Op::MaxPool(p) => Op::MaxPool(crate::ir::Pool { indices: true, ..p.clone() }),
            Op::Dropout { ratio } if *ratio > 0.0 => {
                ins = vec![ins[0], seed];
                Op::Train(TrainOp::DropoutTrain { ratio: *ratio })
            }
            op => op.clone(),
        };
        let outs = r.copy_node(n, op, ins.clone())?;
        if let Op::BatchNorm(_) = &node.op {
            for (k, run) in [(1, 3), (2, 4)] {
                if let Some(Some(v)) = node.inputs.get(run) {
                    states.push((fwd.value(*v).name.clone(), outs[k]));
                }
            }
        }
        if ins.iter().flatten().any(|v| needs.contains(v)) {
            for &o in &outs {
                let f = r.dst.fact(o);
                if carries_gradient(f.dtype) && f.konst.is_none() {
                    needs.insert(o);
                }
            }
            if let Some((nid, _)) = r.dst.value(outs[0]).producer {
                copied.push(nid);
            }
        }
    }
    let pred = r.get(pred_fwd).expect("prediction copied");
    let mut g = r.dst;
    let lo =
        g.add_node("loss", Op::Train(TrainOp::Loss(spec.loss.clone())), vec![Some(pred), Some(target)])?;

    // Backward pass.
    let mut grads: HashMap<ValueId, ValueId> = HashMap::new();
    grads.insert(pred, lo[1]);
    for &nid in copied.iter().rev() {
        let node = g.node(nid)?.clone();
        let dys: Vec<Option<ValueId>> = node.outputs.iter().map(|o| grads.get(o).copied()).collect();
        if dys.iter().all(|d| d.is_none()) {
            continue;
        }
        let want: Vec<bool> = node.inputs.iter().map(|i| i.is_some_and(|v| needs.contains(&v))).collect();
        let dxs = rules::grad(&mut g, &node, &dys, &want)
            .with_context(|| format!("differentiating {}", g.describe_node(nid)))?;
        for ((inp, dx), w) in node.inputs.iter().zip(dxs).zip(&want) {
            let (Some(v), Some(dx), true) = (inp, dx, w) else { continue };
            let acc = match grads.get(v) {
                Some(&prev) => {
                    let name = format!("{}_grad_acc", g.value(*v).name);
                    g.add_node(&name, Op::Binary(Binary::Add), vec![Some(prev), Some(dx)])?[0]
                }
                None => dx,
            };
            grads.insert(*v, acc);
        }
    }

    let mut outputs = vec![lo[0], pred];
    let mut out_params = Vec::new();
    for (&p, &id) in params.iter().zip(&param_inputs) {
        let v = fwd.value(p);
        let shape = v.fact.concrete_shape().unwrap_or_default();
        let Some(&grad) = grads.get(&id) else { bail!("{}", no_gradient_path(&fwd, p, &g, id)) };
        let gname = format!("{}_grad", v.name);
        g.rename(grad, &gname);
        out_params.push(Param {
            name: v.name.clone(),
            shape,
            input: g.inputs().iter().position(|&i| i == id).expect("param input"),
            grad_output: outputs.len(),
        });
        outputs.push(grad);
    }
    let mut out_states = Vec::new();
    for (name, v) in states {
        let Some(&input) = state_inputs.get(&name) else {
            bail!("running statistic \"{name}\" is not a constant of the model");
        };
        out_states.push(StateUpdate { name, input, output: outputs.len() });
        outputs.push(v);
    }
    g.set_outputs(outputs);
    g.verify().context("the training graph is invalid")?;
    Ok(TrainGraph {
        graph: g,
        data_inputs: fwd.inputs().len(),
        target_input,
        seed_input,
        params: out_params,
        states: out_states,
    })
}

/// Explains why parameter `p` of `fwd` (input `id` of the training graph `g`) gets no gradient.
fn no_gradient_path(fwd: &Graph, p: ValueId, g: &Graph, id: ValueId) -> String {
    let name = &fwd.value(p).name;
    let readers: Vec<String> = g.consumers()[id.0]
        .iter()
        .filter_map(|&n| g.node(n).ok())
        .map(|n| format!("{} \"{}\"", n.op.onnx_name(), n.name))
        .collect();
    let used = if readers.is_empty() {
        "nothing reads it".to_string()
    } else {
        format!("read by {}", readers.join(", "))
    };
    format!(
        "parameter \"{name}\" gets no gradient: no path from it to the loss carries one ({used}; a path \
         through an integer, boolean or index value, or into an output other than the prediction, \
         carries none). Freeze it if that is intended."
    )
}
