//! What identifies a compute pipeline: the kernel families (one WGSL file
//! each under `shaders/`), their entry points, and the values of their
//! `override` constants — weight and cache formats, operations, workgroup
//! shapes — as typed keys. A leaf module: everything else in `gpu` builds on
//! it, it imports nothing of theirs.
//!
//! Every number a shader and Rust must agree on is set here once and handed
//! to the shader as an override constant ([`KernelKey::constants`]); the
//! shaders declare the names, never the values the engine uses.

use crate::ggml_type::GgmlType;

/// Positions per KV cache chunk (`CHUNK` in `attention.wgsl`): the cache
/// grows, and `attend` is dispatched, one chunk at a time.
pub const KV_CHUNK: u32 = 256;

/// Positions per decode split of attention (`SPLIT` in `attention.wgsl`): a
/// decode step's `attend` runs one workgroup per (split, row tile, KV head)
/// of each chunk, so a 7B step (32 KV heads, one row each) has 128
/// workgroups per chunk. A multiple of [`ATTN_WG`] dividing [`KV_CHUNK`].
pub const ATTN_SPLIT: u32 = 64;

/// Query rows per `attend` workgroup in prefill (`ROWS`): each K and V value
/// loaded serves that many (token, head) rows of one KV head.
pub const ATTN_PREFILL_ROWS: u32 = 8;

/// Lanes of `attend` and `combine`, and positions per `attend` block (`WG`
/// in `attention.wgsl`).
pub const ATTN_WG: u32 = 64;
/// The most query rows an `attend` workgroup serves (`MAX_ROWS`).
pub const ATTN_MAX_ROWS: u32 = 8;
/// The largest head_dim attention takes (`MAX_HD`; sizes its q arrays).
pub const MAX_HEAD_DIM: u32 = 256;
/// Invocations of a `kv_write` workgroup (`WRITE_WG`).
pub const KV_WRITE_WG: u32 = 64;
/// Invocations of the sampler's one workgroup (`WG` in `sample.wgsl`), also
/// its radix-select bins: one per byte value.
pub const SAMPLE_WG: u32 = 256;

/// Columns per RMSNorm partial sum, and invocations of its workgroups
/// (`GROUP` and `MAX_GROUP` in `norm.wgsl`; a power of two).
pub const NORM_GROUP: u32 = 256;
/// `qmatmul.wgsl` `matmul`: tokens, rows and columns per tile (`TM`, `TN`,
/// `TK`; 256 invocations compute 4 x 4 outputs each).
pub const MATMUL_TILE_TOKENS: u32 = 64;
pub const MATMUL_TILE_ROWS: u32 = 64;
pub const MATMUL_TILE_K: u32 = 32;
/// `qmatmul.wgsl` `embed`: invocations per workgroup, 4 values each.
pub const EMBED_WG: u32 = 64;
/// `elementwise.wgsl`, `bandwidth.wgsl`: invocations per workgroup.
pub const ELEMENTWISE_WG: u32 = 256;
pub const BANDWIDTH_WG: u32 = 256;

/// A WGSL kernel family: one file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFamily {
    Norm,
    Elementwise,
    /// Quantized matrix products and embedding lookup (`gpu::qmatmul`).
    QMatmul,
    /// Memory-bandwidth and FMA probes for the benchmark.
    Bandwidth,
    /// Attention over the chunked KV cache (`gpu::attention`).
    Attention,
    /// Token sampling (`gpu::sample`).
    Sample,
}

