//! Bindings of a [`GpuMatrix`] to its input and output buffers, made once:
//! bind groups per part, dispatch sizes, pipelines; `encode` only records
//! dispatches (and returns how many).

use super::{GpuMatrix, Params, QEntry, K};
use crate::gpu::keys::{Epilogue, KernelKey, MatvecShape};
use crate::gpu::step::{StepParams, StepUniform};
use crate::gpu::{GpuContext, GpuError};

use crate::gpu::keys::EMBED_WG;
pub use crate::gpu::keys::{MATMUL_TILE_ROWS, MATMUL_TILE_TOKENS};

/// Which kernel multiplies a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKernel {
    /// `matmul`: register-blocked 64 x 64 tiles, in workgroup memory as
    /// f32, or (`f16`, [`QEntry::MatmulF16`]) as f16.
    Tiled { f16: bool },
    /// `matvec` with several tokens per workgroup.
    Lanes(MatvecShape),
}

/// Where a product `Y (tokens, rows) = s(t) X Wᵀ` goes: row `r` of token
/// `t` to `y[t * stride + offset + r]` (the `rows / 2` SwiGLU values of
/// [`Epilogue::SwiGlu`] likewise), stored, added or paired per `epilogue`.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    pub y: &'a wgpu::Buffer,
    /// Elements between tokens' rows (the matrix's output rows when dense).
    pub stride: usize,
    /// Element of row 0 within a token's row.
    pub offset: usize,
    pub epilogue: Epilogue,
}

impl<'a> Output<'a> {
    /// Dense `(tokens, rows)` at the start of `y`.
    pub fn dense(y: &'a wgpu::Buffer, m: &GpuMatrix, epilogue: Epilogue) -> Output<'a> {
        let rows = match epilogue {
            Epilogue::SwiGlu => m.rows / 2,
            _ => m.rows,
        };
        Output {
            y,
            stride: rows,
            offset: 0,
            epilogue,
        }
    }
}

/// RMSNorm finished by the product: `X` holds `x * w` and `ss` the
/// `(tokens, groups)` partial sums of `x²` (`gpu::kernels::NormPartials`);
/// the product is scaled by `1 / sqrt(sum / cols + eps)` per token.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    pub ss: &'a wgpu::Buffer,
    pub groups: usize,
    pub eps: f32,
}

/// `y (+)= W x` for one vector, bound to its buffers: one dispatch per part.
#[derive(Debug)]
pub struct MatvecBinding {
    pipeline: wgpu::ComputePipeline,
    /// Per part: its bind group and `(x, z)` workgroups.
    groups: Vec<(wgpu::BindGroup, (u32, u32))>,
    /// A `Step` of one token (the kernel reads its token count there), and
    /// the parts' params.
    _uniforms: Vec<wgpu::Buffer>,
}

/// `Y (+)= X Wᵀ` for up to `max_tokens` tokens, bound to its buffers.
#[derive(Debug)]
pub struct MatmulBinding {
    name: String,
    kernel: BatchKernel,
    pipeline: wgpu::ComputePipeline,
    max_tokens: usize,
    /// Per part: its bind group and `(x, z)` workgroups (x: row tiles).
    groups: Vec<(wgpu::BindGroup, (u32, u32))>,
    _params: Vec<wgpu::Buffer>,
}

/// `out[t] = W[ids[t]]` bound to its buffers for up to `max_tokens` tokens.
#[derive(Debug)]
pub struct EmbedBinding {
    name: String,
    pipeline: wgpu::ComputePipeline,
    max_tokens: usize,
    /// Workgroups along the embedding dimension.
    gx: u32,
    groups: Vec<wgpu::BindGroup>,
    _params: Vec<wgpu::Buffer>,
}

impl MatvecBinding {
    /// Records `y (+)= W x`: one dispatch per part; returns how many.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> usize {
        pass.set_pipeline(&self.pipeline);
        for (group, (gx, gz)) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*gx, 1, *gz);
        }
        self.groups.len()
    }
}

impl MatmulBinding {
    /// Records `Y (+)= X Wᵀ` for the first `tokens` rows of `X` and `Y`;
    /// `tokens` must be the value the `Step` uniform will hold at the submit
    /// (the dispatch is sized from it, the shader bounds-checks with it).
    /// Returns the number of dispatches.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        tokens: usize,
    ) -> Result<usize, GpuError> {
        check_tokens(&self.name, tokens, self.max_tokens)?;
        let per = match self.kernel {
            BatchKernel::Tiled { .. } => MATMUL_TILE_TOKENS,
            BatchKernel::Lanes(shape) => shape.tokens,
        };
        let gy = tokens.div_ceil(per as usize) as u32;
        pass.set_pipeline(&self.pipeline);
        for (group, (gx, gz)) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*gx, gy, *gz);
        }
        Ok(self.groups.len())
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn kernel(&self) -> BatchKernel {
        self.kernel
    }
}

