//! The tokenizer against llama.cpp's Llama vocabulary test vectors, plus `from_json`, decoding,
//! streaming and error cases.

#[path = "tokenizer_common.rs"]
mod common;

use codellama_webgpu::gguf::Value;
use codellama_webgpu::tokenizer::{PieceKind, StreamDecoder, Tokenizer, TokenizerError};
use common::*;

/// The exact number of cases in the fixture (46 inputs, 46 output lines).
const EXPECTED_CASES: usize = 46;

#[test]
fn llama_cpp_vectors_all_match() {
    let tok = llama_tokenizer();
    let vectors = llama_vectors();
    assert_eq!(vectors.len(), EXPECTED_CASES);
    let mut ok = 0;
    for (text, expected) in &vectors {
        let got = tok.encode(text, false).unwrap();
        if &got == expected {
            ok += 1;
        } else {
            eprintln!("MISMATCH {text:?}\n  expected {expected:?}\n  got      {got:?}");
        }
    }
    println!(
        "llama.cpp Llama vocab vectors: {ok} of {} match",
        vectors.len()
    );
    assert_eq!(ok, vectors.len());
}

#[test]
fn bos_is_prepended_on_request() {
    let tok = llama_tokenizer();
    let plain = tok.encode("Hello world", false).unwrap();
    let with_bos = tok.encode("Hello world", true).unwrap();
    assert_eq!(with_bos[0], 1);
    assert_eq!(&with_bos[1..], &plain[..]);
    assert_eq!(tok.encode("", true).unwrap(), vec![1]);
    assert_eq!(tok.encode("", false).unwrap(), Vec::<u32>::new());
}

#[test]
fn from_json_gives_identical_ids() {
    let tok = llama_tokenizer();
    let json = tok.to_json().unwrap();
    let tj = Tokenizer::from_json(&json).unwrap();
    assert_eq!(tj.vocab_size(), tok.vocab_size());
    assert_eq!(tj.special(), tok.special());
    assert!(tj.add_space_prefix());
    let vectors = llama_vectors();
    let mut ok = 0;
    for (text, expected) in &vectors {
        let got = tj.encode(text, false).unwrap();
        if &got == expected {
            ok += 1;
        } else {
            eprintln!("from_json MISMATCH {text:?}\n  expected {expected:?}\n  got {got:?}");
        }
        assert_eq!(
            tj.encode_no_prefix(text).unwrap(),
            tok.encode_no_prefix(text).unwrap(),
            "no-prefix {text:?}"
        );
        assert_eq!(tj.decode(expected).unwrap(), tok.decode(expected).unwrap());
    }
    println!("from_json: {ok} of {} match", vectors.len());
    assert_eq!(ok, vectors.len());
    for id in 0..tok.vocab_size() as u32 {
        assert_eq!(tj.piece(id), tok.piece(id));
        assert_eq!(tj.piece_kind(id), tok.piece_kind(id), "kind of {id}");
    }
}

#[test]
fn from_json_codellama_finds_infill_ids() {
    let tok = codellama_tokenizer();
    let tj = Tokenizer::from_json(&tok.to_json().unwrap()).unwrap();
    let i = tj.infill_tokens().unwrap();
    assert_eq!(
        (i.prefix, i.suffix, i.middle, i.eot),
        (32007, 32008, 32009, 32010)
    );
}

#[test]
fn from_json_rejects_non_bpe_and_garbage() {
    assert!(matches!(
        Tokenizer::from_json("{"),
        Err(TokenizerError::Json(_))
    ));
    let wordlevel = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"a":0,"<unk>":1},"unk_token":"<unk>"}}"#;
    assert!(matches!(
        Tokenizer::from_json(wordlevel),
        Err(TokenizerError::Json(_))
    ));
}

#[test]
fn decode_round_trips_and_agrees_with_the_hf_decoder() {
    let tok = llama_tokenizer();
    for (text, ids) in llama_vectors() {
        let ours = tok.decode(&ids).unwrap();
        assert_eq!(ours, text, "round trip of {text:?}");
        let hf = tok.hf_tokenizer().decode(&ids, true).unwrap();
        assert_eq!(hf, ours, "HF decoder on {text:?}");
        // BOS / EOS decode to nothing and do not disturb the leading-space rule.
        let mut framed = vec![tok.special().bos];
        framed.extend(&ids);
        framed.push(tok.special().eos);
        assert_eq!(tok.decode(&framed).unwrap(), text);
    }
    // A continuation keeps its leading space.
    let ids = tok.encode("x = 1", false).unwrap();
    assert_eq!(tok.decode_continuation(&ids).unwrap(), " x = 1");
}

