//! The tuning cache: per-layer kernel timings measured on this machine, kept in a JSON file
//! under the user's cache directory and shared by every model compiled here.
//!
//! An entry's key is the thread count and the layer's signature (op, shapes, attributes,
//! fused epilogue, dtype), so two layers of equal signature in any model share one
//! measurement. The file also records the CPU (model, features, kernel ISA) and the pare
//! version; a file that is corrupt, from another CPU or from another pare is ignored with a
//! warning and rebuilt, never trusted.

use super::cpu::CpuId;
use crate::runtime::Variant;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the file layout; a file with another one is rebuilt.
const FORMAT: u32 = 1;

/// One layer signature's measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The fastest variant's name.
    pub best: String,
    /// Median step time of each measured variant, in milliseconds.
    pub times_ms: BTreeMap<String, f64>,
}

/// A whole-model check: heuristic against tuned plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Median latency with heuristic kernels (ms).
    pub heuristic_ms: f64,
    /// Median latency with the tuned kernels (ms).
    pub tuned_ms: f64,
    /// Interleaved runs of each.
    pub runs: usize,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    pare: String,
    cpu: CpuId,
    entries: BTreeMap<String, Entry>,
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
}

/// The cache, loaded from (and saved to) one file.
#[derive(Debug)]
pub struct TuneCache {
    path: PathBuf,
    cpu: CpuId,
    entries: BTreeMap<String, Entry>,
    models: BTreeMap<String, ModelEntry>,
    /// Why a file that existed was not used (corrupt, other CPU, other pare).
    pub warnings: Vec<String>,
}

/// The default cache directory: `$PARE_CACHE_DIR`, else `$XDG_CACHE_HOME/pare`, else
/// `~/.cache/pare`; `None` when none of these can be formed.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("PARE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("pare")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("pare")))
}

/// The cache file for `cpu` in `dir`: `tune-<hash of the CPU identity>.json`, so machines
/// sharing a home directory keep separate files.
pub fn file_for(dir: &Path, cpu: &CpuId) -> PathBuf {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(cpu.describe().as_bytes());
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("tune-{hex}.json"))
}

fn key(threads: usize, signature: &str) -> String {
    format!("t{threads}|{signature}")
}

impl TuneCache {
    /// An empty cache that will be saved to `path`.
    pub fn empty(path: &Path, cpu: &CpuId) -> TuneCache {
        TuneCache {
            path: path.to_path_buf(),
            cpu: cpu.clone(),
            entries: BTreeMap::new(),
            models: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Loads `path` for `cpu`. A missing file gives an empty cache; an unusable one gives an
    /// empty cache and a warning saying why (it is replaced on the next save).
    pub fn open(path: &Path, cpu: &CpuId) -> TuneCache {
        let mut c = TuneCache::empty(path, cpu);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return c,
            Err(e) => {
                c.warnings.push(format!("tuning cache {}: cannot read ({e}); rebuilding it", path.display()));
                return c;
            }
        };
        let why = match serde_json::from_slice::<CacheFile>(&bytes) {
            Err(e) => format!("is corrupt ({e})"),
            Ok(f) if f.format != FORMAT => format!("has layout {} (this pare writes {FORMAT})", f.format),
            Ok(f) if f.pare != env!("CARGO_PKG_VERSION") => {
                format!("was written by pare {} (this is {})", f.pare, env!("CARGO_PKG_VERSION"))
            }
            Ok(f) if f.cpu != *cpu => {
                format!("was measured on another CPU ({}; this is {})", f.cpu.describe(), cpu.describe())
            }
            Ok(f) => match f.entries.iter().find(|(_, e)| Variant::parse(&e.best).is_none()) {
                Some((k, e)) => format!("names an unknown variant \"{}\" for {k}", e.best),
                None => {
                    c.entries = f.entries;
                    c.models = f.models;
                    return c;
                }
            },
        };
        c.warnings.push(format!("tuning cache {} {why}; ignoring it and rebuilding", path.display()));
        c
    }

    /// The file this cache is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The measurement for a layer of this signature at this thread count.
    pub fn get(&self, threads: usize, signature: &str) -> Option<(Variant, &Entry)> {
        let e = self.entries.get(&key(threads, signature))?;
        Some((Variant::parse(&e.best)?, e))
    }

    /// Records a measurement.
    pub fn put(&mut self, threads: usize, signature: &str, entry: Entry) {
        self.entries.insert(key(threads, signature), entry);
    }

    /// The whole-model check recorded under `key` (see [`TuneCache::put_model`]).
    pub fn get_model(&self, key: &str) -> Option<&ModelEntry> {
        self.models.get(key)
    }

    /// Records a whole-model check; `key` names the model graph, batch, threads and the
    /// tuned choices.
    pub fn put_model(&mut self, key: &str, e: ModelEntry) {
        self.models.insert(key.to_string(), e);
    }

    /// Writes the cache atomically, creating its directory.
    pub fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let f = CacheFile {
            format: FORMAT,
            pare: env!("CARGO_PKG_VERSION").to_string(),
            cpu: self.cpu.clone(),
            entries: self.entries.clone(),
            models: self.models.clone(),
        };
        let json = serde_json::to_vec_pretty(&f)?;
        crate::util::write_atomic(&self.path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(best: &str) -> Entry {
        Entry { best: best.into(), times_ms: [(best.to_string(), 1.0)].into_iter().collect() }
    }

    #[test]
    fn round_trip_and_rejections() {
        let dir = std::env::temp_dir().join(format!("pare-tune-cache-{}", std::process::id()));
        let cpu = CpuId::detect();
        let path = file_for(&dir, &cpu);
        let mut c = TuneCache::open(&path, &cpu);
        assert!(c.is_empty() && c.warnings.is_empty());
        c.put(2, "Conv sig", entry("winograd-f4"));
        c.save().unwrap();

        let c = TuneCache::open(&path, &cpu);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.get(2, "Conv sig").unwrap().0, Variant::WinogradF4);
        assert!(c.get(1, "Conv sig").is_none(), "thread count is part of the key");

        // Another CPU's file is not trusted.
        let other = CpuId { model: "Some Other CPU".into(), ..cpu.clone() };
        let c = TuneCache::open(&path, &other);
        assert!(c.is_empty());
        assert!(c.warnings[0].contains("another CPU"), "{:?}", c.warnings);

        // Another pare's file is not trusted.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(env!("CARGO_PKG_VERSION"), "0.0.0-old")).unwrap();
        let c = TuneCache::open(&path, &cpu);
        assert!(c.is_empty() && c.warnings[0].contains("pare 0.0.0-old"), "{:?}", c.warnings);

        // A corrupt file is ignored, and the next save replaces it.
        std::fs::write(&path, b"{ not json").unwrap();
        let mut c = TuneCache::open(&path, &cpu);
        assert!(c.is_empty() && c.warnings[0].contains("corrupt"), "{:?}", c.warnings);
        c.put(1, "Dense sig", entry("sgemm"));
        c.save().unwrap();
        let c = TuneCache::open(&path, &cpu);
        assert!(c.warnings.is_empty());
        assert_eq!(c.get(1, "Dense sig").unwrap().0, Variant::Sgemm);

        // An unknown variant name is a corrupt file too.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"sgemm\"", "\"warp-drive\"")).unwrap();
        let c = TuneCache::open(&path, &cpu);
        assert!(c.is_empty() && c.warnings[0].contains("warp-drive"), "{:?}", c.warnings);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
