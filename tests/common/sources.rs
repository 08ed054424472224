//! The tests that read the sources (layers, cli) list them here.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (for the tests that read the sources).
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
