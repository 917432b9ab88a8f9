//! Command-line arguments shared by the generating commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use codellama_webgpu::model::KvFormat;
use codellama_webgpu::request::{Request, RequestKind, SpeculativeRequest, SpeculativeSettings};

/// The model used when no `--model` is given: the small Code Llama trained by `scripts/train/`
/// and committed to the repository (a path relative to the repository root).
pub const DEMO_MODEL: &str = "models/codellama-demo.gguf";

/// Where the forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The GPU engine (wgpu: Vulkan, Metal, DX12; lavapipe without a GPU).
    Gpu,
    /// The plain f32 CPU reference decoder.
    Cpu,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The GGUF model file (default: the bundled demo model, from the repository root).
    #[arg(long, short = 'm', env = "CODELLAMA_MODEL", default_value = DEMO_MODEL)]
    pub model: PathBuf,
    /// Where the forward pass runs.
    #[arg(long, value_enum, default_value = "gpu")]
    pub backend: Backend,
    /// Largest number of positions (prompt + generated); default: the model's context.
    #[arg(long)]
    pub context: Option<usize>,
    /// GPU: KV cache format.
    #[arg(long, value_enum, default_value = "f16")]
    pub kv_cache: KvFormat,
    /// GPU: tokens per prefill batch.
    #[arg(long, default_value_t = 128)]
    pub prefill_chunk: usize,
}

/// The generation settings of `complete`, `infill` and `chat`. Left out, each
/// takes the library's default for the mode (`codellama_webgpu::request`:
/// Meta's temperature 0.2 completion, 0 infill, 0.6 chat; top-p 0.9; 256
/// tokens; no speculative decoding unless `--draft N`), the same as the JS
/// API's.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy. Default: the mode's (Meta's) default.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most likely tokens (0: all; default 0).
    #[arg(long)]
    pub top_k: Option<u64>,
    /// Nucleus sampling mass. Default: 0.9.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than this fraction of the most likely one (default 0).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Penalty for tokens among the last --repeat-window tokens (1: off; default 1).
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// Tokens the repetition penalty looks at (default 64).
    #[arg(long)]
    pub repeat_window: Option<u64>,
    /// Random seed: the same seed gives the same tokens (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most tokens to generate (default 256).
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Stop when this text appears (not printed); repeatable.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Stop before the next token once this many milliseconds have passed
    /// (the first token always comes).
    #[arg(long)]
    pub max_time_ms: Option<f64>,
    /// Stop at the end of the first line of generated text.
    #[arg(long)]
    pub single_line: bool,
    /// Stop at a generated line (after the first) indented by fewer columns.
    #[arg(long)]
    pub min_indent: Option<u64>,
    /// Speculative decoding: the most tokens drafted (by prompt lookup) and
    /// verified per forward pass, 0..=15; 0 is off. The tokens are the same
    /// either way. Default: 0 (it pays where a pass over N+1 positions costs
    /// little more than one: a memory-bound model such as a 7B on a GPU).
    #[arg(long, value_name = "N")]
    pub draft: Option<u64>,
    /// With --draft: each draft's length (0..=N) from the measured cost of a
    /// pass and the acceptance rate of drafts found by matches of the same
    /// length, drafting only where it is expected to pay.
    #[arg(long, requires = "draft")]
    pub draft_cost_aware: bool,
    /// Print token counts, speed and speculative decoding's drafted and
    /// accepted tokens and forward passes to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

impl SamplingArgs {
    /// A request of `kind` with these settings (no prompt yet).
    pub fn request(&self, kind: RequestKind) -> Request {
        Request {
            kind,
            max_tokens: self.max_tokens,
            max_time_ms: self.max_time_ms,
            single_line: self.single_line.then_some(true),
            min_indent: self.min_indent,
            stop: (!self.stop.is_empty()).then(|| self.stop.clone()),
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            repetition_window: self.repeat_window,
            seed: self.seed,
            speculative: self.draft.map(|n| {
                SpeculativeRequest::Settings(SpeculativeSettings {
                    max_draft: Some(n),
                    ngram: None,
                    cost_aware: self.draft_cost_aware.then_some(true),
                })
            }),
            ..Request::default()
        }
    }
}

/// `infill`'s context budget.
#[derive(Args, Debug, Clone)]
pub struct InfillBudgetArgs {
    /// Another open file given as context (placed before the prefix under a
    /// comment line naming it; trimmed first); repeatable.
    #[arg(long)]
    pub extra: Vec<PathBuf>,
    /// Token budget of the prompt (default: context − max tokens); a longer
    /// prompt is trimmed at line boundaries.
    #[arg(long)]
    pub max_prompt_tokens: Option<u64>,
}
