//! The Code Llama tokenizer: SentencePiece BPE with byte fallback, built either from the
//! `tokenizer.ggml.*` metadata of a GGUF file ([`Tokenizer::from_metadata`]) or from a
//! Hugging Face `tokenizer.json` ([`Tokenizer::from_json`]).
//!
//! Encoding runs on the `tokenizers` crate (a BPE model whose merges are ranked by the merged
//! piece's score, which reproduces SentencePiece's "merge the best-scoring adjacent pair,
//! leftmost first"). Decoding works on the pieces directly, so that [`StreamDecoder`] can
//! reproduce [`Tokenizer::decode`] exactly, one token at a time.
//!
//! Decoding rules (SentencePiece's): control pieces (`<s>`, `</s>`, ...) produce nothing;
//! `<0xNN>` byte pieces produce their byte; every other piece produces its text with `▁`
//! turned into a space; the unknown piece produces ` ⁇ `. When the vocabulary adds a space
//! prefix, the `▁` that starts the first text-producing piece is dropped (only that one, only
//! at the very start). The bytes are then read as UTF-8, where every byte that does not begin
//! a complete, valid UTF-8 character becomes one U+FFFD (SentencePiece's rule, and also what
//! the `ByteFallback` decoder of `tokenizers` does for an invalid run of byte tokens).

mod error;
mod from_gguf;
mod from_json;
mod special;
mod stream;

pub use error::TokenizerError;
pub use special::{InfillTokens, SpecialTokens};
pub use stream::StreamDecoder;

use std::borrow::Cow;

/// The space marker of SentencePiece pieces.
pub const SPACE_MARKER: char = '▁';
/// What SentencePiece decodes the unknown piece to.
pub const UNKNOWN_SURFACE: &str = " \u{2047} ";

/// The kind of one vocabulary entry (GGUF `tokenizer.ggml.token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceKind {
    /// 1: an ordinary piece.
    Normal,
    /// 2: the unknown piece.
    Unknown,
    /// 3: a control piece (`<s>`, `</s>`): never produced from text, decodes to nothing.
    Control,
    /// 4: a user-defined piece.
    UserDefined,
    /// 5: an unused piece: never produced from text.
    Unused,
    /// 6: a byte-fallback piece `<0xNN>`.
    Byte(u8),
}

impl PieceKind {
    /// The GGUF token type id.
    pub fn gguf_type(self) -> i32 {
        match self {
            PieceKind::Normal => 1,
            PieceKind::Unknown => 2,
            PieceKind::Control => 3,
            PieceKind::UserDefined => 4,
            PieceKind::Unused => 5,
            PieceKind::Byte(_) => 6,
        }
    }

    /// Whether encoding user text may produce this piece.
    pub fn producible_from_text(self) -> bool {
        matches!(
            self,
            PieceKind::Normal | PieceKind::UserDefined | PieceKind::Byte(_)
        )
    }
}

/// Parses a byte-fallback piece `<0xNN>` (upper-case hex, as SentencePiece writes it).
pub(crate) fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A Code Llama (SentencePiece BPE) tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    /// Encodes with the space prefix (when the vocabulary asks for one).
    inner: tokenizers::Tokenizer,
    /// Encodes without the space prefix; `None`: use Meta's `"☺" + text` trick on `inner`.
    no_prefix: Option<tokenizers::Tokenizer>,
    pieces: Vec<String>,
    kinds: Vec<PieceKind>,
    special: SpecialTokens,
    add_space_prefix: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.pieces.len())
            .field("special", &self.special)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish_non_exhaustive()
    }
}

/// One token's contribution to decoded bytes.
pub(crate) enum TokenBytes<'a> {
    /// Produces nothing (control pieces).
    Nothing,
    /// Produces these bytes; `strippable` when they start with a space that came from `▁`.
    Text {
        bytes: Cow<'a, [u8]>,
        strippable: bool,
    },
}

