//! Meta's per-mode defaults: the one table the CLI, the wasm engine (and so
//! the JS API) and the playground's initial controls read.
//!
//! Meta's reference code (`facebookresearch/codellama`):
//! `example_completion.py` samples with temperature 0.2 and top-p 0.9, `example_infilling.py` is greedy (temperature
//! 0) with top-p 0.9, and the instruct chat uses the generator's defaults,
//! temperature 0.6 and top-p 0.9. `max_tokens` 256 is this project's default
//! for every mode.

use serde::Serialize;

use crate::prompt::PromptKind;

/// What a request gets for the settings it leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDefaults {
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
}

/// The table (one row per prompt kind).
pub const fn defaults(kind: PromptKind) -> RequestDefaults {
    match kind {
        PromptKind::Completion => RequestDefaults {
            temperature: 0.2,
            top_p: 0.9,
            max_tokens: 256,
        },
        PromptKind::Infill => RequestDefaults {
            temperature: 0.0,
            top_p: 0.9,
            max_tokens: 256,
        },
        PromptKind::Chat => RequestDefaults {
            temperature: 0.6,
            top_p: 0.9,
            max_tokens: 256,
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
            r#"{"temperature":0.0,"topP":0.9,"maxTokens":256}"#
        );
    }
}
