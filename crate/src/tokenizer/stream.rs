//! Incremental decoding, one token at a time.

use super::{append_token_bytes, decode_utf8_per_byte, Tokenizer, TokenizerError};

/// Decodes generated ids one at a time. Every [`push`](StreamDecoder::push) returns the text
/// completed so far and not yet returned: a character whose UTF-8 bytes arrive in several
/// byte-fallback tokens is held back until it is complete (or known to be invalid, when each
/// of its bytes becomes U+FFFD exactly as [`Tokenizer::decode`] would make it). The concatenation of all
/// pushes and [`finish`](StreamDecoder::finish) equals `decode` of all the ids
/// (`decode_continuation` for [`StreamDecoder::continuation`]).
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
    at_start: bool,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder for text from its very start: like [`Tokenizer::decode`], it drops the space
    /// prefix of the first text-producing piece.
    pub fn new(tok: &'a Tokenizer) -> Self {
        StreamDecoder {
            tok,
            pending: Vec::new(),
            at_start: tok.add_space_prefix(),
        }
    }

    /// A decoder for text that continues earlier text (an infill middle, a chat reply after
    /// the prompt): like [`Tokenizer::decode_continuation`], it keeps every space.
    pub fn continuation(tok: &'a Tokenizer) -> Self {
        StreamDecoder {
            tok,
            pending: Vec::new(),
            at_start: false,
        }
    }

    /// Feeds one id; returns the newly completed text (possibly empty). An out-of-range id is
    /// an error and changes nothing.
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.tok.check_id(id)?;
        append_token_bytes(
            &mut self.pending,
            self.tok.token_bytes(id),
            &mut self.at_start,
        );
        Ok(self.drain_complete())
    }

    /// Ends the stream: returns what is still held back (each byte of an incomplete UTF-8
    /// sequence becomes U+FFFD) and resets the decoder to its initial state.
    pub fn finish(&mut self) -> String {
        let mut rest = String::new();
        decode_utf8_per_byte(&self.pending, &mut rest, true);
        self.pending.clear();
        self.at_start = self.tok.add_space_prefix();
        rest
    }

    /// Whether bytes are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes every complete character (and every byte that cannot begin one, as U+FFFD) off
    /// the front of `pending`, leaving only a trailing truncated-but-possibly-valid sequence.
    fn drain_complete(&mut self) -> String {
        let mut out = String::new();
        let used = decode_utf8_per_byte(&self.pending, &mut out, false);
        self.pending.drain(..used);
        out
    }
}
