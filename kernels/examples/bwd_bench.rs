//! Convolution training-step benchmarks (forward, grad-input, grad-weight):
//! `cargo run -p pare-kernels --release --example bwd_bench [filter]`.
//! Prints median time and GFLOP/s (2 FLOP per multiply-accumulate) over the
//! global rayon pool.

use pare_kernels::{Act, ConvGeom, conv, conv_grad_input, conv_grad_weight};
use std::time::Instant;

fn median_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn vec_of(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect()
}

#[allow(clippy::too_many_arguments)]
fn geom(b: usize, ci: usize, co: usize, g: usize, hw: usize, k: usize, p: usize) -> ConvGeom {
    ConvGeom {
        batch: b,
        c_in: ci,
        c_out: co,
        groups: g,
        in_spatial: vec![hw, hw],
        kernel: vec![k, k],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads_begin: vec![p, p],
        pads_end: vec![p, p],
    }
}

fn main() {
    let filter = std::env::args().nth(1);
    let iters: usize = std::env::var("BWD_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    println!("rayon threads: {}", rayon::current_num_threads());
    println!("{:<44} {:>22} {:>22} {:>22}", "layer", "forward", "grad_input", "grad_weight");
    let cases = [
        ("LeNet conv1 N64 1->20 28x28 k5", geom(64, 1, 20, 1, 28, 5, 0)),
        ("LeNet conv2 N64 20->50 12x12 k5", geom(64, 20, 50, 1, 12, 5, 0)),
        ("ResNet20 N128 16->16 32x32 k3p1", geom(128, 16, 16, 1, 32, 3, 1)),
        ("ResNet20 N128 64->64 8x8 k3p1", geom(128, 64, 64, 1, 8, 3, 1)),
        ("depthwise N128 96ch 16x16 k3p1", geom(128, 96, 96, 96, 16, 3, 1)),
    ];
    for (name, g) in &cases {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let x = vec_of(g.in_len());
        let w = vec_of(g.weight_len());
        let dy = vec_of(g.out_len());
        let mut y = vec![0.0; g.out_len()];
        let mut dx = vec![0.0; g.in_len()];
        let mut dw = vec![0.0; g.weight_len()];
        let gflops = |ms: f64| 2.0 * g.macs() as f64 / ms / 1e6;
        let tf = median_ms(iters, || conv(g, &x, &w, None, Act::None, &mut y));
        let ti = median_ms(iters, || conv_grad_input(g, &dy, &w, &mut dx));
        let tw = median_ms(iters, || conv_grad_weight(g, &x, &dy, &mut dw));
        let cell = |ms: f64| format!("{ms:8.3} ms {:7.1} GF/s", gflops(ms));
        println!("{name:<44} {:>22} {:>22} {:>22}", cell(tf), cell(ti), cell(tw));
    }
}
