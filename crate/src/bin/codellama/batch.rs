//! `batch`: many requests through one loaded model, one JSON line in and one
//! out per request.
//!
//! A line holds a request exactly as the JS API's `generate(request)` takes
//! it (the library's [`Request`]: `kind`, the kind's prompt fields, the
//! generation settings in camelCase; unknown fields rejected). The answer on
//! the same line number of the output is
//! `{"text", "stopReason", "promptTokens", "generatedTokens", "ms"}` (the
//! stop reason named as the JS API's `stats.stopReason`: `"line_end"`, ...), or
//! `{"error"}` when the request cannot run (malformed, does not fit the
//! context): a bad line is reported where it stands and the batch goes on, so
//! line *n* of the output always answers line *n* of the input. Blank input
//! lines are answered with blank lines. Evaluations (`scripts/eval/`) run
//! thousands of prompts this way without loading the model each time; the KV
//! cache keeps a shared prefix from one request to the next as the page's
//! engine does, which changes no token.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use codellama_webgpu::generate::StopReason;
use codellama_webgpu::request;
use serde::Serialize;

use crate::args::ModelArgs;
use crate::generate::{load, session, Engine};

/// One output line.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<StopReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<usize>,
    /// Prompt tokens computed (the rest came from the engine's cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_computed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_tokens: Option<usize>,
    /// Speculative decoding's counts (with drafting on).
    #[serde(skip_serializing_if = "Option::is_none")]
    drafted_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forward_passes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Reads requests from `input` (`-`: stdin) and writes answers to `output`
/// (`None`: stdout).
pub fn batch(
    m: &ModelArgs,
    input: &Path,
    output: Option<&Path>,
    progress: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(input)
            .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut loaded = load(m)?;
    let tok = &loaded.tok;
    let mut engine = session(&mut loaded.model, m);
    let (mut done, mut failed) = (0usize, 0usize);
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            writeln!(out)?;
            continue;
        }
        let answer = run_one(&mut engine, tok, &line)?;
        failed += usize::from(answer.error.is_some());
        done += 1;
        serde_json::to_writer(&mut out, &answer)?;
        writeln!(out)?;
        out.flush()?;
        if progress && done % 50 == 0 {
            eprintln!("codellama batch: {done} requests ({failed} failed)");
        }
    }
    if progress {
        eprintln!("codellama batch: {done} requests ({failed} failed)");
    }
    Ok(())
}

/// One request's answer; `Err` only when the GPU failed (a lost device, an
/// out-of-memory): the engine is gone then and the batch ends.
fn run_one(
    engine: &mut Engine,
    tok: &codellama_webgpu::tokenizer::Tokenizer,
    line: &str,
) -> Result<Answer, codellama_webgpu::Error> {
    let failed = |e: &dyn std::fmt::Display| Answer {
        error: Some(e.to_string()),
        ..Answer::default()
    };
    let req = match request::parse(line) {
        Ok(r) => r,
        Err(e) => return Ok(failed(&e)),
    };
    let p = match request::prepare(tok, req, engine.max_len()) {
        Ok(p) => p,
        Err(e) => return Ok(failed(&e)),
    };
    let start = Instant::now();
    let drafting = p.opts.speculative.is_some();
    let mut text = String::new();
    Ok(
        match engine.generate(tok, &p.prompt, &p.opts, &mut |piece| text.push_str(piece)) {
            Ok(stats) => Answer {
                text: Some(text),
                stop_reason: Some(stats.stop_reason),
                prompt_tokens: Some(stats.prompt_tokens),
                prompt_tokens_computed: Some(stats.prompt_tokens_computed),
                generated_tokens: Some(stats.generated_tokens),
                drafted_tokens: drafting.then_some(stats.drafted_tokens),
                accepted_tokens: drafting.then_some(stats.accepted_tokens),
                forward_passes: drafting.then_some(stats.forward_passes),
                ms: Some((start.elapsed().as_secs_f64() * 1e3 * 10.0).round() / 10.0),
                error: None,
            },
            Err(e @ codellama_webgpu::Error::Gpu(_)) => return Err(e),
            Err(e) => failed(&e),
        },
    )
}
