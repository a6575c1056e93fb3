//! Array and table formats: `.npz` (NumPy) and CSV.
use super::{Dataset, Samples, Split, numbered_classes};
use crate::tensor::{Data, Tensor, read_npz};
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

/// Loads one split from a `.npz` file.
///
/// Arrays: `x_train`/`y_train` and `x_test`/`y_test`, or `x`/`y` (then the same arrays serve both
/// splits). `x` is `[N, ...]`: u8 data stays u8 (images), any other dtype becomes f32. `[N, H, W]`
/// gets a channel axis (`[N, 1, H, W]`) and channels-last images `[N, H, W, C]` with C in 1, 3, 4
/// (and H not) are transposed to CHW. `y` is `[N]` or `[N, 1]` of integers (or integral floats).
/// The number of classes is one more than the largest label of all `y` arrays in the file.
pub fn load_npz(path: &Path, split: Split) -> Result<Dataset> {
    if !path.is_file() {
        bail!("npz file {} does not exist", path.display());
    }
    let arrays = read_npz(path)?;
    let get = |n: &str| arrays.iter().find(|(k, _)| k == n).map(|(_, t)| t);
    let (xn, yn) = match split {
        Split::Train => ("x_train", "y_train"),
        Split::Test => ("x_test", "y_test"),
    };
    let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
    let (xs, ys) = if get(xn).is_some() { (xn, yn) } else { ("x", "y") };
    let (Some(x), Some(y)) = (get(xs), get(ys)) else {
        bail!(
            "npz {} needs arrays {xn} and {yn} (or x and y) for the {} split; it has {names:?}",
            path.display(),
            split.name()
        );
    };
    let (xn, yn) = (xs, ys);
    let ctx = |what: &str| format!("npz {}: {what}", path.display());
    let labels = labels_of(y, x.shape().first().copied()).with_context(|| ctx(yn))?;
    let mut k = 0i64;
    for n in ["y", "y_train", "y_test"] {
        if let Some(t) = get(n) {
            let l = labels_of(t, None).with_context(|| ctx(n))?;
            k = k.max(l.iter().copied().max().unwrap_or(-1) + 1);
        }
    }
    let (x, sample_shape) = samples_of(x).with_context(|| ctx(xn))?;
    Ok(Dataset { x, sample_shape, labels, classes: numbered_classes(k.max(1) as usize) })
}

/// Integer labels from a `[N]` or `[N, 1]` array; checks N against `n` when given.
fn labels_of(y: &Tensor, n: Option<usize>) -> Result<Vec<i64>> {
    let ok_shape = matches!(y.shape(), [_] | [_, 1]);
    if !ok_shape {
        bail!("labels must have shape [N] or [N, 1], got {:?}", y.shape());
    }
    if let Some(n) = n
        && y.shape()[0] != n
    {
        bail!("{} labels for {n} samples", y.shape()[0]);
    }
    if let Some(v) = y.to_i64_vec() {
        return Ok(v);
    }
    y.to_f64_vec()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                Ok(v as i64)
            } else {
                Err(anyhow!("label {i} is {v}, not an integer"))
            }
        })
        .collect()
}

/// Samples and per-sample shape from an `[N, ...]` array (see [`load_npz`] for the layout rules).
fn samples_of(x: &Tensor) -> Result<(Samples, Vec<usize>)> {
    let s = x.shape();
    if s.len() < 2 {
        bail!("samples must have shape [N, ...] with at least 2 dimensions, got {s:?}");
    }
    let data = match x.data() {
        Data::U8(v) => Samples::U8(v.clone()),
        Data::F32(v) => Samples::F32(v.clone()),
        _ => Samples::F32(x.to_f64_vec().into_iter().map(|v| v as f32).collect()),
    };
    Ok(match *s {
        [_, h, w] => (data, vec![1, h, w]),
        [n, h, w, c] if matches!(c, 1 | 3 | 4) && !matches!(h, 1 | 3 | 4) => {
            (hwc_to_chw(data, n, h * w, c), vec![c, h, w])
        }
        _ => (data, s[1..].to_vec()),
    })
}

fn hwc_to_chw(data: Samples, n: usize, hw: usize, c: usize) -> Samples {
    fn t<T: Copy + Default>(v: &[T], n: usize, hw: usize, c: usize) -> Vec<T> {
        let mut out = vec![T::default(); v.len()];
        for s in 0..n {
            let (src, dst) = (&v[s * hw * c..(s + 1) * hw * c], &mut out[s * hw * c..(s + 1) * hw * c]);
            for p in 0..hw {
                for ch in 0..c {
                    dst[ch * hw + p] = src[p * c + ch];
                }
            }
        }
        out
    }
    match data {
        Samples::U8(v) => Samples::U8(t(&v, n, hw, c)),
        Samples::F32(v) => Samples::F32(t(&v, n, hw, c)),
    }
}

