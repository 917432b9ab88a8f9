//! The chunked KV cache and causal grouped-query attention over it
//! (`shaders/attention.wgsl`).
//!
//! # Cache layout
//!
//! The cache grows in chunks of [`KV_CHUNK`] = 256 positions. A chunk is ONE
//! buffer holding the slice of every layer for its 256 positions (split into a
//! few buffers, each a run of whole layers, only when one would exceed the
//! device's `max_buffer_size`). Layer `l`'s slice starts at
//! `l * slice_stride`, a multiple of 256 bytes (the storage-binding offset
//! alignment), and is bound on its own as a buffer range, so the shader never
//! sees the layer index. A block is the `head_dim` values of one (position,
//! KV head), stored as `nq` quads of 4 u32 words ([`KvFormat::block_quads`]:
//! 8 f16 or 16 i8 values a quad, zero past `head_dim`). Within a slice
//! (`a = n_kv_heads`), head-major:
//!
//! | part | shape | F16 | Q8 |
//! |---|---|---|---|
//! | K quants | `(a, nq, 256)` quads | `nq = ceil(head_dim / 8)`, two halves per word (low first) | `nq = ceil(head_dim / 16)`, four i8 per word (low byte first) |
//! | V quants | `(a, 256, nq)` quads | same | same |
//! | K scales | `(a, 256)` f32 | — | `absmax / 127` of the block |
//! | V scales | `(a, 256)` f32 | — | same |
//!
//! K is stored transposed by quad: quad `w` of all 256 positions of a head is
//! contiguous, so the score lanes (one position each) load 64 consecutive
//! 16-byte quads per step. V keeps each block contiguous, so the lanes that
//! accumulate `sum_j p_j v_j` (one quad of `head_dim` each) load consecutive
//! quads of one position. Both reads are coalesced and 16 bytes wide.
//!
//! Why one buffer per chunk rather than one per (layer, chunk): growing the
//! context by 256 positions is one allocation (not `n_layers`), every layer
//! grows together (they always hold the same positions), and the number of
//! buffers stays `max_len / 256`; the per-layer view costs nothing since a
//! bind group may bind any 256-aligned range. Chunks are never freed while
//! the cache lives: [`KvAttention::truncate`] only moves the length.
//!
//! # Attention
//!
//! One layer, recorded by [`KvAttention::encode`] in one compute pass.
//! `kv_write` runs once per chunk the batch's positions fall in (1 to 3 for a
//! 512-token batch); the decoder's variant, `kv_write_rope`, first applies
//! RoPE in place to the token's key head and the query heads that share it
//! (the table's f64-made `(cos, sin)`, the CPU's `rope` formula `a c - b s`,
//! `a s + b c` in f32), so RoPE costs no dispatch of its own. Then `attend` once per chunk `0..=(kv_len - 1) / 256`
//! (each dispatch binds one chunk: WebGPU gives a stage 8 storage buffers, so
//! a kernel cannot see an unbounded list of chunk buffers). An `attend`
//! workgroup serves up to `ROWS` query rows `(token, head)` of ONE KV head, so
//! every K and V value it loads serves all of them (the query heads of a
//! grouped-query KV head, the tokens of a prefill tile), and walks a range
//! of positions in blocks of 64: per block, the scores (lane = position,
//! causal mask per row), the block's max per row, the running max `m`,
//! weights `e = exp(s - m)`, and `acc = acc * exp(m_old - m) + sum e v`,
//! `l` likewise (the stable online softmax).
//!
//! - Decode (`tokens <= `[`KvAttention::decode_tokens`]): the range is one
//!   split of [`ATTN_SPLIT`] = 64 positions. Dispatch `(splits of the chunk,
//!   row tiles, n_kv_heads)`: a 7B decode step has 4 x 1 x 32 = 128
//!   workgroups per chunk, at any context length. Each writes its split's
//!   partial `(m, l, acc)` to its own slot of the scratch buffer (rows do
//!   not share slots, no dispatch reads another's), and `combine` (one
//!   workgroup per (token, head)) merges a row's partials with `M = max_s
//!   m_s`, weights `exp(m_s - M)`, and writes `out = sum w acc / sum w l`.
//!   When `kv_len <= 64` the single split writes `out` itself and no
//!   `combine` is recorded.
//! - Prefill (more tokens): the range is the whole chunk, the row tile 8
//!   rows (8 tokens of one head for MHA). Dispatch `(1, row tiles,
//!   n_kv_heads)`, already `tokens / 8 x n_heads` workgroups wide; each K
//!   and V value is loaded once per tile. A row's state is carried from
//!   chunk to chunk in the scratch buffer (merged with the same rule as
//!   `combine`), and the chunk holding the row's last position writes its
//!   `out` row: no separate finalize. The chunks of one layer run in order
//!   anyway (WebGPU orders dispatches that share a writable buffer), and the
//!   state carried is `tokens x n_heads x (head_dim + 2)` floats, where
//!   partials of every split would grow with the context
//!   (`512 x 32 x 64 x 130` f32 = 545 MB for a 7B at 4096 positions).
//!
//! Dispatches per layer: `kv_write` (with RoPE) per chunk touched (1 for a
//! decode step), `attend` per chunk, and `combine` for a decode step past 64
//! positions.
//!
//! # Exactness
//!
//! The GPU computes the CPU reference's (`cpu::attention`) arithmetic on the
//! values the cache stores ([`KvFormat::round_trip`]), in f32, up to the
//! order of sums and the split of the softmax: the CPU takes `M` over all
//! positions and sums `exp(s_j - M) v_j` in position order; the GPU sums each
//! block with its own running max and rescales by `exp(m_old - m_new)`, and
//! `combine` (or the prefill carry) rescales whole splits by `exp(m_s - M)`.
//! `exp(a) exp(b) = exp(a + b)` up to a few ulp of each factor, every weight
//! is at most 1 and every `m` is an actual score (no overflow, no
//! `inf - inf`), so each output differs from the CPU's by a few ulp of the
//! largest `|v|` times a small multiple of `log2(kv_len)` — the same bound as
//! any re-association of the reference's sums, far under the tests' `2e-5`
//! for `|v| <= 1`. Masked positions get weight exactly 0 (never `exp` of a
//! sentinel); Q8 values are dequantized as `q * scale` before weighting,
//! exactly the stored f32 (K's scale multiplies the finished dot product, one
//! rounding more, as before).

