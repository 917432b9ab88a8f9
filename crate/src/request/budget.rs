//! FIM context budgeting: an infill prompt that fits a token budget however
//! long the file is.
//!
//! Extra files (other open files, llama.cpp's `input_extra`) go before the
//! prefix, each as a comment line naming it (Code Llama has no special token
//! for other files; the comment syntax follows the file's extension: `//`
//! for C-like languages, `--` for SQL/Lua/Haskell, `<!-- -->` for markup,
//! `/* */` for CSS, `#` otherwise) followed by its text. When the prompt is
//! over the budget, the extra files go first (from the last one; the last
//! one kept may keep only its first lines), then the prefix loses lines from
//! its start and the suffix from its end: the prefix gets up to 3/4 of the
//! tokens left after the template, the suffix the rest, and a side that needs
//! less than its share gives the rest to the other. Cuts are at line
//! boundaries, except inside a single line longer than [`LONG_LINE`] bytes
//! (minified code), which is cut at a character boundary.
//!
//! Cost: the template is fixed (4 tokens) and the prefix and suffix are
//! encoded separately, so the prompt's length is the sum of their encodings;
//! each side is encoded once whole, then a few times around the cut (an
//! interpolation search over line starts, alternated with bisection), never
//! more than its share. The final prompt is encoded once more, exactly, and
//! is never over the budget.

use serde::{Deserialize, Serialize};

use super::RequestError;
use crate::error::Error;
use crate::prompt::{self, InfillMode};
use crate::tokenizer::Tokenizer;

/// Tokens of the infill template: BOS, `<PRE>`, `<SUF>`, `<MID>`.
pub const TEMPLATE_TOKENS: usize = 4;
/// A line longer than this (bytes) may be cut inside.
pub const LONG_LINE: usize = 512;

/// Another open file given as context.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    pub filename: String,
    pub text: String,
}

/// What an infill prompt kept of its inputs (lengths in UTF-16 code units,
/// JavaScript's string length, so that an editor can slice its own strings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InfillContext {
    pub budget: usize,
    pub trimmed: bool,
    pub prefix_dropped_chars: usize,
    pub suffix_dropped_chars: usize,
    pub extra_files_kept: usize,
    pub extra_dropped_chars: usize,
}

fn utf16(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The comment line naming `filename`, in its language's syntax.
pub fn file_comment(filename: &str) -> String {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "cs" | "java" | "js" | "jsx" | "mjs"
        | "cjs" | "ts" | "tsx" | "mts" | "cts" | "go" | "rs" | "swift" | "kt" | "kts" | "scala"
        | "dart" | "php" | "zig" | "groovy" | "m" | "mm" | "proto" | "wgsl" | "glsl" => {
            format!("// {filename}\n")
        }
        "sql" | "lua" | "hs" | "elm" | "ada" => format!("-- {filename}\n"),
        "html" | "htm" | "xml" | "svg" | "vue" | "svelte" | "md" => {
            format!("<!-- {filename} -->\n")
        }
        "css" | "scss" | "less" => format!("/* {filename} */\n"),
        _ => format!("# {filename}\n"),
    }
}

/// An extra file as placed in the prompt: its comment line, `text` (a line
/// break added when it lacks one).
fn block(comment: &str, text: &str) -> String {
    let mut b = String::with_capacity(comment.len() + text.len() + 1);
    b.push_str(comment);
    b.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        b.push('\n');
    }
    b
}

/// Which end of a text is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The end (the prefix: drop from the start).
    Tail,
    /// The start (the suffix, extra files: drop from the end).
    Head,
}

fn kept(text: &str, keep: Keep, cut: usize) -> &str {
    match keep {
        Keep::Tail => &text[cut..],
        Keep::Head => &text[..cut],
    }
}

/// Bytes kept by `cut`.
fn kept_len(text: &str, keep: Keep, cut: usize) -> usize {
    match keep {
        Keep::Tail => text.len() - cut,
        Keep::Head => cut,
    }
}

/// Cut positions at line boundaries, keeping more as the index grows: the
/// first keeps nothing, the last everything.
fn line_cuts(text: &str, keep: Keep) -> Vec<usize> {
    let breaks = text.match_indices('\n').map(|(i, _)| i + 1);
    match keep {
        Keep::Tail => {
            let mut v: Vec<usize> = std::iter::once(text.len())
                .chain(
                    breaks
                        .filter(|&i| i < text.len())
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev(),
                )
                .collect();
            v.push(0);
            v.dedup();
            v
        }
        Keep::Head => {
            let mut v: Vec<usize> = std::iter::once(0)
                .chain(breaks.filter(|&i| i < text.len()))
                .collect();
            v.push(text.len());
            v.dedup();
            v
        }
    }
}

