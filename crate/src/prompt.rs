//! Meta's Code Llama prompt formats: plain completion, infilling (fill-in-the-middle) and
//! instruct chat, exactly as `llama/generation.py` of `meta-llama/codellama` builds them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::tokenizer::{Tokenizer, TokenizerError};

pub const B_INST: &str = "[INST]";
pub const E_INST: &str = "[/INST]";
pub const B_SYS: &str = "<<SYS>>\n";
pub const E_SYS: &str = "\n<</SYS>>\n\n";
/// Meta flags dialogs that contain these tags (and withholds the answer).
pub const SPECIAL_TAGS: [&str; 4] = [B_INST, E_INST, "<<SYS>>", "<</SYS>>"];

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PromptError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("the dialog is empty")]
    EmptyDialog,
    #[error("the system message must be followed by a user message")]
    SystemWithoutUser,
    #[error("message {index}: a system message may only come first")]
    MisplacedSystem { index: usize },
    #[error("message {index}: expected a {expected} message, got {found}")]
    WrongRole {
        index: usize,
        expected: Role,
        found: Role,
    },
    #[error("the dialog must end with a user message")]
    EndsWithAssistant,
}

/// Who wrote a chat message (`"system"`, `"user"`, `"assistant"` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        })
    }
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// The order of the infill prompt's parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InfillMode {
    /// `<PRE> {prefix} <SUF>{suffix} <MID>` (Meta's default).
    #[default]
    PrefixSuffixMiddle,
    /// `<PRE> <SUF>{suffix} <MID> {prefix}` (Meta's `suffix_first`).
    SuffixPrefixMiddle,
}

/// Which kind of prompt a generation continues (decides its stop ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    Completion,
    Infill,
    Chat,
}

