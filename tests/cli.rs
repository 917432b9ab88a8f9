//! The `codellama` binary end to end on the generated fixture models: every
//! command, and every error as one clear line with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::npy;
use codellama_webgpu::prompt;
use codellama_webgpu::tokenizer::Tokenizer;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model(name: &str) -> PathBuf {
    let p = root().join("tests/fixtures/generated").join(name);
    assert!(
        p.exists(),
        "{}: run scripts/make_fixtures.py first",
        p.display()
    );
    p
}

fn codellama(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codellama"))
        .args(args)
        .output()
        .expect("run codellama")
}

fn ok(args: &[&str]) -> String {
    let out = codellama(args);
    assert!(
        out.status.success(),
        "codellama {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a failure with a single-line message containing `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = codellama(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "codellama {args:?} should fail");
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got: {err}");
    assert!(err.starts_with("codellama: error: "), "got: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "got: {err}");
}

#[test]
fn info_reports_shape_types_and_infill() {
    let m = model("tiny-gqa-q8_0.gguf");
    let out = ok(&["info", m.to_str().unwrap()]);
    assert!(out.contains("grouped-query"), "{out}");
    assert!(out.contains("vocab           32016"), "{out}");
    assert!(out.contains("rope theta      1000000"), "{out}");
    assert!(
        out.contains("infill          supported (PRE 32007, SUF 32008, MID 32009, EOT 32010)"),
        "{out}"
    );
    assert!(out.contains("Q8_0"), "{out}");
}

#[test]
fn tokenize_reproduces_metas_infill_reference_vector() {
    let m = model("tiny-mha-f32.gguf");
    let out = ok(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--infill-prefix",
        "def remove_non_ascii(s: str) -> str:\n    \"\"\" ",
        "--infill-suffix",
        "\n    return result\n",
    ]);
    assert_eq!(
        out.trim(),
        "1 32007 822 3349 29918 5464 29918 294 18869 29898 29879 29901 851 29897 1599 851 29901 13 1678 9995 29871 32008 13 1678 736 1121 13 32009"
    );
    let plain = ok(&["tokenize", "-m", m.to_str().unwrap(), "--", "Hello world"]);
    assert_eq!(plain.trim(), "1 15043 3186");
    let no_bos = ok(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--no-bos",
        "Hello world",
    ]);
    assert_eq!(no_bos.trim(), "15043 3186");
}

#[test]
fn tokenize_json_writes_a_tokenizer_json_with_the_same_ids() {
    let m = model("tiny-mha-f32.gguf");
    let json = ok(&["tokenize", "-m", m.to_str().unwrap(), "--json"]);
    let tok = codellama_webgpu::tokenizer::Tokenizer::from_json(json.trim()).unwrap();
    let ids = tok.encode("Hello world", true).unwrap();
    assert_eq!(ids, [1, 15043, 3186]);
    let infill = codellama_webgpu::prompt::infill(
        &tok,
        "def remove_non_ascii(s: str) -> str:\n    \"\"\" ",
        "\n    return result\n",
        codellama_webgpu::prompt::InfillMode::PrefixSuffixMiddle,
    )
    .unwrap();
    // Meta's reference vector (the test above), from the JSON form.
    let reference = "1 32007 822 3349 29918 5464 29918 294 18869 29898 29879 29901 851 29897 1599 851 29901 13 1678 9995 29871 32008 13 1678 736 1121 13 32009";
    let reference: Vec<u32> = reference.split(' ').map(|t| t.parse().unwrap()).collect();
    assert_eq!(infill, reference);
}

