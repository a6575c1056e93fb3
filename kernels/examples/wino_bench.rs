//! Winograd vs im2col benchmark:
//! `cargo run -p pare-kernels --release --example wino_bench [filter]`.
//!
//! Runs inside a 2-thread rayon pool and prints the median time and
//! effective GFLOP/s (`2 * macs / time`, direct-convolution MACs) of
//! [`pare_kernels::conv`] (im2col + GEMM) and [`WinogradConv`] F2 / F4.

use pare_kernels::{Act, ConvGeom, WinoTile, WinogradConv, conv};
use std::time::Instant;

fn median_secs(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn vec_of(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect()
}

fn geom(batch: usize, c: usize, hw: usize) -> ConvGeom {
    ConvGeom {
        batch,
        c_in: c,
        c_out: c,
        groups: 1,
        in_spatial: vec![hw, hw],
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads_begin: vec![1, 1],
        pads_end: vec![1, 1],
    }
}

fn main() {
    let filter = std::env::args().nth(1);
    let iters: usize = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let cases = [(1, 64, 56), (1, 128, 28), (1, 256, 14), (1, 512, 7), (8, 64, 56)];
    println!("{:<28} {:>16} {:>16} {:>16}", "conv 3x3 pad 1", "im2col", "wino F2", "wino F4");
    pool.install(|| {
        for (b, c, hw) in cases {
            let name = format!("{c}->{c} {hw}x{hw} b{b}");
            if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            let g = geom(b, c, hw);
            let x = vec_of(g.in_len());
            let w = vec_of(g.weight_len());
            let bias = vec_of(c);
            let mut out = vec![0.0; g.out_len()];
            let gf = |s: f64| 2.0 * g.macs() as f64 / s / 1e9;
            let t0 = median_secs(iters, || conv(&g, &x, &w, Some(&bias), Act::Relu, &mut out));
            let mut row = format!("{name:<28} {:>7.0}us {:>6.1}", t0 * 1e6, gf(t0));
            for tile in [WinoTile::F2, WinoTile::F4] {
                let wc = WinogradConv::new(tile, c, c, &w);
                let t = median_secs(iters, || wc.run(&g, &x, Some(&bias), false, Act::Relu, &mut out));
                row += &format!(" {:>7.0}us {:>6.1}", t * 1e6, gf(t));
            }
            println!("{row}");
        }
    });
}
