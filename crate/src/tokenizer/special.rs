//! BOS, EOS and Code Llama's infill tokens.

use super::TokenizerError;

/// Code Llama's infill pieces.
pub const PREFIX_PIECE: &str = "▁<PRE>";
pub const SUFFIX_PIECE: &str = "▁<SUF>";
pub const MIDDLE_PIECE: &str = "▁<MID>";
pub const EOT_PIECE: &str = "▁<EOT>";

/// Code Llama 7B/13B vocabularies have 32016 pieces with the infill ids below.
pub const CODELLAMA_VOCAB_SIZE: usize = 32016;
pub const CODELLAMA_PREFIX_ID: u32 = 32007;
pub const CODELLAMA_SUFFIX_ID: u32 = 32008;
pub const CODELLAMA_MIDDLE_ID: u32 = 32009;
pub const CODELLAMA_EOT_ID: u32 = 32010;

/// The special ids of a vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: u32,
    pub eos: u32,
    /// End of an infilled middle (`▁<EOT>`).
    pub eot: Option<u32>,
    /// `▁<PRE>`
    pub prefix: Option<u32>,
    /// `▁<SUF>`
    pub suffix: Option<u32>,
    /// `▁<MID>`
    pub middle: Option<u32>,
}

/// The ids infilling needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfillTokens {
    pub prefix: u32,
    pub suffix: u32,
    pub middle: u32,
    /// Generation of the middle stops here (and at EOS).
    pub eot: u32,
}

impl SpecialTokens {
    /// The infill ids, or [`TokenizerError::NoInfillTokens`] naming the first one missing.
    pub fn infill(&self) -> Result<InfillTokens, TokenizerError> {
        Ok(InfillTokens {
            prefix: self
                .prefix
                .ok_or(TokenizerError::NoInfillTokens(PREFIX_PIECE))?,
            suffix: self
                .suffix
                .ok_or(TokenizerError::NoInfillTokens(SUFFIX_PIECE))?,
            middle: self
                .middle
                .ok_or(TokenizerError::NoInfillTokens(MIDDLE_PIECE))?,
            eot: self.eot.ok_or(TokenizerError::NoInfillTokens(EOT_PIECE))?,
        })
    }
}

/// Ids given explicitly (GGUF keys), already range-checked.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExplicitIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub prefix: Option<u32>,
    pub suffix: Option<u32>,
    pub middle: Option<u32>,
}

fn find_piece(pieces: &[String], piece: &str) -> Option<u32> {
    pieces
        .iter()
        .position(|p| p == piece)
        .and_then(|i| u32::try_from(i).ok())
}

/// Resolves the special ids: explicit ids first, then the piece text, then (infill ids only)
/// Code Llama's fixed ids when the vocabulary has exactly 32016 pieces.
pub(crate) fn resolve(
    pieces: &[String],
    explicit: &ExplicitIds,
) -> Result<SpecialTokens, TokenizerError> {
    let bos = explicit
        .bos
        .or_else(|| find_piece(pieces, "<s>"))
        .ok_or(TokenizerError::MissingSpecial("BOS"))?;
    let eos = explicit
        .eos
        .or_else(|| find_piece(pieces, "</s>"))
        .ok_or(TokenizerError::MissingSpecial("EOS"))?;
    let fallback = |id: u32| (pieces.len() == CODELLAMA_VOCAB_SIZE).then_some(id);
    let infill = |given: Option<u32>, piece: &str, id: u32| {
        given
            .or_else(|| find_piece(pieces, piece))
            .or_else(|| fallback(id))
    };
    Ok(SpecialTokens {
        bos,
        eos,
        eot: infill(explicit.eot, EOT_PIECE, CODELLAMA_EOT_ID),
        prefix: infill(explicit.prefix, PREFIX_PIECE, CODELLAMA_PREFIX_ID),
        suffix: infill(explicit.suffix, SUFFIX_PIECE, CODELLAMA_SUFFIX_ID),
        middle: infill(explicit.middle, MIDDLE_PIECE, CODELLAMA_MIDDLE_ID),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(n: usize, named: &[(usize, &str)]) -> Vec<String> {
        let mut v: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        for &(i, s) in named {
            v[i] = s.to_string();
        }
        v
    }

    #[test]
    fn by_piece_text() {
        let v = vocab(
            40,
            &[
                (1, "<s>"),
                (2, "</s>"),
                (30, PREFIX_PIECE),
                (31, SUFFIX_PIECE),
                (32, MIDDLE_PIECE),
                (33, EOT_PIECE),
            ],
        );
        let s = resolve(&v, &ExplicitIds::default()).unwrap();
        assert_eq!((s.bos, s.eos), (1, 2));
        let i = s.infill().unwrap();
        assert_eq!((i.prefix, i.suffix, i.middle, i.eot), (30, 31, 32, 33));
    }

    #[test]
    fn explicit_wins() {
        let v = vocab(40, &[(1, "<s>"), (2, "</s>"), (30, PREFIX_PIECE)]);
        let e = ExplicitIds {
            bos: Some(5),
            prefix: Some(7),
            ..Default::default()
        };
        let s = resolve(&v, &e).unwrap();
        assert_eq!((s.bos, s.eos, s.prefix), (5, 2, Some(7)));
        assert_eq!(
            s.infill(),
            Err(TokenizerError::NoInfillTokens(SUFFIX_PIECE))
        );
    }

    #[test]
    fn fallback_ids_only_for_32016() {
        let v = vocab(CODELLAMA_VOCAB_SIZE, &[(1, "<s>"), (2, "</s>")]);
        let i = resolve(&v, &ExplicitIds::default())
            .unwrap()
            .infill()
            .unwrap();
        assert_eq!(
            (i.prefix, i.suffix, i.middle, i.eot),
            (32007, 32008, 32009, 32010)
        );
        let v = vocab(32000, &[(1, "<s>"), (2, "</s>")]);
        let s = resolve(&v, &ExplicitIds::default()).unwrap();
        assert_eq!(
            s.infill(),
            Err(TokenizerError::NoInfillTokens(PREFIX_PIECE))
        );
    }

    #[test]
    fn missing_bos_is_an_error() {
        let v = vocab(10, &[(2, "</s>")]);
        assert_eq!(
            resolve(&v, &ExplicitIds::default()),
            Err(TokenizerError::MissingSpecial("BOS"))
        );
    }
}
