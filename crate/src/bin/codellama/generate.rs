//! `complete`, `infill` and `chat`: streaming generation to stdout.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{GenerateOptions, GenerateStats, Session};
use codellama_webgpu::prompt::{self, InfillMode, Message, PromptKind, Role};
use codellama_webgpu::tokenizer::Tokenizer;

use crate::args::{Backend, ModelArgs, SamplingArgs};
use crate::inspect::read_chat_file;

type Res = Result<(), Box<dyn std::error::Error>>;

struct Loaded {
    weights: CpuWeights,
    tok: Tokenizer,
}

fn load(m: &ModelArgs) -> Result<Loaded, Box<dyn std::error::Error>> {
    let Backend::Cpu = m.backend;
    let weights = CpuWeights::load(&m.model)?;
    let tok = Tokenizer::from_metadata(&weights.header.metadata)?;
    Ok(Loaded { weights, tok })
}

fn session<'w>(l: &'w Loaded, m: &ModelArgs) -> Session<CpuDecoder<'w>> {
    let ctx = m.context.unwrap_or(l.weights.config.context_length);
    Session::new(CpuDecoder::new(&l.weights, ctx))
}

/// Runs one prompt, streaming text to stdout; returns the text.
fn stream(
    s: &mut Session<CpuDecoder>,
    tok: &Tokenizer,
    tokens: &[u32],
    kind: PromptKind,
    sampling: &SamplingArgs,
    default_temperature: f32,
) -> Result<(String, GenerateStats), Box<dyn std::error::Error>> {
    let opts = GenerateOptions {
        sampler: sampling.sampler(default_temperature),
        max_tokens: sampling.max_tokens,
        stop: sampling.stop.clone(),
        stop_ids: prompt::stop_ids(tok, kind)?,
        continuation: kind != PromptKind::Chat,
    };
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    let stats = s.generate(tok, tokens, &opts, &mut |piece| {
        text.push_str(piece);
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    })?;
    if sampling.stats {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "\n[{} prompt tokens ({} computed), {} generated, {:.1} tok/s overall, stop: {:?}]",
            stats.prompt_tokens,
            stats.prompt_tokens_computed,
            stats.generated_tokens,
            (stats.prompt_tokens_computed + stats.generated_tokens) as f64 / secs.max(1e-9),
            stats.stop_reason
        );
    }
    Ok((text, stats))
}

pub fn complete(m: &ModelArgs, sampling: &SamplingArgs, text: &str) -> Res {
    let l = load(m)?;
    let p = prompt::completion(&l.tok, text)?;
    let mut s = session(&l, m);
    // Meta's completion example: temperature 0.2, top-p 0.9.
    stream(&mut s, &l.tok, &p, PromptKind::Completion, sampling, 0.2)?;
    println!();
    Ok(())
}

pub fn infill(
    m: &ModelArgs,
    sampling: &SamplingArgs,
    prefix: &str,
    suffix: &str,
    spm: bool,
) -> Res {
    let l = load(m)?;
    let mode = if spm {
        InfillMode::SuffixPrefixMiddle
    } else {
        InfillMode::PrefixSuffixMiddle
    };
    let p = prompt::infill(&l.tok, prefix, suffix, mode)?;
    let mut s = session(&l, m);
    // Meta's infill example: temperature 0.
    stream(&mut s, &l.tok, &p, PromptKind::Infill, sampling, 0.0)?;
    println!();
    Ok(())
}

pub fn chat(
    m: &ModelArgs,
    sampling: &SamplingArgs,
    file: Option<&Path>,
    system: Option<String>,
    message: Option<String>,
) -> Res {
    let mut dialog: Vec<Message> = Vec::new();
    if let Some(sys) = system {
        dialog.push(Message {
            role: Role::System,
            content: sys,
        });
    }
    if let Some(f) = file {
        dialog.extend(read_chat_file(f)?);
    }
    if let Some(msg) = message {
        dialog.push(Message {
            role: Role::User,
            content: msg,
        });
    }
    let interactive = file.is_none() && dialog.last().is_none_or(|m| m.role != Role::User);
    if !interactive {
        let l = load(m)?;
        let p = prompt::chat(&l.tok, &dialog)?;
        let mut s = session(&l, m);
        stream(&mut s, &l.tok, &p, PromptKind::Chat, sampling, 0.6)?;
        println!();
        return Ok(());
    }
    let l = load(m)?;
    let mut s = session(&l, m);
    let stdin = std::io::stdin();
    eprintln!("(one user message per line; end with Ctrl-D)");
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        dialog.push(Message {
            role: Role::User,
            content: line,
        });
        let p = prompt::chat(&l.tok, &dialog)?;
        let (reply, _) = stream(&mut s, &l.tok, &p, PromptKind::Chat, sampling, 0.6)?;
        println!();
        dialog.push(Message {
            role: Role::Assistant,
            content: reply,
        });
    }
    Ok(())
}
