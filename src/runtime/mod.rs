//! Execution: a compiled plan per set of input shapes (see `plan`), run on a thread pool
//! entered once per run.

mod kernels;
mod layout;
mod plan;

pub use plan::{LayerShape, Variant};

use crate::ir::{Dim, Graph, fmt_shape};
use crate::passes;
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow, bail};
use plan::{Out, Plan, PlanCtx, WeightCache};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Plans kept per runtime (one per distinct set of input shapes); the oldest is dropped.
const MAX_PLANS: usize = 8;

/// A graph prepared for repeated execution.
pub struct Runtime {
    graph: Graph,
    pool: rayon::ThreadPool,
    choices: HashMap<String, Variant>,
    weights: WeightCache,
    plans: Mutex<Vec<Arc<Plan>>>,
    channels_last: bool,
}

/// Per-node timing from `Runtime::profile`.
#[derive(Clone, Debug)]
pub struct NodeTime {
    /// Step name: the node's name, or the fused nodes' names joined by `+`.
    pub name: String,
    /// ONNX op type (fused steps: the ops joined by `+`).
    pub op: String,
    /// Wall time of the node.
    pub time: Duration,
}

/// One tunable layer of a plan (a conv or a constant-weight matrix product), as the tuner
/// sees it.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Name of the conv/Gemm/MatMul node (the key of a choice).
    pub node: String,
    /// Name of its plan step (fused nodes joined by `+`, as in profiles).
    pub step_name: String,
    /// Index of its step in the plan.
    pub step: usize,
    /// Shape, which decides the candidate variants.
    pub shape: LayerShape,
    /// Variant in use.
    pub variant: Variant,
    /// What the kernel's speed depends on: op, shapes, attributes, fused epilogue, dtype
    /// (f32). Equal signatures run the same kernel on the same amount of work.
    pub signature: String,
}

impl Runtime {
    /// Optimises (unless disabled) and prepares `graph`; plans are built per input shape on
    /// first use.
    pub fn new(graph: Graph, opts: RunOptions) -> Result<Runtime> {
        Runtime::with_choices(graph, opts, HashMap::new())
    }

    /// Like [`Runtime::new`], with a conv algorithm chosen per node name (from a tuned plan);
    /// nodes not listed, or whose choice does not apply, get the heuristic.
    pub fn with_choices(
        mut graph: Graph,
        opts: RunOptions,
        choices: HashMap<String, Variant>,
    ) -> Result<Runtime> {
        graph.verify().context("invalid graph")?;
        if opts.optimize {
            passes::optimize(&mut graph)?;
        }
        let threads = if opts.threads == 0 { num_cores() } else { opts.threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| anyhow!("cannot start {threads} threads: {e}"))?;
        Ok(Runtime {
            graph,
            pool,
            choices,
            weights: Mutex::new(HashMap::new()),
            plans: Mutex::new(Vec::new()),
            channels_last: channels_last_default(),
        })
    }

    /// Whether regions of depthwise convs run channels-last (NHWC). On by default;
    /// `PARE_LAYOUT=nchw` turns it off for the process.
    pub fn channels_last(&self) -> bool {
        self.channels_last
    }

    /// Turns channels-last regions on or off (plans already built are dropped).
    pub fn set_channels_last(&mut self, on: bool) {
        if on != self.channels_last {
            self.channels_last = on;
            if let Ok(mut p) = self.plans.lock() {
                p.clear();
            }
        }
    }

    /// The cached plan for exactly these input shapes, if one was built.
    fn cached_plan(&self, inputs: &[Tensor]) -> Result<Option<Arc<Plan>>> {
        let plans = self.plans.lock().map_err(|_| anyhow!("plan cache poisoned"))?;
        Ok(plans
            .iter()
            .find(|p| {
                p.in_shapes.len() == inputs.len()
                    && p.in_shapes.iter().zip(inputs).all(|(s, t)| s == t.shape())
            })
            .cloned())
    }

    /// The plan for these input shapes, built and cached on first use.
    fn plan_for(&self, inputs: &[Tensor]) -> Result<Arc<Plan>> {
        if let Some(p) = self.cached_plan(inputs)? {
            return Ok(p);
        }
        let concrete = self.graph.inputs().iter().all(|&v| self.graph.fact(v).concrete_shape().is_some());
        let g = if concrete {
            self.graph.clone()
        } else {
            let shapes: Vec<_> = self
                .graph
                .inputs()
                .iter()
                .zip(inputs)
                .map(|(&v, t)| (v, t.shape().iter().map(|&d| Dim::Known(d)).collect()))
                .collect();
            self.graph.with_input_shapes(&shapes)?
        };
        let plan = Arc::new(Plan::build(
            g,
            &PlanCtx { choices: &self.choices, weights: &self.weights, channels_last: self.channels_last },
        )?);
        let mut plans = self.plans.lock().map_err(|_| anyhow!("plan cache poisoned"))?;
        if plans.len() >= MAX_PLANS {
            plans.remove(0);
        }
        plans.push(plan.clone());
        Ok(plan)
    }

