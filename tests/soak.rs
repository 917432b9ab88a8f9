//! Native soak (issue 7) on the GPU backend (lavapipe in CI), with the hostile corpus's small
//! valid model: 1,000 requests cancelled at random points, 1,000 requests sharing a prefix,
//! 10,000 generated tokens, all in one session. Process memory (RSS) and the GPU bytes the
//! decoder holds stay flat after warm-up, and the greedy text is unchanged at the end. The same
//! in Chromium: `tests/web/run.mjs`, `soak`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use codellama_webgpu::generate::{GenerateOptions, Session, StopReason};
use codellama_webgpu::gguf;
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuOptions};
use codellama_webgpu::prompt;
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::tokenizer::Tokenizer;

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn opts(
    sampler: SamplerConfig,
    max_tokens: usize,
    cancel: Option<Arc<AtomicBool>>,
) -> GenerateOptions {
    GenerateOptions {
        sampler,
        max_tokens,
        stop: vec![],
        stop_ids: vec![2],
        continuation: true,
        cancel,
        ..Default::default()
    }
}

#[test]
fn aborts_requests_and_a_long_run_keep_memory_flat() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hostile/valid.gguf");
    let ctx =
        Arc::new(GpuContext::new(&GpuOptions::default()).unwrap_or_else(|e| {
            panic!("the soak test needs a wgpu adapter (lavapipe in CI): {e}")
        }));
    let bytes = std::fs::read(&path).unwrap();
    let tok = Tokenizer::from_metadata(&gguf::read_bytes(&bytes).unwrap().header.metadata).unwrap();
    let weights = GpuWeights::load(&ctx, &path, |_| {}).unwrap();
    let dec = ctx
        .block_on(GpuDecoder::new(
            Arc::clone(&ctx),
            weights,
            DecoderOptions {
                max_len: 128,
                ..Default::default()
            },
        ))
        .unwrap();
    let mut s = Session::new(dec);
    let run =
        |s: &mut Session<GpuDecoder>, text: &str, o: &GenerateOptions, on: &mut dyn FnMut(&str)| {
            let ids = prompt::completion(&tok, text).unwrap();
            ctx.block_on(s.generate_async(&tok, &ids, o, on)).unwrap()
        };
    let greedy = opts(SamplerConfig::greedy(), 6, None);
    let mut reference = String::new();
    run(&mut s, "a b a", &greedy, &mut |t| reference.push_str(t));
    for i in 0..20 {
        run(&mut s, &format!("a {} b", i % 5), &greedy, &mut |_| {});
    }
    let (rss0, gpu0) = (rss(), s.decoder.gpu_bytes());

    // 1. 1,000 requests cancelled at random points: before the first token or after 1-5.
    let mut seed = 12345u64;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut aborted = 0;
    for i in 0..1000 {
        let flag = Arc::new(AtomicBool::new(false));
        let at = rand(6) as usize; // 0: raised before the request starts
        if at == 0 {
            flag.store(true, Ordering::SeqCst);
        }
        let mut sampler = SamplerConfig::greedy();
        sampler.temperature = 0.8;
        sampler.seed = i;
        let o = opts(sampler, 40, Some(Arc::clone(&flag)));
        let prompt = if i % 2 == 0 {
            "a b ".repeat(5 + rand(20) as usize)
        } else {
            format!("b {} a", i % 7)
        };
        let mut n = 0;
        let st = run(&mut s, &prompt, &o, &mut |_| {
            n += 1;
            if n == at {
                flag.store(true, Ordering::SeqCst);
            }
        });
        aborted += (st.stop_reason == StopReason::Aborted) as usize;
    }
    let mut after_storm = String::new();
    run(&mut s, "a b a", &greedy, &mut |t| after_storm.push_str(t));
    let (rss1, gpu1) = (rss(), s.decoder.gpu_bytes());

    // 2. 1,000 requests sharing a prefix.
    let base = "a b b a ".repeat(6);
    let (mut computed, mut total) = (0, 0);
    for i in 0..1000 {
        let o = opts(SamplerConfig::greedy(), 2, None);
        let st = run(
            &mut s,
            &format!("{base}{} {}", if i % 2 == 1 { "a" } else { "b" }, i % 10),
            &o,
            &mut |_| {},
        );
        computed += st.prompt_tokens_computed;
        total += st.prompt_tokens;
    }
    let (rss2, gpu2) = (rss(), s.decoder.gpu_bytes());

    // 3. 10,000 generated tokens.
    let mut generated = 0;
    let mut k = 0u64;
    while generated < 10_000 {
        let mut sampler = SamplerConfig::greedy();
        sampler.temperature = 1.0;
        sampler.seed = k;
        let o = opts(sampler, 100.min(10_000 - generated), None);
        generated += run(&mut s, &format!("b {}", k % 9), &o, &mut |_| {}).generated_tokens;
        k += 1;
    }
    let (rss3, gpu3) = (rss(), s.decoder.gpu_bytes());
    let mut after_all = String::new();
    run(&mut s, "a b a", &greedy, &mut |t| after_all.push_str(t));

    let mb = |b: u64| b as f64 / 1048576.0;
    println!("abort storm: 1000 requests, {aborted} stopped as aborted");
    println!("prefix reuse: 1000 requests, {computed} of {total} prompt tokens computed");
    println!("long run: {generated} tokens in {k} requests");
    for (what, r, g) in [
        ("after warm-up", rss0, gpu0),
        ("after the storm", rss1, gpu1),
        ("after the requests", rss2, gpu2),
        ("after the long run", rss3, gpu3),
    ] {
        println!("memory {what}: RSS {:.1} MiB, GPU {g} B", mb(r));
    }
    assert_eq!(after_storm, reference, "greedy text after the abort storm");
    assert_eq!(after_all, reference, "greedy text after everything");
    assert!(
        aborted >= 800,
        "only {aborted} of 1000 requests stopped as aborted"
    );
    assert_eq!(
        [gpu1, gpu2, gpu3],
        [gpu0; 3],
        "GPU bytes held vs after warm-up"
    );
    assert!(
        computed * 2 < total,
        "prefix reuse: {computed} of {total} computed"
    );
    // RSS moves a little with the allocator and the driver; a leak of a few KB per request
    // would show as megabytes over these 2,000+ requests.
    for r in [rss1, rss2, rss3] {
        assert!(
            r < rss0 + 8 * 1048576,
            "RSS grew from {:.1} to {:.1} MiB",
            mb(rss0),
            mb(r)
        );
    }
}
