use pare_kernels::Act;

#[test]
fn act_values() {
    assert_eq!(Act::Relu.apply(-1.0), 0.0);
    assert_eq!(Act::Relu.apply(2.0), 2.0);
    assert_eq!(Act::Clip { min: 0.0, max: 6.0 }.apply(7.0), 6.0);
    assert_eq!(Act::LeakyRelu(0.1).apply(-2.0), -0.2);
    assert!((Act::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
    assert_eq!(Act::HardSigmoid { alpha: 0.2, beta: 0.5 }.apply(10.0), 1.0);
    assert_eq!(Act::HardSwish.apply(-4.0), 0.0);
    assert_eq!(Act::HardSwish.apply(4.0), 4.0);
    assert!((Act::HardSwish.apply(1.0) - 1.0 * (1.0 / 6.0 + 0.5)).abs() < 1e-7);
}

#[test]
fn apply_slice_matches_apply() {
    let acts = [
        Act::None,
        Act::Relu,
        Act::Clip { min: -0.5, max: 0.7 },
        Act::LeakyRelu(0.01),
        Act::Sigmoid,
        Act::HardSigmoid { alpha: 0.2, beta: 0.5 },
        Act::HardSwish,
    ];
    let xs: Vec<f32> = (0..1037).map(|i| (i as f32 - 500.0) * 0.013).collect();
    for a in acts {
        let mut ys = xs.clone();
        a.apply_slice(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert!((a.apply(*x) - y).abs() <= 1e-6, "{a:?} at {x}");
        }
        let mut zs = xs.clone();
        pare_kernels::bias_act(&mut zs, 0.25, a);
        for (x, z) in xs.iter().zip(&zs) {
            assert!((a.apply(x + 0.25) - z).abs() <= 1e-6, "{a:?} bias at {x}");
        }
    }
}
