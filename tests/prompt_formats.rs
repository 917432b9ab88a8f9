//! Meta's completion, infill and chat prompt formats, against ids derived independently with
//! Python `sentencepiece` and Meta's formatting code (scripts/prompt_vectors.py; its output is
//! pasted below).

#[path = "tokenizer_common.rs"]
mod common;

use codellama_webgpu::prompt::{
    chat, completion, infill, stop_ids, InfillMode, Message, PromptError, PromptKind, Role,
};
use codellama_webgpu::tokenizer::{StreamDecoder, TokenizerError};
use common::*;

// ---- Output of `scripts/prompt_vectors.py` ----
// SentencePiece on llama.cpp's Llama vectors: 46 of 46
// The facts doc's reference infill vector reproduces.
const PSM_FACTS: &[u32] = &[
    1, 32007, 822, 3349, 29918, 5464, 29918, 294, 18869, 29898, 29879, 29901, 851, 29897, 1599,
    851, 29901, 13, 1678, 9995, 29871, 32008, 13, 1678, 736, 1121, 13, 32009,
];
const SPM_FACTS: &[u32] = &[
    1, 32007, 32008, 13, 1678, 736, 1121, 13, 32009, 822, 3349, 29918, 5464, 29918, 294, 18869,
    29898, 29879, 29901, 851, 29897, 1599, 851, 29901, 13, 1678, 9995, 29871,
];
const PSM_EMPTY_PREFIX: &[u32] = &[1, 32007, 32008, 1678, 736, 921, 13, 32009];
const SPM_EMPTY_PREFIX: &[u32] = &[1, 32007, 32008, 1678, 736, 921, 13, 32009];
const PSM_EMPTY_SUFFIX: &[u32] = &[
    1, 32007, 7876, 1667, 580, 426, 13, 1678, 1235, 921, 353, 29871, 32008, 32009,
];
const SPM_EMPTY_SUFFIX: &[u32] = &[
    1, 32007, 32008, 32009, 7876, 1667, 580, 426, 13, 1678, 1235, 921, 353, 29871,
];
const PSM_BOTH_EMPTY: &[u32] = &[1, 32007, 32008, 32009];
const PSM_UNICODE: &[u32] = &[
    1, 32007, 396, 1632, 29993, 5831, 29892, 29871, 30793, 30967, 29871, 243, 162, 169, 156, 13,
    29879, 353, 525, 32008, 29915, 29871, 396, 29871, 31171, 1055, 30085, 345, 13, 32009,
];
const SPM_UNICODE: &[u32] = &[
    1, 32007, 32008, 29915, 29871, 396, 29871, 31171, 1055, 30085, 345, 13, 32009, 396, 1632,
    29993, 5831, 29892, 29871, 30793, 30967, 29871, 243, 162, 169, 156, 13, 29879, 353, 525,
];
const PSM_SPACES: &[u32] = &[
    1, 32007, 259, 565, 921, 29901, 13, 12, 32008, 29871, 13, 259, 13, 32009,
];
const CHAT_SINGLE: &[u32] = &[
    1, 518, 25580, 29962, 14350, 263, 740, 393, 18764, 267, 263, 1347, 29889, 518, 29914, 25580,
    29962,
];
const CHAT_SYSTEM_MULTI: &[u32] = &[
    1, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 29871, 9133, 680, 6089, 297, 8286, 29889,
    13, 13, 29966, 829, 14816, 29903, 6778, 13, 13, 1123, 3901, 263, 1347, 29973, 518, 29914,
    25580, 29962, 269, 29889, 5451, 877, 2824, 24244, 2141, 7122, 877, 1495, 29871, 2, 1, 518,
    25580, 29962, 1126, 297, 390, 504, 29892, 411, 2505, 29876, 30085, 29883, 9289, 29948, 29871,
    243, 162, 169, 131, 29973, 518, 29914, 25580, 29962,
];
const CHAT_MULTI_NO_SYSTEM: &[u32] = &[
    1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962, 15043, 29991, 29871, 2, 1, 518, 25580,
    29962, 1724, 338, 29871, 29906, 29974, 29906, 29973, 518, 29914, 25580, 29962, 29871, 29946,
    29871, 2, 1, 518, 25580, 29962, 1834, 518, 29914, 25580, 29962,
];
const CHAT_SYSTEM_EMPTY_USER: &[u32] = &[
    1, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3629, 11473, 29889, 13, 29966, 829, 14816,
    29903, 6778, 518, 29914, 25580, 29962,
];
const COMPLETION_CODE: &[u32] = &[
    1, 1053, 9909, 13, 13, 1753, 24543, 29918, 735, 1112, 2556, 29918, 1627, 2696, 29898, 3069,
    29901, 851, 1125,
];
const COMPLETION_INFILL_TEXT: &[u32] = &[1, 263, 32007, 289, 32008, 29883, 32009, 32010];
const SP_DECODE: &[(&[u32], &str)] = &[
    (&[29871, 29871, 15043], "  Hello"),
    (&[1, 29871, 15043, 2], " Hello"),
    (&[0, 15043], " ⁇  Hello"),
    (&[1, 0, 29871], " ⁇  "),
    (&[259, 1678, 15043], "     Hello"),
    (&[35, 15043], "  Hello"),
    (&[229, 133, 15043, 198], "\u{fffd}\u{fffd} Hello\u{fffd}"),
    (&[245, 181, 249, 68], "\u{fffd}\u{fffd}\u{fffd}A"),
    (&[2, 1, 243, 162, 169, 156, 32010, 32007], "🦙 <EOT> <PRE>"),
];
// ---- end of output ----

