//! (scaffold: being written)
use super::Tensor;
use anyhow::{Result, bail};
use std::path::Path;
/// Reads a .npy file.
pub fn read_npy(_p: &Path) -> Result<Tensor> { bail!("todo") }
/// Reads every array of a .npz file.
pub fn read_npz(_p: &Path) -> Result<Vec<(String, Tensor)>> { bail!("todo") }
/// Writes a .npy file.
pub fn write_npy(_p: &Path, _t: &Tensor) -> Result<()> { bail!("todo") }
