//! `pare train`, `pare eval` and `pare demo` end to end on the MNIST subset the repository
//! carries (assets/mnist-subset), including resume, onnxruntime loading of the result, and
//! the bad-input errors.

mod common;

use common::{fails_with, s};
use pare::tensor::{Tensor, write_npz};
use std::process::{Command, Output};

const SUBSET: &str = concat!("mnist:", env!("CARGO_MANIFEST_DIR"), "/assets/mnist-subset");

fn pare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pare")).args(args).output().expect("run pare")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pare failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn train_eval_resume_and_onnxruntime() {
    let tmp = common::TempDir::new("train");
    let out = tmp.0.join("mlp.onnx");
    let o = ok(&pare(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        SUBSET,
        "--epochs",
        "2",
        "--batch",
        "64",
        "--lr",
        "0.05",
        "--limit",
        "4000",
        "--json",
        "-o",
        s(&out),
    ]));
    let lines: Vec<serde_json::Value> = o.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{o}");
    assert_eq!(lines[1]["epoch"], 1);
    let acc = lines[1]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "2 epochs on 4,000 images should reach 85 %, got {acc}");
    assert!(out.exists() && tmp.0.join("mlp.ckpt.npz").exists());

    // eval agrees with the training log, and the JSON has the confusion matrix.
    let e: serde_json::Value =
        serde_json::from_str(&ok(&pare(&["eval", s(&out), "--data", SUBSET, "--json"]))).unwrap();
    assert!((e["top1"].as_f64().unwrap() - acc).abs() < 1e-9);
    assert_eq!(e["confusion"].as_array().unwrap().len(), 10);
    assert_eq!(e["samples"], 2000);
    let text = ok(&pare(&["eval", s(&out), "--data", SUBSET]));
    assert!(text.contains("top-1") && text.contains("top-5") && text.contains("per class"), "{text}");

    // Resume for one more epoch from the checkpoint.
    let out2 = tmp.0.join("mlp3.onnx");
    let o = ok(&pare(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        SUBSET,
        "--epochs",
        "3",
        "--batch",
        "64",
        "--lr",
        "0.05",
        "--limit",
        "4000",
        "--resume",
        s(&tmp.0.join("mlp.ckpt.npz")),
        "-o",
        s(&out2),
    ]));
    assert!(o.contains("resumed") && o.contains("epoch   3/3") && !o.contains("epoch   1/3"), "{o}");

    // The trained model runs in onnxruntime with the same outputs as in pare.
    if !common::have_python("numpy, onnxruntime") {
        return;
    }
    let g = pare::onnx::load(&out).unwrap();
    let x = Tensor::from_vec(
        vec![3, 1, 28, 28],
        (0..3 * 784).map(|i| (i % 255) as f32 / 255.0).collect::<Vec<_>>(),
    );
    let rt = pare::runtime::Runtime::new(g.with_batch(3).unwrap(), Default::default()).unwrap();
    let want = rt.run(vec![x.clone()]).unwrap();
    let (inp, res) = (tmp.0.join("in.npz"), tmp.0.join("out.npz"));
    write_npz(&inp, &[("input".into(), x)]).unwrap();
    let st = Command::new(common::python())
        .args([s(&common::root().join("tests/py/ort_run.py")), s(&out), s(&inp), s(&res)])
        .status()
        .unwrap();
    assert!(st.success());
    let got = pare::tensor::read_npz(&res).unwrap();
    let (a, b) = (want[0].f32s().unwrap(), got[0].1.f32s().unwrap());
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4), "{a:?} vs {b:?}");
}

#[test]
fn demo_trains_lenet5_quickly() {
    let tmp = common::TempDir::new("demo");
    let o = ok(&pare(&["demo", "--epochs", "2", "--output-dir", s(&tmp.0)]));
    for needle in
        ["1. train", "2. evaluate", "3. inspect", "5. benchmark", "re-imported: same top-1", "summary"]
    {
        assert!(o.contains(needle), "demo output lacks {needle:?}:\n{o}");
    }
    let line = o.lines().find(|l| l.contains("test top-1")).unwrap();
    let pct: f64 = line.split_whitespace().nth(2).unwrap().trim_end_matches('%').parse().unwrap();
    assert!(pct > 95.0, "two epochs on 10,000 images should reach 95 %: {line}");
    assert!(tmp.0.join("lenet5-mnist.onnx").exists());
}

#[test]
fn bad_training_input_is_a_clear_error() {
    let tmp = common::TempDir::new("trainbad");
    let out = tmp.0.join("m.onnx");
    // Data that does not fit the model's input.
    let csv = tmp.0.join("train.csv");
    std::fs::write(&csv, "label,a,b,c\n0,1,2,3\n1,3,2,1\n").unwrap();
    std::fs::write(tmp.0.join("test.csv"), "label,a,b,c\n0,1,2,3\n").unwrap();
    let spec = format!("csv:{}", tmp.0.display());
    fails_with(
        &pare(&["train", "--model", "lenet-5", "--data", &spec, "--batch", "2", "-o", s(&out)]),
        &["data samples [3] do not fit the model input", "[2,1,28,28]"],
    );
    // More classes in the data than the model predicts (labels out of range for the model).
    let x = Tensor::from_vec(vec![4, 784], vec![0.5f32; 4 * 784]);
    let y = Tensor::from_vec(vec![4], vec![0i64, 3, 11, 2]);
    let npz = tmp.0.join("d.npz");
    write_npz(&npz, &[("x".into(), x), ("y".into(), y)]).unwrap();
    let mlp = tmp.0.join("mlp.onnx");
    pare::onnx::save(&pare::zoo::build("lenet-300-100", 10, 0).unwrap(), &mlp).unwrap();
    fails_with(
        &pare(&[
            "train",
            "--model",
            s(&mlp),
            "--data",
            &format!("npz:{}", npz.display()),
            "--batch",
            "2",
            "-o",
            s(&out),
        ]),
        &["predicts 10 classes but the data has 12"],
    );
    // An empty dataset.
    std::fs::write(&csv, "label,a,b,c\n").unwrap();
    fails_with(&pare(&["train", "--model", "lenet-5", "--data", &spec, "-o", s(&out)]), &["no data rows"]);
    // A diverging run names the step and the last good checkpoint, and writes no output.
    let o = pare(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        SUBSET,
        "--limit",
        "1024",
        "--epochs",
        "3",
        "--lr",
        "1e9",
        "--optimizer",
        "sgd",
        "--schedule",
        "constant",
        "--no-eval",
        "-o",
        s(&out),
    ]);
    fails_with(&o, &["the loss became", "at step"]);
    assert!(!out.exists(), "no output may be written after a failure");
    // An unknown zoo model lists the known ones; a bad spec lists the accepted forms.
    fails_with(
        &pare(&["train", "--model", "lenet-9", "--data", SUBSET, "-o", s(&out)]),
        &["lenet-300-100", "resnet-20"],
    );
    fails_with(
        &pare(&["train", "--model", "lenet-5", "--data", "bogus:x", "-o", s(&out)]),
        &["accepted forms"],
    );
}