/// Plain completion: `[BOS] + enc(text)`.
pub fn completion(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, PromptError> {
    Ok(tok.encode(text, true)?)
}

/// Meta's `infilling_prompt_tokens`: PSM is
/// `[BOS, PRE] + enc(prefix) + [SUF] + enc_nospace(suffix) + [MID]`, SPM is
/// `[BOS, PRE, SUF] + enc_nospace(suffix) + [MID] + enc(prefix)`. Empty parts encode to nothing.
/// A vocabulary without infill tokens gives [`TokenizerError::NoInfillTokens`].
pub fn infill(
    tok: &Tokenizer,
    prefix: &str,
    suffix: &str,
    mode: InfillMode,
) -> Result<Vec<u32>, PromptError> {
    let t = tok.infill_tokens()?;
    let bos = tok.special().bos;
    let pre = tok.encode(prefix, false)?;
    let suf = tok.encode_no_prefix(suffix)?;
    let mut ids = Vec::with_capacity(pre.len() + suf.len() + 4);
    match mode {
        InfillMode::PrefixSuffixMiddle => {
            ids.extend([bos, t.prefix]);
            ids.extend(pre);
            ids.push(t.suffix);
            ids.extend(suf);
            ids.push(t.middle);
        }
        InfillMode::SuffixPrefixMiddle => {
            ids.extend([bos, t.prefix, t.suffix]);
            ids.extend(suf);
            ids.push(t.middle);
            ids.extend(pre);
        }
    }
    Ok(ids)
}

/// Python's `str.strip()`: Unicode whitespace plus the separators U+001C..U+001F.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Checks the dialog's roles (optional system first, then user/assistant alternating, ending
/// with user) and returns the system content and the remaining turns.
fn split_dialog(messages: &[Message]) -> Result<(Option<&str>, &[Message], usize), PromptError> {
    let (system, turns, offset) = match messages.first() {
        None => return Err(PromptError::EmptyDialog),
        Some(m) if m.role == Role::System => (Some(m.content.as_str()), &messages[1..], 1),
        Some(_) => (None, messages, 0),
    };
    if turns.is_empty() {
        return Err(PromptError::SystemWithoutUser);
    }
    for (i, m) in turns.iter().enumerate() {
        let expected = if i.is_multiple_of(2) {
            Role::User
        } else {
            Role::Assistant
        };
        if m.role == Role::System {
            return Err(PromptError::MisplacedSystem { index: i + offset });
        }
        if m.role != expected {
            return Err(PromptError::WrongRole {
                index: i + offset,
                expected,
                found: m.role,
            });
        }
    }
    if turns.len().is_multiple_of(2) {
        return Err(PromptError::EndsWithAssistant);
    }
    Ok((system, turns, offset))
}

/// Meta's `chat_completion` prompt: the system message (if any) is merged into the first user
/// message as `<<SYS>>\n{system}\n<</SYS>>\n\n{user}`; each completed (user, assistant) pair is
/// `[BOS] + enc("[INST] {user.strip()} [/INST] {assistant.strip()} ") + [EOS]`; the final user
/// message is `[BOS] + enc("[INST] {user.strip()} [/INST]")`.
pub fn chat(tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>, PromptError> {
    let (system, turns, _) = split_dialog(messages)?;
    let eos = tok.special().eos;
    let first_user = match system {
        Some(sys) => format!("{B_SYS}{sys}{E_SYS}{}", turns[0].content),
        None => turns[0].content.clone(),
    };
    let content = |i: usize| -> &str {
        if i == 0 {
            &first_user
        } else {
            &turns[i].content
        }
    };
    let mut ids = Vec::new();
    let pairs = turns.len() / 2;
    for p in 0..pairs {
        let user = py_strip(content(2 * p));
        let answer = py_strip(content(2 * p + 1));
        ids.extend(tok.encode(&format!("{B_INST} {user} {E_INST} {answer} "), true)?);
        ids.push(eos);
    }
    let last = py_strip(content(turns.len() - 1));
    ids.extend(tok.encode(&format!("{B_INST} {last} {E_INST}"), true)?);
    Ok(ids)
}

/// Whether any message contains one of Meta's [`SPECIAL_TAGS`] (Meta's reference replaces the
/// answer to such a dialog by an error message).
pub fn contains_special_tags(messages: &[Message]) -> bool {
    messages
        .iter()
        .any(|m| SPECIAL_TAGS.iter().any(|t| m.content.contains(t)))
}

/// The ids that end a generation of this kind: EOS always; infilling also `▁<EOT>`.
pub fn stop_ids(tok: &Tokenizer, kind: PromptKind) -> Result<Vec<u32>, PromptError> {
    let eos = tok.special().eos;
    Ok(match kind {
        PromptKind::Completion | PromptKind::Chat => vec![eos],
        PromptKind::Infill => vec![tok.infill_tokens()?.eot, eos],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: Role, c: &str) -> Message {
        Message::new(role, c)
    }

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip(" \t\n\u{1c}x y\u{3000}\u{85}"), "x y");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x");
        assert_eq!(py_strip(""), "");
    }

    #[test]
    fn dialog_validation() {
        use Role::*;
        assert_eq!(split_dialog(&[]).unwrap_err(), PromptError::EmptyDialog);
        assert_eq!(
            split_dialog(&[m(System, "s")]).unwrap_err(),
            PromptError::SystemWithoutUser
        );
        assert_eq!(
            split_dialog(&[m(User, "u"), m(System, "s")]).unwrap_err(),
            PromptError::MisplacedSystem { index: 1 }
        );
        assert_eq!(
            split_dialog(&[m(System, "s"), m(Assistant, "a")]).unwrap_err(),
            PromptError::WrongRole {
                index: 1,
                expected: User,
                found: Assistant
            }
        );
        assert_eq!(
            split_dialog(&[m(User, "u"), m(User, "u")]).unwrap_err(),
            PromptError::WrongRole {
                index: 1,
                expected: Assistant,
                found: User
            }
        );
        assert_eq!(
            split_dialog(&[m(User, "u"), m(Assistant, "a")]).unwrap_err(),
            PromptError::EndsWithAssistant
        );
        let d = [
            m(System, "s"),
            m(User, "u"),
            m(Assistant, "a"),
            m(User, "v"),
        ];
        let (sys, turns, off) = split_dialog(&d).unwrap();
        assert_eq!((sys, turns.len(), off), (Some("s"), 3, 1));
    }

    #[test]
    fn roles_deserialize_lowercase() {
        let msgs: Vec<Message> = serde_json::from_str(
            r#"[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]"#,
        )
        .unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::System, Role::User, Role::Assistant]
        );
        assert!(serde_json::from_str::<Message>(r#"{"role":"User","content":"u"}"#).is_err());
    }

    #[test]
    fn special_tags_detected() {
        assert!(contains_special_tags(&[m(Role::User, "a [INST] b")]));
        assert!(!contains_special_tags(&[m(Role::User, "a [INS] b")]));
    }
}
