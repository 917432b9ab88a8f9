//! The GPU sampler (`shaders/sample.wgsl`) picks exactly the token the CPU
//! `Sampler` picks, for every combination of settings, on random logits of
//! vocabulary sizes 1, 7, 1000 and 32016 (normal-ish at scales 0.1..20, exact
//! ties, -inf entries, subnormals, huge values), with varied seeds, steps and
//! recent tokens; its draws follow the distribution; NaN is an error.
//! Without an adapter these tests fail: they never skip.

#[path = "common/rng.rs"]
mod rng;
use codellama_webgpu::gpu::sample::{sample_host, GpuSampler};
use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};
use codellama_webgpu::sampler::{Sampler, SamplerConfig, SamplerError};
use rng::Rng;

fn context() -> GpuContext {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.adapter_summary());
            ctx
        }
        Err(e) => panic!(
            "the GPU sampler tests need a wgpu adapter and found none ({e}); \
             install lavapipe (apt-get install mesa-vulkan-drivers libvulkan1, \
             as scripts/setup.sh does)"
        ),
    }
}

/// Random logits of one of several kinds (named for failure messages).
fn logits(rng: &mut Rng, vocab: usize) -> (Vec<f32>, &'static str) {
    let scale = [0.1f32, 1.0, 3.0, 8.0, 20.0][rng.below(5)];
    let kind = rng.below(10);
    let mut l: Vec<f32> = (0..vocab).map(|_| rng.normal() * scale).collect();
    let name = match kind {
        0..=3 => "normal",
        4 => {
            // Many exact ties: a few distinct values.
            let levels = 1 + rng.below(4);
            for x in l.iter_mut() {
                *x = (rng.below(levels) as f32) * scale;
            }
            "ties"
        }
        5 => {
            // Rounded normals: ties among the top candidates too.
            for x in l.iter_mut() {
                *x = (*x * 2.0).round() / 2.0;
            }
            "rounded"
        }
        6 => {
            // Some -inf entries (never all of them).
            for x in l.iter_mut() {
                if rng.below(3) == 0 {
                    *x = f32::NEG_INFINITY;
                }
            }
            let keep = rng.below(vocab);
            l[keep] = rng.normal() * scale;
            "neg-inf"
        }
        7 => {
            // A peaked distribution: one or two far above the rest.
            let top = rng.below(vocab);
            l[top] += 15.0 * scale;
            let second = rng.below(vocab);
            l[second] += 14.0 * scale;
            "peaked"
        }
        8 => {
            // Subnormals, signed zeros and values near them.
            for x in l.iter_mut() {
                *x = match rng.below(4) {
                    0 => f32::from_bits(rng.below(0x0080_0000) as u32 + 1),
                    1 => -0.0,
                    2 => 0.0,
                    _ => f32::MIN_POSITIVE * rng.normal(),
                };
            }
            "tiny"
        }
        _ => {
            // Huge magnitudes mixed with ordinary ones.
            for x in l.iter_mut() {
                if rng.below(4) == 0 {
                    *x = rng.normal() * 1e30;
                }
            }
            "huge"
        }
    };
    (l, name)
}

