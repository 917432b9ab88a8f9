//! Building the tokenizer from a Hugging Face `tokenizer.json` (a Llama-style BPE model with
//! byte fallback).

use std::str::FromStr;

use tokenizers::ModelWrapper;

use super::special::{resolve, ExplicitIds};
use super::{parse_byte_piece, PieceKind, Tokenizer, TokenizerError, SPACE_MARKER};

fn json_err(msg: impl Into<String>) -> TokenizerError {
    TokenizerError::Json(msg.into())
}

impl Tokenizer {
    /// Builds the tokenizer from a Hugging Face `tokenizer.json` document. The model must be
    /// BPE with `byte_fallback` (as Llama's and Code Llama's are). Special added tokens become
    /// control pieces (never matched in user text), `<0xNN>` pieces byte pieces; BOS/EOS and the
    /// infill ids are found by piece text (`<s>`, `</s>`, `▁<PRE>`, ...).
    pub fn from_json(json: &str) -> Result<Tokenizer, TokenizerError> {
        let mut inner =
            tokenizers::Tokenizer::from_str(json).map_err(|e| json_err(e.to_string()))?;
        let ModelWrapper::BPE(bpe) = inner.get_model() else {
            return Err(json_err("the model is not BPE"));
        };
        if !bpe.byte_fallback {
            return Err(json_err("the BPE model has no byte_fallback"));
        }
        if bpe.ignore_merges || bpe.dropout.is_some_and(|d| d > 0.0) {
            return Err(json_err(
                "ignore_merges / dropout are not SentencePiece semantics",
            ));
        }
        let unk_token = bpe.unk_token.clone();
        // No word cache (as for a GGUF vocabulary, see `build_encoders`): without a
        // pre-tokenizer its keys are whole prompts.
        let mut uncached = bpe.clone();
        uncached.resize_cache(0);
        inner.with_model(uncached);

        let vocab = inner.get_vocab(true);
        let n = vocab.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let mut pieces: Vec<Option<String>> = vec![None; n];
        for (piece, id) in vocab {
            match pieces.get_mut(id as usize) {
                Some(slot @ None) => *slot = Some(piece),
                _ => return Err(json_err(format!("token ids are not 0..{n} (id {id})"))),
            }
        }
        let pieces: Vec<String> = pieces
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| json_err("token ids are not contiguous"))?;

        let added = inner.get_added_tokens_decoder();
        let kinds: Vec<PieceKind> = pieces
            .iter()
            .enumerate()
            .map(|(id, piece)| match added.get(&(id as u32)) {
                Some(t) if t.special && unk_token.as_deref() == Some(piece.as_str()) => {
                    PieceKind::Unknown
                }
                Some(t) if t.special => PieceKind::Control,
                Some(_) => PieceKind::UserDefined,
                None if unk_token.as_deref() == Some(piece.as_str()) => PieceKind::Unknown,
                None => parse_byte_piece(piece).map_or(PieceKind::Normal, PieceKind::Byte),
            })
            .collect();
        for b in 0..=255u8 {
            if !kinds.contains(&PieceKind::Byte(b)) {
                return Err(TokenizerError::MissingBytePiece(b));
            }
        }

        // Special-looking text is encoded as text.
        inner.set_encode_special_tokens(true);

        // Does this tokenizer add the SentencePiece space prefix? Ask it.
        let probe = inner
            .encode_fast("a", false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let probe: String = probe
            .get_ids()
            .iter()
            .filter_map(|&id| pieces.get(id as usize).map(String::as_str))
            .collect();
        let add_space_prefix = match probe.as_str() {
            "a" => false,
            p if p == format!("{SPACE_MARKER}a") => true,
            p => {
                return Err(json_err(format!(
                    "encoding \"a\" gave {p:?}, not SentencePiece-like"
                )))
            }
        };

        let special = resolve(&pieces, &ExplicitIds::default())?;
        Ok(Tokenizer {
            inner,
            no_prefix: None,
            pieces,
            kinds,
            special,
            add_space_prefix,
        })
    }
}