mod host;

use super::context::GpuContext;
use super::error::GpuError;
use super::kernels::{QkvLayout, RopeTable};
pub use super::keys::KvFormat;
use super::keys::{AttendMode, KernelKey, ATTN_SPLIT};
use super::step::{StepParams, StepUniform};

const K: &str = "attention";

/// Positions per KV chunk (`CHUNK` in the shader, set from
/// [`super::keys::KV_CHUNK`]).
pub const KV_CHUNK: usize = super::keys::KV_CHUNK as usize;
/// The largest supported head size (`MAX_HD` in the shader).
pub const MAX_HEAD_DIM: usize = super::keys::MAX_HEAD_DIM as usize;
/// The most tokens a batch may have to take the decode path (split partials
/// and `combine`); larger batches take the prefill path.
pub const DECODE_TOKENS: usize = 4;
/// The most tokens the split path can take when asked to
/// ([`KvAttention::encode_split`]): a speculative verification batch (the
/// GPU sampler's rows).
pub const SPLIT_TOKENS: usize = super::keys::SAMPLE_ROWS as usize;
const _: () = assert!(DECODE_TOKENS <= SPLIT_TOKENS);
/// Storage-binding offsets are multiples of this (WebGPU's
/// `min_storage_buffer_offset_alignment` default and maximum).
const ALIGN: u64 = 256;
const SPLIT: usize = ATTN_SPLIT as usize;

impl KvFormat {
    /// Quads (16 bytes: 8 f16 or 16 i8 values) of one block of quants (one
    /// position, one KV head), the last zero-padded past `head_dim`.
    pub fn block_quads(self, head_dim: usize) -> usize {
        match self {
            KvFormat::F16 => head_dim.div_ceil(8),
            KvFormat::Q8 => head_dim.div_ceil(16),
        }
    }

    /// u32 words of one block of quants.
    pub fn block_words(self, head_dim: usize) -> usize {
        4 * self.block_quads(head_dim)
    }

    /// Bytes one block takes, quants and scale.
    pub fn block_bytes(self, head_dim: usize) -> usize {
        match self {
            KvFormat::F16 => 4 * self.block_words(head_dim),
            KvFormat::Q8 => 4 * self.block_words(head_dim) + 4,
        }
    }

