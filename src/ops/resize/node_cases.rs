// Generated from /tmp/nodetests/node/test_resize_*/ (inputs and expected outputs of test_data_set_0).

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_cubic() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,0.8,0.8]))];
    let want = vec![tf(&[1,1,3,3], &[1.4711914,2.78125,4.0825195,6.711426,8.021484,9.322754,11.916504,13.2265625,14.527832])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_cubic_a_n0p5_exclude_outside() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.5, exclude_outside: true, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,0.8,0.8]))];
    let want = vec![tf(&[1,1,3,3], &[1.3681267,2.6695013,4.0133367,6.573625,7.875,9.218835,11.948966,13.250341,14.594176])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_cubic_align_corners() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "align_corners".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,0.8,0.8]))];
    let want = vec![tf(&[1,1,3,3], &[1.0,2.3951917,3.790383,6.580766,7.975958,9.371149,12.161532,13.556724,14.951916])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_linear() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, Some(tf(&[4], &[1.0,1.0,0.6,0.6]))];
    let want = vec![tf(&[1,1,1,2], &[2.6666665,4.333333])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_linear_align_corners() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "align_corners".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, Some(tf(&[4], &[1.0,1.0,0.6,0.6]))];
    let want = vec![tf(&[1,1,1,2], &[1.0,3.142857])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_linear_half_pixel_symmetric() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "half_pixel_symmetric".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,1,4], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[4], &[1.0,1.0,1.0,0.6]))];
    let want = vec![tf(&[1,1,1,2], &[1.6666667,3.3333333])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_scales_nearest() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, Some(tf(&[4], &[1.0,1.0,0.6,0.6]))];
    let want = vec![tf(&[1,1,1,2], &[1.0,3.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_sizes_cubic() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,3,3]))];
    let want = vec![tf(&[1,1,3,3], &[1.630787,3.0046296,4.3784723,7.1261573,8.5,9.873842,12.621528,13.99537,15.369213])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_sizes_linear_pytorch_half_pixel() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "pytorch_half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,3,1]))];
    let want = vec![tf(&[1,1,3,1], &[1.6666666,7.0,12.333333])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_sizes_nearest() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, None, Some(ti(&[4], &[1,1,1,3]))];
    let want = vec![tf(&[1,1,1,3], &[1.0,2.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_sizes_nearest_not_larger() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "not_larger".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, None, Some(ti(&[2], &[1,3]))];
    let want = vec![tf(&[1,1,1,2], &[1.0,3.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_downsample_sizes_nearest_not_smaller() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "not_smaller".into() });
    let ins = vec![Some(tf(&[1,1,2,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0])), None, None, Some(ti(&[2], &[1,3]))];
    let want = vec![tf(&[1,1,2,3], &[1.0,2.0,4.0,5.0,6.0,8.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_tf_crop_and_resize() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "tf_crop_and_resize".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), Some(tf(&[8], &[0.0,0.0,0.4,0.6,1.0,1.0,0.6,0.8])), None, Some(ti(&[4], &[1,1,3,3]))];
    let want = vec![tf(&[1,1,3,3], &[7.6000004,7.9,8.2,8.8,9.1,9.400001,10.0,10.3,10.6])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_tf_crop_and_resize_axes_2_3() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "tf_crop_and_resize".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), Some(tf(&[4], &[0.4,0.6,0.6,0.8])), None, Some(ti(&[2], &[3,3]))];
    let want = vec![tf(&[1,1,3,3], &[7.6000004,7.9,8.2,8.8,9.1,9.400001,10.0,10.3,10.6])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_tf_crop_and_resize_axes_3_2() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "tf_crop_and_resize".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![3,2], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), Some(tf(&[4], &[0.6,0.4,0.8,0.6])), None, Some(ti(&[2], &[3,3]))];
    let want = vec![tf(&[1,1,3,3], &[7.6000004,7.9,8.2,8.8,9.1,9.400001,10.0,10.3,10.6])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_tf_crop_and_resize_extrapolation_value() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "tf_crop_and_resize".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 10.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), Some(tf(&[8], &[0.0,0.0,0.4,0.6,1.0,1.0,1.2,1.7])), None, Some(ti(&[4], &[1,1,3,3]))];
    let want = vec![tf(&[1,1,3,3], &[7.6000004,10.0,10.0,12.400001,10.0,10.0,10.0,10.0,10.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_cubic() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,8,8], &[0.47265625,0.76953125,1.2460938,1.875,2.28125,2.9101562,3.3867188,3.6835938,1.6601562,1.9570312,2.4335938,3.0625,3.46875,4.0976562,4.5742188,4.8710938,3.5664062,3.8632812,4.3398438,4.96875,5.375,6.0039062,6.4804688,6.7773438,6.0820312,6.3789062,6.8554688,7.484375,7.890625,8.519531,8.996094,9.292969,7.7070312,8.003906,8.480469,9.109375,9.515625,10.144531,10.621094,10.917969,10.222656,10.519531,10.996094,11.625,12.03125,12.660156,13.136719,13.433594,12.128906,12.425781,12.902344,13.53125,13.9375,14.566406,15.042969,15.339844,13.316406,13.613281,14.089844,14.71875,15.125,15.753906,16.230469,16.527344])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_cubic_a_n0p5_exclude_outside() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.5, exclude_outside: true, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,8,8], &[0.5588235,0.81494206,1.3569825,1.8970588,2.3970587,2.9371352,3.4791756,3.735294,1.5832976,1.839416,2.3814566,2.9215329,3.4215329,3.9616091,4.5036497,4.759768,3.7514594,4.007578,4.5496182,5.0896945,5.5896945,6.1297708,6.6718116,6.92793,5.9117646,6.1678834,6.7099237,7.25,7.75,8.290076,8.832117,9.088235,7.9117646,8.167883,8.709924,9.25,9.75,10.290076,10.832117,11.088235,10.07207,10.328189,10.870229,11.410305,11.910305,12.450381,12.992422,13.248541,12.2402315,12.49635,13.038391,13.578467,14.078467,14.618544,15.1605835,15.416702,13.264706,13.520824,14.062865,14.6029415,15.1029415,15.643018,16.185059,16.441177])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_cubic_align_corners() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "align_corners".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,1.3411078,1.8002915,2.329446,2.670554,3.1997085,3.6588922,4.0,2.3644314,2.7055395,3.164723,3.6938775,4.0349855,4.56414,5.0233235,5.3644314,4.201166,4.542274,5.0014577,5.5306125,5.8717203,6.4008746,6.8600583,7.201166,6.3177843,6.658892,7.118076,7.64723,7.988338,8.517492,8.976676,9.317784,7.6822157,8.023324,8.482508,9.011662,9.35277,9.881925,10.341108,10.682216,9.798834,10.139941,10.599125,11.12828,11.469388,11.998542,12.457726,12.798834,11.635569,11.976676,12.43586,12.965014,13.306123,13.835277,14.29446,14.635569,13.0,13.341108,13.800292,14.329446,14.670554,15.199708,15.658892,16.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_cubic_asymmetric() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "asymmetric".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,1.40625,2.0,2.5,3.0,3.59375,4.0,4.09375,2.625,3.03125,3.625,4.125,4.625,5.21875,5.625,5.71875,5.0,5.40625,6.0,6.5,7.0,7.59375,8.0,8.09375,7.0,7.40625,8.0,8.5,9.0,9.59375,10.0,10.09375,9.0,9.40625,10.0,10.5,11.0,11.59375,12.0,12.09375,11.375,11.78125,12.375,12.875,13.375,13.96875,14.375,14.46875,13.0,13.40625,14.0,14.5,15.0,15.59375,16.0,16.09375,13.375,13.78125,14.375,14.875,15.375,15.96875,16.375,16.46875])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_linear() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,4,4], &[1.0,1.25,1.75,2.0,1.5,1.75,2.25,2.5,2.5,2.75,3.25,3.5,3.0,3.25,3.75,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_linear_align_corners() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "align_corners".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,2.0]))];
    let want = vec![tf(&[1,1,4,4], &[1.0,1.3333334,1.6666666,2.0,1.6666666,2.0,2.3333333,2.6666667,2.3333333,2.6666667,3.0,3.3333333,3.0,3.3333333,3.6666667,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_linear_half_pixel_symmetric() {
    let op = Op::Resize(Resize { mode: ResizeMode::Linear, coord_mode: "half_pixel_symmetric".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[4], &[1.0,1.0,2.3,2.94]))];
    let want = vec![tf(&[1,1,4,5], &[1.0,1.159864,1.5,1.840136,2.0,1.5652174,1.7250813,2.0652175,2.4053535,2.5652175,2.4347825,2.5946465,2.9347825,3.2749186,3.4347825,3.0,3.159864,3.5,3.840136,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_nearest() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[4], &[1.0,1.0,2.0,3.0]))];
    let want = vec![tf(&[1,1,4,6], &[1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,2.0,2.0,2.0,3.0,3.0,3.0,4.0,4.0,4.0,3.0,3.0,3.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_nearest_axes_2_3() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[2], &[2.0,3.0]))];
    let want = vec![tf(&[1,1,4,6], &[1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,2.0,2.0,2.0,3.0,3.0,3.0,4.0,4.0,4.0,3.0,3.0,3.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_scales_nearest_axes_3_2() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![3,2], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, Some(tf(&[2], &[3.0,2.0]))];
    let want = vec![tf(&[1,1,4,6], &[1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,2.0,2.0,2.0,3.0,3.0,3.0,4.0,4.0,4.0,3.0,3.0,3.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_cubic() {
    let op = Op::Resize(Resize { mode: ResizeMode::Cubic, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,9,10]))];
    let want = vec![tf(&[1,1,9,10], &[0.45507923,0.6405792,0.9715792,1.4225792,1.9073292,2.2233293,2.708079,3.1590793,3.4900792,3.6755793,1.3943796,1.5798796,1.9108796,2.3618796,2.8466296,3.1626296,3.6473796,4.0983796,4.4293795,4.6148796,2.9513068,3.136807,3.4678068,3.918807,4.403557,4.719557,5.204307,5.655307,5.986307,6.171807,5.2052507,5.390751,5.7217507,6.1727505,6.6575007,6.9735007,7.4582505,7.9092507,8.240251,8.425751,6.88975,7.07525,7.40625,7.85725,8.342,8.658,9.14275,9.59375,9.92475,10.11025,8.574249,8.759749,9.09075,9.541749,10.0265,10.3425,10.82725,11.27825,11.609249,11.794749,10.828193,11.013693,11.344693,11.795693,12.280443,12.596443,13.081193,13.532193,13.8631935,14.048693,12.38512,12.570621,12.90162,13.35262,13.83737,14.15337,14.638121,15.08912,15.42012,15.60562,13.324421,13.509921,13.84092,14.291921,14.77667,15.09267,15.577421,16.028421,16.35942,16.54492])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, None, Some(ti(&[4], &[1,1,7,8]))];
    let want = vec![tf(&[1,1,7,8], &[1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_axes_2_3() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, None, Some(ti(&[2], &[7,8]))];
    let want = vec![tf(&[1,1,7,8], &[1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_axes_3_2() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![3,2], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, None, Some(ti(&[2], &[8,7]))];
    let want = vec![tf(&[1,1,7,8], &[1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_ceil_half_pixel() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "ceil".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,8,8]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,2.0,2.0,3.0,3.0,4.0,4.0,4.0,5.0,6.0,6.0,7.0,7.0,8.0,8.0,8.0,5.0,6.0,6.0,7.0,7.0,8.0,8.0,8.0,9.0,10.0,10.0,11.0,11.0,12.0,12.0,12.0,9.0,10.0,10.0,11.0,11.0,12.0,12.0,12.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_floor_align_corners() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "align_corners".into(), nearest_mode: "floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,8,8]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,1.0,1.0,2.0,2.0,3.0,3.0,4.0,1.0,1.0,1.0,2.0,2.0,3.0,3.0,4.0,1.0,1.0,1.0,2.0,2.0,3.0,3.0,4.0,5.0,5.0,5.0,6.0,6.0,7.0,7.0,8.0,5.0,5.0,5.0,6.0,6.0,7.0,7.0,8.0,9.0,9.0,9.0,10.0,10.0,11.0,11.0,12.0,9.0,9.0,9.0,10.0,10.0,11.0,11.0,12.0,13.0,13.0,13.0,14.0,14.0,15.0,15.0,16.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_not_larger() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "not_larger".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, None, Some(ti(&[2], &[7,8]))];
    let want = vec![tf(&[1,1,7,7], &[1.0,1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_not_smaller() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "half_pixel".into(), nearest_mode: "round_prefer_floor".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![2,3], aspect_policy: "not_smaller".into() });
    let ins = vec![Some(tf(&[1,1,2,2], &[1.0,2.0,3.0,4.0])), None, None, Some(ti(&[2], &[7,8]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,1.0,1.0,1.0,1.0,2.0,2.0,2.0,2.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0,3.0,3.0,3.0,3.0,4.0,4.0,4.0,4.0])];
    check(&op, ins, &want);
}

#[rustfmt::skip]
#[test]
fn node_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric() {
    let op = Op::Resize(Resize { mode: ResizeMode::Nearest, coord_mode: "asymmetric".into(), nearest_mode: "round_prefer_ceil".into(), cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, axes: vec![], aspect_policy: "stretch".into() });
    let ins = vec![Some(tf(&[1,1,4,4], &[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0,13.0,14.0,15.0,16.0])), None, None, Some(ti(&[4], &[1,1,8,8]))];
    let want = vec![tf(&[1,1,8,8], &[1.0,2.0,2.0,3.0,3.0,4.0,4.0,4.0,5.0,6.0,6.0,7.0,7.0,8.0,8.0,8.0,5.0,6.0,6.0,7.0,7.0,8.0,8.0,8.0,9.0,10.0,10.0,11.0,11.0,12.0,12.0,12.0,9.0,10.0,10.0,11.0,11.0,12.0,12.0,12.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0,13.0,14.0,14.0,15.0,15.0,16.0,16.0,16.0])];
    check(&op, ins, &want);
}