#[test]
fn no_prefix_encoding_matches_metas_trick() {
    let tok = llama_tokenizer();
    assert_eq!(tok.encode_no_prefix("").unwrap(), Vec::<u32>::new());
    for (text, _) in llama_vectors() {
        if text.is_empty() {
            continue;
        }
        // Meta: sp.encode("☺" + s)[2:]
        let meta = tok.encode(&format!("☺{text}"), false).unwrap();
        assert_eq!(tok.piece(meta[0]), Some("▁"));
        assert_eq!(tok.piece(meta[1]), Some("☺"));
        assert_eq!(tok.encode_no_prefix(&text).unwrap(), meta[2..], "{text:?}");
    }
    // "\n" without a prefix is the newline byte alone.
    assert_eq!(tok.encode_no_prefix("\n").unwrap(), vec![13]);
}

#[test]
fn control_pieces_never_come_from_text() {
    let tok = codellama_tokenizer();
    for text in ["<s>", "</s>", "<unk>", "a<s>b</s>c<unk>", "<s> </s>"] {
        for ids in [
            tok.encode(text, false).unwrap(),
            tok.encode_no_prefix(text).unwrap(),
        ] {
            for id in ids {
                let kind = tok.piece_kind(id).unwrap();
                assert!(kind.producible_from_text(), "{text:?} gave {id} ({kind:?})");
                assert!(id > 2);
            }
        }
    }
}

#[test]
fn codellama_vocab_pieces() {
    let tok = codellama_tokenizer();
    assert_eq!(tok.vocab_size(), 32016);
    let s = tok.special();
    assert_eq!((s.bos, s.eos), (1, 2));
    assert_eq!(
        (s.prefix, s.suffix, s.middle, s.eot),
        (Some(32007), Some(32008), Some(32009), Some(32010))
    );
    assert_eq!(tok.piece(32007), Some("▁<PRE>"));
    assert_eq!(tok.piece_kind(32010), Some(PieceKind::Normal));
    // The Llama-only vocabulary has no infill tokens: a typed error.
    assert!(matches!(
        llama_tokenizer().infill_tokens(),
        Err(TokenizerError::NoInfillTokens(_))
    ));
    // The generated vocab GGUF (scripts/make_codellama_vocab.py), when present, must agree with
    // the metadata built here.
    let generated = repo_root().join("tests/fixtures/generated/codellama-vocab.gguf");
    if generated.exists() {
        let bytes = std::fs::read(&generated).unwrap();
        let meta = codellama_webgpu::gguf::read_bytes(&bytes)
            .unwrap()
            .header
            .metadata;
        let here = codellama_metadata();
        for key in [
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.scores",
            "tokenizer.ggml.token_type",
        ] {
            assert_eq!(meta.get(key), here.get(key), "{key}");
        }
        let t = Tokenizer::from_metadata(&meta).unwrap();
        assert_eq!(t.special(), tok.special());
    }
}

#[test]
fn explicit_gguf_keys_win_and_are_range_checked() {
    let meta = codellama_metadata();
    let m = with_key(
        &meta,
        "tokenizer.ggml.fim_pre_token_id",
        Some(Value::U32(32002)),
    );
    let m = with_key(&m, "tokenizer.ggml.eot_token_id", Some(Value::I32(-1)));
    let t = Tokenizer::from_metadata(&m).unwrap();
    assert_eq!(t.special().prefix, Some(32002));
    // -1 means "none": fall back to the piece text.
    assert_eq!(t.special().eot, Some(32010));
    let m = with_key(
        &meta,
        "tokenizer.ggml.middle_token_id",
        Some(Value::U32(32005)),
    );
    assert_eq!(
        Tokenizer::from_metadata(&m).unwrap().special().middle,
        Some(32005)
    );
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.fim_suf_token_id",
    ] {
        let m = with_key(&meta, key, Some(Value::U32(32016)));
        assert!(
            matches!(
                Tokenizer::from_metadata(&m),
                Err(TokenizerError::SpecialIdOutOfRange { id: 32016, .. })
            ),
            "{key}"
        );
    }
}