    /// Replaces `values` (blocks of `head_dim`) by what this format stores
    /// for them: the CPU twin of `kv_write`.
    pub fn round_trip(self, values: &mut [f32], head_dim: usize) {
        match self {
            KvFormat::F16 => crate::cpu::f16_round_trip(values),
            KvFormat::Q8 => crate::cpu::q8_round_trip(values, head_dim),
        }
    }
}

/// Shapes and limits of a [`KvAttention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionConfig {
    pub n_layers: usize,
    pub n_heads: usize,
    /// Divides `n_heads` (grouped-query attention when smaller).
    pub n_kv_heads: usize,
    /// Even, at most [`MAX_HEAD_DIM`].
    pub head_dim: usize,
    /// The most positions the cache will hold (at most the model's context).
    pub max_len: usize,
    /// The most tokens per batch: the rows of the activation buffers.
    pub max_tokens: usize,
    pub format: KvFormat,
}

impl AttentionConfig {
    /// Every shape constraint, as a shape error.
    pub fn validate(&self) -> Result<(), GpuError> {
        let c = self;
        for (name, v) in [
            ("n_layers", c.n_layers),
            ("n_heads", c.n_heads),
            ("n_kv_heads", c.n_kv_heads),
            ("head_dim", c.head_dim),
            ("max_len", c.max_len),
            ("max_tokens", c.max_tokens),
        ] {
            if v == 0 {
                return Err(GpuError::shape(K, format!("{name} is 0")));
            }
        }
        if !c.n_heads.is_multiple_of(c.n_kv_heads) {
            return Err(GpuError::shape(
                K,
                format!(
                    "n_kv_heads {} does not divide n_heads {}",
                    c.n_kv_heads, c.n_heads
                ),
            ));
        }
        if !c.head_dim.is_multiple_of(2) || c.head_dim > MAX_HEAD_DIM {
            return Err(GpuError::shape(
                K,
                format!(
                    "head_dim {} must be even and at most {MAX_HEAD_DIM}",
                    c.head_dim
                ),
            ));
        }
        let group = c.n_heads / c.n_kv_heads;
        let tiles = (c.max_tokens * group).div_ceil(AttendMode::Prefill.rows(group) as usize);
        if c.max_tokens > u16::MAX as usize
            || c.n_heads > u16::MAX as usize
            || tiles > u16::MAX as usize
        {
            return Err(GpuError::shape(
                K,
                format!(
                    "max_tokens {} and n_heads {} must be at most 65535, and so must \
                     max_tokens * n_heads / n_kv_heads / 8 (workgroups per dimension)",
                    c.max_tokens, c.n_heads
                ),
            ));
        }
        let state = c.scratch_bytes();
        let max_len_ok = c
            .max_len
            .checked_add(KV_CHUNK)
            .is_some_and(|n| n <= u32::MAX as usize);
        if !max_len_ok || state > u64::from(u32::MAX) {
            return Err(GpuError::shape(
                K,
                format!(
                    "max_len {} or max_tokens {} exceed u32 indexing",
                    c.max_len, c.max_tokens
                ),
            ));
        }
        Ok(())
    }

    /// Cache bytes per position: all layers, K and V, quants and scales.
    pub fn bytes_per_token(&self) -> u64 {
        (self.n_layers * 2 * self.n_kv_heads * self.format.block_bytes(self.head_dim)) as u64
    }

    /// The most tokens a batch may have to take the decode path.
    pub fn decode_tokens(&self) -> usize {
        DECODE_TOKENS.min(self.max_tokens)
    }

    /// Partial slots per (token, head) of the decode path: one per
    /// [`ATTN_SPLIT`] positions of `max_len`.
    pub fn max_splits(&self) -> usize {
        self.max_len.div_ceil(SPLIT)
    }

    /// The most tokens the split path holds ([`SPLIT_TOKENS`], at most
    /// `max_tokens`): the decode path's, and speculative verification's
    /// ([`KvAttention::encode_split`]).
    pub fn split_tokens(&self) -> usize {
        SPLIT_TOKENS.min(self.max_tokens)
    }

    /// Bytes of the attention scratch: the split path's partials
    /// `(split_tokens, n_heads, max_splits, 2 + head_dim)` f32 or the
    /// prefill path's carried state `(max_tokens, n_heads, 2 + head_dim)`
    /// f32, whichever is larger (they share the buffer).
    pub fn scratch_bytes(&self) -> u64 {
        let row = (self.n_heads * (2 + self.head_dim) * 4) as u64;
        let partials = (self.split_tokens() * self.max_splits()) as u64 * row;
        partials.max(self.max_tokens as u64 * row)
    }

