"""Small GGUF seeds for the GGUF reader's fuzz target (crate/fuzz/corpus/gguf_reader/).

The committed fixture models are 100 KB - 1 MB: libFuzzer runs a few of those a second. These
seeds are a few KB each and still cover what the reader parses: every metadata value type
(arrays and nested strings included), a llama header, F32 / F16 / Q8_0 / Q4_0 tensors with
alignment padding, and a non-default alignment. Each file is prefixed with the target's two
control bytes (chunk size, total length told).

    .venv/bin/python scripts/make_fuzz_seeds.py
"""

from pathlib import Path

import gguf
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "crate/fuzz/corpus/gguf_reader"


def write(name: str, build, control: bytes = b"\x07\x01", alignment: int | None = None) -> None:
    tmp = OUT / f"{name}.gguf.tmp"
    w = gguf.GGUFWriter(str(tmp), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (OUT / f"seed-small-{name}").write_bytes(control + tmp.read_bytes())
    tmp.unlink()


def llama(w, dim=32, vocab=8):
    w.add_context_length(64)
    w.add_embedding_length(dim)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"\u2581t{i}".encode() for i in range(vocab - 3)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def quant(a: np.ndarray, t) -> np.ndarray:
    return gguf.quants.quantize(a, t)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)

    def all_types(w):
        w.add_uint8("t.u8", 7)
        w.add_int8("t.i8", -7)
        w.add_uint16("t.u16", 700)
        w.add_int16("t.i16", -700)
        w.add_uint32("t.u32", 70000)
        w.add_int32("t.i32", -70000)
        w.add_float32("t.f32", 0.5)
        w.add_uint64("t.u64", 1 << 40)
        w.add_int64("t.i64", -(1 << 40))
        w.add_float64("t.f64", 0.25)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "héllo")
        w.add_array("t.arr.i32", [1, 2, 3])
        w.add_array("t.arr.str", ["a", "bc", ""])
        w.add_tensor("t0", rng.standard_normal((3, 5)).astype(np.float32))

    write("all-types", all_types)

    def model_f32(w):
        llama(w)
        w.add_tensor("token_embd.weight", rng.standard_normal((8, 32)).astype(np.float32))
        w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((32, 32)).astype(np.float16))

    write("llama-f32-f16", model_f32, control=b"\x00\x00")

    def model_q(w):
        llama(w)
        for name, t in (("blk.0.ffn_up.weight", gguf.GGMLQuantizationType.Q8_0),
                        ("blk.0.ffn_down.weight", gguf.GGMLQuantizationType.Q4_0)):
            a = rng.standard_normal((4, 64)).astype(np.float32)
            q = quant(a, t)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=t)

    write("llama-q8-q4", model_q, control=b"\x03\x01")
    write("aligned-64", model_q, control=b"\x10\x00", alignment=64)


if __name__ == "__main__":
    main()