#[test]
fn metadata_errors_are_typed() {
    let meta = llama_metadata();
    let err = |m| Tokenizer::from_metadata(&m).unwrap_err();
    assert_eq!(
        err(with_key(
            &meta,
            "tokenizer.ggml.model",
            Some(Value::String("gpt2".into()))
        )),
        TokenizerError::WrongModel {
            found: "gpt2".into()
        }
    );
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    ] {
        assert_eq!(
            err(with_key(&meta, key, None)),
            TokenizerError::MissingKey(key)
        );
    }
    // Scores one short.
    let (t, scores) = meta.get_array("tokenizer.ggml.scores").unwrap();
    let short = Value::Array(t, scores[..scores.len() - 1].to_vec());
    assert!(matches!(
        err(with_key(&meta, "tokenizer.ggml.scores", Some(short))),
        TokenizerError::LengthMismatch {
            expected: 32000,
            found: 31999,
            ..
        }
    ));
    // Types one long.
    let (t, types) = meta.get_array("tokenizer.ggml.token_type").unwrap();
    let mut long = types.to_vec();
    long.push(Value::I32(1));
    assert!(matches!(
        err(with_key(
            &meta,
            "tokenizer.ggml.token_type",
            Some(Value::Array(t, long))
        )),
        TokenizerError::LengthMismatch { found: 32001, .. }
    ));
    // A wrong token type value, and a byte type on a non-byte piece.
    let mut bad = types.to_vec();
    bad[500] = Value::I32(9);
    assert_eq!(
        err(with_key(
            &meta,
            "tokenizer.ggml.token_type",
            Some(Value::Array(t, bad))
        )),
        TokenizerError::InvalidTokenType { id: 500, value: 9 }
    );
    let mut bad = types.to_vec();
    bad[500] = Value::I32(6);
    assert!(matches!(
        err(with_key(
            &meta,
            "tokenizer.ggml.token_type",
            Some(Value::Array(t, bad))
        )),
        TokenizerError::InvalidBytePiece { id: 500, .. }
    ));
    // A byte piece turned into a normal one: byte fallback is incomplete.
    let mut bad = types.to_vec();
    bad[3 + 0x41] = Value::I32(1);
    assert_eq!(
        err(with_key(
            &meta,
            "tokenizer.ggml.token_type",
            Some(Value::Array(t, bad))
        )),
        TokenizerError::MissingBytePiece(0x41)
    );
    // Wrong value types.
    assert!(matches!(
        err(with_key(
            &meta,
            "tokenizer.ggml.tokens",
            Some(Value::U32(3))
        )),
        TokenizerError::WrongType { .. }
    ));
    assert!(matches!(
        err(with_key(
            &meta,
            "tokenizer.ggml.add_space_prefix",
            Some(Value::U32(1))
        )),
        TokenizerError::WrongType { .. }
    ));
    assert_eq!(
        err(with_key(
            &meta,
            "tokenizer.ggml.tokens",
            Some(string_array(&[]))
        )),
        TokenizerError::EmptyVocab
    );
}

#[test]
fn add_space_prefix_false_is_respected() {
    let meta = with_key(
        &llama_metadata(),
        "tokenizer.ggml.add_space_prefix",
        Some(Value::Bool(false)),
    );
    let tok = Tokenizer::from_metadata(&meta).unwrap();
    let reference = llama_tokenizer();
    assert!(!tok.add_space_prefix());
    for text in ["Hello world", " Hello", "\n", "def f():"] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, reference.encode_no_prefix(text).unwrap());
        assert_eq!(tok.encode_no_prefix(text).unwrap(), ids);
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
}

#[test]
fn out_of_range_ids_are_errors() {
    let tok = llama_tokenizer();
    assert_eq!(
        tok.decode(&[1, 15043, 32000]),
        Err(TokenizerError::IdOutOfRange {
            id: 32000,
            vocab_size: 32000
        })
    );
    assert!(tok.decode(&[u32::MAX]).is_err());
    let mut s = StreamDecoder::new(&tok);
    assert_eq!(s.push(15043).unwrap(), "Hello");
    assert!(matches!(
        s.push(40000),
        Err(TokenizerError::IdOutOfRange { id: 40000, .. })
    ));
    assert_eq!(s.push(3186).unwrap(), " world");
    assert_eq!(s.finish(), "");
    assert_eq!(tok.piece(32000), None);
}

/// Feeds `ids` one at a time; checks that the emitted text only ever grows the final text and
/// returns it.
fn stream(tok: &Tokenizer, ids: &[u32], continuation: bool) -> String {
    let mut s = if continuation {
        StreamDecoder::continuation(tok)
    } else {
        StreamDecoder::new(tok)
    };
    let mut out = String::new();
    for &id in ids {
        out.push_str(&s.push(id).unwrap());
    }
    out.push_str(&s.finish());
    out
}