impl EmbedBinding {
    /// Records the lookup of the first `tokens` ids (`tokens` as the `Step`
    /// uniform will hold at the submit); returns the number of dispatches.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        tokens: usize,
    ) -> Result<usize, GpuError> {
        check_tokens(&self.name, tokens, self.max_tokens)?;
        pass.set_pipeline(&self.pipeline);
        for group in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(self.gx, tokens as u32, 1);
        }
        Ok(self.groups.len())
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

fn check_tokens(name: &str, tokens: usize, max_tokens: usize) -> Result<(), GpuError> {
    if tokens == 0 || tokens > max_tokens {
        return Err(GpuError::shape(
            K,
            format!("{name}: {tokens} tokens, the binding takes 1..={max_tokens}"),
        ));
    }
    Ok(())
}

/// Binding 9: the norm's sums, or x (unread when `norm_groups` is 0).
fn norm_binding<'a>(io: &Io<'a>) -> (u32, wgpu::BindingResource<'a>) {
    match io.norm {
        Some(n) => (9, first(n.ss, io.ss_bytes)),
        None => (9, first(io.x, io.x_bytes)),
    }
}

/// A buffer binding of its first `bytes` bytes.
fn first(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes),
    })
}

/// The buffers of a product, checked: `x` and its bytes, the output, the
/// norm, the step.
struct Io<'a> {
    x: &'a wgpu::Buffer,
    x_bytes: u64,
    out: Output<'a>,
    y_bytes: u64,
    norm: Option<Norm<'a>>,
    ss_bytes: u64,
    step: &'a wgpu::Buffer,
}

impl GpuMatrix {
    /// The pipeline key of `entry` for this matrix's format.
    pub fn kernel_key(&self, entry: QEntry, epilogue: Epilogue, shape: MatvecShape) -> KernelKey {
        KernelKey::qmatmul(entry, self.format, epilogue, shape)
    }

