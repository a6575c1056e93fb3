//! Datasets: readers for standard on-disk formats (idx; npy/npz live in `tensor`).

pub mod idx;

pub use idx::{load_mnist_split, parse_idx, read_idx};
