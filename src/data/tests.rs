use super::*;
use crate::tensor::{Tensor, write_npz};
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

fn err<T: fmt::Debug>(r: Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn spec_parsing() {
    assert_eq!(parse_spec("mnist:/a/b").unwrap(), DataSpec::Mnist("/a/b".into()));
    assert_eq!(parse_spec("fashion-mnist:x").unwrap(), DataSpec::Mnist("x".into()));
    assert_eq!(parse_spec("cifar10:c.tar.gz").unwrap(), DataSpec::Folder("c.tar.gz".into()));
    assert_eq!(parse_spec("folder:imgs").unwrap(), DataSpec::Folder("imgs".into()));
    assert_eq!(parse_spec(" npz:d.npz ").unwrap(), DataSpec::Npz("d.npz".into()));
    assert_eq!(parse_spec("CSV:t.csv").unwrap(), DataSpec::Csv("t.csv".into()));
    assert_eq!(parse_spec("csv:t.csv").unwrap().to_string(), "csv:t.csv");
    let e = err(parse_spec("imagenet:/x"));
    assert!(
        e.contains("unknown data kind \"imagenet\"") && e.contains("mnist:DIR") && e.contains("npz:"),
        "{e}"
    );
    assert!(err(parse_spec("mnist:")).contains("no path after 'mnist:'"));
    assert!(err(parse_spec("")).contains("accepted forms"));
    assert!(err(parse_spec("/no/such/dir")).contains("no such file or directory"));

    let d = test_dir("spec");
    for f in ["a.npz", "b.csv", "c.tar.gz", "d.tgz", "e.bin"] {
        std::fs::write(d.join(f), b"x").unwrap();
    }
    let g = |f: &str| parse_spec(d.join(f).to_str().unwrap());
    assert_eq!(g("a.npz").unwrap(), DataSpec::Npz(d.join("a.npz")));
    assert_eq!(g("b.csv").unwrap(), DataSpec::Csv(d.join("b.csv")));
    assert_eq!(g("c.tar.gz").unwrap(), DataSpec::Folder(d.join("c.tar.gz")));
    assert_eq!(g("d.tgz").unwrap(), DataSpec::Folder(d.join("d.tgz")));
    assert!(err(g("e.bin")).contains("cannot tell the format"));
    for (sub, file) in [("m", "t10k-images-idx3-ubyte.gz"), ("c", "train.csv")] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        std::fs::write(d.join(sub).join(file), b"x").unwrap();
    }
    std::fs::create_dir_all(d.join("f/test/cat")).unwrap();
    std::fs::create_dir_all(d.join("empty")).unwrap();
    assert_eq!(g("m").unwrap(), DataSpec::Mnist(d.join("m")));
    assert_eq!(g("c").unwrap(), DataSpec::Csv(d.join("c")));
    assert_eq!(g("f").unwrap(), DataSpec::Folder(d.join("f")));
    assert!(err(g("empty")).contains("no idx files"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn in_repo_mnist_subset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist-subset");
    let spec = parse_spec(&format!("mnist:{}", dir.display())).unwrap();
    let train = load(&spec, Split::Train).unwrap();
    assert_eq!(
        (train.len(), train.sample_shape.as_slice(), train.num_classes()),
        (10000, &[1, 28, 28][..], 10)
    );
    assert_eq!(&train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(train.class_counts(), vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    let Samples::U8(px) = &train.x else { panic!("mnist must be u8") };
    assert_eq!(px.iter().map(|&p| p as u64).sum::<u64>(), 262146600, "pixel sum (numpy)");
    let test = load(&parse_spec(dir.to_str().unwrap()).unwrap(), Split::Test).unwrap();
    assert_eq!(test.len(), 2000);
    assert_eq!(&test.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(test.class_counts(), vec![175, 234, 219, 207, 217, 179, 178, 205, 192, 194]);
    let (mean, std) = test.channel_stats(1.0 / 255.0);
    assert!((mean[0] - 0.120_885_92).abs() < 1e-5 && std[0] > 0.2 && std[0] < 0.4, "{mean:?} {std:?}");
    let size: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(size < 3_000_000, "assets/mnist-subset is {size} bytes");
}

#[test]
fn shared_full_mnist() {
    let Some(dir) = shared_data("mnist") else { return };
    let spec = DataSpec::Mnist(dir);
    assert_eq!(load(&spec, Split::Train).unwrap().len(), 60000);
    let test = load(&spec, Split::Test).unwrap();
    assert_eq!(test.len(), 10000);
    assert_eq!(test.class_counts(), vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert!(err(load(&DataSpec::Mnist("/no/such".into()), Split::Test)).contains("does not exist"));
}

#[test]
fn shared_cifar10_test_split() {
    let Some(tgz) = shared_data("cifar10/cifar10-jpeg.tar.gz") else { return };
    let t = std::time::Instant::now();
    let ds = load(&parse_spec(&format!("cifar10:{}", tgz.display())).unwrap(), Split::Test).unwrap();
    eprintln!("CIFAR-10 test split (10000 JPEGs) loaded in {:.2?} (test profile)", t.elapsed());
    assert_eq!(ds.sample_shape, vec![3, 32, 32]);
    assert_eq!(ds.classes.join(" "), "airplane automobile bird cat deer dog frog horse ship truck");
    assert_eq!(ds.class_counts(), vec![1000; 10]);
    let (mean, _) = ds.channel_stats(1.0 / 255.0);
    for (m, want) in mean.iter().zip([0.4942, 0.4851, 0.4504]) {
        assert!((m - want).abs() < 0.01, "channel means {mean:?}");
    }
}

/// Loads the CIFAR-10 train split and prints the time; run in release:
/// `cargo test --release --lib data::tests::cifar10_train_load_time -- --ignored --nocapture`.
#[test]
#[ignore]
fn cifar10_train_load_time() {
    let Some(tgz) = shared_data("cifar10/cifar10-jpeg.tar.gz") else { return };
    let t = std::time::Instant::now();
    let ds = load(&DataSpec::Folder(tgz), Split::Train).unwrap();
    eprintln!("CIFAR-10 train split: {} images loaded in {:.2?}", ds.len(), t.elapsed());
    assert_eq!(ds.class_counts(), vec![5000; 10]);
    let (mean, _) = ds.channel_stats(1.0 / 255.0);
    for (m, want) in mean.iter().zip([0.4913, 0.4821, 0.4465]) {
        assert!((m - want).abs() < 2e-3, "channel means {mean:?}");
    }
}

/// A 4x3 (w x h) grayscale image whose pixel (x, y) is `base + 10 y + x`.
fn gray(base: u8) -> image::GrayImage {
    image::GrayImage::from_fn(4, 3, |x, y| image::Luma([base + 10 * y as u8 + x as u8]))
}

/// Writes `root/{train,test}/{cat,dog}` PNGs: train cat 2, train dog 1, test dog 1 (no test cat).
fn write_gray_folder(root: &Path) {
    for (split, class, file, base) in [
        ("train", "cat", "b.png", 100),
        ("train", "cat", "a.png", 0),
        ("train", "dog", "x.png", 50),
        ("test", "dog", "y.png", 150),
    ] {
        let d = root.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        gray(base).save(d.join(file)).unwrap();
    }
    std::fs::write(root.join("train/cat/notes.txt"), b"ignored").unwrap();
}

fn u8s(ds: &Dataset) -> &[u8] {
    match &ds.x {
        Samples::U8(v) => v,
        Samples::F32(_) => panic!("expected u8 samples"),
    }
}

#[test]
fn image_folder_dir() {
    let d = test_dir("folder");
    write_gray_folder(&d);
    let train = load(&DataSpec::Folder(d.clone()), Split::Train).unwrap();
    assert_eq!(train.sample_shape, vec![1, 3, 4]);
    assert_eq!(train.classes, vec!["cat", "dog"]);
    assert_eq!(train.labels, vec![0, 0, 1]);
    let want: Vec<u8> = [0u8, 100, 50].iter().flat_map(|&b| gray(b).into_raw()).collect();
    assert_eq!(u8s(&train), &want[..], "sorted by class then file name, CHW");
    let test = load(&DataSpec::Folder(d.clone()), Split::Test).unwrap();
    assert_eq!((test.labels.clone(), test.num_classes()), (vec![1], 2), "classes are shared by both splits");

    // RGB images: 3 channel planes; a grayscale one among them is replicated to 3 channels.
    let rgb = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8, y as u8, 200]));
    rgb.save(d.join("train/dog/z.png")).unwrap();
    let mixed = load(&DataSpec::Folder(d.clone()), Split::Train).unwrap();
    assert_eq!(mixed.sample_shape, vec![3, 3, 4]);
    let px = u8s(&mixed);
    assert_eq!(&px[..12], &gray(0).into_raw()[..]);
    assert_eq!(&px[12..24], &gray(0).into_raw()[..]);
    let z = &px[3 * 36..];
    assert_eq!(&z[..12], &[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    assert_eq!(&z[12..24], &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    assert!(z[24..].iter().all(|&v| v == 200));

    // JPEG (lossy): a flat colour survives within a few levels.
    let jd = d.join("jpg/train/red");
    std::fs::create_dir_all(&jd).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 60])).save(jd.join("r.JPG")).unwrap();
    let j = load(&DataSpec::Folder(d.join("jpg")), Split::Train).unwrap();
    assert_eq!(j.sample_shape, vec![3, 8, 8]);
    for (c, want) in [200i32, 30, 60].into_iter().enumerate() {
        assert!(u8s(&j)[c * 64..(c + 1) * 64].iter().all(|&v| (v as i32 - want).abs() <= 3));
    }
    assert!(err(load(&DataSpec::Folder(d.join("jpg")), Split::Test)).contains("has no test/ folder"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn image_folder_errors_name_the_file() {
    let d = test_dir("folder-err");
    write_gray_folder(&d);
    image::GrayImage::new(5, 3).save(d.join("train/dog/big.png")).unwrap();
    let e = err(load(&DataSpec::Folder(d.clone()), Split::Train));
    assert!(e.contains("big.png is 5x3") && e.contains("a.png is 4x3") && e.contains("same size"), "{e}");
    std::fs::remove_file(d.join("train/dog/big.png")).unwrap();
    std::fs::write(d.join("train/dog/broken.jpg"), b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let e = err(load(&DataSpec::Folder(d.clone()), Split::Train));
    assert!(e.contains("decoding image") && e.contains("broken.jpg"), "{e}");
    std::fs::create_dir_all(d.join("e/train/cls")).unwrap();
    assert!(err(load(&DataSpec::Folder(d.join("e")), Split::Train)).contains("no images"));
    assert!(err(load(&DataSpec::Folder(d.join("nope")), Split::Train)).contains("does not exist"));
    std::fs::remove_dir_all(&d).unwrap();
}

fn write_tgz(path: &Path, files: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn png_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    img.write_to(&mut c, image::ImageFormat::Png).unwrap();
    c.into_inner()
}

#[test]
fn image_folder_tar_gz_matches_dir() {
    let d = test_dir("tgz");
    write_gray_folder(&d.join("dir"));
    let mut files = vec![("data/README".to_string(), b"hi".to_vec())];
    for (p, base) in
        [("train/dog/x.png", 50), ("test/dog/y.png", 150), ("train/cat/b.png", 100), ("train/cat/a.png", 0)]
    {
        files.push((format!("data/{p}"), png_bytes(&gray(base))));
    }
    write_tgz(&d.join("a.tar.gz"), &files);
    let spec = parse_spec(d.join("a.tar.gz").to_str().unwrap()).unwrap();
    for split in [Split::Train, Split::Test] {
        let from_dir = load(&DataSpec::Folder(d.join("dir")), split).unwrap();
        assert_eq!(load(&spec, split).unwrap(), from_dir, "{split:?}");
    }
    files.push(("data/train/cat/c.png".into(), b"\x89PNG\r\n\x1a\n truncated".to_vec()));
    write_tgz(&d.join("bad.tar.gz"), &files);
    let e = err(load(&DataSpec::Folder(d.join("bad.tar.gz")), Split::Train));
    assert!(e.contains("bad.tar.gz:data/train/cat/c.png"), "{e}");
    files.push(("other/train/cat/q.png".into(), png_bytes(&gray(1))));
    write_tgz(&d.join("roots.tar.gz"), &files);
    assert!(err(load(&DataSpec::Folder(d.join("roots.tar.gz")), Split::Test)).contains("two roots"));
    std::fs::write(d.join("junk.tar.gz"), b"not gzip at all").unwrap();
    assert!(err(load(&DataSpec::Folder(d.join("junk.tar.gz")), Split::Test)).contains("reading archive"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn npz_datasets() {
    let d = test_dir("npz");
    let p = d.join("split.npz");
    let x: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8).collect();
    write_npz(
        &p,
        &[
            ("x_train".into(), Tensor::from_vec(vec![2, 2, 3], x.clone())),
            ("y_train".into(), Tensor::from_vec(vec![2], vec![1u8, 0])),
            ("x_test".into(), Tensor::from_vec(vec![1, 2, 2, 3], (0..12u8).collect::<Vec<_>>())),
            ("y_test".into(), Tensor::from_vec(vec![1, 1], vec![4i64])),
        ],
    )
    .unwrap();
    let train = load(&DataSpec::Npz(p.clone()), Split::Train).unwrap();
    assert_eq!((train.sample_shape.clone(), u8s(&train)), (vec![1, 2, 3], &x[..]));
    assert_eq!((train.labels.clone(), train.num_classes()), (vec![1, 0], 5), "classes from all y arrays");
    let test = load(&DataSpec::Npz(p.clone()), Split::Test).unwrap();
    // [1, H=2, W=2, C=3] channels-last → CHW.
    assert_eq!(test.sample_shape, vec![3, 2, 2]);
    assert_eq!(u8s(&test), &[0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
    assert_eq!(test.labels, vec![4]);

    let q = d.join("xy.npz");
    let feats = vec![0.5f64, -1.0, 2.0, 3.0, 4.0, 5.0];
    write_npz(
        &q,
        &[
            ("x".into(), Tensor::from_vec(vec![3, 2], feats)),
            ("y".into(), Tensor::from_vec(vec![3], vec![2.0f32, 0.0, 1.0])),
        ],
    )
    .unwrap();
    let ds = load(&parse_spec(q.to_str().unwrap()).unwrap(), Split::Test).unwrap();
    assert_eq!(ds.x, Samples::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!((ds.sample_shape.clone(), ds.labels.clone(), ds.num_classes()), (vec![2], vec![2, 0, 1], 3));

    let bad = |name: &str, arrays: Vec<(String, Tensor)>| {
        let f = d.join(name);
        write_npz(&f, &arrays).unwrap();
        err(load(&DataSpec::Npz(f), Split::Train))
    };
    let x2 = || ("x".to_string(), Tensor::from_vec(vec![2, 1], vec![1f32, 2.0]));
    let e = bad("a.npz", vec![x2()]);
    assert!(e.contains("needs arrays x_train and y_train (or x and y)") && e.contains("[\"x\"]"), "{e}");
    let e = bad("b.npz", vec![x2(), ("y".into(), Tensor::from_vec(vec![3], vec![0i32, 1, 1]))]);
    assert!(e.contains("3 labels for 2 samples"), "{e}");
    let e = bad("c.npz", vec![x2(), ("y".into(), Tensor::from_vec(vec![2], vec![0.5f32, 1.0]))]);
    assert!(e.contains("label 0 is 0.5, not an integer"), "{e}");
    let e = bad("d.npz", vec![x2(), ("y".into(), Tensor::from_vec(vec![2], vec![-1i64, 1]))]);
    assert!(e.contains("label -1 of sample 0 is out of range"), "{e}");
    let e = bad(
        "e.npz",
        vec![
            ("x".into(), Tensor::from_vec(vec![0, 3], Vec::<f32>::new())),
            ("y".into(), Tensor::from_vec(vec![0], Vec::<u8>::new())),
        ],
    );
    assert!(e.contains("dataset is empty"), "{e}");
    assert!(err(load(&DataSpec::Npz(d.join("none.npz")), Split::Train)).contains("does not exist"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn csv_datasets() {
    let iris = load(&parse_spec(fixture("iris-mini.csv").to_str().unwrap()).unwrap(), Split::Train).unwrap();
    assert_eq!(iris.classes, vec!["setosa", "versicolor", "virginica"]);
    assert_eq!(iris.labels, vec![0, 0, 1, 2, 1]);
    assert_eq!(iris.sample_shape, vec![4]);
    assert_eq!(
        iris.x,
        Samples::F32(vec![
            5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, 0.2, 7.0, 3.2, 4.7, 1.4, 6.3, 3.3, 6.0, 2.5, 6.4, 3.2, 4.5,
            1.5
        ])
    );
    let e = err(load(&DataSpec::Csv(fixture("ragged.csv")), Split::Train));
    assert!(e.contains("ragged.csv:3: ragged row with 3 fields, expected 4"), "{e}");

    let d = test_dir("csv");
    // No header: the label is the first column.
    std::fs::write(d.join("train.csv"), "1, 0.5, 2\n0,-1,3e2\n3,\"7\",0\n").unwrap();
    std::fs::write(d.join("test.csv"), "5,1,1\n").unwrap();
    let train = load(&parse_spec(d.to_str().unwrap()).unwrap(), Split::Train).unwrap();
    assert_eq!((train.labels.clone(), train.num_classes()), (vec![1, 0, 3], 6), "classes from both files");
    assert_eq!(train.x, Samples::F32(vec![0.5, 2.0, -1.0, 300.0, 7.0, 0.0]));
    let test = load(&DataSpec::Csv(d.clone()), Split::Test).unwrap();
    assert_eq!((test.labels.clone(), test.num_classes()), (vec![5], 6));
    // Header with a label column in the middle.
    std::fs::write(d.join("h.csv"), "a,label,b\n1.5,2,2.5\n").unwrap();
    let h = load(&DataSpec::Csv(d.join("h.csv")), Split::Test).unwrap();
    assert_eq!((h.x.clone(), h.labels.clone()), (Samples::F32(vec![1.5, 2.5]), vec![2]));
    let case = |name: &str, text: &str| {
        std::fs::write(d.join(name), text).unwrap();
        err(load(&DataSpec::Csv(d.join(name)), Split::Train))
    };
    let e = case("nan.csv", "label,f1,f2\n0,1,abc\n");
    assert!(e.contains("nan.csv:2: column 3 (f2): cannot parse \"abc\" as a number"), "{e}");
    assert!(case("neg.csv", "0,1\n-2,1\n").contains("neg.csv:2: label -2 is negative"));
    assert!(case("empty.csv", "\n\n").contains("is empty"));
    assert!(case("head.csv", "label,x\n").contains("header but no data rows"));
    assert!(case("one.csv", "label\n1\n").contains("at least one feature"));
    std::fs::remove_file(d.join("test.csv")).unwrap();
    assert!(err(load(&DataSpec::Csv(d.clone()), Split::Test)).contains("has no test.csv"));
    std::fs::remove_dir_all(&d).unwrap();
}

fn toy(n: usize, shape: Vec<usize>) -> Dataset {
    let per: usize = shape.iter().product();
    Dataset {
        x: Samples::U8((0..n * per).map(|i| (i % 251) as u8).collect()),
        sample_shape: shape,
        labels: (0..n as i64).map(|i| i % 3).collect(),
        classes: numbered_classes(3),
    }
}

#[test]
fn dataset_validate_and_subset() {
    let ds = toy(4, vec![2]);
    ds.validate().unwrap();
    let s = ds.subset(&[3, 1, 3]);
    assert_eq!((s.x.clone(), s.labels.clone()), (Samples::U8(vec![6, 7, 2, 3, 6, 7]), vec![0, 1, 0]));
    let mut bad = ds.clone();
    bad.labels[2] = 3;
    assert!(
        err(bad.validate()).contains("label 3 of sample 2 is out of range: 3 classes need labels in 0..3")
    );
    let mut bad = ds.clone();
    bad.x = Samples::U8(vec![0; 7]);
    assert!(err(bad.validate()).contains("4 samples of shape [2] needs 8 values, has 7"));
    assert!(err(ds.subset(&[]).validate()).contains("empty"));
    let mut bad = ds.clone();
    bad.classes.clear();
    assert!(err(bad.validate()).contains("no classes"));
}

fn opts(batch: usize) -> LoaderOptions {
    LoaderOptions { batch, ..LoaderOptions::default() }
}

fn collect(ds: &Arc<Dataset>, o: &LoaderOptions, epoch: u64) -> Vec<Batch> {
    epoch_batches(ds.clone(), o, epoch).unwrap().collect()
}

#[test]
fn shuffling_is_a_seeded_permutation() {
    let ds = Arc::new(toy(103, vec![1, 2, 2]));
    let o = opts(10);
    let a = collect(&ds, &o, 0);
    assert_eq!(a.len(), 11);
    assert_eq!(num_batches(103, &o), 11);
    assert_eq!(a.last().unwrap().x.shape(), &[3, 1, 2, 2]);
    let order: Vec<usize> = a.iter().flat_map(|b| b.idx.clone()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..103).collect::<Vec<_>>(), "every sample exactly once");
    assert_ne!(order, sorted, "shuffled");
    assert_eq!(collect(&ds, &o, 0), a, "same seed and epoch → identical batches");
    let b: Vec<usize> = collect(&ds, &o, 1).iter().flat_map(|b| b.idx.clone()).collect();
    assert_ne!(b, order, "another epoch → another order");
    let c: Vec<usize> =
        collect(&ds, &LoaderOptions { seed: 9, ..o.clone() }, 0).iter().flat_map(|b| b.idx.clone()).collect();
    assert_ne!(c, order, "another seed → another order");
    for batch in &a {
        let y = batch.y.as_slice::<i64>().unwrap();
        assert_eq!(y, batch.idx.iter().map(|&i| ds.labels[i]).collect::<Vec<_>>());
    }
    let plain = collect(&ds, &LoaderOptions { shuffle: false, drop_last: true, ..o.clone() }, 5);
    assert_eq!(plain.len(), 10);
    assert_eq!(plain.iter().flat_map(|b| b.idx.clone()).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
    assert_eq!(num_batches(103, &LoaderOptions { drop_last: true, ..o }), 10);
}

#[test]
fn prefetch_yields_every_batch() {
    let ds = Arc::new(toy(50, vec![3, 4, 4]));
    let o = LoaderOptions { augment: Some(Augment { crop_pad: 2, hflip: true }), ..opts(8) };
    let sync = collect(&ds, &LoaderOptions { prefetch: 0, ..o.clone() }, 3);
    for prefetch in [1, 2, 16] {
        let it = epoch_batches(ds.clone(), &LoaderOptions { prefetch, ..o.clone() }, 3).unwrap();
        assert_eq!((it.len(), it.num_batches()), (7, 7));
        assert_eq!(it.collect::<Vec<_>>(), sync, "prefetch {prefetch}");
    }
    // Dropping the iterator early stops the worker (the test would hang otherwise).
    let mut it = epoch_batches(ds.clone(), &LoaderOptions { prefetch: 1, ..o.clone() }, 3).unwrap();
    assert_eq!(it.next().unwrap(), sync[0]);
    drop(it);
    let e = |o: LoaderOptions| err(epoch_batches(ds.clone(), &o, 0));
    assert!(e(opts(0)).contains("batch size must be at least 1"));
    let n = |mean: Vec<f32>, std: Vec<f32>| LoaderOptions {
        normalize: Normalize::mean_std(mean, std),
        ..opts(4)
    };
    assert!(
        e(n(vec![0.0; 2], vec![]))
            .contains("mean has 2 values but samples of shape [3, 4, 4] have 3 channels")
    );
    assert!(e(n(vec![], vec![0.0])).contains("std 0 must be finite and non-zero"));
    let feats = Arc::new(toy(4, vec![5]));
    let aug = LoaderOptions { augment: Some(Augment { crop_pad: 1, hflip: false }), ..opts(2) };
    assert!(err(epoch_batches(feats, &aug, 0)).contains("augmentation needs image samples"));
}

#[test]
fn normalisation_values() {
    // Two channels of 2 pixels: raw values 0, 51, 102, 255.
    let ds = Arc::new(Dataset {
        x: Samples::U8(vec![0, 51, 102, 255]),
        sample_shape: vec![2, 1, 2],
        labels: vec![0],
        classes: numbered_classes(1),
    });
    let run = |normalize: Normalize| collect(&ds, &LoaderOptions { normalize, ..opts(1) }, 0)[0].x.clone();
    let close = |t: Tensor, want: &[f32]| {
        let got = t.f32s().unwrap();
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{got:?} vs {want:?}");
    };
    close(run(Normalize::default()), &[0.0, 0.2, 0.4, 1.0]);
    close(run(Normalize::mean_std(vec![0.5, 0.2], vec![0.25, 2.0])), &[-2.0, -1.2, 0.1, 0.4]);
    close(run(Normalize { scale: Some(1.0), mean: vec![1.0], std: vec![] }), &[-1.0, 50.0, 101.0, 254.0]);
    let f = Arc::new(Dataset {
        x: Samples::F32(vec![1.5, -2.0, 10.0]),
        sample_shape: vec![3],
        labels: vec![0],
        classes: numbered_classes(1),
    });
    let norm = Normalize::mean_std(vec![1.0, 0.0, 10.0], vec![0.5, 4.0, 1.0]);
    let x = collect(&f, &LoaderOptions { normalize: norm, ..opts(1) }, 0)[0].x.clone();
    assert_eq!(x.shape(), &[1, 3]);
    close(x, &[1.0, -0.5, 0.0]);
}

#[test]
fn augmentation() {
    let ds = Arc::new(toy(40, vec![2, 3, 5]));
    let one = |aug: Augment, epoch: u64| {
        let o = LoaderOptions {
            augment: Some(aug),
            shuffle: false,
            normalize: Normalize { scale: Some(1.0), ..Default::default() },
            ..opts(40)
        };
        collect(&ds, &o, epoch).remove(0).x.into_vec::<f32>().unwrap()
    };
    let orig: Vec<f32> = u8s(&ds).iter().map(|&v| v as f32).collect();
    assert_eq!(one(Augment { crop_pad: 0, hflip: false }, 0), orig, "pad 0, no flip: identity");

    let at = |s: usize, c: usize, y: i64, x: i64| -> f32 {
        if (0..3).contains(&y) && (0..5).contains(&x) {
            orig[s * 30 + c * 15 + y as usize * 5 + x as usize]
        } else {
            0.0
        }
    };
    // Flip only: each sample is itself or mirrored left-right, in all channels; both happen.
    let flipped = one(Augment { crop_pad: 0, hflip: true }, 0);
    let mut kinds = HashSet::new();
    for s in 0..40 {
        let got = &flipped[s * 30..(s + 1) * 30];
        let mirror: Vec<f32> =
            (0..30).map(|i| at(s, i / 15, (i % 15 / 5) as i64, 4 - (i % 5) as i64)).collect();
        let kind = if got == &orig[s * 30..(s + 1) * 30] {
            0
        } else if got == &mirror[..] {
            1
        } else {
            panic!("sample {s}")
        };
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), 2, "some samples flipped, some not");

    // Crop with padding 1: each sample is the original shifted by (dy, dx) in -1..=1, zero-filled.
    let cropped = one(Augment { crop_pad: 1, hflip: false }, 0);
    let mut shifts = HashSet::new();
    for s in 0..40 {
        let got = &cropped[s * 30..(s + 1) * 30];
        let found = (-1..=1i64).flat_map(|dy| (-1..=1i64).map(move |dx| (dy, dx))).find(|&(dy, dx)| {
            (0..30).all(|i| got[i] == at(s, i / 15, (i % 15 / 5) as i64 + dy, (i % 5) as i64 + dx))
        });
        shifts.insert(found.unwrap_or_else(|| panic!("sample {s} is not a shifted crop")));
    }
    assert!(shifts.len() >= 6, "crop offsets vary: {shifts:?}");
    assert_eq!(one(Augment { crop_pad: 1, hflip: true }, 7), one(Augment { crop_pad: 1, hflip: true }, 7));
    assert_ne!(one(Augment { crop_pad: 1, hflip: true }, 7), one(Augment { crop_pad: 1, hflip: true }, 8));
}

#[test]
fn gz_idx_via_spec() {
    // An idx dataset written here (gz images, plain labels) loads through DataSpec::Mnist.
    let d = test_dir("idx");
    let mut img = vec![0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    img.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&img).unwrap();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 2, 3, 12]).unwrap();
    let ds = load(&parse_spec(d.to_str().unwrap()).unwrap(), Split::Train).unwrap();
    assert_eq!(
        (ds.sample_shape.clone(), ds.labels.clone(), ds.num_classes()),
        (vec![1, 2, 2], vec![3, 12], 13)
    );
    assert_eq!(u8s(&ds), &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(err(load(&DataSpec::Mnist(d.clone()), Split::Test)).contains("t10k-images-idx3-ubyte"));
    std::fs::remove_dir_all(&d).unwrap();
}
