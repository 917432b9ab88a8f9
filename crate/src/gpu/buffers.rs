//! Buffer helpers: storage buffers from slices, uniforms, and reading buffers
//! back through a mapped staging buffer.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::error::GpuError;

/// Usage of the storage buffers these helpers create: bindable, and a copy
/// source and destination (uploads, read-back).
pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// `Err(BufferTooLarge)` when `size` bytes exceed the device's largest
    /// buffer.
    pub fn check_buffer_size(&self, what: &str, size: u64) -> Result<(), GpuError> {
        let limit = self.limits().max_buffer_size;
        if size > limit {
            return Err(GpuError::BufferTooLarge {
                what: what.to_string(),
                size,
                limit_name: "max_buffer_size",
                limit,
            });
        }
        Ok(())
    }

    /// `Err(BufferTooLarge)` when `size` bytes exceed what one storage binding
    /// may cover.
    pub fn check_binding_size(&self, what: &str, size: u64) -> Result<(), GpuError> {
        let limit = self.limits().max_storage_buffer_binding_size;
        if size > limit {
            return Err(GpuError::BufferTooLarge {
                what: what.to_string(),
                size,
                limit_name: "max_storage_buffer_binding_size",
                limit,
            });
        }
        Ok(())
    }

    /// A storage buffer holding `bytes` (padded to a multiple of 4 bytes;
    /// never empty, so it can always be bound).
    pub async fn storage_from_bytes(
        &self,
        label: &str,
        bytes: &[u8],
    ) -> Result<wgpu::Buffer, GpuError> {
        let padded = bytes.len().div_ceil(4).max(1) * 4;
        self.check_buffer_size(label, padded as u64)?;
        self.scoped(|| {
            if padded == bytes.len() {
                self.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: bytes,
                        usage: STORAGE_USAGE,
                    })
            } else {
                let mut data = bytes.to_vec();
                data.resize(padded, 0);
                self.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: &data,
                        usage: STORAGE_USAGE,
                    })
            }
        })
        .await
        .inspect(|b| self.record_buffer(b))
    }

    /// A storage buffer holding `data` as f32.
    pub async fn storage_f32(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        self.storage_from_bytes(label, bytemuck::cast_slice(data))
            .await
    }

    /// A storage buffer holding `data` as u32.
    pub async fn storage_u32(&self, label: &str, data: &[u32]) -> Result<wgpu::Buffer, GpuError> {
        self.storage_from_bytes(label, bytemuck::cast_slice(data))
            .await
    }

    /// A zero-filled storage buffer of `size` bytes (rounded up to 4, at
    /// least 4).
    pub async fn storage_zeroed(&self, label: &str, size: u64) -> Result<wgpu::Buffer, GpuError> {
        let size = size.div_ceil(4).max(1) * 4;
        self.check_buffer_size(label, size)?;
        self.scoped(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: STORAGE_USAGE,
                mapped_at_creation: false,
            })
        })
        .await
        .inspect(|b| self.record_buffer(b))
    }

    /// A uniform buffer holding `value` (a `#[repr(C)]` struct laid out as its
    /// WGSL counterpart, size a multiple of 16 bytes).
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        self.record_buffer(&buffer);
        buffer
    }

    /// Copies `len` bytes of `buffer` from `offset` into a staging buffer and
    /// returns them.
    pub async fn read_back_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, GpuError> {
        if !offset.is_multiple_of(4) || !len.is_multiple_of(4) || offset + len > buffer.size() {
            return Err(GpuError::shape(
                "read_back",
                format!(
                    "range {offset}..{} of a {}-byte buffer (offset and length must be multiples of 4)",
                    offset + len,
                    buffer.size()
                ),
            ));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let staging = self
            .scoped(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back staging"),
                    size: len,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .await?;
        let mut encoder = self.encoder("read-back");
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, len);
        let submission = self.submit(encoder).await?;
        let bytes = self.map_read(&staging, submission).await;
        // Freed now (in the browser dropping the handle frees nothing).
        staging.destroy();
        bytes
    }

    /// Submits `encoder` without error scopes (the per-token path): errors
    /// still surface typed, from the device's loss and uncaptured-error
    /// callbacks, at the next [`GpuContext::check`] (every read-back checks).
    pub fn submit_unscoped(
        &self,
        encoder: wgpu::CommandEncoder,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        self.check()?;
        Ok(self.queue.submit([encoder.finish()]))
    }

    /// Reads a persistent `MAP_READ | COPY_DST` buffer once `submission` (the
    /// submit that copied into it) is done — natively waiting for that
    /// submission only, not for work submitted after it — and unmaps it.
    pub async fn map_read(
        &self,
        staging: &wgpu::Buffer,
        submission: wgpu::SubmissionIndex,
    ) -> Result<Vec<u8>, GpuError> {
        let slot = MapSlot::default();
        let done = slot.clone();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| done.complete(r));
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| self.lost_or(GpuError::ReadBack(e.to_string())))?;
        #[cfg(target_arch = "wasm32")]
        let _ = submission;
        if let Err(e) = slot.await {
            return Err(self
                .lost_or_settled(GpuError::ReadBack(e.to_string()))
                .await);
        }
        self.check()?;
        let bytes = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::ReadBack(e.to_string()))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }

    /// Waits until the GPU has finished the work submitted so far (for
    /// timings: a submit returns before the GPU runs it).
    pub async fn wait_idle(&self) -> Result<(), GpuError> {
        let slot = MapSlot::default();
        let done = slot.clone();
        self.queue
            .on_submitted_work_done(move || done.complete(Ok(())));
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.lost_or(GpuError::ReadBack(e.to_string())))?;
        if let Err(e) = slot.await {
            return Err(self
                .lost_or_settled(GpuError::ReadBack(e.to_string()))
                .await);
        }
        self.check()
    }

    /// The first `len` f32 values of `buffer`.
    pub async fn read_back_f32(
        &self,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let bytes = self.read_back_bytes(buffer, 0, len as u64 * 4).await?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The first `len` u32 values of `buffer`.
    pub async fn read_back_u32(
        &self,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<u32>, GpuError> {
        let bytes = self.read_back_bytes(buffer, 0, len as u64 * 4).await?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// A one-shot slot a `map_async` callback fills; awaiting it yields the
/// callback's result (natively it is filled by `poll`, in the browser by the
/// event loop).
#[derive(Clone, Default)]
struct MapSlot(Arc<Mutex<MapState>>);

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

impl MapSlot {
    fn complete(&self, r: Result<(), wgpu::BufferAsyncError>) {
        let waker = match self.0.lock() {
            Ok(mut s) => {
                s.result = Some(r);
                s.waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for MapSlot {
    type Output = Result<(), wgpu::BufferAsyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(_) => return Poll::Ready(Err(wgpu::BufferAsyncError)),
        };
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
