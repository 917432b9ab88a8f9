//! Meta's per-mode defaults: the one table the CLI, the wasm engine (and so
//! the JS API) and the playground's initial controls read.
//!
//! Meta's reference code (`facebookresearch/codellama`):
//! `example_completion.py` samples with temperature 0.2 and top-p 0.9, `example_infilling.py` is greedy (temperature
//! 0) with top-p 0.9, and the instruct chat uses the generator's defaults,
//! temperature 0.6 and top-p 0.9. `max_tokens` 256 is this project's default
//! for every mode.
//!
//! Prompt-lookup speculative decoding ([`crate::speculative`]) is off by
//! default in every mode (`speculative: true` or `--draft N` turns it on): it
//! changes no token, only how many one forward pass yields, and it only pays
//! where a pass over K+1 positions costs little more than one over a single
//! position — a memory-bound decoder (a 7B model on a real GPU). The only
//! adapters measured so far run shaders on the CPU (lavapipe, SwiftShader),
//! where decoding is compute-bound (one multiply-add per weight per position
//! whatever the kernel): there a pass over K+1 positions costs about K+1
//! decode steps less the shared dequantization (README "Speculative
//! decoding": 1.3-1.4x for 1 drafted token, 6.4x for 8, on a 7B-shaped layer) and
//! drafting with the fixed grow-and-halve rule made requests slower, so it is
//! not the default. Cost-aware drafting (`speculative: { costAware: true }`,
//! [`crate::speculative::cost`]) measured faster there (README: 1.10-1.13x on the
//! edit-like cases on lavapipe through one engine, faster in the browser
//! test on SwiftShader): it is the candidate default for completion and
//! infill once the browser and a real GPU have measured it over the cases.

use serde::Serialize;

use crate::prompt::PromptKind;

/// What a request gets for the settings it leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDefaults {
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    /// Speculative decoding: most tokens drafted per step (0: off).
    pub max_draft: usize,
}

/// The table (one row per prompt kind).
pub const fn defaults(kind: PromptKind) -> RequestDefaults {
    match kind {
        PromptKind::Completion => RequestDefaults {
            temperature: 0.2,
            top_p: 0.9,
            max_tokens: 256,
            max_draft: 0,
        },
        PromptKind::Infill => RequestDefaults {
            temperature: 0.0,
            top_p: 0.9,
            max_tokens: 256,
            max_draft: 0,
        },
        PromptKind::Chat => RequestDefaults {
            temperature: 0.6,
            top_p: 0.9,
            max_tokens: 256,
            max_draft: 0,
        },
    }
}

/// The table keyed as JavaScript has it: `{complete, infill, chat}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DefaultsTable {
    pub complete: RequestDefaults,
    pub infill: RequestDefaults,
    pub chat: RequestDefaults,
}

pub fn table() -> DefaultsTable {
    DefaultsTable {
        complete: defaults(PromptKind::Completion),
        infill: defaults(PromptKind::Infill),
        chat: defaults(PromptKind::Chat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta's examples: completion 0.2, infill greedy, chat 0.6; top-p 0.9 throughout.
    #[test]
    fn the_table_is_metas() {
        let t = table();
        assert_eq!((t.complete.temperature, t.complete.top_p), (0.2, 0.9));
        assert_eq!((t.infill.temperature, t.infill.top_p), (0.0, 0.9));
        assert_eq!((t.chat.temperature, t.chat.top_p), (0.6, 0.9));
        assert!([t.complete, t.infill, t.chat]
            .iter()
            .all(|d| d.max_tokens == 256));
        assert_eq!(
            serde_json::to_string(&t.infill).unwrap(),
            r#"{"temperature":0.0,"topP":0.9,"maxTokens":256,"maxDraft":0}"#
        );
        // Speculation: off unless asked (see the module docs).
        assert_eq!(
            (t.complete.max_draft, t.infill.max_draft, t.chat.max_draft),
            (0, 0, 0)
        );
    }
}
