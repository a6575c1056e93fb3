//! Image folders `{train,test}/<class>/*.{png,jpg,jpeg}`, from a directory or streamed out of a
//! `.tar.gz` archive (no extraction to disk). Images are decoded in parallel (rayon) into u8 CHW.
use super::{Dataset, Samples, Split};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// True for file names ending in `.png`, `.jpg` or `.jpeg` (any case).
pub fn is_image_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !n.starts_with('.') && (n.ends_with(".png") || n.ends_with(".jpg") || n.ends_with(".jpeg"))
}

/// Loads one split of an image folder (a directory or a `.tar.gz`/`.tgz` archive).
///
/// Class names are the sorted union of the class folders of both splits, so labels agree between
/// train and test even if a split lacks a class. Samples are ordered by class, then file name.
/// Grayscale images give 1 channel, colour ones 3 (alpha is dropped); if both kinds occur the
/// grayscale ones are replicated to 3 channels. All images must have the same size.
pub fn load_folder(path: &Path, split: Split) -> Result<Dataset> {
    if path.is_dir() {
        load_dir(path, split)
    } else if path.is_file() {
        load_tar_gz(path, split)
    } else {
        bail!("image folder {} does not exist", path.display())
    }
}

/// An encoded image waiting to be decoded: display name, label, file bytes (None: read from disk).
struct Pending {
    name: String,
    label: usize,
    path: Option<PathBuf>,
    bytes: Vec<u8>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|(n, p)| p.is_dir() && !n.starts_with('.'))
        .map(|(n, _)| n)
        .collect())
}

fn load_dir(root: &Path, split: Split) -> Result<Dataset> {
    let split_dir = root.join(split.name());
    if !split_dir.is_dir() {
        bail!(
            "image folder {} has no {}/ folder (expected {}/{{train,test}}/<class>/*.png|jpg)",
            root.display(),
            split.name(),
            root.display()
        );
    }
    let classes: Vec<String> = class_dirs(&root.join("train"))?
        .into_iter()
        .chain(class_dirs(&root.join("test"))?)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut pending = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = split_dir.join(class);
        if !dir.is_dir() {
            continue;
        }
        for (name, path) in sorted_entries(&dir)? {
            if path.is_file() && is_image_name(&name) {
                pending.push(Pending {
                    name: path.display().to_string(),
                    label,
                    path: Some(path),
                    bytes: vec![],
                });
            }
        }
    }
    if pending.is_empty() {
        bail!("no images (*.png, *.jpg, *.jpeg) under {}/<class>/", split_dir.display());
    }
    assemble(pending, classes)
}

/// Streams the archive once: collects the class names of both splits from the entry paths and the
/// bytes of the wanted split's images. Entry paths must look like `[ROOT/]SPLIT/CLASS/FILE`.
fn load_tar_gz(path: &Path, split: Split) -> Result<Dataset> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut archive = tar::Archive::new(gz);
    let ctx = || format!("reading archive {} (expected a .tar.gz of image folders)", path.display());
    let mut classes = BTreeSet::new();
    let mut root: Option<String> = None;
    let mut found: Vec<(String, String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry.path().with_context(ctx)?.to_string_lossy().into_owned();
        let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        let n = comps.len();
        if n < 3 || !is_image_name(comps[n - 1]) || !matches!(comps[n - 3], "train" | "test") {
            continue;
        }
        let r = comps[..n - 3].join("/");
        match &root {
            None => root = Some(r),
            Some(r0) if *r0 != r => {
                bail!("archive {} holds image folders under two roots, {r0:?} and {r:?}", path.display())
            }
            _ => {}
        }
        classes.insert(comps[n - 2].to_string());
        if comps[n - 3] == split.name() {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).with_context(|| format!("{}: reading {p}", path.display()))?;
            found.push((comps[n - 2].to_string(), p, bytes));
        }
    }
    if found.is_empty() {
        bail!("archive {} has no images under [ROOT/]{}/<class>/*.png|jpg", path.display(), split.name());
    }
    let classes: Vec<String> = classes.into_iter().collect();
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let pending = found
        .into_iter()
        .map(|(class, name, bytes)| Pending {
            label: classes.binary_search(&class).unwrap_or(0),
            name: format!("{}:{name}", path.display()),
            path: None,
            bytes,
        })
        .collect();
    assemble(pending, classes)
}

/// A decoded image: width, height, channels (1 or 3) and HWC pixels.
struct Decoded {
    w: u32,
    h: u32,
    c: usize,
    px: Vec<u8>,
}

/// Decodes PNG or JPEG bytes (format from the content) to 1-channel gray or 3-channel RGB.
fn decode(bytes: &[u8]) -> Result<Decoded> {
    let img = image::load_from_memory(bytes)?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        bail!("image has size {w}x{h}");
    }
    Ok(if img.color().has_color() {
        Decoded { w, h, c: 3, px: img.into_rgb8().into_raw() }
    } else {
        Decoded { w, h, c: 1, px: img.into_luma8().into_raw() }
    })
}

/// Decodes every pending image in parallel and packs them into one u8 CHW dataset.
fn assemble(pending: Vec<Pending>, classes: Vec<String>) -> Result<Dataset> {
    let decoded: Vec<Decoded> = pending
        .par_iter()
        .map(|p| {
            let read;
            let bytes = match &p.path {
                Some(path) => {
                    read = std::fs::read(path).with_context(|| format!("reading image {}", p.name))?;
                    &read[..]
                }
                None => &p.bytes[..],
            };
            decode(bytes).with_context(|| format!("decoding image {} (corrupt or not a PNG/JPEG)", p.name))
        })
        .collect::<Result<_>>()?;
    let first = &decoded[0];
    let (w, h) = (first.w, first.h);
    if let Some((i, d)) = decoded.iter().enumerate().find(|(_, d)| (d.w, d.h) != (w, h)) {
        bail!(
            "image {} is {}x{} but {} is {w}x{h}: all images must have the same size",
            pending[i].name,
            d.w,
            d.h,
            pending[0].name
        );
    }
    let c = decoded.iter().map(|d| d.c).max().unwrap_or(1);
    let hw = (w as usize) * (h as usize);
    let per = c * hw;
    let total = per.checked_mul(decoded.len()).filter(|&t| t <= crate::tensor::MAX_ELEMENTS);
    let total = total.ok_or_else(|| anyhow!("{} images of {c}x{h}x{w} are too many", decoded.len()))?;
    let mut x = vec![0u8; total];
    x.par_chunks_mut(per).zip(decoded.par_iter()).for_each(|(dst, d)| {
        for ch in 0..c {
            let plane = &mut dst[ch * hw..(ch + 1) * hw];
            let src_ch = if d.c == 1 { 0 } else { ch };
            for (i, v) in plane.iter_mut().enumerate() {
                *v = d.px[i * d.c + src_ch];
            }
        }
    });
    Ok(Dataset {
        x: Samples::U8(x),
        sample_shape: vec![c, h as usize, w as usize],
        labels: pending.iter().map(|p| p.label as i64).collect(),
        classes,
    })
}