    /// Where things are in one layer's slice of a chunk.
    fn slice(&self) -> SliceLayout {
        let nq = self.format.block_quads(self.head_dim);
        let blocks = KV_CHUNK * self.n_kv_heads;
        let quants = blocks * nq;
        // K quants, V quants (quads), then Q8's K and V scales (words).
        let (ks_base, vs_base, words) = match self.format {
            KvFormat::F16 => (0, 0, 8 * quants),
            KvFormat::Q8 => (8 * quants, 8 * quants + blocks, 8 * quants + 2 * blocks),
        };
        let bytes = 4 * words as u64;
        SliceLayout {
            quads: nq as u32,
            v_base: quants as u32,
            ks_base: ks_base as u32,
            vs_base: vs_base as u32,
            bytes,
            stride: bytes.div_ceil(ALIGN) * ALIGN,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct SliceLayout {
    /// Quads per block.
    quads: u32,
    /// Start of V's quants, in quads.
    v_base: u32,
    /// Starts of Q8's K and V scales, in words.
    ks_base: u32,
    vs_base: u32,
    /// Bytes of one layer's slice (bound).
    bytes: u64,
    /// Distance between layer slices, a multiple of [`ALIGN`].
    stride: u64,
}

/// The decoder's activation buffers the attention reads and writes, each
/// used from offset 0 and at least as large as the shapes say.
#[derive(Clone, Copy, Debug)]
pub struct AttentionIo<'a> {
    /// `(max_tokens, layout.stride)` f32: each token's q, k and v where
    /// `layout` says; with `rope`, q and k before RoPE, which `kv_write_rope`
    /// applies in place; without, after it.
    pub qkv: &'a wgpu::Buffer,
    pub layout: QkvLayout,
    /// RoPE's `(cos, sin)` table (the decoder's), for positions up to at
    /// least `max_len`; `None`: q and k arrive rotated (tests of attention
    /// alone).
    pub rope: Option<&'a RopeTable>,
    /// `(max_tokens, n_heads * head_dim)` f32, written; not `qkv`.
    pub out: &'a wgpu::Buffer,
    /// The forward pass's `Step` uniform (pos, tokens, kv_len).
    pub step: &'a StepUniform,
}

/// The shader's `Params` uniform (one per chunk).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    chunk: u32,
    quads: u32,
    v_base: u32,
    ks_base: u32,
    vs_base: u32,
    scale: f32,
    stride: u32,
    q_off: u32,
    k_off: u32,
    v_off: u32,
    max_splits: u32,
    _pad: [u32; 2],
}

/// One chunk: its buffers and, per layer, the bind groups of `kv_write` and
/// of the decode and prefill `attend` (pipelines with automatic layouts
/// take bind groups made from their own layout only).
#[derive(Debug)]
struct Chunk {
    buffers: Vec<wgpu::Buffer>,
    write: Vec<wgpu::BindGroup>,
    decode: Vec<wgpu::BindGroup>,
    prefill: Vec<wgpu::BindGroup>,
}

/// The KV cache of one sequence and the attention of every layer over it,
/// bound once to the decoder's buffers.
#[derive(Debug)]
pub struct KvAttention {
    cfg: AttentionConfig,
    slice: SliceLayout,
    /// Layers per chunk buffer.
    layers_per_buffer: usize,
    write: wgpu::ComputePipeline,
    /// RoPE's table, bound to `kv_write_rope` (`write`), if any.
    rope: Option<wgpu::Buffer>,
    decode: wgpu::ComputePipeline,
    /// `ROWS` of `decode`.
    decode_rows: usize,
    prefill: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
    qkv: wgpu::Buffer,
    layout: QkvLayout,
    out: wgpu::Buffer,
    step: wgpu::Buffer,
    scratch: wgpu::Buffer,
    combine_group: wgpu::BindGroup,
    chunks: Vec<Chunk>,
    len: usize,
}

impl KvAttention {
    /// Checks the shapes, creates the pipelines, the scratch (split
    /// partials, carried state) and the `combine` bind group; no chunk is
    /// allocated yet ([`KvAttention::reserve_async`]).
    pub async fn new_async(
        ctx: &GpuContext,
        cfg: AttentionConfig,
        io: AttentionIo<'_>,
    ) -> Result<KvAttention, GpuError> {
        cfg.validate()?;
        let slice = cfg.slice();
        ctx.check_binding_size("attention KV slice", slice.bytes)?;
        let max_buffer = ctx.limits().max_buffer_size;
        let layers_per_buffer = (max_buffer / slice.stride).min(cfg.n_layers as u64) as usize;
        if layers_per_buffer == 0 {
            return Err(GpuError::BufferTooLarge {
                what: "one layer of a KV chunk".into(),
                size: slice.stride,
                limit_name: "max_buffer_size",
                limit: max_buffer,
            });
        }
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        if !ALIGN.is_multiple_of(align.max(1)) {
            return Err(GpuError::shape(
                K,
                format!("the device aligns storage offsets to {align} bytes, over {ALIGN}"),
            ));
        }

        let t = cfg.max_tokens;
        io.layout
            .check(K, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)?;
        io_fits(ctx, "qkv", io.qkv, t * io.layout.stride)?;
        let out_bytes = io_fits(ctx, "out", io.out, t * cfg.n_heads * cfg.head_dim)?;
        if io.out == io.qkv {
            return Err(GpuError::shape(K, "out and qkv are one buffer"));
        }
        ctx.check_binding_size("attention scratch", cfg.scratch_bytes())?;

        let group = cfg.n_heads / cfg.n_kv_heads;
        let format = cfg.format;
        let attend = |mode: AttendMode| KernelKey::Attend {
            format,
            mode,
            rows: mode.rows(group),
        };
        if let Some(table) = io.rope {
            if table.head_dim() != cfg.head_dim || table.max_len() < cfg.max_len {
                return Err(GpuError::shape(
                    K,
                    format!(
                        "the RoPE table is for head_dim {} and {} positions; attention needs \
                         head_dim {} and {} positions",
                        table.head_dim(),
                        table.max_len(),
                        cfg.head_dim,
                        cfg.max_len
                    ),
                ));
            }
        }
        let write = ctx
            .pipeline(KernelKey::KvWrite {
                format,
                rope: io.rope.is_some(),
            })
            .await?;
        let decode = ctx.pipeline(attend(AttendMode::Decode)).await?;
        let prefill = ctx.pipeline(attend(AttendMode::Prefill)).await?;
        let combine = ctx.pipeline(KernelKey::AttendCombine).await?;
        let scratch = ctx
            .storage_zeroed("attention scratch", cfg.scratch_bytes())
            .await?;
        let params = params_uniform(ctx, &cfg, &slice, io.layout, 0);
        let step = io.step.buffer().clone();
        let combine_group = ctx
            .scoped(|| {
                ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("attention combine"),
                    layout: &combine.get_bind_group_layout(0),
                    entries: &[
                        whole(0, &step),
                        whole(1, &params),
                        whole(7, &scratch),
                        range(8, io.out, 0, out_bytes),
                    ],
                })
            })
            .await?;
        Ok(KvAttention {
            cfg,
            slice,
            layers_per_buffer,
            write,
            rope: io.rope.map(|t| t.buffer().clone()),
            decode,
            decode_rows: AttendMode::Decode.rows(group) as usize,
            prefill,
            combine,
            qkv: io.qkv.clone(),
            layout: io.layout,
            out: io.out.clone(),
            step,
            scratch,
            combine_group,
            chunks: Vec::new(),
            len: 0,
        })
    }

    /// Blocking [`KvAttention::new_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(
        ctx: &GpuContext,
        cfg: AttentionConfig,
        io: AttentionIo<'_>,
    ) -> Result<KvAttention, GpuError> {
        ctx.block_on(Self::new_async(ctx, cfg, io))
    }

    /// Allocates chunks (their buffers, params and bind groups) until
    /// positions `0..len` fit; `Err(ContextFull)` past `max_len`. The only
    /// place buffers and bind groups are created after `new`.
    pub async fn reserve_async(&mut self, ctx: &GpuContext, len: usize) -> Result<(), GpuError> {
        if len > self.cfg.max_len {
            return Err(GpuError::ContextFull {
                len,
                max: self.cfg.max_len,
            });
        }
        while self.chunks.len() * KV_CHUNK < len {
            let chunk = self.new_chunk(ctx, self.chunks.len()).await?;
            self.chunks.push(chunk);
        }
        Ok(())
    }

    /// Blocking [`KvAttention::reserve_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn reserve(&mut self, ctx: &GpuContext, len: usize) -> Result<(), GpuError> {
        ctx.block_on(self.reserve_async(ctx, len))
    }

    async fn new_chunk(&self, ctx: &GpuContext, index: usize) -> Result<Chunk, GpuError> {
        let cfg = &self.cfg;
        let n_buffers = cfg.n_layers.div_ceil(self.layers_per_buffer);
        let mut buffers = Vec::with_capacity(n_buffers);
        for b in 0..n_buffers {
            let layers = self
                .layers_per_buffer
                .min(cfg.n_layers - b * self.layers_per_buffer);
            let size = self.slice.stride * layers as u64;
            let label = format!("kv chunk {index} part {b}");
            buffers.push(ctx.storage_zeroed(&label, size).await?);
        }
        let params = params_uniform(ctx, cfg, &self.slice, self.layout, index);
        let qkv_bytes = 4 * (cfg.max_tokens * self.layout.stride) as u64;
        let out_bytes = 4 * (cfg.max_tokens * cfg.n_heads * cfg.head_dim) as u64;
        let write_layout = self.write.get_bind_group_layout(0);
        let attend_layouts = [
            self.decode.get_bind_group_layout(0),
            self.prefill.get_bind_group_layout(0),
        ];
        let (write, [decode, prefill]) = ctx
            .scoped(|| {
                let mut write = Vec::with_capacity(cfg.n_layers);
                let mut attend = [
                    Vec::with_capacity(cfg.n_layers),
                    Vec::with_capacity(cfg.n_layers),
                ];
                for layer in 0..cfg.n_layers {
                    let buffer = &buffers[layer / self.layers_per_buffer];
                    let offset = self.slice.stride * (layer % self.layers_per_buffer) as u64;
                    let mut entries = vec![
                        whole(0, &self.step),
                        whole(1, &params),
                        range(5, &self.qkv, 0, qkv_bytes),
                        range(4, buffer, offset, self.slice.bytes),
                    ];
                    if let Some(table) = &self.rope {
                        entries.push(whole(3, table));
                    }
                    write.push(ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("kv_write"),
                        layout: &write_layout,
                        entries: &entries,
                    }));
                    for (groups, layout) in attend.iter_mut().zip(&attend_layouts) {
                        groups.push(ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some("attend"),
                            layout,
                            entries: &[
                                whole(0, &self.step),
                                whole(1, &params),
                                range(2, &self.qkv, 0, qkv_bytes),
                                range(6, buffer, offset, self.slice.bytes),
                                whole(7, &self.scratch),
                                range(8, &self.out, 0, out_bytes),
                            ],
                        }));
                    }
                }
                (write, attend)
            })
            .await?;
        Ok(Chunk {
            buffers,
            write,
            decode,
            prefill,
        })
    }

    /// Records `kv_write`, `attend` and (decode steps past one split)
    /// `combine` of `layer` for the batch `step` (one compute pass,
    /// dispatches only) and returns the number of dispatches: k, v of the
    /// batch go to positions `pos..kv_len`, `out` gets the batch's attention
    /// over `0..kv_len`. The shaders read pos, tokens and kv_len from the
    /// `Step` uniform, which must hold `step` at submit; `step` here sizes
    /// the dispatches.
    ///
    /// Errors: `ContextFull` past `max_len`; a shape error when `kv_len`
    /// exceeds the reserved chunks, the batch exceeds `max_tokens`, or `pos`
    /// is past [`KvAttention::len`] (a gap).
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        layer: usize,
        step: &StepParams,
    ) -> Result<usize, GpuError> {
        let decode = step.tokens as usize <= self.decode_tokens();
        self.encode_path(pass, layer, step, decode)
    }

    /// [`KvAttention::encode`] on the split path whatever the batch's size
    /// (up to [`SPLIT_TOKENS`]): every row is then computed as a decode step
    /// of that row alone computes it — the same splits of 64 positions, the
    /// same sums in the same order, positions past the row masked to weight
    /// exactly 0 (adding 0 changes no sum), and `combine` over the row's own
    /// splits (a row whose positions fit one split but whose batch needs
    /// `combine` gets `M = m`, `exp(0) = 1`: its value unchanged). Speculative
    /// verification uses it so that a batch's logits equal decode steps'.
    pub fn encode_split(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        layer: usize,
        step: &StepParams,
    ) -> Result<usize, GpuError> {
        let limit = self.cfg.split_tokens();
        if step.tokens as usize > limit {
            return Err(GpuError::shape(
                K,
                format!("{} tokens on the split path (1..={limit})", step.tokens),
            ));
        }
        self.encode_path(pass, layer, step, true)
    }

    fn encode_path(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        layer: usize,
        step: &StepParams,
        decode: bool,
    ) -> Result<usize, GpuError> {
        let (pos, tokens, kv_len) = self.check_step(layer, step)?;
        let last_chunk = (kv_len - 1) / KV_CHUNK;
        let n_kv = self.cfg.n_kv_heads as u32;
        let mut dispatches = self.encode_write(pass, layer, pos, kv_len);
        let group = self.cfg.n_heads / self.cfg.n_kv_heads;
        let rows = if decode {
            pass.set_pipeline(&self.decode);
            self.decode_rows
        } else {
            pass.set_pipeline(&self.prefill);
            AttendMode::Prefill.rows(group) as usize
        };
        for c in 0..=last_chunk {
            let tiles = ((tokens - first_token(c, pos)) * group).div_ceil(rows);
            // Decode: the splits of the chunk the last token reaches.
            let ranges = if decode {
                (((c + 1) * KV_CHUNK).min(kv_len) - c * KV_CHUNK).div_ceil(SPLIT)
            } else {
                1
            };
            let chunk = &self.chunks[c];
            let group = if decode {
                &chunk.decode[layer]
            } else {
                &chunk.prefill[layer]
            };
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(ranges as u32, tiles as u32, n_kv);
        }
        dispatches += last_chunk + 1;
        if decode && kv_len > SPLIT {
            pass.set_pipeline(&self.combine);
            pass.set_bind_group(0, &self.combine_group, &[]);
            pass.dispatch_workgroups(self.cfg.n_heads as u32, tokens as u32, 1);
            dispatches += 1;
        }
        Ok(dispatches)
    }

    /// Records `kv_write` (`kv_write_rope` with a RoPE table) of `layer`
    /// for positions `pos..kv_len` of a checked step: one dispatch per chunk
    /// they fall in, whose number it returns.
    fn encode_write(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        layer: usize,
        pos: usize,
        kv_len: usize,
    ) -> usize {
        let (first_chunk, last_chunk) = (pos / KV_CHUNK, (kv_len - 1) / KV_CHUNK);
        pass.set_pipeline(&self.write);
        for c in first_chunk..=last_chunk {
            let from = first_token(c, pos);
            let to = ((c + 1) * KV_CHUNK).min(kv_len) - pos;
            pass.set_bind_group(0, &self.chunks[c].write[layer], &[]);
            pass.dispatch_workgroups((to - from) as u32, self.cfg.n_kv_heads as u32, 1);
        }
        last_chunk - first_chunk + 1
    }

    /// The most tokens a batch may have to take the decode path (split
    /// partials and `combine`, [`DECODE_TOKENS`] or `max_tokens`); larger
    /// batches take the prefill path.
    pub fn decode_tokens(&self) -> usize {
        self.cfg.decode_tokens()
    }

    /// `(pos, tokens, kv_len)` of a valid step.
    fn check_step(
        &self,
        layer: usize,
        step: &StepParams,
    ) -> Result<(usize, usize, usize), GpuError> {
        let (pos, tokens, kv_len) = (
            step.pos as usize,
            step.tokens as usize,
            step.kv_len as usize,
        );
        if layer >= self.cfg.n_layers {
            return Err(GpuError::shape(
                K,
                format!("layer {layer} of {}", self.cfg.n_layers),
            ));
        }
        if tokens == 0 || tokens > self.cfg.max_tokens {
            return Err(GpuError::shape(
                K,
                format!(
                    "{tokens} tokens, the batch holds 1..={}",
                    self.cfg.max_tokens
                ),
            ));
        }
        if kv_len != pos + tokens {
            return Err(GpuError::shape(
                K,
                format!("kv_len {kv_len} is not pos {pos} + tokens {tokens}"),
            ));
        }
        if kv_len > self.cfg.max_len {
            return Err(GpuError::ContextFull {
                len: kv_len,
                max: self.cfg.max_len,
            });
        }
        if kv_len > self.reserved() {
            return Err(GpuError::shape(
                K,
                format!(
                    "positions 0..{kv_len} need {} chunks, {} reserved: call reserve first",
                    kv_len.div_ceil(KV_CHUNK),
                    self.chunks.len()
                ),
            ));
        }
        if pos > self.len {
            return Err(GpuError::shape(
                K,
                format!(
                    "pos {pos} would leave a gap after the {} cached positions",
                    self.len
                ),
            ));
        }
        Ok((pos, tokens, kv_len))
    }

    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    pub fn format(&self) -> KvFormat {
        self.cfg.format
    }

    /// Positions held (written by every layer).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_len(&self) -> usize {
        self.cfg.max_len
    }

    /// Positions the allocated chunks hold (a multiple of 256, capped at
    /// `max_len`).
    pub fn reserved(&self) -> usize {
        (self.chunks.len() * KV_CHUNK).min(self.cfg.max_len)
    }

    /// Sets the length (after a submit wrote positions up to `len`):
    /// `ContextFull` past `max_len`, a shape error past the reserved chunks.
    pub fn set_len(&mut self, len: usize) -> Result<(), GpuError> {
        if len > self.cfg.max_len {
            return Err(GpuError::ContextFull {
                len,
                max: self.cfg.max_len,
            });
        }
        if len > self.reserved() {
            return Err(GpuError::shape(
                K,
                format!(
                    "length {len} is past the {} reserved positions",
                    self.reserved()
                ),
            ));
        }
        self.len = len;
        Ok(())
    }

    /// `set_len(len + n)`.
    pub fn advance(&mut self, n: usize) -> Result<(), GpuError> {
        self.set_len(self.len.saturating_add(n))
    }

    /// Keeps the first `n` positions (O(1); chunks stay allocated for reuse).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Cache bytes per position (all layers, K and V, with scales).
    pub fn bytes_per_token(&self) -> u64 {
        self.cfg.bytes_per_token()
    }

    /// Cache bytes one layer's attention reads over `kv_len` positions.
    pub fn bytes_read(&self, kv_len: usize) -> u64 {
        kv_len as u64 * self.cfg.bytes_per_token() / self.cfg.n_layers as u64
    }

    /// Bytes of the chunk buffers allocated so far (the scratch,
    /// [`AttentionConfig::scratch_bytes`], is apart).
    pub fn allocated_bytes(&self) -> u64 {
        self.chunks
            .iter()
            .flat_map(|c| &c.buffers)
            .map(|b| b.size())
            .sum()
    }

    /// Chunks allocated.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// The first batch token whose position reaches chunk `c` (the shader's
