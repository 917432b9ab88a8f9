//! Sampling several rows of logits in one dispatch (speculative
//! verification).
//!
//! Verifying a draft feeds `tokens[0..n]` as one batch and needs the token
//! that follows each prefix `tokens[..=i]`: row `i` of a `(rows, vocab)`
//! logits buffer, drawn with index `step + i`, its repetition window seeing
//! the recent tokens followed by `drafted[..i]` — exactly what `n` single
//! decode steps would have drawn from the same logits. Each row gets its own
//! workgroup, scratch, `RowStep` (step, number and place of its recent ids)
//! and `token[row]`, so the rows are independent and the `n` ids come back
//! in one read-back of `4 n` bytes.

use super::{GpuSampler, RowStep, StepData};
use crate::gpu::{GpuContext, GpuError};

impl GpuSampler {
    /// Rows the buffers hold.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the settings of rows `0..=drafted.len()`, effective at the next
    /// submit: row `i` draws with index `step + i` and penalises the distinct
    /// ids among the last `repetition_window` of `recent` followed by
    /// `drafted[..i]`. Row 0 alone is [`GpuSampler::prepare`].
    pub fn prepare_rows(
        &self,
        ctx: &GpuContext,
        step: u32,
        recent: &[u32],
        drafted: &[u32],
    ) -> Result<(), GpuError> {
        let n = drafted.len() + 1;
        if n > self.rows {
            return Err(GpuError::shape(
                super::K,
                format!("{n} rows to sample, {} bound", self.rows),
            ));
        }
        let mut data = StepData::default();
        // The window of the longest row: the tail of `recent`, then the draft.
        let window = self.config.repetition_window;
        let tail = &recent[recent.len().saturating_sub(window)..];
        let seen = [tail, drafted].concat();
        let base = tail.len();
        let mut ids = Vec::new();
        for (i, row) in data.iter_mut().take(n).enumerate() {
            let row_ids = self.penalized(&seen[..base + i])?;
            let at = i * self.recent_capacity;
            *row = RowStep {
                step: step.wrapping_add(i as u32),
                n_recent: row_ids.len() as u32,
                recent_at: at as u32,
                _pad: 0,
            };
            if !row_ids.is_empty() {
                ids.resize(at, 0);
                ids.extend_from_slice(&row_ids);
            }
        }
        if !ids.is_empty() {
            ctx.queue()
                .write_buffer(&self.recent, 0, bytemuck::cast_slice(&ids));
        }
        let bytes = bytemuck::cast_slice(&data[..n]);
        ctx.queue().write_buffer(&self.step, 0, bytes);
        Ok(())
    }

    /// Records the dispatch of rows `0..n` (one workgroup each) into `pass`.
    pub fn encode_rows(&self, pass: &mut wgpu::ComputePass<'_>, n: usize) -> usize {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(n as u32, 1, 1);
        1
    }

    /// Reads back the ids of rows `0..n` (`4 n` bytes), raw: [`NO_TOKEN`](super::NO_TOKEN)
    /// where a row had no usable logits ([`token_result`](super::token_result) turns it into
    /// the typed error; a caller that stops at a rejected row checks only
    /// the rows it uses).
    pub async fn read_tokens(&self, ctx: &GpuContext, n: usize) -> Result<Vec<u32>, GpuError> {
        ctx.read_back_u32(&self.token, n.min(self.rows)).await
    }
}
