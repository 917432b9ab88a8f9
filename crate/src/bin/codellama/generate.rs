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
use codellama_webgpu::prompt::{Message, Role};
use codellama_webgpu::request::{self, ExtraFile, Request, RequestKind};
use codellama_webgpu::tokenizer::Tokenizer;

use crate::args::{Backend, InfillBudgetArgs, ModelArgs, SamplingArgs};
use crate::inspect::read_chat_file;

type Res = Result<(), Box<dyn std::error::Error>>;

/// A model loaded for one backend (one per process: size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Cpu(CpuWeights),
    Gpu(Option<GpuDecoder>),
}

pub struct Loaded {
    pub model: Model,
    pub tok: Tokenizer,
}

/// A generation session on either backend.
#[allow(clippy::large_enum_variant)]
pub enum Engine<'w> {
    Cpu(Session<CpuDecoder<'w>>),
    Gpu(Session<GpuDecoder>),
}

impl Engine<'_> {
    pub fn generate(
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

    /// Positions the context holds.
    pub fn max_len(&self) -> usize {
        match self {
            Engine::Cpu(s) => s.decoder.max_len(),
            Engine::Gpu(s) => s.decoder.max_len(),
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

pub fn load(m: &ModelArgs) -> Result<Loaded, Box<dyn std::error::Error>> {
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

/// A session on a loaded model (the GPU decoder moves into the session: one per load).
pub fn session<'w>(model: &'w mut Model, m: &ModelArgs) -> Engine<'w> {
    match model {
        Model::Cpu(w) => {
            let ctx = m.context.unwrap_or(w.config.context_length);
            Engine::Cpu(Session::new(CpuDecoder::new(w, ctx)))
        }
        Model::Gpu(d) => Engine::Gpu(Session::new(d.take().expect("one session per load"))),
    }
}

/// Runs one request (built by the library's request layer: Meta's per-mode
/// defaults for what the arguments leave out), streaming text to stdout;
/// returns the text.
fn stream(
    s: &mut Engine,
    tok: &Tokenizer,
    req: Request,
    show_stats: bool,
) -> Result<(String, GenerateStats), Box<dyn std::error::Error>> {
    let p = request::prepare(tok, req, s.max_len())?;
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    let stats = s.generate(tok, &p.prompt, &p.opts, &mut |piece| {
        text.push_str(piece);
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    })?;
    if show_stats {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "\n[{} prompt tokens ({} computed), {} generated, {:.1} tok/s overall, stop: {:?}]",
            stats.prompt_tokens,
            stats.prompt_tokens_computed,
            stats.generated_tokens,
            (stats.prompt_tokens_computed + stats.generated_tokens) as f64 / secs.max(1e-9),
            stats.stop_reason
        );
        if stats.drafted_tokens > 0 || p.opts.speculative.is_some() {
            eprintln!(
                "[speculative: {} drafted, {} accepted ({:.0}%), {} forward passes, {:.2} tokens per pass]",
                stats.drafted_tokens,
                stats.accepted_tokens,
                100.0 * stats.accepted_tokens as f64 / stats.drafted_tokens.max(1) as f64,
                stats.forward_passes,
                stats.generated_tokens as f64 / stats.forward_passes.max(1) as f64
            );
        }
        if let Some(c) = p.context.filter(|c| c.trimmed) {
            eprintln!(
                "[trimmed to {} tokens: {} prefix chars and {} suffix chars dropped, {} extra files kept, {} extra chars dropped]",
                c.budget, c.prefix_dropped_chars, c.suffix_dropped_chars, c.extra_files_kept, c.extra_dropped_chars
            );
        }
    }
    Ok((text, stats))
}

pub fn complete(m: &ModelArgs, sampling: &SamplingArgs, text: &str) -> Res {
    let mut l = load(m)?;
    let mut s = session(&mut l.model, m);
    let req = Request {
        prompt: Some(text.to_string()),
        ..sampling.request(RequestKind::Complete)
    };
    stream(&mut s, &l.tok, req, sampling.stats)?;
    println!();
    Ok(())
}

pub fn infill(
    m: &ModelArgs,
    sampling: &SamplingArgs,
    prefix: &str,
    suffix: &str,
    spm: bool,
    budget: &InfillBudgetArgs,
) -> Res {
    let extra = budget
        .extra
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Ok(ExtraFile {
                filename: p.display().to_string(),
                text,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut l = load(m)?;
    let mut s = session(&mut l.model, m);
    let req = Request {
        prefix: Some(prefix.to_string()),
        suffix: Some(suffix.to_string()),
        suffix_first: spm.then_some(true),
        extra: (!extra.is_empty()).then_some(extra),
        max_prompt_tokens: budget.max_prompt_tokens,
        ..sampling.request(RequestKind::Infill)
    };
    stream(&mut s, &l.tok, req, sampling.stats)?;
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
    let chat_request = |dialog: &[Message]| Request {
        messages: Some(dialog.to_vec()),
        ..sampling.request(RequestKind::Chat)
    };
    if !interactive {
        let mut l = load(m)?;
        let mut s = session(&mut l.model, m);
        stream(&mut s, &l.tok, chat_request(&dialog), sampling.stats)?;
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
        let reply = match stream(&mut s, &l.tok, chat_request(&dialog), sampling.stats) {
            Ok((reply, _)) => reply,
            Err(e) if device_lost(e.as_ref()) => {
                // The GPU went away (driver reset, GPU removed): a new device, the weights
                // again from the file, and the same message once more.
                eprintln!("\ncodellama: {e}; opening the GPU again and reloading the model");
                if let Engine::Gpu(session) = &mut s {
                    *session = Session::new(gpu_decoder(m, false, None)?);
                }
                stream(&mut s, &l.tok, chat_request(&dialog), sampling.stats)?.0
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
