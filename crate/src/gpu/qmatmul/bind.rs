//! Bindings of a [`GpuMatrix`] to its input and output buffers, made once:
//! bind groups per part, dispatch sizes, pipelines; `encode` only records
//! dispatches (and returns how many).

use super::{GpuMatrix, QEntry, K};
use crate::gpu::keys::{KernelKey, MatvecShape};
use crate::gpu::step::{StepParams, StepUniform};
use crate::gpu::{GpuContext, GpuError};

/// Tiles of the `matmul` entry point (`TM`, `TN` in the shader).
pub const MATMUL_TILE_TOKENS: u32 = 64;
pub const MATMUL_TILE_ROWS: u32 = 64;
/// `embed`: threads per workgroup, each writing 4 values.
const EMBED_WG: u32 = 64;

/// Which kernel multiplies a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKernel {
    /// `matmul`: register-blocked 64 x 64 tiles.
    Tiled,
    /// `matvec` with several tokens per workgroup.
    Lanes(MatvecShape),
}

/// `y (+)= W x` for one vector, bound to its buffers: one dispatch per part.
#[derive(Debug)]
pub struct MatvecBinding {
    pipeline: wgpu::ComputePipeline,
    /// Per part: its bind group and `(x, z)` workgroups.
    groups: Vec<(wgpu::BindGroup, (u32, u32))>,
    /// A `Step` of one token (the kernel reads its token count there).
    _step: wgpu::Buffer,
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
            BatchKernel::Tiled => MATMUL_TILE_TOKENS,
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

/// A buffer binding of its first `bytes` bytes.
fn first(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes),
    })
}

/// The bindings of `matvec` (and `matmul`) that do not depend on the part.
struct Io<'a> {
    x: &'a wgpu::Buffer,
    x_bytes: u64,
    y: &'a wgpu::Buffer,
    y_bytes: u64,
    step: &'a wgpu::Buffer,
}

impl GpuMatrix {
    /// The pipeline key of `entry` for this matrix's format.
    pub fn kernel_key(&self, entry: QEntry, accumulate: bool, shape: MatvecShape) -> KernelKey {
        KernelKey::qmatmul(entry, self.format, accumulate, shape)
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

    /// `(x, y)` of `max_tokens` rows checked against the buffers.
    fn io_bytes(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: usize,
    ) -> Result<(u64, u64), GpuError> {
        let x_bytes = self.fits(
            ctx,
            "x",
            x,
            max_tokens.saturating_mul(self.cols),
            &format!("(tokens = {max_tokens}, cols = {})", self.cols),
        )?;
        let y_bytes = self.fits(
            ctx,
            "y",
            y,
            max_tokens.saturating_mul(self.rows),
            &format!("(tokens = {max_tokens}, rows = {})", self.rows),
        )?;
        if x == y {
            return Err(GpuError::shape(
                K,
                format!("{}: x and y are one buffer", self.name),
            ));
        }
        Ok((x_bytes, y_bytes))
    }

    /// Per part: `(x, z)` workgroups covering its rows in groups of `per`
    /// (a 2-D grid past the per-dimension limit).
    fn row_grids(&self, ctx: &GpuContext, per: u32) -> Result<Vec<(u32, u32)>, GpuError> {
        let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension.max(1));
        self.parts
            .iter()
            .map(|part| {
                let groups = part.rows.div_ceil(per as usize) as u64;
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
        shared: &[(u32, wgpu::BindingResource<'_>)],
    ) -> Result<Vec<wgpu::BindGroup>, GpuError> {
        let layout = pipeline.get_bind_group_layout(0);
        let quants_binding = match entry {
            QEntry::Matvec => 7,
            _ => 3,
        };
        let mut groups = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: part.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: quants_binding,
                    resource: part.quants.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: part.scales.as_entire_binding(),
                },
            ];
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

    /// The bind groups of `matvec` in `shape` over `io`: x as f32 (1) and as
    /// vec4 (8; its whole vec4s), y (2), the step (5).
    async fn bind_lanes(
        &self,
        ctx: &GpuContext,
        io: &Io<'_>,
        accumulate: bool,
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
        let x4_bytes = io.x_bytes / 16 * 16;
        if x4_bytes == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: x holds under one vec4", self.name),
            ));
        }
        let pipeline = ctx
            .pipeline(self.kernel_key(QEntry::Matvec, accumulate, shape))
            .await?;
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                QEntry::Matvec,
                &[
                    (1, first(io.x, io.x_bytes)),
                    (2, first(io.y, io.y_bytes)),
                    (5, io.step.as_entire_binding()),
                    (8, first(io.x, x4_bytes)),
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
        let (x_bytes, y_bytes) = self.io_bytes(ctx, x, y, 1)?;
        let shape = ctx.matvec_shape();
        let step = ctx.uniform("matvec step", &StepParams::batch(0, 1, 0));
        let io = Io {
            x,
            x_bytes,
            y,
            y_bytes,
            step: &step,
        };
        let (pipeline, groups) = self.bind_lanes(ctx, &io, accumulate, shape).await?;
        let grids = self.row_grids(ctx, shape.rows)?;
        Ok(MatvecBinding {
            pipeline,
            groups: groups.into_iter().zip(grids).collect(),
            _step: step,
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
        let kernel = match ctx.preset().batch() {
            Some(shape) => BatchKernel::Lanes(shape),
            None => BatchKernel::Tiled,
        };
        self.bind_matmul_with(ctx, step, x, y, max_tokens, accumulate, kernel)
            .await
    }

    /// [`GpuMatrix::bind_matmul`] with the kernel chosen by the caller
    /// (tests run every kernel on every adapter).
    #[allow(clippy::too_many_arguments)]
    pub async fn bind_matmul_with(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: usize,
        accumulate: bool,
        kernel: BatchKernel,
    ) -> Result<MatmulBinding, GpuError> {
        if max_tokens == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: max_tokens is 0", self.name),
            ));
        }
        let (x_bytes, y_bytes) = self.io_bytes(ctx, x, y, max_tokens)?;
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let per_tile = match kernel {
            BatchKernel::Tiled => MATMUL_TILE_TOKENS,
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
        let io = Io {
            x,
            x_bytes,
            y,
            y_bytes,
            step: step.buffer(),
        };
        let (pipeline, groups, grids) = match kernel {
            BatchKernel::Lanes(shape) => {
                let (pipeline, groups) = self.bind_lanes(ctx, &io, accumulate, shape).await?;
                (pipeline, groups, self.row_grids(ctx, shape.rows)?)
            }
            BatchKernel::Tiled => {
                let key = self.kernel_key(QEntry::Matmul, accumulate, ctx.matvec_shape());
                let pipeline = ctx.pipeline(key).await?;
                let groups = self
                    .bind_parts(
                        ctx,
                        &pipeline,
                        QEntry::Matmul,
                        &[
                            (1, first(x, x_bytes)),
                            (2, first(y, y_bytes)),
                            (5, step.buffer().as_entire_binding()),
                        ],
                    )
                    .await?;
                (pipeline, groups, self.row_grids(ctx, MATMUL_TILE_ROWS)?)
            }
        };
        Ok(MatmulBinding {
            name: self.name.clone(),
            kernel,
            pipeline,
            max_tokens,
            groups: groups.into_iter().zip(grids).collect(),
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
        let key = self.kernel_key(QEntry::Embed, false, ctx.matvec_shape());
        let pipeline = ctx.pipeline(key).await?;
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                QEntry::Embed,
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
        })
    }
}
