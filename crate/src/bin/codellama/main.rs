//! `codellama`: the native command-line interface (info, tokenize, logits,
//! complete, infill, chat, batch; bench, synth, load).

mod args;
mod batch;
mod bench;
mod generate;
mod inspect;

#[global_allocator]
static ALLOC: codellama_webgpu::alloc::Counting = codellama_webgpu::alloc::Counting;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::{ModelArgs, SamplingArgs};

#[derive(Parser, Debug)]
#[command(
    name = "codellama",
    version,
    about = "Code Llama on WebGPU: native command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hyperparameters, tensor types and sizes, infill support.
    Info {
        /// The GGUF model file.
        model: std::path::PathBuf,
    },
    /// Prints token ids (space separated) of a text, an infill prompt or a chat prompt.
    Tokenize(inspect::TokenizeArgs),
    /// Writes teacher-forced logits of a token list as a float32 .npy [tokens, vocab].
    Logits(inspect::LogitsArgs),
    /// Continues a prompt.
    Complete {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// The text to continue.
        prompt: String,
    },
    /// Fills in the middle between a prefix and a suffix.
    Infill {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// Text before the gap.
        #[arg(long)]
        prefix: String,
        /// Text after the gap.
        #[arg(long, default_value = "")]
        suffix: String,
        /// Use the suffix-prefix-middle format.
        #[arg(long)]
        suffix_first: bool,
        #[command(flatten)]
        budget: args::InfillBudgetArgs,
    },
    /// Instruct chat: one message, a JSON dialog file, or an interactive session on stdin.
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// A JSON list of {"role": "system"|"user"|"assistant", "content": "..."}.
        #[arg(long, conflicts_with = "message")]
        file: Option<std::path::PathBuf>,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        /// A single user message; without it and without --file, user turns are read from stdin.
        message: Option<String>,
    },
    /// Many requests through one loaded model: a JSON request per input line (as the JS API's
    /// `generate` takes it), a JSON answer per output line (text, stop reason, counts, or error).
    Batch {
        #[command(flatten)]
        model: ModelArgs,
        /// The requests, one JSON object per line (`-`: stdin).
        input: std::path::PathBuf,
        /// Where the answers go (default: stdout).
        #[arg(long, short = 'o')]
        output: Option<std::path::PathBuf>,
        /// Prints a count every 50 requests on stderr.
        #[arg(long)]
        progress: bool,
    },
    /// Prefill and decode speed of a 7B-shaped model with random weights, against the adapter's bandwidth.
    Bench(bench::BenchArgs),
    /// Writes a 7B-shaped GGUF file with random weights (for load measurements).
    Synth(bench::SynthArgs),
    /// Streams a model into GPU memory and reports the time and peak host memory.
    Load(bench::LoadArgs),
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Info { model } => inspect::info(&model),
        Command::Tokenize(a) => inspect::tokenize(&a),
        Command::Logits(a) => inspect::logits(&a),
        Command::Complete {
            model,
            sampling,
            prompt,
        } => generate::complete(&model, &sampling, &prompt),
        Command::Infill {
            model,
            sampling,
            prefix,
            suffix,
            suffix_first,
            budget,
        } => generate::infill(&model, &sampling, &prefix, &suffix, suffix_first, &budget),
        Command::Chat {
            model,
            sampling,
            file,
            system,
            message,
        } => generate::chat(&model, &sampling, file.as_deref(), system, message),
        Command::Batch {
            model,
            input,
            output,
            progress,
        } => batch::batch(&model, &input, output.as_deref(), progress),
        Command::Bench(a) => bench::bench(&a),
        Command::Synth(a) => bench::synth(&a),
        Command::Load(a) => bench::load(&a),
    }
}

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("codellama: internal error: {info}");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                let s_str = s.to_string();
                if !msg.contains(&s_str) {
                    msg.push_str(": ");
                    msg.push_str(&s_str);
                }
                src = s.source();
            }
            eprintln!("codellama: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