impl ShaderFamily {
    /// Every family, one per file under `shaders/`.
    pub const ALL: [ShaderFamily; 6] = [
        ShaderFamily::Norm,
        ShaderFamily::Elementwise,
        ShaderFamily::QMatmul,
        ShaderFamily::Bandwidth,
        ShaderFamily::Attention,
        ShaderFamily::Sample,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShaderFamily::Norm => "norm.wgsl",
            ShaderFamily::Elementwise => "elementwise.wgsl",
            ShaderFamily::QMatmul => "qmatmul.wgsl",
            ShaderFamily::Bandwidth => "bandwidth.wgsl",
            ShaderFamily::Attention => "attention.wgsl",
            ShaderFamily::Sample => "sample.wgsl",
        }
    }

    /// The WGSL module: the family's [`ShaderFamily::prelude`], then its file
    /// (compiled into the crate; natively, with `CODELLAMA_SHADERS=DIR` set,
    /// the file of that name in DIR, read once: for tuning kernels without
    /// rebuilding).
    pub fn source(self) -> String {
        let file = {
            #[cfg(not(target_arch = "wasm32"))]
            {
                self.source_override()
                    .unwrap_or_else(|| self.builtin_source())
            }
            #[cfg(target_arch = "wasm32")]
            {
                self.builtin_source()
            }
        };
        format!("{}{file}", self.prelude())
    }

    /// The file under `shaders/` as it is (without the prelude).
    pub fn file(self) -> &'static str {
        self.builtin_source()
    }

    /// WGSL constants shared with Rust, generated from the Rust values, so
    /// that no number is kept equal in two places by comment: format and
    /// epilogue codes, array bounds and workgroup sizes the Rust side sizes
    /// dispatches and buffers with.
    pub fn prelude(self) -> String {
        let mut consts: Vec<(&str, u32)> = Vec::new();
        match self {
            ShaderFamily::QMatmul => {
                consts.extend([
                    ("F32", QFormat::F32.code()),
                    ("F16", QFormat::F16.code()),
                    ("Q8_0", QFormat::Q8_0.code()),
                    ("Q4_0", QFormat::Q4_0.code()),
                    ("Q4_K", QFormat::Q4K.code()),
                    ("Q6_K", QFormat::Q6K.code()),
                    ("EPILOGUE_STORE", Epilogue::Store.code()),
                    ("EPILOGUE_ACCUMULATE", Epilogue::Accumulate.code()),
                    ("EPILOGUE_SWIGLU", Epilogue::SwiGlu.code()),
                    ("MAX_ROWS", MatvecShape::MAX_ROWS),
                    ("MAX_ACC", MatvecShape::MAX_ACC),
                    ("MAX_PARTIALS", MatvecShape::MAX_PARTIALS),
                    ("TM", MATMUL_TILE_TOKENS),
                    ("TN", MATMUL_TILE_ROWS),
                    ("TK", MATMUL_TILE_K),
                    ("EMBED_WG", EMBED_WG),
                ]);
            }
            ShaderFamily::Norm => consts.push(("MAX_GROUP", NORM_GROUP)),
            ShaderFamily::Elementwise => consts.extend([
                ("WG", ELEMENTWISE_WG),
                ("OP_ADD", ElementwiseOp::Add.code()),
                ("OP_SWIGLU", ElementwiseOp::SwiGlu.code()),
            ]),
            ShaderFamily::Bandwidth => consts.push(("WG", BANDWIDTH_WG)),
            ShaderFamily::Attention => consts.extend([
                ("KV_F16", KvFormat::F16.code()),
                ("KV_Q8", KvFormat::Q8.code()),
                ("MODE_DECODE", AttendMode::Decode.code()),
                ("MODE_PREFILL", AttendMode::Prefill.code()),
                ("WG", ATTN_WG),
                ("MAX_ROWS", ATTN_MAX_ROWS),
                ("MAX_HD", MAX_HEAD_DIM),
                ("WRITE_WG", KV_WRITE_WG),
            ]),
            ShaderFamily::Sample => consts.push(("WG", SAMPLE_WG)),
        }
        let mut out = String::new();
        if !consts.is_empty() {
            out.push_str("// Generated by crate/src/gpu/keys.rs (ShaderFamily::prelude).\n");
            for (name, v) in consts {
                out.push_str(&format!("const {name}: u32 = {v}u;\n"));
            }
            out.push('\n');
        }
        out
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn source_override(self) -> Option<&'static str> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        let dir = std::env::var_os("CODELLAMA_SHADERS")?;
        static LOADED: OnceLock<Mutex<HashMap<ShaderFamily, &'static str>>> = OnceLock::new();
        let mut loaded = LOADED.get_or_init(Default::default).lock().ok()?;
        if let Some(s) = loaded.get(&self) {
            return Some(s);
        }
        let text = std::fs::read_to_string(std::path::Path::new(&dir).join(self.name())).ok()?;
        let text: &'static str = Box::leak(text.into_boxed_str());
        loaded.insert(self, text);
        Some(text)
    }

    fn builtin_source(self) -> &'static str {
        match self {
            ShaderFamily::Norm => include_str!("../../../shaders/norm.wgsl"),
            ShaderFamily::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            ShaderFamily::QMatmul => include_str!("../../../shaders/qmatmul.wgsl"),
            ShaderFamily::Bandwidth => include_str!("../../../shaders/bandwidth.wgsl"),
            ShaderFamily::Attention => include_str!("../../../shaders/attention.wgsl"),
            ShaderFamily::Sample => include_str!("../../../shaders/sample.wgsl"),
        }
    }
}

