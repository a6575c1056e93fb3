//! `pare::compile`: stored plans survive the file and drive the runtime, edited files and
//! foreign plans are refused, the tuning cache is reused, refused when corrupt and rebuilt,
//! and a zero budget means heuristics only.

mod common;

use common::TempDir;
use pare::compile::{self, CompileOptions, Source, cache, cpu::CpuId, stored};
use pare::ir::Graph;
use pare::profile::{concrete, random_inputs};
use pare::runtime::{RunOptions, Runtime, Variant};
use std::collections::HashMap;
use std::time::Duration;

/// ResNet-20 (3×3 convs where Winograd applies, 1×1 shortcuts, a dense head).
fn model() -> Graph {
    pare::zoo::build("resnet-20", 10, 3).unwrap()
}

fn opts(cache: Option<std::path::PathBuf>, budget_s: f64) -> CompileOptions {
    CompileOptions { batch: Some(1), threads: 1, budget: Duration::from_secs_f64(budget_s), cache, seed: 0 }
}

fn no_progress() -> impl FnMut(&str, u64, u64) {
    |_, _, _| {}
}

#[test]
fn stored_plan_drives_the_runtime_and_edits_are_detected() {
    let d = TempDir::new("compile-stored");
    let c = compile::compile(&model(), &opts(None, 0.0), &mut no_progress()).unwrap();
    // A plan that differs from the heuristic wherever another variant applies, so the test
    // sees each choice arrive (the timing of this machine does not matter here).
    let g = concrete(&c.graph, Some(1)).unwrap();
    let rt = Runtime::new(g.clone(), RunOptions { threads: 1, optimize: true }).unwrap();
    let forced: HashMap<String, Variant> = rt
        .layers(&random_inputs(&g, 0).unwrap())
        .unwrap()
        .into_iter()
        .filter_map(|l| {
            let other = Variant::candidates(&l.shape).into_iter().find(|v| *v != l.variant)?;
            Some((l.node, other))
        })
        .collect();
    assert!(
        forced.values().any(|v| *v == Variant::WinogradF2),
        "resnet-20 has Winograd-able convs: {forced:?}"
    );
    assert!(forced.values().any(|v| *v == Variant::Sgemm), "and a dense head: {forced:?}");

    let path = d.0.join("compiled.onnx");
    stored::save(&c.graph, &path, 1, 1, &forced).unwrap();
    let loaded = pare::onnx::load(&path).unwrap();
    let (choices, notes) = stored::choices_for(&loaded, 1);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(choices, forced);

    // The runtime built from the file's plan runs exactly those variants...
    let g = concrete(&loaded, Some(1)).unwrap();
    let x = random_inputs(&g, 5).unwrap();
    let tuned = Runtime::with_choices(g.clone(), RunOptions { threads: 1, optimize: true }, choices).unwrap();
    let layers = tuned.layers(&x).unwrap();
    for l in &layers {
        let want = forced.get(&l.node).copied().unwrap_or(Variant::heuristic(&l.shape));
        assert_eq!(l.variant, want, "layer {}", l.node);
    }
    // ...and computes what the heuristic plan computes.
    let a = Runtime::new(g, RunOptions { threads: 1, optimize: true }).unwrap().run(x.clone()).unwrap();
    let b = tuned.run(x).unwrap();
    let (a, b) = (a[0].f32s().unwrap(), b[0].f32s().unwrap());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(diff <= 1e-3 * scale + 1e-4, "tuned plan differs by {diff} (scale {scale})");

    // A thread count other than the plan's is reported, not refused.
    let (c2, notes) = stored::choices_for(&loaded, 2);
    assert_eq!(c2.len(), forced.len());
    assert!(notes[0].contains("tuned for 1 threads"), "{notes:?}");

    // An edited model (here: another batch size) no longer matches its plan.
    let edited = pare::passes::set_batch(&loaded, 2).unwrap();
    let epath = d.0.join("edited.onnx");
    pare::onnx::save(&edited, &epath).unwrap();
    let (c3, notes) = stored::choices_for(&pare::onnx::load(&epath).unwrap(), 1);
    assert!(c3.is_empty());
    assert!(notes[0].contains("changed after it was compiled"), "{notes:?}");

    // A plan from another CPU, or a corrupt one, is ignored with a warning.
    let text = loaded.metadata_value(stored::KEY).unwrap().to_string();
    let mut plan: stored::StoredPlan = serde_json::from_str(&text).unwrap();
    plan.cpu.model = "Another CPU".into();
    let mut other = loaded.clone();
    other.set_metadata(stored::KEY, Some(serde_json::to_string(&plan).unwrap()));
    let (c4, notes) = stored::choices_for(&other, 1);
    assert!(c4.is_empty() && notes[0].contains("another CPU"), "{notes:?}");
    other.set_metadata(stored::KEY, Some(text[..text.len() / 2].to_string()));
    let (c5, notes) = stored::choices_for(&other, 1);
    assert!(c5.is_empty() && notes[0].contains("corrupt"), "{notes:?}");

    // A model without a plan: no choices, nothing said.
    let (c6, notes) = stored::choices_for(&model(), 1);
    assert!(c6.is_empty() && notes.is_empty());
}