/// Every combination of the settings under test.
fn configs(vocab: usize) -> Vec<SamplerConfig> {
    let mut out = Vec::new();
    for temperature in [0.0f32, 0.2, 0.7, 1.5] {
        for top_k in [0usize, 1, 40, vocab + 5] {
            for top_p in [1.0f32, 0.95, 0.5, 1e-6] {
                for min_p in [0.0f32, 0.05, 0.9] {
                    for (repetition_penalty, repetition_window) in
                        [(1.0f32, 64), (1.3, 0), (1.3, 64)]
                    {
                        out.push(SamplerConfig {
                            temperature,
                            top_k,
                            top_p,
                            min_p,
                            repetition_penalty,
                            repetition_window,
                            seed: 0,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Recent tokens: repeats from a small pool, sometimes ids past the vocab.
fn recent(rng: &mut Rng, vocab: usize) -> Vec<u32> {
    let n = rng.below(100);
    let pool: Vec<u32> = (0..1 + rng.below(20))
        .map(|_| {
            if rng.below(10) == 0 {
                (vocab + rng.below(10)) as u32
            } else {
                rng.below(vocab) as u32
            }
        })
        .collect();
    (0..n).map(|_| pool[rng.below(pool.len())]).collect()
}

/// Runs `rounds` random cases per setting combination for `vocab`; returns
/// the number of cases and of distinct tokens picked. Besides the token, the
/// candidate count and the integer weight totals must be equal: every case
/// checks the weight arithmetic bit for bit.
fn compare(ctx: &GpuContext, vocab: usize, rounds: usize, seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let buffer = ctx
        .block_on(ctx.storage_zeroed("logits", vocab as u64 * 4))
        .unwrap();
    let mut gpu = ctx.block_on(GpuSampler::new(ctx, &buffer, vocab)).unwrap();
    let mut cases = 0;
    let mut tokens = std::collections::HashSet::new();
    let mut kinds = std::collections::BTreeMap::new();
    let start = std::time::Instant::now();
    for round in 0..rounds {
        for (ci, mut cfg) in configs(vocab).into_iter().enumerate() {
            let (l, kind) = logits(&mut rng, vocab);
            let rec = recent(&mut rng, vocab);
            cfg.seed = rng.next() >> rng.below(64);
            let step = if rng.below(2) == 0 {
                rng.below(1000) as u32
            } else {
                rng.next() as u32
            };
            let want = Sampler::new(cfg.clone())
                .unwrap()
                .sample_traced(&l, &rec, step)
                .unwrap();
            ctx.queue()
                .write_buffer(&buffer, 0, bytemuck::cast_slice(&l));
            let got = ctx.block_on(async {
                gpu.configure(ctx, &cfg).await?;
                gpu.prepare(ctx, step, &rec)?;
                let mut enc = ctx.encoder("sample");
                gpu.encode_pass(&mut enc);
                ctx.submit(enc).await?;
                gpu.read_trace(ctx).await
            });
            let got = got.unwrap_or_else(|e| panic!("vocab {vocab} case {round}/{ci}: {e}"));
            assert_eq!(
                got, want,
                "vocab {vocab} round {round} config {ci} {cfg:?} kind {kind} step {step} recent {rec:?}"
            );
            tokens.insert(got.token);
            *kinds.entry(kind).or_insert(0usize) += 1;
            cases += 1;
        }
    }
    eprintln!(
        "vocab {vocab}: {cases} cases, GPU == CPU in all; {} distinct tokens; kinds {kinds:?}; {:.1} s",
        tokens.len(),
        start.elapsed().as_secs_f32()
    );
    (cases, tokens.len())
}

/// How many rounds of all 576 setting combinations each vocabulary gets
/// (`GPU_SAMPLE_ROUNDS` multiplies them).
fn rounds(base: usize) -> usize {
    let k: usize = std::env::var("GPU_SAMPLE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * k
}

#[test]
fn gpu_picks_the_cpu_token_small_vocabs() {
    let ctx = context();
    let mut total = 0;
    for (vocab, r, seed) in [(1usize, 2usize, 1u64), (7, 5, 2), (2, 1, 3), (33, 2, 4)] {
        let (cases, distinct) = compare(&ctx, vocab, rounds(r), seed);
        assert!(distinct <= vocab && (vocab == 1 || distinct > 1));
        total += cases;
    }
    eprintln!("small vocabularies: {total} cases");
}

#[test]
fn gpu_picks_the_cpu_token_vocab_1000() {
    let ctx = context();
    let (cases, distinct) = compare(&ctx, 1000, rounds(5), 5);
    assert!(distinct > 50, "{distinct} distinct tokens");
    eprintln!("vocab 1000: {cases} cases");
}

#[test]
fn gpu_picks_the_cpu_token_vocab_32016() {
    let ctx = context();
    let (cases, distinct) = compare(&ctx, 32016, rounds(3), 6);
    assert!(distinct > 50, "{distinct} distinct tokens");
    eprintln!("vocab 32016: {cases} cases");
}

#[test]
fn gpu_draws_follow_the_distribution() {
    let ctx = context();
    let l = [1.0f32, 0.0, 2.0, -1.0, 0.5, 1.5, -0.5];
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_p: 1.0,
        seed: 42,
        ..Default::default()
    };
    let buffer = ctx.block_on(ctx.storage_f32("logits", &l)).unwrap();
    let mut gpu = ctx
        .block_on(GpuSampler::new(&ctx, &buffer, l.len()))
        .unwrap();
    ctx.block_on(gpu.configure(&ctx, &cfg)).unwrap();
    let mut cpu = Sampler::new(cfg).unwrap();
    let n = 4000u32;
    let mut counts = [0usize; 7];
    for step in 0..n {
        gpu.prepare(&ctx, step, &[]).unwrap();
        let mut enc = ctx.encoder("sample");
        gpu.encode_pass(&mut enc);
        let t = ctx
            .block_on(async {
                ctx.submit(enc).await?;
                gpu.read_token(&ctx).await
            })
            .unwrap();
        assert_eq!(t, cpu.sample(&l, &[], step).unwrap(), "step {step}");
        counts[t as usize] += 1;
    }
    let z: f32 = l.iter().map(|x| x.exp()).sum();
    let mut worst = (0.0f32, 0usize);
    for (i, &c) in counts.iter().enumerate() {
        let p = l[i].exp() / z;
        let got = c as f32 / n as f32;
        let err = (got - p).abs();
        if err > worst.0 {
            worst = (err, i);
        }
        assert!(err < 0.025, "token {i}: frequency {got} vs probability {p}");
    }
    eprintln!(
        "frequencies {counts:?} over {n} draws; max |freq - p| {:.4} at token {}",
        worst.0, worst.1
    );
    assert!(counts.iter().all(|&c| c > 0));
}

#[test]
fn unusable_logits_are_an_error() {
    let ctx = context();
    let cfgs = [
        SamplerConfig::default(),
        SamplerConfig::greedy(),
        SamplerConfig {
            repetition_penalty: 1.3,
            ..Default::default()
        },
    ];
    let mut big = vec![0.5f32; 1000];
    big[777] = f32::NAN;
    let cases: Vec<Vec<f32>> = vec![
        vec![f32::NAN, 1.0],
        vec![1.0, 2.0, f32::NAN],
        vec![f32::NEG_INFINITY; 3],
        vec![f32::NEG_INFINITY],
        vec![0.0, f32::INFINITY],
        vec![f32::from_bits(0xffc0_0001); 5],
        big,
    ];
    for cfg in &cfgs {
        for l in &cases {
            let cpu = Sampler::new(cfg.clone()).unwrap().sample(l, &[0, 1], 3);
            assert_eq!(cpu, Err(SamplerError::NoFiniteLogits), "{l:?}");
            let gpu = ctx.block_on(sample_host(&ctx, l, cfg, &[0, 1], 3));
            assert!(
                matches!(gpu, Err(GpuError::Sampler(SamplerError::NoFiniteLogits))),
                "{l:?}: {gpu:?}"
            );
        }
    }
    // And the same sampler recovers with usable logits.
    let t = ctx
        .block_on(sample_host(
            &ctx,
            &[0.0, 3.0, 3.0, -1.0],
            &SamplerConfig::greedy(),
            &[],
            0,
        ))
        .unwrap();
    assert_eq!(t, 1);
}

#[test]
fn large_repetition_windows_grow_the_recent_buffer() {
    let ctx = context();
    let mut rng = Rng::new(9);
    let vocab = 300;
    let l: Vec<f32> = (0..vocab).map(|_| rng.normal() * 2.0).collect();
    let rec: Vec<u32> = (0..5000).map(|_| rng.below(vocab) as u32).collect();
    for window in [1usize, 64, 65, 1000, 5000, 100_000] {
        let cfg = SamplerConfig {
            temperature: 0.8,
            repetition_penalty: 1.5,
            repetition_window: window,
            top_p: 0.9,
            seed: 7,
            ..Default::default()
        };
        for step in 0..20 {
            let want = Sampler::new(cfg.clone())
                .unwrap()
                .sample(&l, &rec, step)
                .unwrap();
            let got = ctx
                .block_on(sample_host(&ctx, &l, &cfg, &rec, step))
                .unwrap();
            assert_eq!(got, want, "window {window} step {step}");
        }
    }
}

/// The sampler over rows (speculative verification): one dispatch samples
/// every row of a `(rows, vocab)` buffer, row `i` with step `step + i` and a
/// repetition window over `recent` then `drafted[..i]`, each row the CPU
/// sampler's token for those arguments; a row without usable logits is
/// `NO_TOKEN` there and leaves the other rows alone.
#[test]
fn rows_sample_each_row_as_its_own_step() {
    use codellama_webgpu::gpu::keys::SAMPLE_ROWS;
    use codellama_webgpu::gpu::sample::NO_TOKEN;
    let ctx = context();
    let mut rng = Rng::new(31);
    let max_rows = SAMPLE_ROWS as usize;
    for vocab in [7usize, 1000, 32016] {
        let buffer = ctx
            .block_on(ctx.storage_zeroed("logits", (max_rows * vocab) as u64 * 4))
            .unwrap();
        let mut gpu = ctx
            .block_on(GpuSampler::new_rows(&ctx, &buffer, vocab, max_rows))
            .unwrap();
        assert_eq!(gpu.rows(), max_rows);
        let all = configs(vocab);
        let mut distinct = std::collections::HashSet::new();
        for round in 0..40 {
            let mut cfg = all[rng.below(all.len())].clone();
            if round % 4 == 0 {
                // The penalty with a window that cuts into the draft.
                cfg.repetition_penalty = 1.5;
                cfg.repetition_window = 1 + rng.below(8);
            }
            cfg.seed = rng.next();
            let n = 1 + rng.below(max_rows);
            let rows: Vec<Vec<f32>> = (0..n).map(|_| logits(&mut rng, vocab).0).collect();
            let rec = recent(&mut rng, vocab);
            let drafted: Vec<u32> = (1..n).map(|_| rng.below(vocab) as u32).collect();
            let step = rng.next() as u32;
            let flat: Vec<f32> = rows.concat();
            ctx.queue()
                .write_buffer(&buffer, 0, bytemuck::cast_slice(&flat));
            let got = ctx
                .block_on(async {
                    gpu.configure(&ctx, &cfg).await?;
                    gpu.prepare_rows(&ctx, step, &rec, &drafted)?;
                    let mut enc = ctx.encoder("sample rows");
                    {
                        let mut pass = enc.begin_compute_pass(&Default::default());
                        gpu.encode_rows(&mut pass, n);
                    }
                    ctx.submit(enc).await?;
                    gpu.read_tokens(&ctx, n).await
                })
                .unwrap();
            assert_eq!(got.len(), n);
            for (i, row) in rows.iter().enumerate() {
                let seen = [&rec[..], &drafted[..i]].concat();
                let want = Sampler::new(cfg.clone()).unwrap().sample(
                    row,
                    &seen,
                    step.wrapping_add(i as u32),
                );
                match want {
                    Ok(t) => assert_eq!(
                        got[i], t,
                        "vocab {vocab} round {round} row {i} of {n} {cfg:?}"
                    ),
                    Err(_) => assert_eq!(got[i], NO_TOKEN, "vocab {vocab} row {i}"),
                }
                distinct.insert(got[i]);
            }
        }
        assert!(
            distinct.len() > 10.min(vocab - 1),
            "vocab {vocab}: {distinct:?}"
        );
    }
    // More rows than bound is a typed error, not a dispatch.
    let buffer = ctx
        .block_on(ctx.storage_zeroed("logits", 3 * 10 * 4))
        .unwrap();
    let gpu = ctx
        .block_on(GpuSampler::new_rows(&ctx, &buffer, 10, 3))
        .unwrap();
    assert!(gpu.prepare_rows(&ctx, 0, &[], &[1, 2, 3]).is_err());
    assert!(ctx
        .block_on(GpuSampler::new_rows(&ctx, &buffer, 10, 4))
        .is_err());
    assert!(ctx
        .block_on(GpuSampler::new_rows(&ctx, &buffer, 10, max_rows + 1))
        .is_err());
}