/// The weight formats `qmatmul.wgsl` reads (its `FORMAT` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QFormat {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
    Q6K,
}

impl QFormat {
    pub const ALL: [QFormat; 6] = [
        QFormat::F32,
        QFormat::F16,
        QFormat::Q8_0,
        QFormat::Q4_0,
        QFormat::Q4K,
        QFormat::Q6K,
    ];

    /// The format for tensors of type `ty`, if the kernels read it.
    pub fn of(ty: GgmlType) -> Option<QFormat> {
        QFormat::ALL.into_iter().find(|f| f.ggml_type() == ty)
    }

    pub fn ggml_type(self) -> GgmlType {
        match self {
            QFormat::F32 => GgmlType::F32,
            QFormat::F16 => GgmlType::F16,
            QFormat::Q8_0 => GgmlType::Q8_0,
            QFormat::Q4_0 => GgmlType::Q4_0,
            QFormat::Q4K => GgmlType::Q4K,
            QFormat::Q6K => GgmlType::Q6K,
        }
    }

    /// The shader's `FORMAT` value (the WGSL constants `F32` .. `Q6_K`).
    pub fn code(self) -> u32 {
        match self {
            QFormat::F32 => 0,
            QFormat::F16 => 1,
            QFormat::Q8_0 => 2,
            QFormat::Q4_0 => 3,
            QFormat::Q4K => 4,
            QFormat::Q6K => 5,
        }
    }

    /// Bytes per row of the `quants` and `scales` streams, before the whole
    /// stream is rounded up to words (see [`super::repack`]).
    pub fn row_bytes(self, cols: u64) -> (u64, u64) {
        let nb = cols / self.ggml_type().block_elems() as u64;
        match self {
            QFormat::F32 => (4 * cols, 0),
            QFormat::F16 => (2 * cols, 0),
            QFormat::Q8_0 => (32 * nb, 2 * nb),
            QFormat::Q4_0 => (16 * nb, 2 * nb),
            QFormat::Q4K => (128 * nb, 20 * nb),
            QFormat::Q6K => (208 * nb, 2 * nb),
        }
    }
}

/// The entry points of `qmatmul.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QEntry {
    /// `Y = X Wᵀ` with lanes along K, a few tokens per workgroup (decode,
    /// small batches, and every batch on CPU adapters).
    Matvec,
    /// `Y = X Wᵀ` in register-blocked tiles (prefill on GPUs).
    Matmul,
    /// `out[t] = W[ids[t]]` (embedding lookup; never accumulates).
    Embed,
}

impl QEntry {
    pub const ALL: [QEntry; 3] = [QEntry::Matvec, QEntry::Matmul, QEntry::Embed];

