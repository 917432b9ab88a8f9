//! `info`, `tokenize` and `logits`: looking inside a model.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::gguf::{self, Header};
use codellama_webgpu::model::Config;
use codellama_webgpu::npy;
use codellama_webgpu::prompt::{self, InfillMode, Message};
use codellama_webgpu::tokenizer::Tokenizer;

use crate::args::Backend;

type Res = Result<(), Box<dyn std::error::Error>>;

/// Writes to stdout; a closed pipe (`codellama info M | head`) is not an error.
pub fn print_out(text: &str) -> Res {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn info(path: &Path) -> Res {
    let header = gguf::read_header(path)?;
    let mut o = String::new();
    let cfg = Config::from_header(&header)?;
    let md = &header.metadata;
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    writeln!(o, "file            {} ({})", path.display(), mib(file_len))?;
    if let Some(name) = md.get_str("general.name") {
        writeln!(o, "name            {name}")?;
    }
    writeln!(
        o,
        "format          GGUF v{}, {} tensors, {} metadata keys, alignment {}",
        header.version,
        header.tensors.len(),
        md.len(),
        header.alignment
    )?;
    writeln!(o, "architecture    llama")?;
    writeln!(o, "dim             {}", cfg.dim)?;
    writeln!(o, "layers          {}", cfg.n_layers)?;
    let kind = if cfg.n_kv_heads == cfg.n_heads {
        "multi-head"
    } else {
        "grouped-query"
    };
    writeln!(
        o,
        "heads           {} query / {} key-value ({kind}), head size {}",
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.head_dim()
    )?;
    writeln!(o, "ffn             {}", cfg.ffn_dim)?;
    writeln!(o, "vocab           {}", cfg.vocab_size)?;
    writeln!(o, "context         {}", cfg.context_length)?;
    writeln!(o, "rope theta      {}", cfg.rope_theta)?;
    writeln!(o, "rms eps         {:e}", cfg.rms_eps)?;
    let kv_bytes = 2 * cfg.n_layers * cfg.kv_dim() * 2;
    writeln!(o, "kv cache (f16)  {} KiB per token", kv_bytes / 1024)?;
    match Tokenizer::from_metadata(md) {
        Ok(tok) => {
            let sp = tok.special();
            writeln!(o, "special tokens  BOS {}, EOS {}", sp.bos, sp.eos)?;
            match tok.infill_tokens() {
                Ok(t) => writeln!(
                    o,
                    "infill          supported (PRE {}, SUF {}, MID {}, EOT {})",
                    t.prefix, t.suffix, t.middle, t.eot
                )?,
                Err(e) => writeln!(o, "infill          not supported: {e}")?,
            }
        }
        Err(e) => writeln!(o, "tokenizer       unusable: {e}")?,
    }
    print_types(&mut o, &header)?;
    print_out(&o)
}

fn print_types(o: &mut String, header: &Header) -> std::fmt::Result {
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in &header.tensors {
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let total: u64 = header.tensors.iter().map(|t| t.n_bytes).sum();
    writeln!(o, "tensor types    {} in all", mib(total))?;
    for (ty, (n, bytes)) in by_type {
        writeln!(o, "  {ty:<6} {n:>4} tensors  {:>12}", mib(bytes))?;
    }
    writeln!(o, "tensors")?;
    for t in &header.tensors {
        writeln!(
            o,
            "  {:<28} {:<5} {:>20} {:>14} bytes",
            t.name,
            t.ty.name(),
            format!("{:?}", t.dims),
            t.n_bytes
        )?;
    }
    Ok(())
}
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// The GGUF model (or vocabulary-only GGUF) file (default: the bundled demo model).
    #[arg(long, short = 'm', env = "CODELLAMA_MODEL", default_value = crate::args::DEMO_MODEL)]
    model: PathBuf,
    /// Do not add the BOS token.
    #[arg(long)]
    no_bos: bool,
    /// Print the infill prompt for this prefix (with --infill-suffix).
    #[arg(long, requires = "infill_suffix")]
    infill_prefix: Option<String>,
    #[arg(long, requires = "infill_prefix")]
    infill_suffix: Option<String>,
    /// Suffix-prefix-middle infill format.
    #[arg(long, requires = "infill_prefix")]
    suffix_first: bool,
    /// Print the chat prompt of a JSON list of {role, content}.
    #[arg(long, conflicts_with_all = ["infill_prefix", "text"])]
    chat: Option<PathBuf>,
    /// The text to tokenize.
    #[arg(conflicts_with = "infill_prefix")]
    text: Option<String>,
    /// Print the model's tokenizer as a Hugging Face `tokenizer.json` instead (what the JS
    /// remote engine's `{ tokenizerJson }` source reads; the same ids as the GGUF vocabulary).
    #[arg(long, conflicts_with_all = ["infill_prefix", "text", "chat", "no_bos"])]
    json: bool,
}

pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, Box<dyn std::error::Error>> {
    let header = gguf::read_header(path)?;
    Ok(Tokenizer::from_metadata(&header.metadata)?)
}

pub fn read_chat_file(path: &Path) -> Result<Vec<Message>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let msgs: Vec<Message> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a JSON list of {{role, content}}: {e}",
            path.display()
        )
    })?;
    Ok(msgs)
}