/// The facts doc's reference vector, copied from docs/codellama-facts.md (not from the script).
const FACTS_DOC_REFERENCE: &[u32] = &[
    1, 32007, 822, 3349, 29918, 5464, 29918, 294, 18869, 29898, 29879, 29901, 851, 29897, 1599,
    851, 29901, 13, 1678, 9995, 29871, 32008, 13, 1678, 736, 1121, 13, 32009,
];

const FACTS_PREFIX: &str = "def remove_non_ascii(s: str) -> str:\n    \"\"\" ";
const FACTS_SUFFIX: &str = "\n    return result\n";

use InfillMode::{PrefixSuffixMiddle as Psm, SuffixPrefixMiddle as Spm};

#[test]
fn facts_doc_reference_infill_vector() {
    let tok = codellama_tokenizer();
    let ids = infill(&tok, FACTS_PREFIX, FACTS_SUFFIX, Psm).unwrap();
    assert_eq!(ids, FACTS_DOC_REFERENCE);
    assert_eq!(ids, PSM_FACTS);
}

#[test]
fn infill_vectors() {
    let tok = codellama_tokenizer();
    let cases: &[(&str, &str, InfillMode, &[u32])] = &[
        (FACTS_PREFIX, FACTS_SUFFIX, Spm, SPM_FACTS),
        ("", "    return x\n", Psm, PSM_EMPTY_PREFIX),
        ("", "    return x\n", Spm, SPM_EMPTY_PREFIX),
        ("fn main() {\n    let x = ", "", Psm, PSM_EMPTY_SUFFIX),
        ("fn main() {\n    let x = ", "", Spm, SPM_EMPTY_SUFFIX),
        ("", "", Psm, PSM_BOTH_EMPTY),
        (
            "# Grüße, 世界 🦙\ns = '",
            "'  # ☺ naïve\n",
            Psm,
            PSM_UNICODE,
        ),
        (
            "# Grüße, 世界 🦙\ns = '",
            "'  # ☺ naïve\n",
            Spm,
            SPM_UNICODE,
        ),
        ("  if x:\n\t", " \n  \n", Psm, PSM_SPACES),
    ];
    for &(prefix, suffix, mode, expected) in cases {
        let got = infill(&tok, prefix, suffix, mode).unwrap();
        assert_eq!(got, expected, "{prefix:?} / {suffix:?} / {mode:?}");
    }
}

#[test]
fn infill_without_infill_tokens_is_a_typed_error() {
    let tok = llama_tokenizer();
    let err = infill(&tok, "a", "b", Psm).unwrap_err();
    assert!(matches!(
        err,
        PromptError::Tokenizer(TokenizerError::NoInfillTokens(_))
    ));
    assert!(stop_ids(&tok, PromptKind::Infill).is_err());
}

#[test]
fn chat_vectors() {
    use Role::*;
    let tok = codellama_tokenizer();
    let m = Message::new;
    let cases: Vec<(Vec<Message>, &[u32])> = vec![
        (
            vec![m(User, "Write a function that reverses a string.")],
            CHAT_SINGLE,
        ),
        (
            vec![
                m(System, "  Provide answers in JavaScript.\n"),
                m(User, "Reverse a string?  "),
                m(Assistant, "\n s.split('').reverse().join('') \n"),
                m(User, "\tAnd in Rust, with ünïcödé 🦀?"),
            ],
            CHAT_SYSTEM_MULTI,
        ),
        (
            vec![
                m(User, "Hi"),
                m(Assistant, "Hello!"),
                m(User, "What is 2+2?"),
                m(Assistant, "4"),
                m(User, "\u{3000}Thanks\u{1c}"),
            ],
            CHAT_MULTI_NO_SYSTEM,
        ),
        (
            vec![m(System, "Be brief."), m(User, "")],
            CHAT_SYSTEM_EMPTY_USER,
        ),
    ];
    for (dialog, expected) in cases {
        assert_eq!(chat(&tok, &dialog).unwrap(), expected, "{dialog:?}");
    }
}

