//! The idx format of MNIST and Fashion-MNIST (optionally gzip-compressed).
use crate::tensor::{Data, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Decodes idx bytes (big-endian header: 0, 0, type code, rank, then one u32 per dim) into a tensor.
///
/// Type codes: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.
pub fn parse_idx(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 4 {
        bail!("truncated idx file: {} bytes, the header needs at least 4", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!("bad idx magic {:02x?}: the first two bytes must be zero", &bytes[..4]);
    }
    let (code, rank) = (bytes[2], bytes[3] as usize);
    let size = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => bail!("bad idx magic {:02x?}: unknown element type code 0x{code:02x}", &bytes[..4]),
    };
    let start = 4 + 4 * rank;
    if bytes.len() < start {
        bail!("truncated idx header: rank {rank} needs {start} bytes, file has {}", bytes.len());
    }
    let shape: Vec<usize> = bytes[4..start]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let want =
        n.and_then(|n| n.checked_mul(size)).ok_or_else(|| anyhow!("idx shape {shape:?} is too large"))?;
    let body = &bytes[start..];
    if body.len() != want {
        bail!(
            "idx data for shape {shape:?} needs {want} bytes, file has {}{}",
            body.len(),
            if body.len() < want { " (truncated)" } else { " (trailing bytes)" }
        );
    }
    macro_rules! be {
        ($t:ty, $w:literal) => {
            body.chunks_exact($w).map(|c| <$t>::from_be_bytes(c.try_into().unwrap())).collect()
        };
    }
    let data = match code {
        0x08 => Data::U8(body.to_vec()),
        0x09 => Data::I8(body.iter().map(|&b| b as i8).collect()),
        0x0B => Data::I16(be!(i16, 2)),
        0x0C => Data::I32(be!(i32, 4)),
        0x0D => Data::F32(be!(f32, 4)),
        _ => Data::F64(be!(f64, 8)),
    };
    Ok(Tensor::new(shape, data)?)
}

/// Reads an idx file; gzip-compressed files (`.gz`, detected by content) are decompressed.
pub fn read_idx(path: &Path) -> Result<Tensor> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {} (corrupt or truncated gzip)", path.display()))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).with_context(|| format!("parsing idx file {}", path.display()))
}

/// Finds `<dir>/<stem>.gz` or `<dir>/<stem>`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    let plain = dir.join(stem);
    [gz.clone(), plain.clone()]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("neither {} nor {} exists", gz.display(), plain.display()))
}