impl Tokenizer {
    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece text of `id` (`▁` for spaces, `<0xNN>` for byte pieces).
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// The kind of piece `id`.
    pub fn piece_kind(&self, id: u32) -> Option<PieceKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The id of a piece, by its exact text.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.pieces
            .iter()
            .position(|p| p == piece)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// BOS, EOS and the infill ids.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// The infill ids, or a typed error for a model without them.
    pub fn infill_tokens(&self) -> Result<InfillTokens, TokenizerError> {
        self.special.infill()
    }

    /// Whether [`Tokenizer::encode`] adds the leading-space prefix.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The underlying `tokenizers` tokenizer (for serializing it, e.g. to `tokenizer.json`).
    pub fn hf_tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Serializes the underlying `tokenizers` tokenizer as a `tokenizer.json` document.
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(false)
            .map_err(|e| TokenizerError::Json(e.to_string()))
    }

    fn check_id(&self, id: u32) -> Result<(), TokenizerError> {
        if (id as usize) < self.pieces.len() {
            Ok(())
        } else {
            Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.pieces.len(),
            })
        }
    }

    fn run_encoder(
        &self,
        encoder: &tokenizers::Tokenizer,
        text: &str,
    ) -> Result<Vec<u32>, TokenizerError> {
        let encoding = encoder
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let ids = encoding.get_ids();
        for &id in ids {
            match self.kinds.get(id as usize) {
                Some(kind) if kind.producible_from_text() => {}
                _ => return Err(TokenizerError::ForbiddenToken { id }),
            }
        }
        Ok(ids.to_vec())
    }

    /// Encodes `text` the SentencePiece way (with the leading-space prefix when the vocabulary
    /// asks for one, which Llama's does), optionally preceded by BOS. Special-looking text such
    /// as `"<s>"` is encoded as plain text; control pieces never come out of user text.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if add_bos {
            ids.push(self.special.bos);
        }
        if !text.is_empty() {
            ids.extend(self.run_encoder(&self.inner, text)?);
        }
        Ok(ids)
    }

    /// Encodes `text` without the leading-space prefix (Meta's `encode_infilling`, which
    /// encodes `"☺" + text` and drops the first two ids). Empty text gives no ids.
    pub fn encode_no_prefix(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        match &self.no_prefix {
            Some(encoder) => self.run_encoder(encoder, text),
            None if !self.add_space_prefix => self.run_encoder(&self.inner, text),
            None => {
                // Meta's trick: the ids that spell the prefix space and "☺" come first and are
                // dropped. In Code Llama's vocabulary that is `▁` + `☺`; a vocabulary without a
                // `☺` piece spells it with byte pieces, which never merge with what follows.
                let ids = self.run_encoder(&self.inner, &format!("\u{263A}{text}"))?;
                let marker = " \u{263A}".as_bytes();
                let mut spelled = Vec::new();
                let mut k = 0;
                while spelled.len() < marker.len() && k < ids.len() {
                    match self.token_bytes(ids[k]) {
                        TokenBytes::Text { bytes, .. } => spelled.extend_from_slice(&bytes),
                        TokenBytes::Nothing => break,
                    }
                    k += 1;
                }
                if spelled != marker {
                    return Err(TokenizerError::NoPrefixUnsupported);
                }
                Ok(ids[k..].to_vec())
            }
        }
    }

    /// What token `id` contributes to decoded bytes (the id must be in range).
    pub(crate) fn token_bytes(&self, id: u32) -> TokenBytes<'_> {
        let i = id as usize;
        match self.kinds[i] {
            PieceKind::Control => TokenBytes::Nothing,
            PieceKind::Byte(b) => TokenBytes::Text {
                bytes: Cow::Owned(vec![b]),
                strippable: false,
            },
            PieceKind::Unknown => TokenBytes::Text {
                bytes: Cow::Borrowed(UNKNOWN_SURFACE.as_bytes()),
                strippable: false,
            },
            PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused => {
                let piece = &self.pieces[i];
                let strippable = piece.starts_with(SPACE_MARKER);
                let bytes = if piece.contains(SPACE_MARKER) {
                    Cow::Owned(piece.replace(SPACE_MARKER, " ").into_bytes())
                } else {
                    Cow::Borrowed(piece.as_bytes())
                };
                TokenBytes::Text { bytes, strippable }
            }
        }
    }

    /// Decodes ids to text (see the module docs for the rules); the leading space that the
    /// encoder's prefix added is removed. Out-of-range ids are an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_impl(ids, self.add_space_prefix)
    }

    /// Decodes ids that continue earlier text (e.g. an infill middle): no leading space is
    /// removed.
    pub fn decode_continuation(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_impl(ids, false)
    }

    fn decode_impl(&self, ids: &[u32], strip_first: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        let mut at_start = strip_first;
        for &id in ids {
            self.check_id(id)?;
            append_token_bytes(&mut bytes, self.token_bytes(id), &mut at_start);
        }
        let mut text = String::with_capacity(bytes.len());
        decode_utf8_per_byte(&bytes, &mut text, true);
        Ok(text)
    }
}

