#!/usr/bin/env python3
"""Check scripts/reference_forward.py against llama.cpp itself (NOT run in CI).

Runs llama.cpp (llama-cpp-python, CPU, teacher forced with logits for every position) and the
independent float64 numpy reference on the same GGUF files and token sequences from
tests/fixtures/generated/manifest.json (run scripts/make_fixtures.py first), and prints the max
absolute logit difference and the argmax agreement per model.

Observed max |numpy - llama.cpp| over all positions and the whole vocab (logit std ~2.0),
llama-cpp-python 0.3.36 built from source, CPU, 2 threads, use_extra_bufts off (see below),
Code Llama 32016 vocab for the tiny-* models, 2026-11-22:

  model (T)                  --f32-kv     default (F16 KV cache)   argmax agreement
  tiny-mha-f32 (40)          3.8e-06      5.3e-03                  1.000
  tiny-gqa-f32 (40)          3.9e-06      6.4e-03                  1.000
  tiny-gqa-f32-long (300)    1.7e-05      7.5e-03                  1.000
  tiny-mha-f16 (40)          6.7e-03      8.7e-03                  1.000
  tiny-gqa-q8_0 (40)             -        0.157                    0.950
  tiny-mha-q4_0 (40)             -        0.169                    1.000
  tiny-gqa-q4_k_m (40)           -        0.269                    0.925
  tiny-cov-v512-{q4_0,q4_1,q5_0,q5_1,q8_0,q5_k_m,q6_k} (40)
                                 -        0.126 .. 0.196           0.900 .. 1.000

So with an F32 KV cache the float64 reference and llama.cpp agree to float32 rounding on F32
models (worst 1.7e-05); llama.cpp's default F16 KV cache costs ~7e-3 (the facts doc's 0.007).
For F16 and quantized weights llama.cpp also rounds the *activations* (to F16, resp. Q8_0/Q8_K
blocks) before its dot products, while the reference multiplies dequantized weights by float64
activations; differences of ~0.1-0.3 there are llama.cpp's, not the reference's.

Usage: python scripts/check_reference_vs_llamacpp.py [--f32-kv] [NAME ...]   (default: every model)
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import reference_forward  # noqa: E402

GEN = os.path.join(ROOT, "tests", "fixtures", "generated")


def _disable_extra_bufts():
    """llama.cpp 0.3.36's CPU weight-repack ("extra buffer types") path segfaults in decode on
    this workplace's AVX512/AMX CPU for every quantized tiny model (Q8_0, Q4_0, Q4_K_M ...),
    even ones llama.cpp quantized itself; F32/F16 models are fine. Turn it off
    (llama_model_params.use_extra_bufts = false) so llama.cpp uses its plain CPU kernels."""
    import llama_cpp
    import llama_cpp.llama as L
    orig = llama_cpp.llama_model_default_params
    if getattr(orig, "_no_extra_bufts", False):
        return

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    params._no_extra_bufts = True
    llama_cpp.llama_model_default_params = params
    L.llama_cpp.llama_model_default_params = params


def llamacpp_logits(path: str, tokens: list[int], f32_kv: bool = False) -> np.ndarray:
    import llama_cpp
    _disable_extra_bufts()
    kw = {}
    if f32_kv:   # default KV cache is F16, which dominates the F32-model differences
        kw = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=512, n_batch=512,
                          n_threads=2, n_gpu_layers=0, verbose=False, **kw)
    llm.reset()
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    llm.close() if hasattr(llm, "close") else None
    return out


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    f32_kv = "--f32-kv" in args
    names = [a for a in args if not a.startswith("--")]
    with open(os.path.join(GEN, "manifest.json")) as f:
        m = json.load(f)
    entries = m["models"] + m.get("extra_models", [])
    worst = 0.0
    for e in entries:
        if names and e["name"] not in names:
            continue
        path = os.path.normpath(os.path.join(GEN, e["file"]))
        toks = e["tokens"]
        ref = reference_forward.forward_logits(path, toks)
        stored = np.load(os.path.join(GEN, e["logits"])).astype(np.float64)
        cpp = llamacpp_logits(path, toks, f32_kv)
        d = np.abs(ref - cpp)
        agree = np.mean(np.argmax(ref, -1) == np.argmax(cpp, -1))
        print(f"{e['name']:24s} T={len(toks):3d} max|numpy-llama.cpp|={d.max():.3e} "
              f"mean={d.mean():.2e} argmax agree={agree:.3f} "
              f"max|numpy-stored .npy|={np.abs(ref - stored).max():.2e} "
              f"logit std={ref.std():.3f}")
        if e["type"] in ("F32", "F16"):
            worst = max(worst, d.max())
    print(f"worst max abs difference over F32/F16 models: {worst:.3e} "
          f"(KV cache {'F32' if f32_kv else 'F16, llama.cpp default'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