/// Loads the train or test split of an MNIST-format dataset (MNIST, Fashion-MNIST) from `dir`:
/// images u8 `[N, rows, cols]` (28x28 for MNIST) and labels u8 `[N]`.
pub fn load_mnist_split(dir: &Path, train: bool) -> Result<(Tensor, Tensor)> {
    let prefix = if train { "train" } else { "t10k" };
    let images = read_idx(&find(dir, &format!("{prefix}-images-idx3-ubyte"))?)?;
    let labels = read_idx(&find(dir, &format!("{prefix}-labels-idx1-ubyte"))?)?;
    if images.rank() != 3 || images.as_slice::<u8>().is_none() {
        bail!(
            "{prefix} images in {}: expected u8 [N, rows, cols], got {} {:?}",
            dir.display(),
            images.dtype(),
            images.shape()
        );
    }
    if labels.rank() != 1 || labels.as_slice::<u8>().is_none() {
        bail!(
            "{prefix} labels in {}: expected u8 [N], got {} {:?}",
            dir.display(),
            labels.dtype(),
            labels.shape()
        );
    }
    if images.shape()[0] != labels.shape()[0] {
        bail!(
            "{prefix} split in {}: {} images but {} labels",
            dir.display(),
            images.shape()[0],
            labels.shape()[0]
        );
    }
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(code: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn parses_u8_and_wider_types() {
        let t = parse_idx(&idx(0x08, &[2, 3], &[1, 2, 3, 4, 5, 255])).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.as_slice::<u8>().unwrap(), &[1, 2, 3, 4, 5, 255]);
        let body: Vec<u8> = [-5i32, 70000].iter().flat_map(|x| x.to_be_bytes()).collect();
        assert_eq!(parse_idx(&idx(0x0C, &[2], &body)).unwrap().as_slice::<i32>().unwrap(), &[-5, 70000]);
        let body: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
        assert_eq!(parse_idx(&idx(0x0D, &[1, 2], &body)).unwrap().f32s().unwrap(), &[1.5, -2.0]);
        assert_eq!(parse_idx(&idx(0x09, &[1], &[0xff])).unwrap().as_slice::<i8>().unwrap(), &[-1]);
        let empty = parse_idx(&idx(0x08, &[0, 28, 28], &[])).unwrap();
        assert_eq!(empty.shape(), &[0, 28, 28]);
    }

    #[test]
    fn clear_errors() {
        let err = |b: &[u8]| format!("{:#}", parse_idx(b).unwrap_err());
        assert!(err(&[0, 0]).contains("truncated idx file"));
        assert!(err(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("bad idx magic"));
        assert!(err(&[0, 0, 0x42, 1, 0, 0, 0, 0]).contains("unknown element type code 0x42"));
        assert!(err(&[0, 0, 8, 3, 0, 0, 0, 1]).contains("truncated idx header: rank 3 needs 16 bytes"));
        let e = err(&idx(0x08, &[2, 3], &[1, 2, 3]));
        assert!(e.contains("[2, 3]") && e.contains("needs 6 bytes") && e.contains("truncated"), "{e}");
        assert!(err(&idx(0x08, &[1], &[1, 2])).contains("trailing"));
        assert!(err(&idx(0x0E, &[u32::MAX, u32::MAX, u32::MAX], &[])).contains("too large"));
    }

    #[test]
    fn reads_gz_and_mnist_layout() {
        let dir = std::env::temp_dir().join(format!("pare-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images: Vec<u8> = (0..3 * 2 * 2).map(|i| i as u8 * 10).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx(0x08, &[3, 2, 2], &images)).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x08, &[3], &[7, 2, 1])).unwrap();
        let (x, y) = load_mnist_split(&dir, false).unwrap();
        assert_eq!((x.shape(), x.as_slice::<u8>().unwrap()), (&[3, 2, 2][..], &images[..]));
        assert_eq!(y.as_slice::<u8>().unwrap(), &[7, 2, 1]);
        let e = format!("{:#}", load_mnist_split(&dir, true).unwrap_err());
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x08, &[2], &[7, 2])).unwrap();
        assert!(
            format!("{:#}", load_mnist_split(&dir, false).unwrap_err()).contains("3 images but 2 labels")
        );
        let bad = dir.join("bad.gz");
        std::fs::write(&bad, [0x1f, 0x8b, 8, 0, 1, 2]).unwrap();
        assert!(format!("{:#}", read_idx(&bad).unwrap_err()).contains("corrupt or truncated gzip"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn class_counts(labels: &Tensor) -> Vec<usize> {
        let mut c = vec![0; 10];
        for &l in labels.as_slice::<u8>().unwrap() {
            c[l as usize] += 1;
        }
        c
    }

    #[test]
    fn shared_mnist_and_fashion() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        if !shared.join("mnist").is_dir() {
            assert!(!crate::data::in_ci(), "../shared/data/mnist is required under CI (CI=true or CI=1)");
            eprintln!("SKIP: {} not found", shared.join("mnist").display());
            return;
        }
        let (x, y) = load_mnist_split(&shared.join("mnist"), false).unwrap();
        assert_eq!((x.shape(), y.shape()), (&[10000, 28, 28][..], &[10000][..]));
        assert_eq!(&y.as_slice::<u8>().unwrap()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        assert_eq!(class_counts(&y), vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
        let first = &x.as_slice::<u8>().unwrap()[..784];
        assert_eq!(first[..196].iter().filter(|&&p| p != 0).count(), 0, "top rows of a 7 are blank");
        assert!(first.iter().filter(|&&p| p != 0).count() > 50);
        let (x, y) = load_mnist_split(&shared.join("mnist"), true).unwrap();
        assert_eq!((x.shape(), y.shape()), (&[60000, 28, 28][..], &[60000][..]));
        assert_eq!(&y.as_slice::<u8>().unwrap()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        if shared.join("fashion-mnist").is_dir() {
            let (x, y) = load_mnist_split(&shared.join("fashion-mnist"), false).unwrap();
            assert_eq!(x.shape(), &[10000, 28, 28]);
            assert_eq!(class_counts(&y), vec![1000; 10]);
        }
    }
}