pub fn tokenize(a: &TokenizeArgs) -> Res {
    let tok = load_tokenizer(&a.model)?;
    if a.json {
        return print_out(&format!("{}\n", tok.to_json()?));
    }
    let ids = if let Some(chat) = &a.chat {
        prompt::chat(&tok, &read_chat_file(chat)?)?
    } else if let (Some(p), Some(s)) = (&a.infill_prefix, &a.infill_suffix) {
        let mode = if a.suffix_first {
            InfillMode::SuffixPrefixMiddle
        } else {
            InfillMode::PrefixSuffixMiddle
        };
        prompt::infill(&tok, p, s, mode)?
    } else {
        let text = a
            .text
            .as_deref()
            .ok_or("give a TEXT, --infill-prefix/--infill-suffix or --chat")?;
        tok.encode(text, !a.no_bos)?
    };
    let line: Vec<String> = ids.iter().map(u32::to_string).collect();
    print_out(&format!("{}\n", line.join(" ")))
}

#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// Token ids, separated by spaces or commas.
    #[arg(long)]
    tokens: String,
    /// Output .npy file (float32, shape [tokens, vocab]).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    gpu: crate::args::ModelArgs,
}

pub fn parse_ids(s: &str) -> Result<Vec<u32>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("not a token id: {p:?}"))
        })
        .collect()
}

pub fn logits(a: &LogitsArgs) -> Res {
    let ids = parse_ids(&a.tokens)?;
    if ids.is_empty() {
        return Err("--tokens is empty".into());
    }
    let header = codellama_webgpu::gguf::read_header(&a.gpu.model)?;
    let context = codellama_webgpu::model::Config::from_header(&header)?.context_length;
    if ids.len() > context {
        return Err(format!(
            "{} tokens do not fit in the model's context of {context}",
            ids.len(),
        )
        .into());
    }
    let rows = match a.gpu.backend {
        Backend::Cpu => {
            let weights = CpuWeights::load(&a.gpu.model)?;
            CpuDecoder::new(&weights, ids.len()).logits_for(&ids)?
        }
        Backend::Gpu => {
            let mut dec = crate::generate::gpu_decoder(&a.gpu, true, Some(ids.len()))?;
            let ctx = std::sync::Arc::clone(dec.context());
            ctx.block_on(dec.feed_all_logits(&ids))?
        }
    };
    let vocab = rows[0].len();
    let flat: Vec<f32> = rows.concat();
    let f = std::fs::File::create(&a.out)
        .map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
    npy::write_f32(std::io::BufWriter::new(f), ids.len(), vocab, &flat)?;
    eprintln!(
        "wrote {} ({} x {vocab} float32)",
        a.out.display(),
        ids.len()
    );
    Ok(())
}