/// Appends `bytes` to `out` as UTF-8, replacing each byte that does not begin a complete valid
/// character by one U+FFFD. Unless `at_end`, a truncated (possibly valid) sequence at the end is
/// left alone. Returns the number of bytes consumed.
pub(crate) fn decode_utf8_per_byte(bytes: &[u8], out: &mut String, at_end: bool) -> usize {
    let mut pos = 0;
    while pos < bytes.len() {
        match std::str::from_utf8(&bytes[pos..]) {
            Ok(s) => {
                out.push_str(s);
                pos = bytes.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if let Ok(s) = std::str::from_utf8(&bytes[pos..pos + valid]) {
                    out.push_str(s);
                }
                pos += valid;
                if e.error_len().is_none() && !at_end {
                    break;
                }
                out.push(char::REPLACEMENT_CHARACTER);
                pos += 1;
            }
        }
    }
    pos
}

/// Appends one token's bytes, dropping the leading space of the first text-producing token
/// while `at_start` is set.
pub(crate) fn append_token_bytes(out: &mut Vec<u8>, tb: TokenBytes<'_>, at_start: &mut bool) {
    if let TokenBytes::Text { bytes, strippable } = tb {
        if *at_start && strippable && bytes.first() == Some(&b' ') {
            out.extend_from_slice(&bytes[1..]);
        } else {
            out.extend_from_slice(&bytes);
        }
        *at_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_byte(bytes: &[u8], at_end: bool) -> (String, usize) {
        let mut s = String::new();
        let n = decode_utf8_per_byte(bytes, &mut s, at_end);
        (s, n)
    }

    #[test]
    fn invalid_bytes_become_one_replacement_each() {
        assert_eq!(per_byte(b"ab", true), ("ab".into(), 2));
        assert_eq!(
            per_byte(b"\xE2\x82A", true),
            ("\u{FFFD}\u{FFFD}A".into(), 3)
        );
        assert_eq!(per_byte(b"\xF2\xB2\xF6", true), ("\u{FFFD}".repeat(3), 3));
        assert_eq!(per_byte(b"x\xE2\x82", false), ("x".into(), 1));
        assert_eq!(
            per_byte(b"x\xE2\x82", true),
            ("x\u{FFFD}\u{FFFD}".into(), 3)
        );
        assert_eq!(per_byte("é".as_bytes(), false), ("é".into(), 2));
        assert_eq!(per_byte(b"\x80", false), ("\u{FFFD}".into(), 1));
    }

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(parse_byte_piece("<0x00>"), Some(0));
        assert_eq!(parse_byte_piece("<0xFF>"), Some(255));
        assert_eq!(parse_byte_piece("<0x0A>"), Some(10));
        assert_eq!(parse_byte_piece("<0xG0>"), None);
        assert_eq!(parse_byte_piece("<0x100>"), None);
        assert_eq!(parse_byte_piece("0x10"), None);
        assert_eq!(parse_byte_piece("<0x+1>"), None);
    }
}
