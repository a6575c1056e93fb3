//! Execution: an ordered plan with buffer lifetimes, run on a thread pool.

use crate::ir::{Dim, Graph, NodeId, fmt_shape};
use crate::passes;
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How to build a runtime.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Run the optimisation passes (BN folding, activation fusion, ...) first.
    pub optimize: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { threads: 0, optimize: true }
    }
}

/// One step of the plan: a node, where its inputs and outputs live, what dies after it.
#[derive(Clone, Debug)]
struct Step {
    node: NodeId,
    inputs: Vec<Option<usize>>,
    /// For each input: true if this step is the last reader (the slot is moved, not cloned).
    last_use: Vec<bool>,
    outputs: Vec<usize>,
}

/// A graph prepared for repeated execution.
pub struct Runtime {
    graph: Graph,
    steps: Vec<Step>,
    n_slots: usize,
    consts: Vec<(usize, Tensor)>,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    pool: rayon::ThreadPool,
}

/// Per-node timing from `Runtime::profile`.
#[derive(Clone, Debug)]
pub struct NodeTime {
    /// Node name.
    pub name: String,
    /// ONNX op type.
    pub op: String,
    /// Wall time of the node.
    pub time: Duration,
}

impl Runtime {
    /// Optimises (unless disabled) and plans `graph`.
    pub fn new(mut graph: Graph, opts: RunOptions) -> Result<Runtime> {
        graph.verify().context("invalid graph")?;
        if opts.optimize {
            passes::optimize(&mut graph)?;
        }
        let threads = if opts.threads == 0 { num_cores() } else { opts.threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| anyhow!("cannot start {threads} threads: {e}"))?;
        let order = graph.topo_order()?;
        // Dense slot per value that the plan touches.
        let mut slot_of: HashMap<usize, usize> = HashMap::new();
        let slot = |v: usize, map: &mut HashMap<usize, usize>| {
            let n = map.len();
            *map.entry(v).or_insert(n)
        };
        let input_slots: Vec<usize> = graph.inputs().iter().map(|v| slot(v.0, &mut slot_of)).collect();
        let mut consts = Vec::new();
        let mut steps = Vec::new();
        for &n in &order {
            let node = graph.node(n)?;
            let mut inputs = Vec::new();
            for i in &node.inputs {
                inputs.push(i.map(|v| {
                    let fresh = !slot_of.contains_key(&v.0);
                    let s = slot(v.0, &mut slot_of);
                    if fresh && let Some(k) = &graph.fact(v).konst {
                        consts.push((s, k.clone()));
                    }
                    s
                }));
            }
            let outputs = node.outputs.iter().map(|v| slot(v.0, &mut slot_of)).collect();
            steps.push(Step { node: n, last_use: vec![false; inputs.len()], inputs, outputs });
        }
        let output_slots: Vec<usize> = graph
            .outputs()
            .iter()
            .map(|v| {
                let fresh = !slot_of.contains_key(&v.0);
                let s = slot(v.0, &mut slot_of);
                if fresh && let Some(k) = &graph.fact(*v).konst {
                    consts.push((s, k.clone()));
                }
                s
            })
            .collect();
        // Lifetimes: the last step reading a slot moves it out, unless it is a constant or an output.
        let mut keep = vec![false; slot_of.len()];
        for &(s, _) in &consts {
            keep[s] = true;
        }
        for &s in &output_slots {
            keep[s] = true;
        }
        let mut seen = vec![false; slot_of.len()];
        for step in steps.iter_mut().rev() {
            for (k, i) in step.inputs.iter().enumerate() {
                if let Some(s) = *i
                    && !seen[s]
                    && !keep[s]
                {
                    // moved only if no other input of the same step reads it
                    let dup = step.inputs.iter().filter(|j| **j == Some(s)).count() > 1;
                    step.last_use[k] = !dup;
                    seen[s] = true;
                }
            }
        }
        Ok(Runtime { n_slots: slot_of.len(), graph, steps, consts, input_slots, output_slots, pool })
    }