    /// The WGSL entry point's name.
    pub fn name(self) -> &'static str {
        match self {
            QEntry::Matvec => "matvec",
            QEntry::Matmul => "matmul",
            QEntry::Embed => "embed",
        }
    }

    /// The epilogues the entry has (embed only stores).
    pub fn epilogues(self) -> &'static [Epilogue] {
        match self {
            QEntry::Embed => &[Epilogue::Store],
            _ => &Epilogue::ALL,
        }
    }
}

/// How a `qmatmul.wgsl` product is written (its `EPILOGUE` constant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = W x`.
    #[default]
    Store,
    /// `y += W x` (fused residual adds).
    Accumulate,
    /// `W` is gate rows then up rows: `y = silu(gate x) * (up x)`.
    SwiGlu,
}

impl Epilogue {
    pub const ALL: [Epilogue; 3] = [Epilogue::Store, Epilogue::Accumulate, Epilogue::SwiGlu];

    pub fn code(self) -> u32 {
        match self {
            Epilogue::Store => 0,
            Epilogue::Accumulate => 1,
            Epilogue::SwiGlu => 2,
        }
    }
}

/// The workgroup shape of `matvec`: `lanes` invocations along K (`WG` in the
/// shader) computing `rows` rows (`ROWS`) for `tokens` tokens (`TT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatvecShape {
    pub lanes: u32,
    pub rows: u32,
    pub tokens: u32,
}

impl MatvecShape {
    /// Largest `rows` (the shader's `MAX_ROWS`).
    pub const MAX_ROWS: u32 = 16;
    /// Largest `rows * tokens` (the shader's `MAX_ACC`).
    pub const MAX_ACC: u32 = 128;
    /// Largest `lanes * rows * tokens` (the shader's `MAX_PARTIALS`).
    pub const MAX_PARTIALS: u32 = 1024;

    /// Whether the shader can run this shape on a device of `limits` (rows
    /// even, for SwiGLU's pairs).
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.lanes > 0
            && self.tokens > 0
            && self.rows.is_multiple_of(2)
            && (2..=Self::MAX_ROWS).contains(&self.rows)
            && self.rows * self.tokens <= Self::MAX_ACC
            && self.lanes * self.rows * self.tokens <= Self::MAX_PARTIALS
            && self.lanes <= limits.max_compute_invocations_per_workgroup
            && self.lanes <= limits.max_compute_workgroup_size_x
    }
}

/// Which kernel shapes the engine uses on an adapter: GPUs, or adapters that
/// run shaders on the CPU (llvmpipe, SwiftShader), where a workgroup is a
/// SIMD loop on one core and every per-lane load from a storage buffer is a
/// scalar loop over the lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPreset {
    Gpu,
    Cpu,
}

impl KernelPreset {
    pub const ALL: [KernelPreset; 2] = [KernelPreset::Gpu, KernelPreset::Cpu];

    /// The decode matvec (one token).
    ///
    /// - GPU: one 32-lane warp per workgroup, 4 rows sharing each x load: a
    ///   warp's weight loads cover 512 contiguous bytes of a row.
    /// - CPU: 8 lanes (one 256-bit vector) and 16 rows per x load, the
    ///   fastest shape measured on llvmpipe (README, "Speed").
    pub fn matvec(self) -> MatvecShape {
        match self {
            KernelPreset::Gpu => MatvecShape {
                lanes: 32,
                rows: 4,
                tokens: 1,
            },
            KernelPreset::Cpu => MatvecShape {
                lanes: 8,
                rows: 16,
                tokens: 1,
            },
        }
    }

    /// How a batch of tokens is multiplied: `Some(shape)` runs `matvec`
    /// with several tokens per workgroup (each weight loaded once per
    /// workgroup for all of them: on a CPU adapter loads, not arithmetic,
    /// are the cost), `None` the tiled `matmul`.
    pub fn batch(self) -> Option<MatvecShape> {
        match self {
            KernelPreset::Gpu => None,
            KernelPreset::Cpu => Some(MatvecShape {
                lanes: 8,
                rows: 16,
                tokens: 4,
            }),
        }
    }

