//! Dequantization of whole GGUF files against gguf-py, through manifests.
//!
//! Every `tests/fixtures/**/dequant-manifest.json` (written by
//! `scripts/dequant_manifest.py`) lists, per GGUF file (path relative to the
//! manifest) and tensor, its type, element count and the sha256 of gguf-py's
//! dequantized values as little-endian f32. This test reads each file with the
//! crate's GGUF reader, dequantizes every listed tensor and compares hashes.
//! At least one manifest must exist.

use std::path::{Path, PathBuf};

use codellama_webgpu::gguf::GgufFile;
use codellama_webgpu::quant::dequantize_to_vec;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn find_manifests(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            find_manifests(&p, found);
        } else if p.file_name().is_some_and(|n| n == "dequant-manifest.json") {
            found.push(p);
        }
    }
}

fn hex_sha256_f32(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one manifest; returns the number of tensors checked and appends
/// failures.
fn check_manifest(path: &Path, failures: &mut Vec<String>) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files = manifest["files"]
        .as_object()
        .unwrap_or_else(|| panic!("{}: no \"files\" object", path.display()));
    assert!(!files.is_empty(), "{}: no files", path.display());
    let dir = path.parent().expect("manifest has a folder");
    let mut checked = 0;
    for (file, tensors) in files {
        let gguf_path = dir.join(file);
        let gguf = match GgufFile::open(&gguf_path) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{}: {e}", gguf_path.display()));
                continue;
            }
        };
        let tensors = tensors
            .as_object()
            .unwrap_or_else(|| panic!("{}: {file}: not an object", path.display()));
        assert!(
            !tensors.is_empty(),
            "{}: {file}: no tensors",
            path.display()
        );
        for (name, want) in tensors {
            let fail = |msg: String| format!("{}: {name}: {msg}", gguf_path.display());
            let (Some(want_ty), Some(want_n), Some(want_sha)) = (
                want["type"].as_str(),
                want["n"].as_u64(),
                want["sha256_f32"].as_str(),
            ) else {
                panic!("{}: {file}: {name}: malformed entry {want}", path.display());
            };
            let Some(i) = gguf.header.tensors.iter().position(|t| &t.name == name) else {
                failures.push(fail("not in the file".into()));
                continue;
            };
            let info = &gguf.header.tensors[i];
            if info.ty.name() != want_ty || info.n_elements() != want_n {
                failures.push(fail(format!(
                    "file has {} x {}, manifest says {want_ty} x {want_n}",
                    info.ty,
                    info.n_elements()
                )));
                continue;
            }
            let values = match dequantize_to_vec(info.ty, &gguf.data[i], want_n as usize) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(fail(e.to_string()));
                    continue;
                }
            };
            let got = hex_sha256_f32(&values);
            if got != want_sha {
                failures.push(fail(format!(
                    "{want_ty}: sha256 of dequantized f32 is {got}, gguf-py's is {want_sha}"
                )));
            }
            checked += 1;
        }
        println!("{}: {} tensors", gguf_path.display(), tensors.len());
    }
    checked
}

#[test]
fn gguf_tensors_dequantize_like_gguf_py() {
    let mut manifests = Vec::new();
    find_manifests(&fixtures_root(), &mut manifests);
    assert!(
        !manifests.is_empty(),
        "no dequant-manifest.json under {}",
        fixtures_root().display()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for m in &manifests {
        checked += check_manifest(m, &mut failures);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(checked > 0, "no tensor was checked");
    println!(
        "{checked} tensors in {} manifests match gguf-py",
        manifests.len()
    );
}
