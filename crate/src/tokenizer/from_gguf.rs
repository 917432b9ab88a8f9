//! Building the tokenizer from GGUF `tokenizer.ggml.*` metadata.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper};

use super::special::{resolve, ExplicitIds};
use super::{parse_byte_piece, PieceKind, Tokenizer, TokenizerError, SPACE_MARKER};
use crate::gguf::{Metadata, Value};

pub const KEY_MODEL: &str = "tokenizer.ggml.model";
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub const KEY_SCORES: &str = "tokenizer.ggml.scores";
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// Special-id keys, in order of preference for each role.
const BOS_KEYS: &[&str] = &["tokenizer.ggml.bos_token_id"];
const EOS_KEYS: &[&str] = &["tokenizer.ggml.eos_token_id"];
const EOT_KEYS: &[&str] = &["tokenizer.ggml.eot_token_id"];
const PREFIX_KEYS: &[&str] = &[
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.prefix_token_id",
];
const SUFFIX_KEYS: &[&str] = &[
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.suffix_token_id",
];
const MIDDLE_KEYS: &[&str] = &[
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.middle_token_id",
];

fn array<'a>(
    metadata: &'a Metadata,
    key: &'static str,
    expected: &'static str,
) -> Result<&'a [Value], TokenizerError> {
    match metadata.get(key) {
        None => Err(TokenizerError::MissingKey(key)),
        Some(Value::Array(_, items)) => Ok(items),
        Some(_) => Err(TokenizerError::WrongType { key, expected }),
    }
}

fn check_len(key: &'static str, expected: usize, found: usize) -> Result<(), TokenizerError> {
    if expected == found {
        Ok(())
    } else {
        Err(TokenizerError::LengthMismatch {
            key,
            expected,
            found,
        })
    }
}