/// `first_token`).
fn first_token(c: usize, pos: usize) -> usize {
    (c * KV_CHUNK).max(pos) - pos
}

fn params_uniform(
    ctx: &GpuContext,
    cfg: &AttentionConfig,
    slice: &SliceLayout,
    layout: QkvLayout,
    chunk: usize,
) -> wgpu::Buffer {
    ctx.uniform(
        &format!("attention params chunk {chunk}"),
        &Params {
            n_heads: cfg.n_heads as u32,
            n_kv_heads: cfg.n_kv_heads as u32,
            head_dim: cfg.head_dim as u32,
            chunk: chunk as u32,
            quads: slice.quads,
            v_base: slice.v_base,
            ks_base: slice.ks_base,
            vs_base: slice.vs_base,
            scale: 1.0 / (cfg.head_dim as f32).sqrt(),
            stride: layout.stride as u32,
            q_off: layout.q as u32,
            k_off: layout.k as u32,
            v_off: layout.v as u32,
            max_splits: cfg.max_splits() as u32,
            _pad: [0; 2],
        },
    )
}

/// The bytes `n` f32 take, checked against `buffer` and the binding limit.
fn io_fits(ctx: &GpuContext, name: &str, buffer: &wgpu::Buffer, n: usize) -> Result<u64, GpuError> {
    let bytes = 4 * n as u64;
    if buffer.size() < bytes {
        return Err(GpuError::shape(
            K,
            format!(
                "{name} needs {n} f32 ({bytes} bytes), its buffer has {} bytes",
                buffer.size()
            ),
        ));
    }
    ctx.check_binding_size(&format!("attention {name}"), bytes)?;
    Ok(bytes)
}

fn whole(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn range(binding: u32, buffer: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: wgpu::BufferSize::new(size),
        }),
    }
}