#[test]
fn stream_decoder_matches_decode_on_the_vectors() {
    let tok = llama_tokenizer();
    for (text, ids) in llama_vectors() {
        assert_eq!(stream(&tok, &ids, false), text, "{text:?}");
        assert_eq!(
            stream(&tok, &ids, true),
            tok.decode_continuation(&ids).unwrap()
        );
        // Multi-byte characters split over byte tokens never come out broken: every push
        // returns whole characters and, after the last byte, the character.
        let mut s = StreamDecoder::new(&tok);
        let mut so_far = String::new();
        for &id in &ids {
            so_far.push_str(&s.push(id).unwrap());
            assert!(
                text.starts_with(&so_far),
                "{so_far:?} is not a prefix of {text:?}"
            );
        }
        assert!(!s.has_pending());
    }
}

#[test]
fn stream_decoder_holds_split_characters() {
    let tok = llama_tokenizer();
    // 🦙 = F0 9F A6 99, byte pieces are id 3 + byte.
    let ids: Vec<u32> = [0xF0u32, 0x9F, 0xA6, 0x99].iter().map(|b| 3 + b).collect();
    let mut s = StreamDecoder::new(&tok);
    assert_eq!(s.push(ids[0]).unwrap(), "");
    assert_eq!(s.push(ids[1]).unwrap(), "");
    assert_eq!(s.push(ids[2]).unwrap(), "");
    assert_eq!(s.push(ids[3]).unwrap(), "🦙");
    // A truncated character followed by text: one U+FFFD per byte (as SentencePiece), then
    // the text.
    assert_eq!(s.push(3 + 0xE2).unwrap(), "");
    assert_eq!(s.push(3 + 0x82).unwrap(), "");
    assert_eq!(s.push(15043).unwrap(), "\u{FFFD}\u{FFFD} Hello");
    // Unfinished at the end: finish() flushes it as U+FFFD.
    assert_eq!(s.push(3 + 0xC3).unwrap(), "");
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(
        tok.decode(&[
            ids[0],
            ids[1],
            ids[2],
            ids[3],
            3 + 0xE2,
            3 + 0x82,
            15043,
            3 + 0xC3
        ])
        .unwrap(),
        "🦙\u{FFFD}\u{FFFD} Hello\u{FFFD}"
    );
    // The leading-space rule applies only at the very start.
    let mut s = StreamDecoder::new(&tok);
    assert_eq!(s.push(1).unwrap(), "");
    assert_eq!(s.push(15043).unwrap(), "Hello");
    assert_eq!(s.push(15043).unwrap(), " Hello");
}

#[test]
fn stream_decoder_matches_decode_on_random_ids() {
    let tok = codellama_tokenizer();
    let n = tok.vocab_size() as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let len = rng.below(24) as usize;
        let ids: Vec<u32> = (0..len)
            .map(|_| match rng.below(4) {
                // Control / unknown / byte pieces, where the interesting cases are.
                0 => rng.below(259) as u32,
                // Lead and continuation bytes of multi-byte characters.
                1 => 3 + 0x80 + rng.below(0x75) as u32,
                _ => rng.below(n) as u32,
            })
            .collect();
        assert_eq!(
            stream(&tok, &ids, false),
            tok.decode(&ids).unwrap(),
            "round {round}: {ids:?}"
        );
        assert_eq!(
            stream(&tok, &ids, true),
            tok.decode_continuation(&ids).unwrap(),
            "round {round} (continuation): {ids:?}"
        );
    }
}

#[test]
fn random_text_round_trips() {
    let tok = llama_tokenizer();
    let alphabet: Vec<char> = " \t\n▁abcXYZ019_()[]{}<>'\"ä漢🦙\u{FFFD}\u{2581}\u{0}é"
        .chars()
        .collect();
    let mut rng = Rng(12345);
    for _ in 0..500 {
        let len = rng.below(30) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let ids = tok.encode(&text, false).unwrap();
        // "▁" in the input cannot be told apart from a space after decoding.
        let expect = text.replace('▁', " ");
        assert_eq!(tok.decode(&ids).unwrap(), expect, "{text:?}");
        let ids = tok.encode_no_prefix(&text).unwrap();
        assert_eq!(tok.decode_continuation(&ids).unwrap(), expect);
    }
}
