//! The tokenizer (the real Llama vocabulary of tests/fixtures/vocab) on arbitrary text and ids:
//! encode never fails on valid UTF-8, decoding what was encoded gives the text back (SentencePiece
//! with byte fallback is lossless, but for U+2581, which reads as a space), and decoding arbitrary
//! ids is an error or a string, never a panic.
#![no_main]

use std::sync::OnceLock;

use codellama_webgpu::gguf;
use codellama_webgpu::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let bytes = include_bytes!("../../../tests/fixtures/vocab/ggml-vocab-llama-spm.gguf");
        let file = gguf::read_bytes(bytes).expect("vocab fixture");
        Tokenizer::from_metadata(&file.header.metadata).expect("vocab")
    })
}

fuzz_target!(|data: &[u8]| {
    let tok = tok();
    if let Ok(text) = std::str::from_utf8(data) {
        let ids = tok.encode(text, true).expect("encode");
        assert_eq!(ids.first(), Some(&tok.special().bos));
        let back = tok.decode(&ids[1..]).expect("decode");
        // SentencePiece writes a space as U+2581 and decodes U+2581 as a space (Python's
        // sentencepiece does the same), so that character alone does not come back as itself.
        assert_eq!(back, text.replace('\u{2581}', " "), "round trip");
        let _ = tok
            .encode_no_prefix(text)
            .expect("encode without the dummy prefix");
    }
    // Any ids, in range or not.
    let ids: Vec<u32> = data
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .collect();
    let _ = tok.decode(&ids);
    let _ = tok.decode_continuation(&ids);
});
