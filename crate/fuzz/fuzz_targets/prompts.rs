//! The prompt builders (Meta's infill and chat formats) on arbitrary strings and dialogs: a
//! prompt or a typed error, never a panic; a chat prompt starts with BOS and an infill prompt
//! carries the infill ids in Meta's order.
#![no_main]

use std::sync::OnceLock;

use codellama_webgpu::gguf;
use codellama_webgpu::prompt::{self, InfillMode, Message, Role};
use codellama_webgpu::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        // The demo model's vocabulary has the infill pieces (the Llama vocab fixture has not).
        let bytes = include_bytes!("../../../models/codellama-demo.gguf");
        let file = gguf::read_bytes(bytes).expect("demo model");
        Tokenizer::from_metadata(&file.header.metadata).expect("vocab")
    })
}

fuzz_target!(|data: &[u8]| {
    let tok = tok();
    let text = String::from_utf8_lossy(data);
    // Parts separated by 0xFF-free '\u{1}' markers; the first byte picks roles.
    let parts: Vec<&str> = text.split('\u{1}').collect();
    let roles = data.first().copied().unwrap_or(0);
    let (prefix, suffix) = (parts[0], parts.get(1).copied().unwrap_or(""));
    let t = tok.infill_tokens().expect("infill pieces");
    for mode in [
        InfillMode::PrefixSuffixMiddle,
        InfillMode::SuffixPrefixMiddle,
    ] {
        let ids = prompt::infill(tok, prefix, suffix, mode).expect("infill prompt");
        assert_eq!(ids[0], tok.special().bos);
        assert_eq!(ids[1], t.prefix);
        assert_eq!(ids.iter().filter(|&&i| i == t.middle).count(), 1);
    }
    let messages: Vec<Message> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let role = match (roles >> (i % 4 * 2)) & 3 {
                0 => Role::System,
                1 | 3 => Role::User,
                _ => Role::Assistant,
            };
            Message::new(role, *p)
        })
        .collect();
    if let Ok(ids) = prompt::chat(tok, &messages) {
        assert_eq!(ids[0], tok.special().bos);
    }
});