#[test]
fn chat_from_json_file_format() {
    let tok = codellama_tokenizer();
    let dialog: Vec<Message> = serde_json::from_str(
        r#"[{"role": "user", "content": "Write a function that reverses a string."}]"#,
    )
    .unwrap();
    assert_eq!(chat(&tok, &dialog).unwrap(), CHAT_SINGLE);
}

#[test]
fn bad_dialogs_are_typed_errors() {
    use Role::*;
    let tok = codellama_tokenizer();
    let m = Message::new;
    assert_eq!(chat(&tok, &[]), Err(PromptError::EmptyDialog));
    assert_eq!(
        chat(&tok, &[m(System, "s")]),
        Err(PromptError::SystemWithoutUser)
    );
    assert_eq!(
        chat(&tok, &[m(User, "u"), m(Assistant, "a")]),
        Err(PromptError::EndsWithAssistant)
    );
    assert_eq!(
        chat(&tok, &[m(Assistant, "a"), m(User, "u")]),
        Err(PromptError::WrongRole {
            index: 0,
            expected: User,
            found: Assistant
        })
    );
    assert_eq!(
        chat(
            &tok,
            &[
                m(User, "u"),
                m(Assistant, "a"),
                m(System, "s"),
                m(User, "u")
            ]
        ),
        Err(PromptError::MisplacedSystem { index: 2 })
    );
    assert_eq!(
        chat(&tok, &[m(System, "s"), m(System, "s"), m(User, "u")]),
        Err(PromptError::MisplacedSystem { index: 1 })
    );
}

#[test]
fn completion_vectors() {
    let tok = codellama_tokenizer();
    assert_eq!(
        completion(
            &tok,
            "import socket\n\ndef ping_exponential_backoff(host: str):"
        )
        .unwrap(),
        COMPLETION_CODE
    );
    assert_eq!(
        completion(&tok, "a <PRE> b <SUF>c <MID> <EOT>").unwrap(),
        COMPLETION_INFILL_TEXT
    );
    assert_eq!(completion(&tok, "").unwrap(), vec![1]);
}

#[test]
fn stop_ids_per_kind() {
    let tok = codellama_tokenizer();
    assert_eq!(stop_ids(&tok, PromptKind::Completion).unwrap(), vec![2]);
    assert_eq!(stop_ids(&tok, PromptKind::Chat).unwrap(), vec![2]);
    assert_eq!(stop_ids(&tok, PromptKind::Infill).unwrap(), vec![32010, 2]);
}

#[test]
fn the_generated_vocab_gguf_gives_the_same_prompts() {
    // scripts/make_codellama_vocab.py writes this (gitignored) file; regenerate it if absent
    // with `python scripts/make_codellama_vocab.py`. The Rust-built metadata above covers the
    // same vocabulary, so this test reports rather than fails when the file is missing.
    let path = repo_root().join("tests/fixtures/generated/codellama-vocab.gguf");
    let Ok(bytes) = std::fs::read(&path) else {
        println!("{} not present: not compared", path.display());
        return;
    };
    let meta = codellama_webgpu::gguf::read_bytes(&bytes)
        .unwrap()
        .header
        .metadata;
    let tok = codellama_webgpu::tokenizer::Tokenizer::from_metadata(&meta).unwrap();
    assert_eq!(
        infill(&tok, FACTS_PREFIX, FACTS_SUFFIX, Psm).unwrap(),
        FACTS_DOC_REFERENCE
    );
    assert_eq!(
        completion(&tok, "a <PRE> b <SUF>c <MID> <EOT>").unwrap(),
        COMPLETION_INFILL_TEXT
    );
}

#[test]
fn decode_matches_sentencepiece() {
    let tok = codellama_tokenizer();
    for &(ids, expected) in SP_DECODE {
        assert_eq!(tok.decode(ids).unwrap(), expected, "{ids:?}");
        let mut s = StreamDecoder::new(&tok);
        let mut streamed = String::new();
        for &id in ids {
            streamed.push_str(&s.push(id).unwrap());
        }
        streamed.push_str(&s.finish());
        assert_eq!(streamed, expected, "streamed {ids:?}");
    }
}