/// Over `cuts` (kept text growing with the index; `f_lo` tokens at `lo`
/// fit, `f_hi` at `hi` do not), the largest index that fits `target`:
/// returns `(lo, f_lo, hi, f_hi)` with `hi == lo + 1`.
fn search(
    text: &str,
    keep: Keep,
    cuts: &[usize],
    (mut lo, mut f_lo): (usize, usize),
    (mut hi, mut f_hi): (usize, usize),
    target: usize,
    count: &dyn Fn(&str) -> Result<usize, Error>,
) -> Result<(usize, usize, usize, usize), Error> {
    let mut interpolate = true;
    while hi - lo > 1 {
        let mid = if interpolate {
            let (b_lo, b_hi) = (
                kept_len(text, keep, cuts[lo]),
                kept_len(text, keep, cuts[hi]),
            );
            let frac = (target - f_lo) as f64 / (f_hi - f_lo) as f64;
            let want = b_lo as f64 + (b_hi - b_lo) as f64 * frac;
            // The last index in (lo, hi) keeping at most `want` bytes.
            let i = lo
                + 1
                + cuts[lo + 1..hi].partition_point(|&c| (kept_len(text, keep, c) as f64) <= want);
            (i.saturating_sub(1)).clamp(lo + 1, hi - 1)
        } else {
            lo + (hi - lo) / 2
        };
        interpolate = !interpolate;
        let f = count(kept(text, keep, cuts[mid]))?;
        if f <= target {
            (lo, f_lo) = (mid, f);
        } else {
            (hi, f_hi) = (mid, f);
        }
    }
    Ok((lo, f_lo, hi, f_hi))
}

/// The cut of `text` keeping the most that encodes to at most `target`
/// tokens (`total`: the tokens of all of it); returns `(cut, tokens)`.
fn fit(
    text: &str,
    keep: Keep,
    target: usize,
    total: usize,
    count: &dyn Fn(&str) -> Result<usize, Error>,
) -> Result<(usize, usize), Error> {
    let whole = match keep {
        Keep::Tail => 0,
        Keep::Head => text.len(),
    };
    if total <= target {
        return Ok((whole, total));
    }
    let cuts = line_cuts(text, keep);
    let (lo, f_lo, hi, f_hi) = search(
        text,
        keep,
        &cuts,
        (0, 0),
        (cuts.len() - 1, total),
        target,
        count,
    )?;
    let (a, b) = (cuts[lo], cuts[hi]);
    if a.abs_diff(b) <= LONG_LINE {
        return Ok((a, f_lo));
    }
    // One long line between the last fitting cut and the first that does
    // not: cut inside it, at character boundaries.
    let (from, to) = (a.min(b), a.max(b));
    let mut inner: Vec<usize> = text[from..to]
        .char_indices()
        .map(|(i, _)| from + i)
        .collect();
    inner.push(to);
    if keep == Keep::Tail {
        inner.reverse();
    }
    // `inner` starts at `a` (fits) and ends at `b` (does not).
    let (lo, f_lo, _, _) = search(
        text,
        keep,
        &inner,
        (0, f_lo),
        (inner.len() - 1, f_hi),
        target,
        count,
    )?;
    Ok((inner[lo], f_lo))
}

/// The prefix's share and the suffix's of `avail` tokens (3/4 to the prefix,
/// what a side does not need goes to the other).
fn split(avail: usize, tp: usize, ts: usize) -> (usize, usize) {
    let p = avail * 3 / 4;
    let s = avail - p;
    if ts < s {
        (avail - ts, ts)
    } else if tp < p {
        (tp, avail - tp)
    } else {
        (p, s)
    }
}

/// The extra files' blocks within `room` tokens (files in order, whole while
/// they fit, the first that does not fit cut to its first lines, the rest
/// dropped): `(text, files kept, text chars dropped)`.
fn fit_extras(
    extra: &[ExtraFile],
    room: usize,
    count: &dyn Fn(&str) -> Result<usize, Error>,
) -> Result<(String, usize, usize), Error> {
    let mut out = String::new();
    let mut used = 0usize;
    let mut kept_files = 0usize;
    let mut dropped = 0usize;
    let mut full = false;
    for f in extra {
        if full {
            dropped += utf16(&f.text);
            continue;
        }
        let comment = file_comment(&f.filename);
        let b = block(&comment, &f.text);
        let n = count(&b)?;
        if used + n <= room {
            out.push_str(&b);
            used += n;
            kept_files += 1;
            continue;
        }
        full = true;
        let c = count(&comment)?;
        // A comment line with next to nothing after it is not worth keeping.
        if used + c + 8 <= room {
            let total = count(&f.text)?;
            let (cut, _) = fit(&f.text, Keep::Head, room - used - c, total, count)?;
            if cut > 0 {
                out.push_str(&block(&comment, &f.text[..cut]));
                kept_files += 1;
                dropped += utf16(&f.text[cut..]);
                continue;
            }
        }
        dropped += utf16(&f.text);
    }
    Ok((out, kept_files, dropped))
}