    /// Every matvec shape of the preset.
    pub fn matvec_shapes(self) -> Vec<MatvecShape> {
        let mut v = vec![self.matvec()];
        v.extend(self.batch());
        v
    }
}

/// Elementwise operations of `shaders/elementwise.wgsl` (its `OP` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementwiseOp {
    /// `out = a + b` (residual add).
    Add,
    /// `out = silu(a) * b` (SwiGLU).
    SwiGlu,
}

impl ElementwiseOp {
    pub const ALL: [ElementwiseOp; 2] = [ElementwiseOp::Add, ElementwiseOp::SwiGlu];

    pub fn code(self) -> u32 {
        match self {
            ElementwiseOp::Add => 0,
            ElementwiseOp::SwiGlu => 1,
        }
    }
}

/// How the KV cache stores keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvFormat {
    /// f16, two per u32 (`pack2x16float`, round to nearest even); no
    /// `shader-f16` needed.
    #[default]
    F16,
    /// Symmetric 8-bit per (position, KV head) block of `head_dim` values with
    /// an f32 scale `absmax / 127` ([`crate::cpu::q8_quantize`]).
    Q8,
}

impl KvFormat {
    pub const ALL: [KvFormat; 2] = [KvFormat::F16, KvFormat::Q8];

    /// The shader's `FORMAT` value.
    pub fn code(self) -> u32 {
        match self {
            KvFormat::F16 => 0,
            KvFormat::Q8 => 1,
        }
    }
}

/// A binding of a fixed layout ([`KernelKey::bindings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// What an `attend` dispatch computes (`MODE` in `attention.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttendMode {
    /// A few tokens: one workgroup per [`ATTN_SPLIT`] positions writes that
    /// split's partial softmax state; `combine` merges them.
    Decode,
    /// Many tokens: one workgroup per chunk and row tile, the rows' state
    /// carried from chunk to chunk.
    Prefill,
}

impl AttendMode {
    pub const ALL: [AttendMode; 2] = [AttendMode::Decode, AttendMode::Prefill];

    pub fn code(self) -> u32 {
        match self {
            AttendMode::Decode => 0,
            AttendMode::Prefill => 1,
        }
    }

    /// The query rows per workgroup (`ROWS`) the mode is built with:
    /// prefill [`ATTN_PREFILL_ROWS`]; decode the KV group size (query heads
    /// per KV head) rounded up to a power of two, at most [`ATTN_MAX_ROWS`], so that a
    /// decode step reads each K and V value once per KV head.
    pub fn rows(self, group: usize) -> u32 {
        match self {
            AttendMode::Prefill => ATTN_PREFILL_ROWS,
            AttendMode::Decode => {
                (group.clamp(1, ATTN_MAX_ROWS as usize) as u32).next_power_of_two()
            }
        }
    }

    /// Every `rows` value [`AttendMode::rows`] returns.
    pub fn all_rows(self) -> &'static [u32] {
        match self {
            AttendMode::Prefill => &[ATTN_PREFILL_ROWS],
            AttendMode::Decode => &[1, 2, 4, 8],
        }
    }
}

