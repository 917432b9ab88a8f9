//! Attention from host slices (tests and tools): q, k, v uploaded, one
//! layer's `encode` run in a pass of its own, `out` read back. The decoder
//! records [`KvAttention::encode`] in its own pass instead.

use super::{KvAttention, K};
use crate::gpu::step::StepParams;
use crate::gpu::{GpuContext, GpuError};

impl KvAttention {
    /// Uploads q, k, v (`(tokens, heads, head_dim)` f32 each) to the io
    /// buffers, writes the `Step` uniform for a batch at `pos`, runs
    /// [`KvAttention::encode`] for `layer`, submits and reads `out`
    /// (`(tokens, n_heads * head_dim)`) back. Does not change `len`: call
    /// [`KvAttention::advance`] once every layer has been written. Tests and
    /// tools; the decoder records `encode` in its own pass.
    pub async fn attention_host_async(
        &self,
        ctx: &GpuContext,
        layer: usize,
        pos: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        let c = &self.cfg;
        let q_row = c.n_heads * c.head_dim;
        let kv_row = c.n_kv_heads * c.head_dim;
        let tokens = k.len() / kv_row;
        if tokens == 0
            || k.len() != tokens * kv_row
            || v.len() != k.len()
            || q.len() != tokens * q_row
        {
            return Err(GpuError::shape(
                K,
                format!(
                    "q {} k {} v {} values are not (tokens, {}, {hd}), (tokens, {}, {hd}) x 2",
                    q.len(),
                    k.len(),
                    v.len(),
                    c.n_heads,
                    c.n_kv_heads,
                    hd = c.head_dim
                ),
            ));
        }
        let step = StepParams::batch(pos, tokens, 0);
        self.check_step(layer, &step)?;
        // Each token's q, k, v into its row of the qkv buffer.
        let l = self.layout;
        let mut rows = vec![0f32; tokens * l.stride];
        for t in 0..tokens {
            let row = &mut rows[t * l.stride..(t + 1) * l.stride];
            row[l.q..l.q + q_row].copy_from_slice(&q[t * q_row..(t + 1) * q_row]);
            row[l.k..l.k + kv_row].copy_from_slice(&k[t * kv_row..(t + 1) * kv_row]);
            row[l.v..l.v + kv_row].copy_from_slice(&v[t * kv_row..(t + 1) * kv_row]);
        }
        self.run_pass(ctx, &rows, &step, "attention", |pass| {
            self.encode(pass, layer, &step).map(|_| ())
        })
        .await?;
        ctx.read_back_f32(&self.out, tokens * q_row).await
    }

    /// Blocking [`KvAttention::attention_host_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn attention_host(
        &self,
        ctx: &GpuContext,
        layer: usize,
        pos: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.attention_host_async(ctx, layer, pos, q, k, v))
    }

    /// Uploads `rows` (`(tokens, layout.stride)` f32: each token's row of
    /// the qkv buffer, q, k and v where the layout says), writes the `Step`
    /// uniform for a batch at `pos`, records only `kv_write` of `layer`
    /// (`kv_write_rope` where the attention has a RoPE table: q and k
    /// rotated in place), submits and reads the rows back. Tests of RoPE;
    /// does not change `len`.
    pub async fn kv_write_host_async(
        &self,
        ctx: &GpuContext,
        layer: usize,
        pos: usize,
        rows: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        let stride = self.layout.stride;
        let tokens = rows.len() / stride;
        if tokens == 0 || rows.len() != tokens * stride {
            return Err(GpuError::shape(
                K,
                format!("{} values are not rows of {stride}", rows.len()),
            ));
        }
        let step = StepParams::batch(pos, tokens, 0);
        let (pos, _, kv_len) = self.check_step(layer, &step)?;
        self.run_pass(ctx, rows, &step, "kv_write", |pass| {
            self.encode_write(pass, layer, pos, kv_len);
            Ok(())
        })
        .await?;
        ctx.read_back_f32(&self.qkv, rows.len()).await
    }

    /// Writes `rows` to the qkv buffer and `step` to the step uniform,
    /// records `record` in a compute pass of its own and submits it.
    async fn run_pass(
        &self,
        ctx: &GpuContext,
        rows: &[f32],
        step: &StepParams,
        label: &str,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let queue = ctx.queue();
        queue.write_buffer(&self.qkv, 0, bytemuck::cast_slice(rows));
        queue.write_buffer(&self.step, 0, bytemuck::bytes_of(step));
        let mut encoder = ctx.encoder(label);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            record(&mut pass)?;
        }
        ctx.submit(encoder).await?;
        Ok(())
    }
}