    /// The tunable layers of the plan for these inputs, with their shapes and variants.
    pub fn layers(&self, inputs: &[Tensor]) -> Result<Vec<Layer>> {
        let plan = self.plan_for(inputs)?;
        let node_of = |name: &str| name.split('+').next().unwrap_or(name).to_string();
        Ok(plan
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let (shape, variant, signature) = match &s.kernel {
                    plan::Kernel::Conv { geom, algo, act, residual, .. } => (
                        LayerShape::Conv(geom.clone()),
                        *algo,
                        format!(
                            "Conv f32 n{} c{}>{} g{} in{:?} k{:?} s{:?} d{:?} p{:?}{:?} act={act:?} residual={}",
                            geom.batch,
                            geom.c_in,
                            geom.c_out,
                            geom.groups,
                            geom.in_spatial,
                            geom.kernel,
                            geom.strides,
                            geom.dilations,
                            geom.pads_begin,
                            geom.pads_end,
                            residual.is_some()
                        ),
                    ),
                    plan::Kernel::Dense { m, variant, w, act } => {
                        let (k, n) = w.dims();
                        (
                            LayerShape::Dense { m: *m, k, n },
                            *variant,
                            format!("Dense f32 m{m} k{k} n{n} act={act:?}"),
                        )
                    }
                    _ => return None,
                };
                Some(Layer { node: node_of(&s.name), step_name: s.name.clone(), step: i, shape, variant, signature })
            })
            .collect())
    }

    /// Floats in the activation arena of the plan for these inputs.
    pub fn arena_floats(&self, inputs: &[Tensor]) -> Result<usize> {
        Ok(self.plan_for(inputs)?.arena_floats())
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

    fn run_inner(&self, inputs: Vec<Tensor>, times: Option<&mut Vec<NodeTime>>) -> Result<Vec<Tensor>> {
        self.check_inputs(&inputs)?;
        let plan = self.plan_for(&inputs)?;
        let mut outs: Vec<Option<Tensor>> = vec![None; plan.graph.outputs().len()];
        let mut durations = times.as_ref().map(|_| Vec::with_capacity(plan.steps.len()));
        plan.execute(&inputs, &self.pool, durations.as_mut(), |i, shape, o| {
            outs[i] = Some(match o {
                Out::F32(d) => Tensor::from_vec(shape.to_vec(), d.to_vec()),
                Out::Tensor(t) => t.clone(),
            });
            Ok(())
        })?;
        if let (Some(ts), Some(ds)) = (times, durations) {
            for ((name, op), d) in plan.step_names().zip(ds) {
                ts.push(NodeTime { name: name.to_string(), op: op.to_string(), time: d });
            }
        }
        outs.into_iter().map(|o| o.ok_or_else(|| anyhow!("an output was not computed"))).collect()
    }

    /// Runs into caller-owned buffers: `outputs[i]` receives the data of f32 output `i` (it is
    /// resized, so a buffer reused across runs allocates only once). With the inputs' shapes
    /// seen before, this path does not allocate.
    pub fn run_into(&self, inputs: &[Tensor], outputs: &mut [Vec<f32>]) -> Result<()> {
        if outputs.len() != self.graph.outputs().len() {
            bail!("model has {} outputs, got {} buffers", self.graph.outputs().len(), outputs.len());
        }
        let plan = self.cached_plan(inputs)?;
        let plan = match plan {
            Some(p) => p,
            None => {
                self.check_inputs(inputs)?;
                self.plan_for(inputs)?
            }
        };
        plan.execute(inputs, &self.pool, None, |i, _, o| {
            let d = match o {
                Out::F32(d) => d,
                Out::Tensor(t) => t.f32s()?,
            };
            outputs[i].clear();
            outputs[i].extend_from_slice(d);
            Ok(())
        })
    }
}

/// Number of CPU cores available to this process.
pub fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The channels-last default: on unless `PARE_LAYOUT=nchw`.
fn channels_last_default() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !std::env::var("PARE_LAYOUT").is_ok_and(|v| v.eq_ignore_ascii_case("nchw")))
}