/// One compute pipeline: a kernel family, its entry point and the values of
/// its `override` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKey {
    /// `shaders/norm.wgsl`: RMSNorm's parallel half (`x * w`, partial sums
    /// of `x²`), of every row or (`last`) of the batch's last row.
    RmsNorm { last: bool },
    /// `shaders/elementwise.wgsl` with `OP` selecting the operation.
    Elementwise(ElementwiseOp),
    /// `shaders/bandwidth.wgsl`: `copy` (true) or `read` (false).
    Bandwidth { copy: bool },
    /// `shaders/bandwidth.wgsl` `fma_peak`: independent f32 multiply-add
    /// chains, the adapter's arithmetic peak.
    FmaPeak,
    /// `shaders/attention.wgsl` `kv_write`: k, v of a batch into one KV
    /// chunk; with `rope`, `kv_write_rope`: RoPE in place on the batch's q
    /// and k first (the decoder's).
    KvWrite { format: KvFormat, rope: bool },
    /// `shaders/attention.wgsl` `attend`: one chunk of the cache, `rows`
    /// query rows per workgroup, as `mode` says.
    Attend {
        format: KvFormat,
        mode: AttendMode,
        rows: u32,
    },
    /// `shaders/attention.wgsl` `combine`: a decode step's split partials
    /// merged into the output.
    AttendCombine,
    /// `shaders/sample.wgsl`: token sampling, one workgroup.
    Sample,
    /// `shaders/qmatmul.wgsl`: entry point `entry` for weights in `format`,
    /// writing its output as `epilogue` says (embed only stores); `shape` is
    /// matvec's workgroup shape (the GPU preset's decode shape for the other
    /// entries, which do not read it).
    QMatmul {
        entry: QEntry,
        format: QFormat,
        epilogue: Epilogue,
        shape: MatvecShape,
    },
}

impl KernelKey {
    /// The key of a `qmatmul.wgsl` pipeline, `shape` kept only for matvec so
    /// that the other entries have one pipeline per format and epilogue.
    pub fn qmatmul(
        entry: QEntry,
        format: QFormat,
        epilogue: Epilogue,
        shape: MatvecShape,
    ) -> KernelKey {
        KernelKey::QMatmul {
            entry,
            format,
            epilogue: match entry {
                QEntry::Embed => Epilogue::Store,
                _ => epilogue,
            },
            shape: match entry {
                QEntry::Matvec => shape,
                _ => KernelPreset::Gpu.matvec(),
            },
        }
    }