#[test]
fn tuning_measures_caches_and_reuses() {
    let d = TempDir::new("compile-cache");
    let cpu = CpuId::detect();
    let file = cache::file_for(&d.0, &cpu);
    let g = model();

    // Budget 0: heuristics only, no cache touched.
    let c0 = compile::compile(&g, &opts(Some(file.clone()), 0.0), &mut no_progress()).unwrap();
    assert!(c0.choices.is_empty() && !c0.kept_tuned);
    assert!(c0.layers.iter().all(|l| matches!(l.source, Source::Only | Source::Heuristic)));
    assert!(c0.layers.iter().all(|l| l.chosen == l.heuristic && l.times_ms.is_empty()));
    assert!(!file.exists(), "budget 0 must not write the cache");

    // A real tuning run measures every layer that has a choice, each with all its variants.
    let mut calls = 0;
    let c1 = compile::compile(&g, &opts(Some(file.clone()), 60.0), &mut |_, _, _| calls += 1).unwrap();
    assert!(calls > 0, "progress was reported");
    let tunable: Vec<_> = c1.layers.iter().filter(|l| l.source != Source::Only).collect();
    assert!(!tunable.is_empty());
    for l in &tunable {
        assert_eq!(l.source, Source::Measured, "{}", l.node);
        assert!(l.times_ms.len() >= 2, "{}: {:?}", l.node, l.times_ms);
        assert!(l.times_ms.contains_key(l.chosen.name()) && l.times_ms.contains_key(l.heuristic.name()));
        assert!(l.times_ms.values().all(|t| t.is_finite() && *t > 0.0));
        // The kept variant is the heuristic unless another measured faster.
        let best = l.times_ms.values().cloned().fold(f64::INFINITY, f64::min);
        if l.chosen != l.heuristic {
            assert_eq!(l.times_ms[l.chosen.name()], best, "{}", l.node);
        }
    }
    // The stored choices are the layers that changed, or none when the plan was not kept.
    let changed = c1.layers.iter().filter(|l| l.chosen != l.heuristic).count();
    assert_eq!(c1.choices.len(), changed);
    if !c1.choices.is_empty() {
        assert!(c1.kept_tuned && c1.tuned_ms.unwrap() < c1.heuristic_ms.unwrap());
    }
    assert!(file.exists());
    let k = cache::TuneCache::open(&file, &cpu);
    assert!(k.warnings.is_empty() && !k.is_empty());

    // A second compile of the same model is answered from the cache, with the same choices.
    let c2 = compile::compile(&g, &opts(Some(file.clone()), 60.0), &mut no_progress()).unwrap();
    for (a, b) in c1.layers.iter().zip(&c2.layers) {
        if a.source != Source::Only {
            assert_eq!(b.source, Source::Cached, "{}", b.node);
            assert_eq!(a.times_ms.len(), b.times_ms.len());
            for (v, t) in &a.times_ms {
                assert!((b.times_ms[v] - t).abs() <= 1e-9 * t, "{}: {v} {t} vs {}", b.node, b.times_ms[v]);
            }
        }
    }
    assert_eq!(c1.choices, c2.choices);
    assert!(c2.warnings.is_empty(), "{:?}", c2.warnings);

    // A corrupt cache is ignored with a warning, everything is measured again, and the file
    // is rebuilt.
    std::fs::write(&file, b"{\"format\": 1, \"entries\": [").unwrap();
    let c3 = compile::compile(&g, &opts(Some(file.clone()), 60.0), &mut no_progress()).unwrap();
    assert!(c3.warnings.iter().any(|w| w.contains("corrupt")), "{:?}", c3.warnings);
    assert!(c3.layers.iter().all(|l| l.source != Source::Cached));
    let k = cache::TuneCache::open(&file, &cpu);
    assert!(k.warnings.is_empty() && !k.is_empty(), "{:?}", k.warnings);
}

