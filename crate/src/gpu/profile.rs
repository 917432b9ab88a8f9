//! GPU time per kernel class of a forward pass, from timestamps written
//! inside the compute pass between dispatch groups
//! (`TIMESTAMP_QUERY_INSIDE_PASSES`; `codellama bench`).
//!
//! The decoder calls [`Profiler::mark`] before each group of dispatches of
//! one class and [`Profiler::end`] after the last: interval `i` runs from
//! timestamp `i` to `i + 1` and belongs to the class marked at `i`. With the
//! implicit barriers between dependent dispatches the intervals add up to the
//! pass's GPU time; a GPU that overlaps independent dispatches may charge part
//! of one class to its neighbour, never count time twice.

use super::keys::QFormat;
use super::{GpuContext, GpuError};

/// What a group of dispatches does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelClass {
    Embed,
    /// RMSNorm (`norm.wgsl`).
    Norm,
    /// A matrix product over weights of one format (matvec or matmul).
    Matmul(QFormat),
    /// RoPE on q and k, k and v into the cache, attention over it
    /// (`attention.wgsl`).
    Attention,
    /// Residual adds, SwiGLU (`elementwise.wgsl`).
    Elementwise,
    /// Buffer copies.
    Copy,
    /// Token sampling (`sample.wgsl`).
    Sample,
}

impl KernelClass {
    /// A stable name for reports (`matmul_q4_0`, `attention`, ...).
    pub fn name(self) -> String {
        match self {
            KernelClass::Embed => "embed".into(),
            KernelClass::Norm => "norm".into(),
            KernelClass::Matmul(f) => format!("matmul_{}", format!("{f:?}").to_lowercase()),
            KernelClass::Attention => "attention".into(),
            KernelClass::Elementwise => "elementwise".into(),
            KernelClass::Copy => "copy".into(),
            KernelClass::Sample => "sample".into(),
        }
    }
}

/// One measured interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub class: KernelClass,
    /// GPU seconds.
    pub seconds: f64,
    /// Bytes the interval's kernels read from weights or the KV cache (0
    /// where that is not the measure).
    pub bytes: u64,
}

/// Adds `intervals` into `total`, one entry per kernel class (seconds and
/// bytes summed), classes in the order they first appear.
pub fn add_by_class(total: &mut Vec<Interval>, intervals: impl IntoIterator<Item = Interval>) {
    for iv in intervals {
        match total.iter_mut().find(|t| t.class == iv.class) {
            Some(t) => {
                t.seconds += iv.seconds;
                t.bytes += iv.bytes;
            }
            None => total.push(iv),
        }
    }
}

/// Timestamps of one forward pass; see the module docs.
pub struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    capacity: u32,
    /// Class and bytes of interval `i`.
    marks: Vec<(KernelClass, u64)>,
    ended: bool,
    /// Nanoseconds per timestamp tick.
    period: f64,
}

impl Profiler {
    /// A profiler for up to `capacity - 1` intervals, or `None` where the
    /// device cannot write timestamps inside compute passes.
    pub fn new(ctx: &GpuContext, capacity: u32) -> Option<Profiler> {
        if !ctx.features().timestamps_in_passes {
            return None;
        }
        let capacity = capacity.clamp(2, wgpu::QUERY_SET_MAX_QUERIES);
        let set = ctx.device().create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        let resolve = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: 8 * u64::from(capacity),
            usage: wgpu::BufferUsages::QUERY_RESOLVE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Some(Profiler {
            set,
            resolve,
            capacity,
            marks: Vec::new(),
            ended: false,
            period: f64::from(ctx.queue().get_timestamp_period()),
        })
    }

    /// Forgets the last pass's marks.
    pub fn reset(&mut self) {
        self.marks.clear();
        self.ended = false;
    }

    /// Starts an interval of `class` reading `bytes` (ends the previous one).
    /// Past the capacity the rest of the pass joins the last interval.
    pub fn mark(&mut self, pass: &mut wgpu::ComputePass<'_>, class: KernelClass, bytes: u64) {
        let i = self.marks.len() as u32;
        if i + 1 >= self.capacity {
            if let Some(last) = self.marks.last_mut() {
                last.1 += bytes;
            }
            return;
        }
        pass.write_timestamp(&self.set, i);
        self.marks.push((class, bytes));
    }

    /// Ends the last interval.
    pub fn end(&mut self, pass: &mut wgpu::ComputePass<'_>) {
        if !self.marks.is_empty() && !self.ended {
            pass.write_timestamp(&self.set, self.marks.len() as u32);
            self.ended = true;
        }
    }

    /// Records the resolve of this pass's timestamps (after the pass).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        if self.ended {
            encoder.resolve_query_set(&self.set, 0..self.marks.len() as u32 + 1, &self.resolve, 0);
        }
    }

    /// The intervals of the last resolved pass (after its submit).
    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<Interval>, GpuError> {
        if !self.ended {
            return Ok(Vec::new());
        }
        let n = self.marks.len() + 1;
        let words = ctx.read_back_u32(&self.resolve, 2 * n).await?;
        let ticks: Vec<u64> = words
            .chunks_exact(2)
            .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
            .collect();
        Ok(self
            .marks
            .iter()
            .zip(ticks.windows(2))
            .map(|(&(class, bytes), t)| Interval {
                class,
                seconds: t[1].saturating_sub(t[0]) as f64 * self.period * 1e-9,
                bytes,
            })
            .collect())
    }
}
