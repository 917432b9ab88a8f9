//! The samplers the speculative-decoding tests run (`tests/speculative.rs`
//! on the CPU, `tests/gpu_speculative.rs` on the GPU): greedy and seeded
//! sampling, each with and without a repetition window — the window sees the
//! drafted tokens as plain decoding would.

use codellama_webgpu::sampler::SamplerConfig;

pub fn samplers() -> Vec<(&'static str, SamplerConfig)> {
    vec![
        ("greedy", SamplerConfig::greedy()),
        (
            "greedy-penalized",
            SamplerConfig {
                repetition_penalty: 1.3,
                repetition_window: 8,
                ..SamplerConfig::greedy()
            },
        ),
        (
            "sampled",
            SamplerConfig {
                temperature: 0.9,
                top_p: 0.95,
                seed: 7,
                ..SamplerConfig::default()
            },
        ),
        (
            "penalized",
            SamplerConfig {
                temperature: 0.7,
                top_k: 20,
                repetition_penalty: 1.3,
                repetition_window: 8,
                seed: 3,
                ..SamplerConfig::default()
            },
        ),
    ]
}
