//! `complete`, `infill` and `chat`: streaming generation to stdout.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{GenerateOptions, GenerateStats, Session};
use codellama_webgpu::gguf;
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};
use codellama_webgpu::prompt::{self, InfillMode, Message, PromptKind, Role};
use codellama_webgpu::tokenizer::Tokenizer;

use crate::args::{Backend, ModelArgs, SamplingArgs};
use crate::inspect::read_chat_file;

type Res = Result<(), Box<dyn std::error::Error>>;

/// A model loaded for one backend (one per process: size does not matter).
#[allow(clippy::large_enum_variant)]
enum Model {
    Cpu(CpuWeights),
    Gpu(Option<GpuDecoder>),
}

struct Loaded {
    model: Model,
    tok: Tokenizer,
}

/// A generation session on either backend.
#[allow(clippy::large_enum_variant)]
pub enum Engine<'w> {
    Cpu(Session<CpuDecoder<'w>>),
    Gpu(Session<GpuDecoder>),
}

impl Engine<'_> {
    fn generate(
        &mut self,
        tok: &Tokenizer,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<GenerateStats, codellama_webgpu::Error> {
        match self {
            Engine::Cpu(s) => s.generate(tok, prompt, opts, on_text),
            Engine::Gpu(s) => s.generate(tok, prompt, opts, on_text),
        }
    }
}

/// Opens the GPU and streams the model's weights into it, printing what was
/// converted on the way.
pub fn gpu_decoder(
    m: &ModelArgs,
    all_logits: bool,
    max_len: Option<usize>,
) -> Result<GpuDecoder, Box<dyn std::error::Error>> {
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default())?);
    let weights = GpuWeights::load(&ctx, &m.model, |_| {})?;
    for note in &weights.notes {
        eprintln!("codellama: {note}");
    }
    let max_len = max_len
        .or(m.context)
        .unwrap_or(weights.config.context_length);
    let opts = DecoderOptions {
        max_len,
        prefill_chunk: m.prefill_chunk,
        kv_format: m.kv_cache,
        all_logits,
    };
    Ok(ctx.block_on(GpuDecoder::new(Arc::clone(&ctx), weights, opts))?)
}

fn load(m: &ModelArgs) -> Result<Loaded, Box<dyn std::error::Error>> {
    match m.backend {
        Backend::Cpu => {
            let weights = CpuWeights::load(&m.model)?;
            let tok = Tokenizer::from_metadata(&weights.header.metadata)?;
            Ok(Loaded {
                model: Model::Cpu(weights),
                tok,
            })
        }
        Backend::Gpu => {
            let header = gguf::read_header(&m.model)?;
            let tok = Tokenizer::from_metadata(&header.metadata)?;
            Ok(Loaded {
                model: Model::Gpu(Some(gpu_decoder(m, false, None)?)),
                tok,
            })
        }
    }
}

fn session<'w>(model: &'w mut Model, m: &ModelArgs) -> Engine<'w> {
    match model {
        Model::Cpu(w) => {
            let ctx = m.context.unwrap_or(w.config.context_length);
            Engine::Cpu(Session::new(CpuDecoder::new(w, ctx)))
        }
        Model::Gpu(d) => Engine::Gpu(Session::new(d.take().expect("one session per load"))),
    }
}

/// Runs one prompt, streaming text to stdout; returns the text.
fn stream(
    s: &mut Engine,
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
        cancel: None,
        logprobs: None,
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
    let mut l = load(m)?;
    let p = prompt::completion(&l.tok, text)?;
    let mut s = session(&mut l.model, m);
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
    let mut l = load(m)?;
    let mode = if spm {
        InfillMode::SuffixPrefixMiddle
    } else {
        InfillMode::PrefixSuffixMiddle
    };
    let p = prompt::infill(&l.tok, prefix, suffix, mode)?;
    let mut s = session(&mut l.model, m);
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
        let mut l = load(m)?;
        let p = prompt::chat(&l.tok, &dialog)?;
        let mut s = session(&mut l.model, m);
        stream(&mut s, &l.tok, &p, PromptKind::Chat, sampling, 0.6)?;
        println!();
        return Ok(());
    }
    let mut l = load(m)?;
    let mut s = session(&mut l.model, m);
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
        let reply = match stream(&mut s, &l.tok, &p, PromptKind::Chat, sampling, 0.6) {
            Ok((reply, _)) => reply,
            Err(e) if device_lost(e.as_ref()) => {
                // The GPU went away (driver reset, GPU removed): a new device, the weights
                // again from the file, and the same message once more.
                eprintln!("\ncodellama: {e}; opening the GPU again and reloading the model");
                if let Engine::Gpu(session) = &mut s {
                    *session = Session::new(gpu_decoder(m, false, None)?);
                }
                stream(&mut s, &l.tok, &p, PromptKind::Chat, sampling, 0.6)?.0
            }
            Err(e) => return Err(e),
        };
        println!();
        dialog.push(Message {
            role: Role::Assistant,
            content: reply,
        });
    }
    Ok(())
}

/// Whether `e` is a lost GPU device.
fn device_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<codellama_webgpu::Error>(),
        Some(codellama_webgpu::Error::Gpu(GpuError::DeviceLost(_)))
    )
}