/// The first of `keys` present: `Ok(None)` if none is, or if its value is negative (llama.cpp
/// writes -1 for "no such token").
fn special_id(
    metadata: &Metadata,
    keys: &[&'static str],
    vocab_size: usize,
) -> Result<Option<u32>, TokenizerError> {
    for &key in keys {
        let Some(value) = metadata.get(key) else {
            continue;
        };
        let id = value.as_i64().ok_or(TokenizerError::WrongType {
            key,
            expected: "an integer",
        })?;
        if id < 0 {
            return Ok(None);
        }
        return match u32::try_from(id) {
            Ok(v) if (v as usize) < vocab_size => Ok(Some(v)),
            _ => Err(TokenizerError::SpecialIdOutOfRange {
                key,
                id,
                vocab_size,
            }),
        };
    }
    Ok(None)
}

fn piece_kind(id: usize, piece: &str, value: i64) -> Result<PieceKind, TokenizerError> {
    Ok(match value {
        1 => PieceKind::Normal,
        2 => PieceKind::Unknown,
        3 => PieceKind::Control,
        4 => PieceKind::UserDefined,
        5 => PieceKind::Unused,
        6 => PieceKind::Byte(parse_byte_piece(piece).ok_or_else(|| {
            TokenizerError::InvalidBytePiece {
                id,
                piece: piece.to_string(),
            }
        })?),
        _ => return Err(TokenizerError::InvalidTokenType { id, value }),
    })
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata (`tokenizer.ggml.model` must be
    /// `llama`, i.e. SentencePiece BPE).
    pub fn from_metadata(metadata: &Metadata) -> Result<Tokenizer, TokenizerError> {
        let model = match metadata.get(KEY_MODEL) {
            None => return Err(TokenizerError::MissingKey(KEY_MODEL)),
            Some(v) => v.as_str().ok_or(TokenizerError::WrongType {
                key: KEY_MODEL,
                expected: "a string",
            })?,
        };
        if model != "llama" {
            return Err(TokenizerError::WrongModel {
                found: model.to_string(),
            });
        }

        let tokens = array(metadata, KEY_TOKENS, "an array of strings")?;
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let pieces = tokens
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .ok_or(TokenizerError::WrongType {
                key: KEY_TOKENS,
                expected: "an array of strings",
            })?;

        let scores_v = array(metadata, KEY_SCORES, "an array of floats")?;
        check_len(KEY_SCORES, n, scores_v.len())?;
        let scores = scores_v
            .iter()
            .map(|v| match v {
                Value::F32(_) | Value::F64(_) => v.as_f64().map(|f| f as f32),
                _ => None,
            })
            .collect::<Option<Vec<f32>>>()
            .ok_or(TokenizerError::WrongType {
                key: KEY_SCORES,
                expected: "an array of floats",
            })?;

        let types_v = array(metadata, KEY_TOKEN_TYPE, "an array of integers")?;
        check_len(KEY_TOKEN_TYPE, n, types_v.len())?;
        let mut kinds = Vec::with_capacity(n);
        for (id, (value, piece)) in types_v.iter().zip(&pieces).enumerate() {
            let t = value.as_i64().ok_or(TokenizerError::WrongType {
                key: KEY_TOKEN_TYPE,
                expected: "an array of integers",
            })?;
            kinds.push(piece_kind(id, piece, t)?);
        }

        let add_space_prefix = match metadata.get(KEY_ADD_SPACE_PREFIX) {
            None => true,
            Some(v) => v.as_bool().ok_or(TokenizerError::WrongType {
                key: KEY_ADD_SPACE_PREFIX,
                expected: "a bool",
            })?,
        };

        let explicit = ExplicitIds {
            bos: special_id(metadata, BOS_KEYS, n)?,
            eos: special_id(metadata, EOS_KEYS, n)?,
            eot: special_id(metadata, EOT_KEYS, n)?,
            prefix: special_id(metadata, PREFIX_KEYS, n)?,
            suffix: special_id(metadata, SUFFIX_KEYS, n)?,
            middle: special_id(metadata, MIDDLE_KEYS, n)?,
        };
        let special = resolve(&pieces, &explicit)?;
        let (inner, no_prefix) = build_encoders(&pieces, &scores, &kinds, add_space_prefix)?;
        Ok(Tokenizer {
            inner,
            no_prefix,
            pieces,
            kinds,
            special,
            add_space_prefix,
        })
    }
}

fn build_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build(e.to_string())
}

/// Whether BPE may use this piece as a merge input or result.
fn mergeable(kind: PieceKind) -> bool {
    matches!(kind, PieceKind::Normal | PieceKind::UserDefined)
}

/// The merges of a SentencePiece BPE vocabulary: every split of a mergeable piece into two
/// mergeable pieces, ranked by the merged piece's score (best first; ties by id).
fn merges_by_score(
    pieces: &[String],
    scores: &[f32],
    kinds: &[PieceKind],
    vocab: &HashMap<String, u32>,
) -> Vec<(String, String)> {
    let is_mergeable = |s: &str| {
        vocab
            .get(s)
            .is_some_and(|&id| mergeable(kinds[id as usize]))
    };
    let mut merges: Vec<(f32, usize, usize)> = Vec::new();
    for (id, piece) in pieces.iter().enumerate() {
        if !mergeable(kinds[id]) || vocab.get(piece.as_str()) != Some(&(id as u32)) {
            continue;
        }
        for (k, _) in piece.char_indices().skip(1) {
            if is_mergeable(&piece[..k]) && is_mergeable(&piece[k..]) {
                merges.push((scores[id], id, k));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    merges
        .into_iter()
        .map(|(_, id, k)| (pieces[id][..k].to_string(), pieces[id][k..].to_string()))
        .collect()
}

/// Builds the `tokenizers` encoders (with and without the space prefix) for a SentencePiece
/// BPE vocabulary.
pub(crate) fn build_encoders(
    pieces: &[String],
    scores: &[f32],
    kinds: &[PieceKind],
    add_space_prefix: bool,
) -> Result<(tokenizers::Tokenizer, Option<tokenizers::Tokenizer>), TokenizerError> {
    // Piece text -> id (the first id wins where a vocabulary repeats a piece).
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(pieces.len());
    for (id, piece) in pieces.iter().enumerate() {
        vocab.entry(piece.clone()).or_insert(id as u32);
    }
    // Byte fallback must cover every byte, or BPE would silently drop characters.
    for b in 0..=255u8 {
        let ok = vocab
            .get(&format!("<0x{b:02X}>"))
            .is_some_and(|&id| kinds[id as usize] == PieceKind::Byte(b));
        if !ok {
            return Err(TokenizerError::MissingBytePiece(b));
        }
    }
    let merges = merges_by_score(pieces, scores, kinds, &vocab);
    let bpe_vocab: Vocab = vocab.into_iter().collect();
    // No word cache: with no pre-tokenizer a "word" is a whole prompt (between special
    // tokens), so the cache (10,000 entries of up to 256 bytes) would almost never hit, yet
    // it kept every short prompt a long-lived engine saw (the browser soak test's heap grew).
    let mut builder = BPE::builder()
        .vocab_and_merges(bpe_vocab, merges)
        .byte_fallback(true)
        .cache_capacity(0);
    // Recorded for tokenizer.json; never emitted, since byte fallback covers every byte.
    if let Some(i) = kinds.iter().position(|&k| k == PieceKind::Unknown) {
        builder = builder.unk_token(pieces[i].clone());
    }
    let bpe = builder.build().map_err(build_err)?;

    let marker = SPACE_MARKER.to_string();
    let replace: NormalizerWrapper = Replace::new(" ", marker.as_str())
        .map_err(build_err)?
        .into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new(marker.clone()).into(), replace.clone()]).into()
    } else {
        replace.clone()
    };
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(marker.as_str(), " ")
            .map_err(build_err)?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_normalizer(Some(normalizer)).map_err(build_err)?;
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    // Control and unknown pieces are registered as special (so that `tokenizer.json` carries
    // them), but never matched in user text.
    let specials: Vec<AddedToken> = pieces
        .iter()
        .zip(kinds)
        .filter(|(_, k)| matches!(k, PieceKind::Control | PieceKind::Unknown))
        .map(|(p, _)| AddedToken::from(p.clone(), true))
        .collect();
    inner.add_special_tokens(specials).map_err(build_err)?;
    inner.set_encode_special_tokens(true);

    let no_prefix = if add_space_prefix {
        let mut t = inner.clone();
        t.with_normalizer(Some(replace)).map_err(build_err)?;
        Some(t)
    } else {
        None
    };
    Ok((inner, no_prefix))
}