    /// `Err(Shape)` unless `buffer` holds `n` f32/u32 values and they fit one
    /// storage binding; returns their bytes.
    fn fits(
        &self,
        ctx: &GpuContext,
        what: &str,
        buffer: &wgpu::Buffer,
        n: usize,
        shape: &str,
    ) -> Result<u64, GpuError> {
        let bytes = (n as u64)
            .checked_mul(4)
            .filter(|&b| b <= u64::from(u32::MAX) * 4);
        let bytes = bytes.ok_or_else(|| {
            GpuError::shape(
                K,
                format!("{}: {what} {shape} exceeds u32 indexing", self.name),
            )
        })?;
        if buffer.size() < bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: {what} holds {} bytes, {shape} f32 needs {bytes}",
                    self.name,
                    buffer.size()
                ),
            ));
        }
        ctx.check_binding_size(&format!("{K} {what}"), bytes)?;
        Ok(bytes)
    }

    /// Checks the buffers of a product of up to `max_tokens` tokens.
    fn io<'a>(
        &self,
        ctx: &GpuContext,
        x: &'a wgpu::Buffer,
        out: Output<'a>,
        norm: Option<Norm<'a>>,
        step: &'a wgpu::Buffer,
        max_tokens: usize,
    ) -> Result<Io<'a>, GpuError> {
        let x_bytes = self.fits(
            ctx,
            "x",
            x,
            max_tokens.saturating_mul(self.cols),
            &format!("(tokens = {max_tokens}, cols = {})", self.cols),
        )?;
        let out_rows = match out.epilogue {
            Epilogue::SwiGlu => {
                if !self.rows.is_multiple_of(2) || self.parts.len() != 1 {
                    return Err(GpuError::shape(
                        K,
                        format!(
                            "{}: SwiGLU needs an even number of rows in one part ({} rows, {} parts)",
                            self.name,
                            self.rows,
                            self.parts.len()
                        ),
                    ));
                }
                self.rows / 2
            }
            _ => self.rows,
        };
        if out.stride < out.offset.saturating_add(out_rows) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: output rows {}..{} do not fit a token row of {}",
                    self.name,
                    out.offset,
                    out.offset + out_rows,
                    out.stride
                ),
            ));
        }
        let y_n = (max_tokens - 1)
            .saturating_mul(out.stride)
            .saturating_add(out.offset + out_rows);
        let y_bytes = self.fits(
            ctx,
            "y",
            out.y,
            y_n,
            &format!(
                "(tokens = {max_tokens}, stride = {}, offset = {}, rows = {out_rows})",
                out.stride, out.offset
            ),
        )?;
        if x == out.y {
            return Err(GpuError::shape(
                K,
                format!("{}: x and y are one buffer", self.name),
            ));
        }
        let ss_bytes = match norm {
            Some(n) => {
                if n.groups == 0 || n.ss == out.y {
                    return Err(GpuError::shape(
                        K,
                        format!("{}: a norm of {} groups in y", self.name, n.groups),
                    ));
                }
                self.fits(
                    ctx,
                    "ss",
                    n.ss,
                    max_tokens.saturating_mul(n.groups),
                    &format!("(tokens = {max_tokens}, groups = {})", n.groups),
                )?
            }
            None => 0,
        };
        Ok(Io {
            x,
            x_bytes,
            out,
            y_bytes,
            norm,
            ss_bytes,
            step,
        })
    }

    /// The params of each part for `io`.
    fn part_params(&self, ctx: &GpuContext, io: &Io<'_>) -> Vec<wgpu::Buffer> {
        self.parts
            .iter()
            .map(|part| {
                ctx.uniform(
                    &format!("{} rows {}.. params", self.name, part.row_base),
                    &Params {
                        rows: part.rows as u32,
                        cols: self.cols as u32,
                        row_base: part.row_base as u32,
                        total_rows: self.rows as u32,
                        y_stride: io.out.stride as u32,
                        y_offset: io.out.offset as u32,
                        norm_groups: io.norm.map_or(0, |n| n.groups as u32),
                        eps: io.norm.map_or(0.0, |n| n.eps),
                    },
                )
            })
            .collect()
    }

    /// Per part: `(x, z)` workgroups covering its rows in groups of `per`
    /// (SwiGLU: its pairs in groups of `per / 2`), a 2-D grid past the
    /// per-dimension limit.
    fn row_grids(
        &self,
        ctx: &GpuContext,
        per: u32,
        epilogue: Epilogue,
    ) -> Result<Vec<(u32, u32)>, GpuError> {
        let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension.max(1));
        self.parts
            .iter()
            .map(|part| {
                let groups = match epilogue {
                    Epilogue::SwiGlu => (part.rows / 2).div_ceil(per as usize / 2),
                    _ => part.rows.div_ceil(per as usize),
                } as u64;
                let gx = groups.min(max_dim);
                let gz = groups.div_ceil(gx);
                if gz > max_dim {
                    return Err(GpuError::shape(
                        K,
                        format!("{}: {groups} workgroups exceed {max_dim}²", self.name),
                    ));
                }
                Ok((gx as u32, gz as u32))
            })
            .collect()
    }

    /// Bind groups for every part: params (0), the part's weight streams
    /// (quants at 3, or as vec4s at 7 for matvec; scales at 4) and `shared`
    /// (the same for every part).
    async fn bind_parts(
        &self,
        ctx: &GpuContext,
        pipeline: &wgpu::ComputePipeline,
        entry: QEntry,
        params: &[wgpu::Buffer],
        shared: &[(u32, wgpu::BindingResource<'_>)],
    ) -> Result<Vec<wgpu::BindGroup>, GpuError> {
        let layout = pipeline.get_bind_group_layout(0);
        // matvec reads the quants as vec4<u32> (7) and u32 (3).
        let vec4_view = matches!(entry, QEntry::Matvec);
        let mut groups = Vec::with_capacity(self.parts.len());
        for (part, params) in self.parts.iter().zip(params) {
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: part.quants.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: part.scales.as_entire_binding(),
                },
            ];
            if vec4_view {
                entries.push(wgpu::BindGroupEntry {
                    binding: 7,
                    resource: part.quants.as_entire_binding(),
                });
            }
            entries.extend(
                shared
                    .iter()
                    .map(|(binding, resource)| wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: resource.clone(),
                    }),
            );
            let group = ctx
                .scoped(|| {
                    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(entry.name()),
                        layout: &layout,
                        entries: &entries,
                    })
                })
                .await?;
            groups.push(group);
        }
        Ok(groups)
    }

    /// The pipeline and bind groups of `matvec` in `shape` over `io`: x as
    /// f32 (1) and as vec4 (8; its whole vec4s), y (2), the step (5), the
    /// norm's sums (9; x itself without a norm, unread).
    async fn bind_lanes(
        &self,
        ctx: &GpuContext,
        io: &Io<'_>,
        params: &[wgpu::Buffer],
        shape: MatvecShape,
    ) -> Result<(wgpu::ComputePipeline, Vec<wgpu::BindGroup>), GpuError> {
        if !shape.fits(ctx.limits()) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: matvec shape {shape:?} does not fit the device",
                    self.name
                ),
            ));
        }
        if shape.subgroup && ctx.subgroup_lanes() != Some(shape.lanes) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: matvec shape {shape:?} reduces with subgroups, which needs {} lanes \
                     to be one subgroup (the device's fixed subgroup size: {:?})",
                    self.name,
                    shape.lanes,
                    ctx.subgroup_lanes()
                ),
            ));
        }
        let x4_bytes = io.x_bytes / 16 * 16;
        if x4_bytes == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: x holds under one vec4", self.name),
            ));
        }
        let pipeline = ctx
            .pipeline(self.kernel_key(QEntry::Matvec, io.out.epilogue, shape))
            .await?;
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                QEntry::Matvec,
                params,
                &[
                    (1, first(io.x, io.x_bytes)),
                    (2, first(io.out.y, io.y_bytes)),
                    (5, io.step.as_entire_binding()),
                    (8, first(io.x, x4_bytes)),
                    norm_binding(io),
                ],
            )
            .await?;
        Ok((pipeline, groups))
    }

    /// Binds `y (+)= W x` for one vector (`+=` with `accumulate`), once, in
    /// the device's decode shape.
    ///
    /// - `x`: `(cols)` f32, at offset 0 of a buffer that may be larger (at
    ///   least 16 bytes)
    /// - `y`: `(rows)` f32, at offset 0 of a buffer that may be larger, not `x`
    pub async fn bind_matvec(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        accumulate: bool,
    ) -> Result<MatvecBinding, GpuError> {
        let epilogue = match accumulate {
            true => Epilogue::Accumulate,
            false => Epilogue::Store,
        };
        self.bind_matvec_to(ctx, x, Output::dense(y, self, epilogue), None)
            .await
    }

    /// Binds `out (+)= s W x` for one vector, once, in the device's decode
    /// shape: `x` `(cols)` f32 at offset 0 of a buffer that may be larger
    /// (at least 16 bytes), `out` and `norm` as their types say.
    pub async fn bind_matvec_to(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        out: Output<'_>,
        norm: Option<Norm<'_>>,
    ) -> Result<MatvecBinding, GpuError> {
        let shape = ctx.matvec_shape();
        let step = ctx.uniform("matvec step", &StepParams::batch(0, 1, 0));
        let io = self.io(ctx, x, out, norm, &step, 1)?;
        let params = self.part_params(ctx, &io);
        let (pipeline, groups) = self.bind_lanes(ctx, &io, &params, shape).await?;
        let grids = self.row_grids(ctx, shape.rows, out.epilogue)?;
        let mut uniforms = params;
        uniforms.push(step);
        Ok(MatvecBinding {
            pipeline,
            groups: groups.into_iter().zip(grids).collect(),
            _uniforms: uniforms,
        })
    }

    /// Binds `Y (+)= X Wᵀ` (`+=` with `accumulate`) for up to `max_tokens`
    /// tokens, once, with the device preset's batch kernel; the token count
    /// of each submit is `step`'s.
    ///
    /// - `x`: `(max_tokens, cols)` f32, at offset 0 of a buffer that may be larger
    /// - `y`: `(max_tokens, rows)` f32, at offset 0 of a buffer that may be larger, not `x`
    pub async fn bind_matmul(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: usize,
        accumulate: bool,
    ) -> Result<MatmulBinding, GpuError> {
        let epilogue = match accumulate {
            true => Epilogue::Accumulate,
            false => Epilogue::Store,
        };
        let out = Output::dense(y, self, epilogue);
        self.bind_matmul_to(ctx, step, x, out, None, max_tokens, ctx.batch_kernel())
            .await
    }

    /// Binds `OUT (+)= s X Wᵀ` for up to `max_tokens` tokens, once, with the
    /// given kernel (tests run every kernel on every adapter); the token
    /// count of each submit is `step`'s. `x`: `(max_tokens, cols)` f32 at
    /// offset 0 of a buffer that may be larger; `out` and `norm` as their
    /// types say.
    #[allow(clippy::too_many_arguments)]
    pub async fn bind_matmul_to(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        out: Output<'_>,
        norm: Option<Norm<'_>>,
        max_tokens: usize,
        kernel: BatchKernel,
    ) -> Result<MatmulBinding, GpuError> {
        if max_tokens == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: max_tokens is 0", self.name),
            ));
        }
        let io = self.io(ctx, x, out, norm, step.buffer(), max_tokens)?;
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let per_tile = match kernel {
            BatchKernel::Tiled { .. } => MATMUL_TILE_TOKENS,
            BatchKernel::Lanes(shape) => shape.tokens,
        };
        let token_tiles = max_tokens.div_ceil(per_tile as usize);
        if token_tiles > max_dim {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: {token_tiles} token tiles exceed {max_dim} workgroups",
                    self.name
                ),
            ));
        }
        let params = self.part_params(ctx, &io);
        let (pipeline, groups, grids) = match kernel {
            BatchKernel::Lanes(shape) => {
                let (pipeline, groups) = self.bind_lanes(ctx, &io, &params, shape).await?;
                (
                    pipeline,
                    groups,
                    self.row_grids(ctx, shape.rows, out.epilogue)?,
                )
            }
            BatchKernel::Tiled { f16 } => {
                if f16 && !ctx.features().f16 {
                    return Err(GpuError::shape(
                        K,
                        format!("{}: f16 tiles need the device's shader-f16", self.name),
                    ));
                }
                let entry = if f16 {
                    QEntry::MatmulF16
                } else {
                    QEntry::Matmul
                };
                let key = self.kernel_key(entry, out.epilogue, ctx.matvec_shape());
                let pipeline = ctx.pipeline(key).await?;
                let groups = self
                    .bind_parts(
                        ctx,
                        &pipeline,
                        QEntry::Matmul,
                        &params,
                        &[
                            (1, first(io.x, io.x_bytes)),
                            (2, first(io.out.y, io.y_bytes)),
                            (5, step.buffer().as_entire_binding()),
                            norm_binding(&io),
                        ],
                    )
                    .await?;
                let grids = self.row_grids(ctx, MATMUL_TILE_ROWS, out.epilogue)?;
                (pipeline, groups, grids)
            }
        };
        Ok(MatmulBinding {
            name: self.name.clone(),
            kernel,
            pipeline,
            max_tokens,
            groups: groups.into_iter().zip(grids).collect(),
            _params: params,
        })
    }

    /// Binds the embedding lookup `out[t, :] = W[ids[t], :]` for up to
    /// `max_tokens` tokens, once (`W` is the `(vocab = rows, dim = cols)`
    /// table); the token count of each submit is `step`'s. An id `>= rows`
    /// gives a row of zeros (it never reads out of bounds).
    ///
    /// - `ids`: `(max_tokens)` u32, at offset 0 of a buffer that may be larger
    /// - `out`: `(max_tokens, cols)` f32, at offset 0 of a buffer that may be larger
    pub async fn bind_embed(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        ids: &wgpu::Buffer,
        out: &wgpu::Buffer,
        max_tokens: usize,
    ) -> Result<EmbedBinding, GpuError> {
        if max_tokens == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: max_tokens is 0", self.name),
            ));
        }
        let ids_bytes = self.fits(
            ctx,
            "ids",
            ids,
            max_tokens,
            &format!("(max_tokens = {max_tokens})"),
        )?;
        let out_n = max_tokens.saturating_mul(self.cols);
        let out_bytes = self.fits(
            ctx,
            "out",
            out,
            out_n,
            &format!("(max_tokens = {max_tokens}, cols = {})", self.cols),
        )?;
        if ids == out {
            return Err(GpuError::shape(
                K,
                format!("{}: ids and out are one buffer", self.name),
            ));
        }
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let gx = self.cols.div_ceil(4 * EMBED_WG as usize);
        if gx > max_dim || max_tokens > max_dim {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: ({gx}, {max_tokens}) workgroups exceed {max_dim} per dimension",
                    self.name
                ),
            ));
        }
        let key = self.kernel_key(QEntry::Embed, Epilogue::Store, ctx.matvec_shape());
        let pipeline = ctx.pipeline(key).await?;
        let params: Vec<wgpu::Buffer> = self
            .parts
            .iter()
            .map(|part| {
                ctx.uniform(
                    &format!("{} rows {}.. params", self.name, part.row_base),
                    &Params {
                        rows: part.rows as u32,
                        cols: self.cols as u32,
                        row_base: part.row_base as u32,
                        total_rows: self.rows as u32,
                        y_stride: self.cols as u32,
                        y_offset: 0,
                        norm_groups: 0,
                        eps: 0.0,
                    },
                )
            })
            .collect();
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                QEntry::Embed,
                &params,
                &[
                    (2, first(out, out_bytes)),
                    (5, step.buffer().as_entire_binding()),
                    (6, first(ids, ids_bytes)),
                ],
            )
            .await?;
        Ok(EmbedBinding {
            name: self.name.clone(),
            pipeline,
            max_tokens,
            gx: gx as u32,
            groups,
            _params: params,
        })
    }
}
