//! Kernel micro-benchmarks: `cargo run -p pare-kernels --release --example kbench [filter]`.
//! Prints median time and GFLOP/s (2 FLOP per multiply-accumulate) on a rayon
//! pool of `KBENCH_THREADS` threads (default 2). `KBENCH_MIN=1` reports the
//! fastest run instead of the median. The `cmp` entries time the previous
//! conv path (`conv_legacy`: im2col + the gemm crate, weights repacked per
//! call) against the packed path (`PackedConv` + `conv_packed`), interleaved.

use pare_kernels::{
    Act, ConvGeom, ConvNhwc, DepthwiseNhwc, PackedB, PackedConv, PoolGeom, conv, conv_legacy, conv_nhwc,
    conv_packed, depthwise_nhwc, gemm_packed_b, max_pool, nchw_to_nhwc, sgemm,
};
use std::time::Instant;

fn median_secs(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..5 {
        f();
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if std::env::var_os("KBENCH_MIN").is_some() {
        return t[0];
    }
    t[t.len() / 2]
}

fn report(name: &str, macs: f64, secs: f64) {
    println!("{name:<40} {:>10.1} us {:>8.1} GFLOP/s", secs * 1e6, 2.0 * macs / secs / 1e9);
}

fn vec_of(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect()
}

#[allow(clippy::too_many_arguments)]
fn geom(b: usize, ci: usize, co: usize, g: usize, hw: usize, k: usize, s: usize, p: usize) -> ConvGeom {
    ConvGeom {
        batch: b,
        c_in: ci,
        c_out: co,
        groups: g,
        in_spatial: vec![hw, hw],
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pads_begin: vec![p, p],
        pads_end: vec![p, p],
    }
}

fn selected(name: &str) -> bool {
    std::env::args().nth(1).is_none_or(|f| name.contains(&f))
}

fn bench_conv(name: &str, g: &ConvGeom, iters: usize) {
    if !selected(name) {
        return;
    }
    let x = vec_of(g.in_len());
    let w = vec_of(g.weight_len());
    let b = vec_of(g.c_out);
    let mut o = vec![0.0; g.out_len()];
    let t = median_secs(iters, || conv(g, &x, &w, Some(&b), Act::None, &mut o));
    report(name, g.macs() as f64, t);
}

/// Median (or minimum with `KBENCH_MIN`) of each of several closures, timed
/// in interleaved rounds so that machine noise hits them alike.
fn interleaved(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for f in fs.iter_mut() {
        for _ in 0..3 {
            f();
        }
    }
    let mut t = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let s = Instant::now();
            f();
            t[i].push(s.elapsed().as_secs_f64());
        }
    }
    t.into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            if std::env::var_os("KBENCH_MIN").is_some() { v[0] } else { v[v.len() / 2] }
        })
        .collect()
}

fn compare_conv(name: &str, g: &ConvGeom, rounds: usize) {
    let name = format!("cmp {name}");
    if !selected(&name) {
        return;
    }
    let x = vec_of(g.in_len());
    let w = vec_of(g.weight_len());
    let b = vec_of(g.c_out);
    let packed = PackedConv::new(g, &w);
    let (mut o1, mut o2) = (vec![0.0; g.out_len()], vec![0.0; g.out_len()]);
    let t = interleaved(
        rounds,
        &mut [&mut || conv_legacy(g, &x, &w, Some(&b), Act::Relu, &mut o1), &mut || {
            conv_packed(g, &x, &packed, Some(&b), Act::Relu, &mut o2)
        }],
    );
    let gf = |t: f64| 2.0 * g.macs() as f64 / t / 1e9;
    println!(
        "{name:<40} old {:>8.1} us {:>6.1} GFLOP/s | new {:>8.1} us {:>6.1} GFLOP/s | x{:.2}",
        t[0] * 1e6,
        gf(t[0]),
        t[1] * 1e6,
        gf(t[1]),
        t[0] / t[1]
    );
}