    /// The (optimised) graph being run.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// Names of the run-time inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.graph.inputs().iter().map(|v| self.graph.value(*v).name.clone()).collect()
    }
    /// Names of the outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.graph.outputs().iter().map(|v| self.graph.value(*v).name.clone()).collect()
    }
    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Checks inputs against the graph's declared dtypes and shapes.
    fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() != self.graph.inputs().len() {
            bail!(
                "model takes {} input(s) ({}), got {}",
                self.graph.inputs().len(),
                self.input_names().join(", "),
                inputs.len()
            );
        }
        let mut syms: HashMap<&str, usize> = HashMap::new();
        for (t, v) in inputs.iter().zip(self.graph.inputs()) {
            let val = self.graph.value(*v);
            let f = &val.fact;
            let mismatch = || {
                anyhow!(
                    "input \"{}\": expected {}{}, got {}{:?}",
                    val.name,
                    f.dtype,
                    fmt_shape(&f.shape),
                    t.dtype(),
                    t.shape()
                )
            };
            if t.dtype() != f.dtype || t.rank() != f.rank() {
                return Err(mismatch());
            }
            for (d, &n) in f.shape.iter().zip(t.shape()) {
                match d {
                    Dim::Known(k) if *k != n => return Err(mismatch()),
                    Dim::Sym(s) if *syms.entry(s).or_insert(n) != n => {
                        return Err(mismatch().context(format!("dimension {s} has two different sizes")));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Runs the graph; inputs in graph-input order, outputs in graph-output order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.run_inner(inputs, None)
    }

    /// Runs by input name.
    pub fn run_named(&self, mut inputs: HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        let mut ordered = Vec::new();
        for name in self.input_names() {
            ordered.push(inputs.remove(&name).ok_or_else(|| anyhow!("missing input \"{name}\""))?);
        }
        if let Some(extra) = inputs.keys().next() {
            bail!("model has no input named \"{extra}\" (inputs: {})", self.input_names().join(", "));
        }
        Ok(self.output_names().into_iter().zip(self.run(ordered)?).collect())
    }

    /// Runs once and returns the outputs with per-node wall times.
    pub fn profile(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, Vec<NodeTime>)> {
        let mut times = Vec::new();
        let outs = self.run_inner(inputs, Some(&mut times))?;
        Ok((outs, times))
    }

    fn run_inner(&self, inputs: Vec<Tensor>, mut times: Option<&mut Vec<NodeTime>>) -> Result<Vec<Tensor>> {
        self.check_inputs(&inputs)?;
        let mut slots: Vec<Option<Tensor>> = vec![None; self.n_slots];
        for (s, t) in &self.consts {
            slots[*s] = Some(t.clone());
        }
        for (s, t) in self.input_slots.iter().zip(inputs) {
            slots[*s] = Some(t);
        }
        self.pool.install(|| -> Result<()> {
            for step in &self.steps {
                let node = self.graph.node(step.node)?;
                let mut ins = Vec::with_capacity(step.inputs.len());
                for (i, last) in step.inputs.iter().zip(&step.last_use) {
                    ins.push(match i {
                        Some(s) if *last => slots[*s].take(),
                        Some(s) => slots[*s].clone(),
                        None => None,
                    });
                }
                let t0 = times.as_ref().map(|_| Instant::now());
                let outs = node.op.eval_owned(ins).with_context(|| self.graph.describe_node(step.node))?;
                if let (Some(ts), Some(t0)) = (times.as_deref_mut(), t0) {
                    ts.push(NodeTime {
                        name: node.name.clone(),
                        op: node.op.onnx_name().into(),
                        time: t0.elapsed(),
                    });
                }
                for (s, t) in step.outputs.iter().zip(outs) {
                    slots[*s] = Some(t);
                }
            }
            Ok(())
        })?;
        self.output_slots
            .iter()
            .map(|s| slots[*s].clone().ok_or_else(|| anyhow!("an output was not computed")))
            .collect()
    }
}

/// Number of CPU cores available to this process.
pub fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