#[test]
fn tokenize_chat_file() {
    let m = model("tiny-mha-f32.gguf");
    let dir = std::env::temp_dir().join(format!("codellama-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chat = dir.join("chat.json");
    std::fs::write(
        &chat,
        r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#,
    )
    .unwrap();
    let out = ok(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--chat",
        chat.to_str().unwrap(),
    ]);
    let ids: Vec<u32> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    let tok = Tokenizer::from_metadata(&codellama_webgpu::gguf::read_header(&m).unwrap().metadata)
        .unwrap();
    let expect = prompt::chat(
        &tok,
        &[
            prompt::Message::new(prompt::Role::System, "Be brief."),
            prompt::Message::new(prompt::Role::User, "Hi"),
        ],
    )
    .unwrap();
    assert_eq!(ids, expect);
    // BOS "[INST]" ... "[/INST]" with no EOS at the end.
    assert_eq!(ids[0], 1);
    assert_ne!(*ids.last().unwrap(), 2);
    std::fs::write(&chat, r#"[{"role":"assistant","content":"Hi"}]"#).unwrap();
    fails(
        &[
            "tokenize",
            "-m",
            m.to_str().unwrap(),
            "--chat",
            chat.to_str().unwrap(),
        ],
        "expected a user message",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn logits_writes_the_decoders_values() {
    let m = model("tiny-gqa-f32.gguf");
    let out = std::env::temp_dir().join(format!("codellama-logits-{}.npy", std::process::id()));
    ok(&[
        "logits",
        "-m",
        m.to_str().unwrap(),
        "--tokens",
        "1 822 3349",
        "--out",
        out.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    let (shape, data) = npy::read_f32(std::fs::File::open(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(shape, vec![3, 32016]);
    let w = CpuWeights::load(&m).unwrap();
    let direct = CpuDecoder::new(&w, 3).logits_for(&[1, 822, 3349]).unwrap();
    assert_eq!(data, direct.concat());
}

#[test]
fn generation_is_deterministic_per_seed() {
    let m = model("tiny-mha-q4_0.gguf");
    let m = m.to_str().unwrap();
    // Greedy text equals the argmax chain computed through the library.
    let greedy = ok(&[
        "complete",
        "-m",
        m,
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "def f(",
    ]);
    let w = CpuWeights::load(Path::new(m)).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let mut dec = CpuDecoder::new(&w, 64);
    let prompt = prompt::completion(&tok, "def f(").unwrap();
    let mut logits = Vec::new();
    for &t in &prompt {
        logits = dec.step(t).unwrap().to_vec();
    }
    let mut ids = Vec::new();
    for _ in 0..12 {
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .unwrap() as u32;
        if next == tok.special().eos {
            break;
        }
        ids.push(next);
        logits = dec.step(next).unwrap().to_vec();
    }
    assert_eq!(
        greedy.strip_suffix('\n').unwrap(),
        tok.decode_continuation(&ids).unwrap()
    );
    let seeded = |seed: &str| {
        ok(&[
            "complete",
            "-m",
            m,
            "--max-tokens",
            "12",
            "--temperature",
            "1",
            "--top-p",
            "1",
            "--seed",
            seed,
            "def f(",
        ])
    };
    assert_eq!(seeded("7"), seeded("7"));
    let a: Vec<String> = (0..4).map(|s| seeded(&s.to_string())).collect();
    assert!(
        a.iter().any(|x| x != &a[0]),
        "different seeds give different text"
    );
    let infill = ok(&[
        "infill",
        "-m",
        m,
        "--max-tokens",
        "8",
        "--prefix",
        "def add(a, b):\n    ",
        "--suffix",
        "\n    return c\n",
    ]);
    assert!(!infill.is_empty());
    let chat = ok(&[
        "chat",
        "-m",
        m,
        "--max-tokens",
        "8",
        "--system",
        "Be brief.",
        "Write a loop.",
    ]);
    assert!(!chat.is_empty());
}

#[test]
fn errors_are_one_clear_line() {
    fails(
        &["info", "/nonexistent/model.gguf"],
        "cannot read /nonexistent/model.gguf",
    );
    let dir = std::env::temp_dir().join(format!("codellama-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(model("tiny-mha-f16.gguf")).unwrap();
    let trunc = dir.join("truncated.gguf");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["complete", "-m", trunc.to_str().unwrap(), "x"],
        "past the end of the file",
    );
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"PK\x03\x04 this is a zip").unwrap();
    fails(&["info", junk.to_str().unwrap()], "not a GGUF file");
    let m = model("tiny-mha-f16.gguf");
    let m = m.to_str().unwrap();
    fails(
        &[
            "logits",
            "-m",
            m,
            "--tokens",
            "1 99999",
            "--out",
            "/tmp/x.npy",
        ],
        "out of range",
    );
    fails(
        &["logits", "-m", m, "--tokens", "1 x", "--out", "/tmp/x.npy"],
        "not a token id",
    );
    fails(&["complete", "-m", m, "--top-p", "0", "x"], "top_p");
    fails(
        &[
            "complete",
            "-m",
            m,
            "--context",
            "4",
            "a long prompt that does not fit",
        ],
        "context holds 4",
    );
    // A vocabulary without infill tokens: a clear error, and `info` says so.
    let no_fim = root().join("tests/fixtures/models/tiny-cov-v512-q8_0.gguf");
    let no_fim = no_fim.to_str().unwrap();
    fails(
        &["infill", "-m", no_fim, "--prefix", "a", "--suffix", "b"],
        "this model has no infill tokens",
    );
    assert!(ok(&["info", no_fim]).contains("infill          not supported"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_prints_one_json_object_with_the_documented_keys() {
    // A 1-layer 7B-shaped model, a few tokens: a smoke test of the command,
    // not a measurement (speed is never asserted).
    let out = ok(&[
        "bench",
        "--layers",
        "1",
        "--prompt-tokens",
        "3",
        "--decode-tokens",
        "2",
        "--prefill-chunk",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    for key in [
        "adapter",
        "copy_gbps",
        "prefill_tok_s",
        "decode_tok_s",
        "decode_bytes_per_token",
        "decode_efficiency",
        "warmup_seconds",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {out}");
    }
    assert!(v["copy_gbps"].as_f64().unwrap() > 0.0);
    assert!(v["warmup_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tok_s"].as_f64().unwrap() > 0.0);
    // Every layer's matrices plus the output projection: about 221 MB.
    let bytes = v["decode_bytes_per_token"].as_u64().unwrap();
    assert!((200_000_000..260_000_000).contains(&bytes), "{bytes}");
}

#[test]
fn gpu_and_cpu_logits_agree_through_the_cli() {
    let m = model("tiny-gqa-q8_0.gguf");
    let dir = std::env::temp_dir();
    let mut rows = Vec::new();
    for backend in ["gpu", "cpu"] {
        let out = dir.join(format!(
            "codellama-logits-{backend}-{}.npy",
            std::process::id()
        ));
        ok(&[
            "logits",
            "-m",
            m.to_str().unwrap(),
            "--tokens",
            "1 822 3349 29871 13",
            "--out",
            out.to_str().unwrap(),
            "--backend",
            backend,
        ]);
        let (shape, data) = npy::read_f32(std::fs::File::open(&out).unwrap()).unwrap();
        std::fs::remove_file(&out).ok();
        assert_eq!(shape, vec![5, 32016]);
        rows.push(data);
    }
    let diff = rows[0]
        .iter()
        .zip(&rows[1])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("GPU vs CPU logits through the CLI: max |diff| {diff:.2e}");
    assert!(diff < 2e-2, "{diff}");
}

/// Without `--model`, the generating commands use the bundled demo model (from the repository
/// root), and `CODELLAMA_MODEL` overrides it.
#[test]
fn default_model_is_the_bundled_demo() {
    let run = |env: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_codellama"));
        c.current_dir(root())
            .env_remove("CODELLAMA_MODEL")
            .args(["tokenize", "--", "def f(x):"]);
        if let Some(p) = env {
            c.env("CODELLAMA_MODEL", p);
        }
        let out = c.output().expect("run codellama");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let demo = root().join("models/codellama-demo.gguf");
    let explicit = ok(&["tokenize", "-m", demo.to_str().unwrap(), "--", "def f(x):"]);
    assert_eq!(run(None), explicit);
    // The fixture's 32016-piece vocabulary tokenizes differently from the demo's 4096 pieces.
    let other = run(Some(&model("tiny-gqa-q8_0.gguf")));
    assert_ne!(other, explicit);
}

/// `--draft N` changes no text; `--stats` reports what was drafted, accepted
/// and how many forward passes ran; out of range is one clear line.
#[test]
fn draft_changes_no_text_and_stats_report_it() {
    let demo = root().join("models/codellama-demo.gguf");
    let demo = demo.to_str().unwrap();
    let run = |draft: &str| {
        let out = codellama(&[
            "complete",
            "-m",
            demo,
            "--backend",
            "cpu",
            "--temperature",
            "0",
            "--max-tokens",
            "40",
            "--stats",
            "--draft",
            draft,
            "a = f(x, y)\nb = f(x, y)\nc = f(",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (off, off_err) = run("0");
    let (on, on_err) = run("8");
    assert_eq!(on, off);
    assert!(!off_err.contains("[speculative:"), "{off_err}");
    let line = on_err
        .lines()
        .find(|l| l.starts_with("[speculative: "))
        .unwrap_or_else(|| panic!("no speculative line in: {on_err}"));
    let drafted: usize = line["[speculative: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(drafted > 0, "{line}");
    assert!(line.contains("forward passes"), "{line}");
    fails(
        &[
            "complete",
            "-m",
            demo,
            "--backend",
            "cpu",
            "--draft",
            "16",
            "x",
        ],
        "maxDraft",
    );
}

/// `batch`: one answer line per request line, in order; each answer's text is
/// what the single-request command prints with the same settings (the KV
/// cache carried from one request to the next changes no token); a bad line
/// is answered with its error where it stands and the batch goes on; a blank
/// line gets a blank line; the GPU backend gives the same greedy text; a
/// request with speculative decoding gives the same text and its counts.
#[test]
fn batch_answers_each_line_like_the_single_commands() {
    let m = model("tiny-gqa-q8_0.gguf");
    let m = m.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("codellama-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("requests.jsonl");
    let lines = [
        r#"{"kind":"complete","prompt":"def f(","maxTokens":10,"temperature":0}"#,
        r#"{"kind":"infill","prefix":"def add(a, b):\n    ","suffix":"\n    return c\n","maxTokens":8,"temperature":0,"suffixFirst":true}"#,
        r#"{"kind":"complete","prompt":"x","maxTokens":4,"temprature":0}"#,
        "",
        r#"{"kind":"complete","prompt":"def f(x","maxTokens":10,"temperature":0}"#,
        r#"{"kind":"chat","messages":[{"role":"user","content":"Write a loop."}],"maxTokens":6,"temperature":0}"#,
        r#"{"kind":"complete","prompt":"def f(x","maxTokens":10,"temperature":0,"speculative":{"maxDraft":4,"costAware":true}}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    // The single-request commands, greedy on the CPU backend.
    let greedy = |cmd: &str, rest: &[&str]| {
        let mut args = vec![cmd, "-m", m, "--backend", "cpu", "--temperature", "0"];
        args.extend_from_slice(rest);
        ok(&args)
    };
    let single = [
        greedy("complete", &["--max-tokens", "10", "def f("]),
        greedy(
            "infill",
            &[
                "--max-tokens",
                "8",
                "--prefix",
                "def add(a, b):\n    ",
                "--suffix",
                "\n    return c\n",
                "--suffix-first",
            ],
        ),
        greedy("complete", &["--max-tokens", "10", "def f(x"]),
        greedy("chat", &["--max-tokens", "6", "Write a loop."]),
    ];
    let single: Vec<&str> = single
        .iter()
        .map(|s| s.strip_suffix('\n').unwrap())
        .collect();
    for backend in ["cpu", "gpu"] {
        let out = dir.join(format!("answers-{backend}.jsonl"));
        ok(&[
            "batch",
            "-m",
            m,
            "--backend",
            backend,
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        let answers: Vec<&str> = text.lines().collect();
        assert_eq!(
            answers.len(),
            lines.len(),
            "{backend}: one answer per line: {text}"
        );
        assert_eq!(
            answers[3], "",
            "{backend}: a blank line answers a blank line"
        );
        let json = |i: usize| -> serde_json::Value { serde_json::from_str(answers[i]).unwrap() };
        let err = json(2);
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `temprature`"),
            "{backend}: {err}"
        );
        assert!(err.get("text").is_none(), "{backend}: {err}");
        for (i, want) in [
            (0, single[0]),
            (1, single[1]),
            (4, single[2]),
            (5, single[3]),
            (6, single[2]),
        ] {
            let a = json(i);
            assert_eq!(a["text"].as_str(), Some(want), "{backend}: line {i}: {a}");
            assert!(
                a["generatedTokens"].as_u64().unwrap() >= 1,
                "{backend}: {a}"
            );
            assert!(a["promptTokens"].as_u64().unwrap() >= 3, "{backend}: {a}");
            let reason = a["stopReason"].as_str().unwrap_or("");
            assert!(
                ["stop_token", "max_tokens"].contains(&reason) && a["ms"].is_number(),
                "{backend}: {a}"
            );
            assert!(a["promptTokensComputed"].is_u64(), "{backend}: {a}");
            // Drafting counts only where drafting was asked for.
            assert_eq!(a.get("draftedTokens").is_some(), i == 6, "{backend}: {a}");
        }
        let spec = json(6);
        let count = |k: &str| spec[k].as_u64().unwrap();
        assert!(
            count("acceptedTokens") <= count("draftedTokens")
                && count("forwardPasses") <= count("generatedTokens"),
            "{backend}: {spec}"
        );
    }
    fails(
        &[
            "batch",
            "-m",
            m,
            dir.join("missing.jsonl").to_str().unwrap(),
        ],
        "cannot read",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