    /// Every kernel variant the engine can ask for (each is validated by
    /// `naga` in the tests with its constants applied).
    pub fn all() -> Vec<KernelKey> {
        let mut keys = vec![
            KernelKey::RmsNorm { last: false },
            KernelKey::RmsNorm { last: true },
        ];
        keys.extend(ElementwiseOp::ALL.map(KernelKey::Elementwise));
        keys.extend([true, false].map(|copy| KernelKey::Bandwidth { copy }));
        keys.push(KernelKey::FmaPeak);
        for format in KvFormat::ALL {
            for rope in [false, true] {
                keys.push(KernelKey::KvWrite { format, rope });
            }
        }
        for format in KvFormat::ALL {
            for mode in AttendMode::ALL {
                for &rows in mode.all_rows() {
                    keys.push(KernelKey::Attend { format, mode, rows });
                }
            }
        }
        keys.push(KernelKey::AttendCombine);
        keys.push(KernelKey::Sample);
        let mut shapes: Vec<MatvecShape> = KernelPreset::ALL
            .iter()
            .flat_map(|p| p.matvec_shapes())
            .collect();
        shapes.dedup();
        for entry in QEntry::ALL {
            for format in QFormat::ALL {
                for &epilogue in entry.epilogues() {
                    for &shape in &shapes {
                        let key = KernelKey::qmatmul(entry, format, epilogue, shape);
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                }
            }
        }
        keys
    }

    pub fn family(self) -> ShaderFamily {
        match self {
            KernelKey::RmsNorm { .. } => ShaderFamily::Norm,
            KernelKey::Elementwise(_) => ShaderFamily::Elementwise,
            KernelKey::Bandwidth { .. } | KernelKey::FmaPeak => ShaderFamily::Bandwidth,
            KernelKey::KvWrite { .. } | KernelKey::Attend { .. } | KernelKey::AttendCombine => {
                ShaderFamily::Attention
            }
            KernelKey::Sample => ShaderFamily::Sample,
            KernelKey::QMatmul { .. } => ShaderFamily::QMatmul,
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            KernelKey::Bandwidth { copy: true } => "stream_copy",
            KernelKey::Bandwidth { copy: false } => "stream_read",
            KernelKey::FmaPeak => "fma_peak",
            KernelKey::KvWrite { rope: false, .. } => "kv_write",
            KernelKey::KvWrite { rope: true, .. } => "kv_write_rope",
            KernelKey::Attend { .. } => "attend",
            KernelKey::AttendCombine => "combine",
            KernelKey::QMatmul { entry, .. } => entry.name(),
            _ => "main",
        }
    }

    /// Values for the shader's `override` constants (every override of the
    /// family gets one, used by the entry point or not).
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            KernelKey::RmsNorm { last } => vec![
                ("LAST", if last { 1.0 } else { 0.0 }),
                ("GROUP", f64::from(NORM_GROUP)),
            ],
            KernelKey::Bandwidth { .. } | KernelKey::FmaPeak | KernelKey::Sample => Vec::new(),
            KernelKey::Elementwise(op) => vec![("OP", f64::from(op.code()))],
            // The write and combine entries read neither MODE nor ROWS.
            KernelKey::KvWrite { format, .. } => attention_constants(format, AttendMode::Decode, 1),
            KernelKey::AttendCombine => attention_constants(KvFormat::F16, AttendMode::Decode, 1),
            KernelKey::Attend { format, mode, rows } => attention_constants(format, mode, rows),
            KernelKey::QMatmul {
                format,
                epilogue,
                shape,
                ..
            } => vec![
                ("FORMAT", f64::from(format.code())),
                ("EPILOGUE", f64::from(epilogue.code())),
                ("WG", f64::from(shape.lanes)),
                ("ROWS", f64::from(shape.rows)),
                ("TT", f64::from(shape.tokens)),
            ],
        }
    }

    /// The bind group layout of the pipeline, where it is fixed by the
    /// family rather than derived from the shader: `qmatmul.wgsl` entry
    /// points list every binding they may read in any variant, so that one
    /// set of bind group entries fits every `FORMAT` and `EPILOGUE` (a
    /// derived layout drops bindings only dead variants use, and the browser
    /// and naga disagree on which). `None`: derived from the shader.
    pub fn bindings(self) -> Option<Vec<(u32, Binding)>> {
        use Binding::{ReadOnly, ReadWrite, Uniform};
        match self {
            KernelKey::QMatmul { entry, .. } => Some(match entry {
                QEntry::Matvec => vec![
                    (0, Uniform),
                    (1, ReadOnly),
                    (2, ReadWrite),
                    (3, ReadOnly),
                    (4, ReadOnly),
                    (5, Uniform),
                    (7, ReadOnly),
                    (8, ReadOnly),
                    (9, ReadOnly),
                ],
                QEntry::Matmul => vec![
                    (0, Uniform),
                    (1, ReadOnly),
                    (2, ReadWrite),
                    (3, ReadOnly),
                    (4, ReadOnly),
                    (5, Uniform),
                    (9, ReadOnly),
                ],
                QEntry::Embed => vec![
                    (0, Uniform),
                    (2, ReadWrite),
                    (3, ReadOnly),
                    (4, ReadOnly),
                    (5, Uniform),
                    (6, ReadOnly),
                ],
            }),
            _ => None,
        }
    }

    pub(super) fn label(self) -> String {
        format!("{self:?}")
    }
}

/// Every override of `attention.wgsl`.
fn attention_constants(format: KvFormat, mode: AttendMode, rows: u32) -> Vec<(&'static str, f64)> {
    vec![
        ("FORMAT", f64::from(format.code())),
        ("CHUNK", f64::from(KV_CHUNK)),
        ("SPLIT", f64::from(ATTN_SPLIT)),
        ("ROWS", f64::from(rows)),
        ("MODE", f64::from(mode.code())),
    ]
}

const _: () = assert!(ATTN_SPLIT.is_multiple_of(ATTN_WG) && KV_CHUNK.is_multiple_of(ATTN_SPLIT));
const _: () = assert!(ATTN_PREFILL_ROWS <= ATTN_MAX_ROWS && ATTN_MAX_ROWS.is_power_of_two());
const _: () = assert!(MAX_HEAD_DIM.is_multiple_of(8));
const _: () = assert!(SAMPLE_WG == 256);