/// Meta's infill prompt of `prefix`/`suffix` with `extra` files before the
/// prefix, trimmed to at most `budget` tokens (see the module docs), and
/// what it kept. [`RequestError::BudgetTooSmall`] when not even the template
/// fits.
pub fn infill_within(
    tok: &Tokenizer,
    prefix: &str,
    suffix: &str,
    extra: &[ExtraFile],
    mode: InfillMode,
    budget: usize,
) -> Result<(Vec<u32>, InfillContext), Error> {
    tok.infill_tokens()?;
    let pre = |s: &str| -> Result<usize, Error> { Ok(tok.encode(s, false)?.len()) };
    let suf = |s: &str| -> Result<usize, Error> { Ok(tok.encode_no_prefix(s)?.len()) };
    let mut ctx = InfillContext {
        budget,
        extra_files_kept: extra.len(),
        ..Default::default()
    };
    let header: String = extra
        .iter()
        .map(|f| block(&file_comment(&f.filename), &f.text))
        .collect();
    if extra.is_empty() || header.is_empty() {
        // Cheap path: the prompt's length is the sum of the parts'.
    } else {
        let prompt = prompt::infill(tok, &format!("{header}{prefix}"), suffix, mode)?;
        if prompt.len() <= budget {
            return Ok((prompt, ctx));
        }
    }
    let tp = pre(prefix)?;
    let ts = suf(suffix)?;
    if extra.is_empty() && TEMPLATE_TOKENS + tp + ts <= budget {
        return Ok((prompt::infill(tok, prefix, suffix, mode)?, ctx));
    }
    if budget < TEMPLATE_TOKENS {
        return Err(RequestError::BudgetTooSmall {
            budget,
            needed: TEMPLATE_TOKENS,
        }
        .into());
    }
    ctx.trimmed = true;
    let avail = budget - TEMPLATE_TOKENS;
    if !extra.is_empty() && tp + ts <= avail {
        // Prefix and suffix whole; the extra files fill the rest. Their
        // tokens are counted alone, the prompt encodes them with the prefix:
        // shrink their room until the whole prompt fits (at zero room it is
        // the prefix and suffix alone, which fit).
        let mut room = avail - tp - ts;
        loop {
            let (text, files, dropped) = fit_extras(extra, room, &pre)?;
            let prompt = prompt::infill(tok, &format!("{text}{prefix}"), suffix, mode)?;
            if prompt.len() <= budget {
                ctx.extra_files_kept = files;
                ctx.extra_dropped_chars = dropped;
                return Ok((prompt, ctx));
            }
            room = room.saturating_sub((prompt.len() - budget).max(1));
        }
    }
    ctx.extra_files_kept = 0;
    ctx.extra_dropped_chars = extra.iter().map(|f| utf16(&f.text)).sum();
    let (p_share, _) = split(avail, tp, ts);
    let (mut cut_p, mut np) = fit(prefix, Keep::Tail, p_share, tp, &pre)?;
    let (cut_s, ns) = fit(suffix, Keep::Head, avail - np, ts, &suf)?;
    if cut_p > 0 && np + ns < avail {
        // The suffix left tokens unused: back to the prefix.
        (cut_p, np) = fit(prefix, Keep::Tail, avail - ns, tp, &pre)?;
    }
    let (p, s) = (&prefix[cut_p..], &suffix[..cut_s]);
    let prompt = prompt::infill(tok, p, s, mode)?;
    debug_assert_eq!(prompt.len(), TEMPLATE_TOKENS + np + ns);
    if prompt.len() > budget {
        return Err(crate::gpu::GpuError::Internal(format!(
            "infill budgeting kept {} tokens for a budget of {budget}",
            prompt.len()
        ))
        .into());
    }
    ctx.prefix_dropped_chars = utf16(&prefix[..cut_p]);
    ctx.suffix_dropped_chars = utf16(&suffix[cut_s..]);
    Ok((prompt, ctx))
}
