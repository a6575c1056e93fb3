//! Graph-to-graph rewrites that preserve outputs, built from small local rules
//! (`fn(&Graph, NodeId, &Uses) -> Option<Patch>`) run to a fixed point.

mod batch;
mod fuse;
mod simplify;

use crate::ir::Patch;
use crate::ir::{Graph, NodeId, ValueId};
use anyhow::{Context, Result};

pub use batch::set_batch;
pub use fuse::{conv_absorb_affine, fold_batchnorm, fuse_activation, matmul_add_to_gemm};
pub use simplify::remove_identity;

/// Who reads each value: consumer nodes, and whether it is a graph output.
pub struct Uses {
    consumers: Vec<Vec<NodeId>>,
    is_output: Vec<bool>,
}

impl Uses {
    /// Computes uses for a graph.
    pub fn of(g: &Graph) -> Uses {
        let mut is_output = vec![false; g.value_count()];
        for o in g.outputs() {
            is_output[o.0] = true;
        }
        Uses { consumers: g.consumers(), is_output }
    }
    /// The single node reading `v`, if exactly one node reads it and it is not a graph output.
    pub fn sole_consumer(&self, v: ValueId) -> Option<NodeId> {
        match self.consumers[v.0].as_slice() {
            [n] if !self.is_output[v.0] => Some(*n),
            _ => None,
        }
    }
    /// Nodes reading `v`.
    pub fn readers(&self, v: ValueId) -> &[NodeId] {
        &self.consumers[v.0]
    }
    /// True if `v` is a graph output.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.is_output[v.0]
    }
}

/// A local rewrite rule.
pub type Rule = fn(&Graph, NodeId, &Uses) -> Option<Patch>;

/// Applies `rules` until none fires (dead nodes are removed first, so they never block a
/// rule); returns how many rewrites were made.
pub fn run_rules(g: &mut Graph, rules: &[(&str, Rule)]) -> Result<usize> {
    run_rules_logged(g, rules, &mut |_, _| {})
}

/// [`run_rules`], telling `log` each rule that fired and the node it fired on.
pub fn run_rules_logged(
    g: &mut Graph,
    rules: &[(&str, Rule)],
    log: &mut dyn FnMut(&str, String),
) -> Result<usize> {
    let mut total = 0;
    loop {
        let mut changed = false;
        // Dead nodes would count as readers and block rules that need a sole consumer.
        g.remove_dead()?;
        let order = g.topo_order()?;
        let mut uses = Uses::of(g);
        for n in order {
            if !g.is_live(n) {
                continue;
            }
            for (name, rule) in rules {
                if let Some(p) = rule(g, n, &uses) {
                    let what = g.describe_node(n);
                    p.apply(g).with_context(|| format!("pass {name} on {what}"))?;
                    log(name, what);
                    uses = Uses::of(g);
                    total += 1;
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            return Ok(total);
        }
    }
}

/// The default inference optimisation pipeline.
pub fn optimize(g: &mut Graph) -> Result<()> {
    optimize_logged(g, &mut |_, _| {})
}

/// The rules of [`optimize`], in order.
const RULES: &[(&str, Rule)] = &[
    ("remove_identity", remove_identity),
    ("fold_batchnorm", fold_batchnorm),
    ("conv_absorb_affine", conv_absorb_affine),
    ("matmul_add_to_gemm", matmul_add_to_gemm),
    ("fuse_activation", fuse_activation),
];

/// [`optimize`], telling `log` each rule that fired and where.
pub fn optimize_logged(g: &mut Graph, log: &mut dyn FnMut(&str, String)) -> Result<()> {
    run_rules_logged(g, RULES, log)?;
    g.compact().context("graph invalid after optimisation")
}

/// What [`optimize`] did, for `pare optimize --explain`.
#[derive(Clone, Debug, Default)]
pub struct Explanation {
    /// `(rule, node)` for every rewrite, in order.
    pub fired: Vec<(String, String)>,
    /// `(rule, node, why)` where a rule's pattern nearly matched the optimised graph but a
    /// condition failed.
    pub near_misses: Vec<(String, String, String)>,
}

/// Runs [`optimize`] and explains it: the rewrites made, and the near misses left.
pub fn optimize_explained(g: &mut Graph) -> Result<Explanation> {
    let mut e = Explanation::default();
    optimize_logged(g, &mut |rule, node| e.fired.push((rule.to_string(), node)))?;
    e.near_misses = fuse::near_misses(g).into_iter().map(|(r, n, w)| (r.to_string(), n, w)).collect();
    Ok(e)
}