/// A parsed CSV file: row-major features, label texts and their 1-based line numbers.
struct Table {
    features: Vec<f32>,
    width: usize,
    labels: Vec<String>,
    lines: Vec<usize>,
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"').trim()).collect()
}

/// Parses a CSV file: an optional header (a row naming a `label` column, or a row of only
/// non-numeric fields), then one sample per non-empty row with all rows as wide as the first.
fn parse_csv(path: &Path) -> Result<Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let Some((first_no, first)) = rows.next() else {
        bail!("csv {} is empty", path.display());
    };
    let head = fields(first);
    let named = head.iter().position(|f| f.eq_ignore_ascii_case("label"));
    let is_header = named.is_some() || head.iter().all(|f| f.parse::<f64>().is_err());
    let label_col = named.unwrap_or(0);
    let width = head.len();
    if width < 2 {
        bail!(
            "csv {}:{first_no}: a row needs a label and at least one feature, found {width} field",
            path.display()
        );
    }
    let mut t = Table { features: vec![], width: width - 1, labels: vec![], lines: vec![] };
    let data_rows = (!is_header).then_some((first_no, first)).into_iter().chain(rows);
    for (no, line) in data_rows {
        let f = fields(line);
        if f.len() != width {
            bail!(
                "csv {}:{no}: ragged row with {} fields, expected {width} (as in line {first_no})",
                path.display(),
                f.len()
            );
        }
        for (col, v) in f.iter().enumerate() {
            if col == label_col {
                t.labels.push(v.to_string());
                continue;
            }
            let x: f32 = v.parse().map_err(|_| {
                let name = if is_header { format!(" ({})", head[col]) } else { String::new() };
                anyhow!(
                    "csv {}:{no}: column {}{name}: cannot parse {v:?} as a number",
                    path.display(),
                    col + 1
                )
            })?;
            t.features.push(x);
        }
        t.lines.push(no);
    }
    if t.labels.is_empty() {
        bail!("csv {} has a header but no data rows", path.display());
    }
    Ok(t)
}

/// Integer value of a label text (`3`, `3.0`), if it is one.
fn int_label(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().filter(|v| v.fract() == 0.0).map(|v| v as i64))
}

/// Loads one split from CSV: a file (used for both splits) or a directory with `train.csv` and
/// `test.csv`. The label is the column named `label` if the header has one, else the first column.
/// Integer labels must be `>= 0` and give classes `"0"..=max`; any other label texts are class
/// names (sorted). Both files of a directory are read so the label numbering agrees between splits.
pub fn load_csv(path: &Path, split: Split) -> Result<Dataset> {
    let (file, other) = if path.is_dir() {
        let f = path.join(format!("{}.csv", split.name()));
        if !f.is_file() {
            bail!("csv directory {} has no {}.csv", path.display(), split.name());
        }
        let o = path.join(match split {
            Split::Train => "test.csv",
            Split::Test => "train.csv",
        });
        (f, o.is_file().then_some(o))
    } else if path.is_file() {
        (path.to_path_buf(), None)
    } else {
        bail!("csv file {} does not exist", path.display());
    };
    let table = parse_csv(&file)?;
    let other_labels = match &other {
        Some(o) => parse_csv(o)?.labels,
        None => vec![],
    };
    let all = table.labels.iter().chain(&other_labels);
    let (labels, classes) = if all.clone().all(|l| int_label(l).is_some()) {
        let mut labels = Vec::with_capacity(table.labels.len());
        for (l, no) in table.labels.iter().zip(&table.lines) {
            let v = int_label(l).unwrap_or(-1);
            if v < 0 {
                bail!("csv {}:{no}: label {v} is negative", file.display());
            }
            labels.push(v);
        }
        let k = all.filter_map(|l| int_label(l)).max().unwrap_or(0).max(0) + 1;
        (labels, numbered_classes(k as usize))
    } else {
        let names: Vec<String> =
            all.cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let labels = table.labels.iter().map(|l| names.binary_search(l).unwrap_or(0) as i64).collect();
        (labels, names)
    };
    Ok(Dataset { x: Samples::F32(table.features), sample_shape: vec![table.width], labels, classes })
}