/// Choices are keyed by node name, so layers of files with unnamed (same-named) nodes are
/// left on the heuristic, with a warning, instead of sharing one measured choice.
#[test]
fn layers_with_shared_names_are_not_tuned() {
    use pare::ir::{Act, AutoPad, Conv, Op, known_shape};
    use pare::tensor::{DType, Tensor};
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[1, 16, 16, 16]));
    let conv = || {
        Op::Conv(Conv {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            auto_pad: AutoPad::NotSet,
            group: 1,
            act: Act::None,
        })
    };
    let w1 = g.add_const("w1", Tensor::from_vec(vec![16, 16, 3, 3], vec![0.01f32; 16 * 16 * 9]));
    let w2 = g.add_const("w2", Tensor::from_vec(vec![16, 16, 3, 3], vec![0.02f32; 16 * 16 * 9]));
    let y = g.add_node("Conv", conv(), vec![Some(x), Some(w1)]).unwrap()[0];
    let z = g.add_node("Conv", conv(), vec![Some(y), Some(w2)]).unwrap()[0];
    g.set_outputs(vec![z]);
    let c = compile::compile(&g, &opts(None, 60.0), &mut no_progress()).unwrap();
    assert_eq!(c.layers.len(), 2);
    assert!(c.layers.iter().all(|l| l.source == Source::Heuristic && l.chosen == l.heuristic));
    assert!(c.choices.is_empty());
    assert!(c.warnings.iter().any(|w| w.contains("share their node names")), "{:?}", c.warnings);
}

/// The `sgemm` variant of 1×1 convs (with bias, activation and a fused residual) computes
/// what the packed-GEMM kernel computes, and the tuner offers it.
#[test]
fn pointwise_conv_sgemm_variant_matches_gemm() {
    use pare::ir::{Act, AutoPad, Binary, Conv, Op, Unary, known_shape};
    use pare::tensor::{DType, Tensor};
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(9);
    let mut rand_t = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|_| r.random_range(-0.5f32..0.5)).collect())
    };
    let conv = Op::Conv(Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![0, 0, 0, 0],
        auto_pad: AutoPad::NotSet,
        group: 1,
        act: Act::None,
    });
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 16, 9, 7]));
    let (w1, b1) = (g.add_const("w1", rand_t(vec![32, 16, 1, 1])), g.add_const("b1", rand_t(vec![32])));
    let (w2, b2) = (g.add_const("w2", rand_t(vec![32, 32, 1, 1])), g.add_const("b2", rand_t(vec![32])));
    let a = g.add_node("pw1", conv.clone(), vec![Some(x), Some(w1), Some(b1)]).unwrap()[0];
    let ra = g.add_node("relu1", Op::Unary(Unary::Relu), vec![Some(a)]).unwrap()[0];
    let c = g.add_node("pw2", conv, vec![Some(ra), Some(w2), Some(b2)]).unwrap()[0];
    let s = g.add_node("res", Op::Binary(Binary::Add), vec![Some(c), Some(a)]).unwrap()[0];
    let y = g.add_node("relu2", Op::Unary(Unary::Relu), vec![Some(s)]).unwrap()[0];
    g.set_outputs(vec![y]);
    let inputs = random_inputs(&g, 1).unwrap();
    let o = RunOptions { threads: 2, optimize: true };
    let heur = Runtime::new(g.clone(), o.clone()).unwrap();
    let layers = heur.layers(&inputs).unwrap();
    assert_eq!(layers.len(), 2);
    for l in &layers {
        assert_eq!(Variant::candidates(&l.shape), vec![Variant::Gemm, Variant::Sgemm], "{}", l.node);
    }
    assert!(layers.iter().any(|l| l.signature.contains("residual=true")), "{layers:?}");
    let choices: HashMap<String, Variant> = layers.iter().map(|l| (l.node.clone(), Variant::Sgemm)).collect();
    let tuned = Runtime::with_choices(g, o, choices).unwrap();
    assert!(tuned.layers(&inputs).unwrap().iter().all(|l| l.variant == Variant::Sgemm));
    let want = heur.run(inputs.clone()).unwrap();
    let got = tuned.run(inputs).unwrap();
    let (w, gt) = (want[0].f32s().unwrap(), got[0].f32s().unwrap());
    let err = w.iter().zip(gt).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "sgemm 1x1 conv differs by {err}");
}
