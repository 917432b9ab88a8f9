//! Command-line arguments shared by the generating commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use codellama_webgpu::model::KvFormat;
use codellama_webgpu::sampler::SamplerConfig;

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

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy. Default: the mode's (Meta's) default.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling mass. Default: 0.9.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than this fraction of the most likely one.
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Penalty for tokens among the last --repeat-window tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_window: usize,
    /// Random seed: the same seed gives the same tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Stop when this text appears (not printed); repeatable.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print token counts and speed to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

impl SamplingArgs {
    /// The sampler settings, with `default_temperature` when none was given.
    pub fn sampler(&self, default_temperature: f32) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature.unwrap_or(default_temperature),
            top_k: self.top_k,
            top_p: self.top_p.unwrap_or(0.9),
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            repetition_window: self.repeat_window,
            seed: self.seed,
        }
    }
}
