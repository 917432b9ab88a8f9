//! Every fixture model the end-to-end GPU tests run: generated ones (run
//! `scripts/make_fixtures.py`) and committed ones.

use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn models() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for name in [
        "tiny-mha-f32",
        "tiny-gqa-f32",
        "tiny-mha-f16",
        "tiny-gqa-q8_0",
        "tiny-mha-q4_0",
    ] {
        let p = fixtures().join(format!("generated/{name}.gguf"));
        assert!(p.exists(), "{}: run scripts/make_fixtures.py", p.display());
        out.push(p);
    }
    for name in [
        "tiny-gqa-q4_k_m",
        "tiny-cov-v512-q4_0",
        "tiny-cov-v512-q8_0",
        "tiny-cov-v512-q6_k",
        "tiny-cov-v512-q5_k_m",
        "tiny-cov-v512-q4_1",
    ] {
        out.push(fixtures().join(format!("models/{name}.gguf")));
    }
    out
}