/// NCHW conv (the packed path) against the channels-last kernel on the same geometry, and
/// the cost of one NCHW → NHWC reorder of the input.
fn compare_nhwc(name: &str, g: &ConvGeom, rounds: usize) {
    let name = format!("nhwc {name}");
    if !selected(&name) {
        return;
    }
    let x = vec_of(g.in_len());
    let w = vec_of(g.weight_len());
    let b = vec_of(g.c_out);
    let packed = PackedConv::new(g, &w);
    let hw: usize = g.in_spatial.iter().product();
    let mut xh = vec![0.0; x.len()];
    nchw_to_nhwc(g.batch, g.c_in, hw, &x, &mut xh);
    let depthwise = g.groups > 1;
    let dw = depthwise.then(|| DepthwiseNhwc::new(g.c_out, g.kernel.iter().product(), &w));
    let cw = if depthwise { None } else { ConvNhwc::new(g, &w) };
    let (mut o1, mut o2, mut xr) = (vec![0.0; g.out_len()], vec![0.0; g.out_len()], vec![0.0; x.len()]);
    let t = interleaved(
        rounds,
        &mut [
            &mut || conv_packed(g, &x, &packed, Some(&b), Act::Relu, &mut o1),
            &mut || match (&dw, &cw) {
                (Some(d), _) => depthwise_nhwc(g, d, Some(&b), Act::Relu, &xh, &mut o2),
                (_, Some(c)) => conv_nhwc(g, c, Some(&b), Act::Relu, false, &xh, &mut o2),
                _ => {} // not pointwise: no NHWC kernel
            },
            &mut || nchw_to_nhwc(g.batch, g.c_in, hw, &x, &mut xr),
        ],
    );
    let gf = |t: f64| 2.0 * g.macs() as f64 / t / 1e9;
    println!(
        "{name:<40} nchw {:>8.1} us {:>6.1} GFLOP/s | nhwc {:>8.1} us {:>6.1} GFLOP/s | x{:.2} | reorder {:.1} us",
        t[0] * 1e6,
        gf(t[0]),
        t[1] * 1e6,
        gf(t[1]),
        t[0] / t[1],
        t[2] * 1e6
    );
}

fn compare_dense(m: usize, k: usize, n: usize, rounds: usize) {
    let name = format!("cmp dense m={m} k={k} n={n}");
    if !selected(&name) {
        return;
    }
    let x = vec_of(m * k);
    let w = vec_of(k * n);
    let bias = vec_of(n);
    let pb = PackedB::new(k, n, &w);
    let (mut y1, mut y2) = (vec![0.0; m * n], vec![0.0; m * n]);
    let t = interleaved(
        rounds,
        &mut [
            &mut || {
                sgemm(m, n, k, 1.0, &x, k, false, &w, n, false, 0.0, &mut y1, n);
                for r in y1.chunks_mut(n) {
                    r.iter_mut().zip(&bias).for_each(|(o, b)| *o = (*o + b).max(0.0));
                }
            },
            &mut || gemm_packed_b(m, &x, k, &pb, Some(&bias), Act::Relu, &mut y2, n),
        ],
    );
    let gf = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
    println!(
        "{name:<40} old {:>8.1} us {:>6.1} GFLOP/s | new {:>8.1} us {:>6.1} GFLOP/s | x{:.2}",
        t[0] * 1e6,
        gf(t[0]),
        t[1] * 1e6,
        gf(t[1]),
        t[0] / t[1]
    );
}

