//! A run of a compiled plan on a CNN does not touch the heap: once the plan, the arena and the
//! kernels' scratch buffers exist, the counting allocator sees (almost) no allocation across
//! 126 `run_into` calls. The only ones allowed are not per run: rayon's global job queue
//! allocates one block per 63 jobs entering the pool (one per run), and a worker thread that
//! first gets a task late grows its thread-local scratch once. One test only, so that no
//! other test allocates while it counts.

use pare::ir::Graph;
use pare::profile::{CountingAlloc, alloc_calls, concrete, random_inputs};
use pare::runtime::{RunOptions, Runtime};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

const RUNS: usize = 126;

/// Allocation calls in `RUNS` runs after warm-up, and whether `run_into` gave `run`'s outputs.
fn allocs_in_runs(g: &Graph, threads: usize) -> (usize, bool) {
    let g = concrete(g, Some(2)).unwrap();
    let inputs = random_inputs(&g, 1).unwrap();
    let rt = Runtime::new(g, RunOptions { threads, optimize: true }).unwrap();
    let want = rt.run(inputs.clone()).unwrap();
    let mut outs = vec![Vec::new(); rt.output_names().len()];
    for _ in 0..20 {
        rt.run_into(&inputs, &mut outs).unwrap();
    }
    let before = alloc_calls().expect("CountingAlloc is the global allocator");
    for _ in 0..RUNS {
        rt.run_into(&inputs, &mut outs).unwrap();
    }
    let calls = alloc_calls().unwrap() - before;
    let same = want.iter().zip(&outs).all(|(w, o)| w.f32s().unwrap() == o.as_slice());
    (calls, same)
}

#[test]
fn cnn_runs_do_not_allocate() {
    for name in ["lenet-5", "resnet-20", "mobilenetv2-cifar"] {
        let g = pare::zoo::build(name, 10, 0).unwrap();
        for threads in [1, 2] {
            let (calls, same) = allocs_in_runs(&g, threads);
            assert!(same, "{name}, {threads} threads: run_into differs from run");
            // One allocation per run would be 126; rayon's queue accounts for two.
            assert!(calls <= RUNS / 63 + 2, "{name}, {threads} threads: {calls} allocations in {RUNS} runs");
        }
    }
}