fn main() {
    let threads = std::env::var("KBENCH_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(run);
}

fn run() {
    println!("rayon threads: {}, isa {:?}", rayon::current_num_threads(), pare_kernels::isa());
    compare_conv("conv 3x3 64->64 56x56 b1", &geom(1, 64, 64, 1, 56, 3, 1, 1), 40);
    compare_conv("conv 1x1 256->64 56x56 b1", &geom(1, 256, 64, 1, 56, 1, 1, 0), 40);
    compare_conv("conv 1x1 96->576 14x14 b1", &geom(1, 96, 576, 1, 14, 1, 1, 0), 60);
    compare_conv("conv 3x3 512->512 7x7 b1", &geom(1, 512, 512, 1, 7, 3, 1, 1), 30);
    compare_conv("conv 1x1 144->24 56x56 b1", &geom(1, 144, 24, 1, 56, 1, 1, 0), 40);
    compare_conv("conv 3x3 s2 3->32 224x224 b1", &geom(1, 3, 32, 1, 224, 3, 2, 1), 40);
    compare_conv("conv 3x3 s2 128->128 56x56 b1", &geom(1, 128, 128, 1, 56, 3, 2, 1), 30);
    compare_conv("conv 3x3 64->64 56x56 b4", &geom(4, 64, 64, 1, 56, 3, 1, 1), 20);
    for (n, g) in [
        ("dw 3x3 s1 144 56x56 b1", geom(1, 144, 144, 144, 56, 3, 1, 1)),
        ("dw 3x3 s2 96 112x112 b1", geom(1, 96, 96, 96, 112, 3, 2, 1)),
        ("dw 3x3 s1 32 112x112 b1", geom(1, 32, 32, 32, 112, 3, 1, 1)),
        ("dw 3x3 s1 576 14x14 b1", geom(1, 576, 576, 576, 14, 3, 1, 1)),
        ("dw 3x3 s1 960 7x7 b1", geom(1, 960, 960, 960, 7, 3, 1, 1)),
        ("dw 3x3 s1 960 7x7 b32", geom(32, 960, 960, 960, 7, 3, 1, 1)),
        ("pw 16->96 112x112 b1", geom(1, 16, 96, 1, 112, 1, 1, 0)),
        ("pw 144->24 56x56 b1", geom(1, 144, 24, 1, 56, 1, 1, 0)),
        ("pw 32->16 112x112 b1", geom(1, 32, 16, 1, 112, 1, 1, 0)),
        ("pw 96->576 14x14 b1", geom(1, 96, 576, 1, 14, 1, 1, 0)),
        ("pw 320->1280 7x7 b1", geom(1, 320, 1280, 1, 7, 1, 1, 0)),
        ("pw 960->160 7x7 b1", geom(1, 960, 160, 1, 7, 1, 1, 0)),
        ("stem 3x3 s2 3->32 224x224 b1", geom(1, 3, 32, 1, 224, 3, 2, 1)),
    ] {
        compare_nhwc(n, &g, 40);
    }
    compare_dense(1, 2048, 1000, 100);
    // 1x1 convs on NHWC activations (rows = positions): narrow outputs.
    compare_dense(3136, 144, 24, 40);
    compare_dense(3136, 144, 48, 40);
    compare_dense(12544, 32, 16, 40);
    compare_dense(784, 192, 32, 40);
    compare_dense(3136, 24, 144, 40);
    compare_dense(32, 2048, 1000, 30);

    let n = 1024;
    if selected("sgemm 1024^3") {
        let a = vec_of(n * n);
        let b = vec_of(n * n);
        let mut c = vec![0.0; n * n];
        let t = median_secs(30, || sgemm(n, n, n, 1.0, &a, n, false, &b, n, false, 0.0, &mut c, n));
        report("sgemm 1024^3", (n * n * n) as f64, t);
    }

    bench_conv("conv 3x3 64->64 56x56 b1", &geom(1, 64, 64, 1, 56, 3, 1, 1), 50);
    bench_conv("dw 3x3 s1 [1,144,56,56]", &geom(1, 144, 144, 144, 56, 3, 1, 1), 50);
    bench_conv("dw 3x3 s2 [1,144,56,56]", &geom(1, 144, 144, 144, 56, 3, 2, 1), 50);
    bench_conv("dw 3x3 s2 [1,576,14,14]", &geom(1, 576, 576, 576, 14, 3, 2, 1), 500);
    bench_conv("dw 3x3 s1 [1,576,14,14]", &geom(1, 576, 576, 576, 14, 3, 1, 1), 500);
    bench_conv("dw 3x3 s1 [1,960,7,7]", &geom(1, 960, 960, 960, 7, 3, 1, 1), 500);
    bench_conv("dw 3x3 s2 [32,576,14,14]", &geom(32, 576, 576, 576, 14, 3, 2, 1), 30);
    bench_conv("dw 3x3 s1 [32,960,7,7]", &geom(32, 960, 960, 960, 7, 3, 1, 1), 30);
    bench_conv("dw 3x3 s2 [1,96,112,112]", &geom(1, 96, 96, 96, 112, 3, 2, 1), 200);
    bench_conv("dw small 3x3 s1 [1,4,56,56]", &geom(1, 4, 4, 4, 56, 3, 1, 1), 2000);
    bench_conv("dw small 3x3 s1 nopad [1,4,58,58]", &geom(1, 4, 4, 4, 58, 3, 1, 0), 2000);
    bench_conv("conv 1x1 144->24 56x56 b1", &geom(1, 144, 24, 1, 56, 1, 1, 0), 50);
    bench_conv("conv 3x3 s2 3->32 224x224 b1", &geom(1, 3, 32, 1, 224, 3, 2, 1), 50);
    bench_conv("conv 3x3 512->512 7x7 b1", &geom(1, 512, 512, 1, 7, 3, 1, 1), 30);

    // LeNet-5 style forward at batch 1 (conv/pool only; the FC layers are
    // tiny GEMVs): measures small-problem overhead.
    if !selected("LeNet") {
        return;
    }
    let c1 = geom(1, 1, 6, 1, 28, 5, 1, 2);
    let c2 = geom(1, 6, 16, 1, 14, 5, 1, 0);
    let p1 = PoolGeom {
        batch_channels: 6,
        in_spatial: vec![28, 28],
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads_begin: vec![0, 0],
        pads_end: vec![0, 0],
        out_spatial: vec![14, 14],
    };
    let p2 = PoolGeom { batch_channels: 16, in_spatial: vec![10, 10], out_spatial: vec![5, 5], ..p1.clone() };
    let (x, w1, w2) = (vec_of(784), vec_of(c1.weight_len()), vec_of(c2.weight_len()));
    let (f1, f2, f3) = (vec_of(400 * 120), vec_of(120 * 84), vec_of(84 * 10));
    let (mut o1, mut q1, mut o2, mut q2) =
        (vec![0.0; 6 * 784], vec![0.0; 6 * 196], vec![0.0; 1600], vec![0.0; 400]);
    let (mut h1, mut h2, mut h3) = (vec![0.0; 120], vec![0.0; 84], vec![0.0; 10]);
    let t = median_secs(200, || {
        conv(&c1, &x, &w1, None, Act::Relu, &mut o1);
        max_pool(&p1, &o1, &mut q1, None);
        conv(&c2, &q1, &w2, None, Act::Relu, &mut o2);
        max_pool(&p2, &o2, &mut q2, None);
        sgemm(1, 120, 400, 1.0, &q2, 400, false, &f1, 120, false, 0.0, &mut h1, 120);
        sgemm(1, 84, 120, 1.0, &h1, 120, false, &f2, 84, false, 0.0, &mut h2, 84);
        sgemm(1, 10, 84, 1.0, &h2, 84, false, &f3, 10, false, 0.0, &mut h3, 10);
    });
    let macs = c1.macs() + c2.macs() + 400 * 120 + 120 * 84 + 84 * 10;
    report("LeNet-5 forward b1 (conv+pool+fc)", macs as f64, t);
}
