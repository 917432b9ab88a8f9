//! A model's weights on the GPU, uploaded tensor by tensor as the GGUF reader
//! hands them out: each tensor is repacked into the kernels' word streams and
//! copied into its own buffers, then its host bytes are dropped, so host memory
//! stays around one tensor whatever the model's size.
//!
//! Formats with a GPU kernel (F32, F16, Q8_0, Q4_0, Q4_K, Q6_K) are uploaded
//! as they are; the other ggml formats are dequantized to F16 at load time and
//! each such tensor leaves a note in [`GpuWeights::notes`].

use std::collections::HashMap;

use super::qmatmul::GpuMatrix;
use super::repack::supported;
use super::{GpuContext, GpuError};
use crate::error::Error;
use crate::ggml_type::GgmlType;
use crate::gguf::{Header, TensorInfo};
use crate::model::{Config, ModelError, SyntheticModel};
use crate::quant;

/// One transformer block on the GPU.
#[derive(Debug)]
pub struct GpuLayer {
    pub attn_norm: wgpu::Buffer, // (dim) f32
    pub wq: GpuMatrix,           // (dim, dim)
    pub wk: GpuMatrix,           // (kv_dim, dim)
    pub wv: GpuMatrix,           // (kv_dim, dim)
    pub wo: GpuMatrix,           // (dim, dim)
    pub ffn_norm: wgpu::Buffer,  // (dim) f32
    pub w1: GpuMatrix,           // gate (ffn, dim)
    pub w3: GpuMatrix,           // up (ffn, dim)
    pub w2: GpuMatrix,           // down (dim, ffn)
}

/// Every weight the forward pass reads, on the GPU.
#[derive(Debug)]
pub struct GpuWeights {
    pub config: Config,
    pub token_embd: GpuMatrix, // (vocab, dim)
    pub layers: Vec<GpuLayer>,
    pub output_norm: wgpu::Buffer, // (dim) f32
    /// (vocab, dim); `None` when tied to `token_embd`.
    pub output: Option<GpuMatrix>,
    /// Bytes of GPU memory the weights take.
    pub gpu_bytes: u64,
    /// Tensors converted at load time (formats without a GPU kernel).
    pub notes: Vec<String>,
}

impl GpuWeights {
    /// The output projection (the embedding when tied).
    pub fn output(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Bytes of weights a decode step reads: every layer's matrices, the
    /// output projection and one embedding row.
    pub fn decode_bytes_per_token(&self) -> u64 {
        let mut n: u64 = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w3, &l.w2])
            .map(GpuMatrix::gpu_bytes)
            .sum();
        n += self.output().gpu_bytes();
        n += self.token_embd.gpu_bytes() / self.config.vocab_size as u64;
        n
    }

    /// Uploads a synthetic model tensor by tensor (the benchmark's model).
    pub async fn from_synthetic(
        ctx: &GpuContext,
        model: &SyntheticModel,
    ) -> Result<GpuWeights, Error> {
        let mut loader = WeightLoader::new(&model.header())?;
        for (i, info) in model.tensor_infos().iter().enumerate() {
            let bytes = model.tensor_bytes(i, info);
            loader.add(ctx, info, &bytes).await?;
        }
        loader.finish()
    }

    /// Streams a GGUF file from disk into GPU buffers, calling `on_progress`
    /// after each tensor.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(
        ctx: &GpuContext,
        path: &std::path::Path,
        mut on_progress: impl FnMut(&LoadProgress<'_>),
    ) -> Result<GpuWeights, Error> {
        use crate::gguf::{self, Event};
        let total = std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
        let mut loader: Option<WeightLoader> = None;
        gguf::read_path(path, |ev| -> Result<(), Error> {
            match ev {
                Event::Header(h) => loader = Some(WeightLoader::new(h)?),
                Event::Tensor(t) => {
                    if let Some(l) = loader.as_mut() {
                        ctx.block_on(l.add(ctx, t.info, t.bytes))?;
                        on_progress(&LoadProgress {
                            bytes_done: h_end(t.info),
                            bytes_total: total,
                            tensor: &t.info.name,
                        });
                    }
                }
                // `read_path` hands tensors out whole.
                Event::TensorPiece(_) => {}
            }
            Ok(())
        })
        .map_err(|e| match e {
            gguf::ReadFileError::Io { path, source } => Error::Io { path, source },
            gguf::ReadFileError::Content { source, .. } => source,
        })?;
        loader
            .ok_or(Error::Model(ModelError::MissingKey(
                "general.architecture".into(),
            )))?
            .finish()
    }
}

/// Where a load stands, after a tensor.
#[derive(Clone, Debug)]
pub struct LoadProgress<'a> {
    /// Bytes of the data section read so far (approximately: up to the end of
    /// the tensor just uploaded).
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub tensor: &'a str,
}

#[cfg(not(target_arch = "wasm32"))]
fn h_end(info: &TensorInfo) -> u64 {
    info.offset + info.n_bytes
}

/// A tensor on the GPU: a matrix, or a norm weight as f32.
enum Uploaded {
    Matrix(GpuMatrix),
    Vector(wgpu::Buffer),
}

/// Collects uploaded tensors until every one the model needs is there.
pub struct WeightLoader {
    config: Config,
    tensors: HashMap<String, Uploaded>,
    gpu_bytes: u64,
    notes: Vec<String>,
}

impl WeightLoader {
    /// Reads the hyperparameters and checks the tensor list of `header`.
    pub fn new(header: &Header) -> Result<WeightLoader, Error> {
        let config = Config::from_header(header)?;
        Ok(WeightLoader {
            config,
            tensors: HashMap::new(),
            gpu_bytes: 0,
            notes: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Uploads one tensor (ignored unless the model reads it).
    pub async fn add(
        &mut self,
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if !is_model_tensor(&info.name) {
            return Ok(());
        }
        let uploaded = if info.dims.len() == 1 {
            let values = quant::dequantize_to_vec(info.ty, bytes, info.n_elements() as usize)?;
            let buffer = ctx.storage_f32(&info.name, &values).await?;
            self.gpu_bytes += buffer.size();
            Uploaded::Vector(buffer)
        } else if supported(info.ty) {
            let m = GpuMatrix::upload_async(ctx, info, bytes).await?;
            self.gpu_bytes += m.gpu_bytes();
            Uploaded::Matrix(m)
        } else {
            // No kernel reads this format: widen to F16 once, here.
            let n = info.n_elements() as usize;
            let values = quant::dequantize_to_vec(info.ty, bytes, n)?;
            let halves: Vec<u8> = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            let f16_info = TensorInfo {
                ty: GgmlType::F16,
                n_bytes: halves.len() as u64,
                ..info.clone()
            };
            self.notes.push(format!(
                "{}: {:?} has no GPU kernel; dequantized to F16 at load time",
                info.name, info.ty
            ));
            let m = GpuMatrix::upload_async(ctx, &f16_info, &halves).await?;
            self.gpu_bytes += m.gpu_bytes();
            Uploaded::Matrix(m)
        };
        self.tensors.insert(info.name.clone(), uploaded);
        Ok(())
    }

    /// The weights, once every tensor has been added.
    pub fn finish(mut self) -> Result<GpuWeights, Error> {
        let c = self.config.clone();
        let mut layers = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let p = |n: &str| format!("blk.{l}.{n}.weight");
            layers.push(GpuLayer {
                attn_norm: self.vector(p("attn_norm"))?,
                wq: self.matrix(p("attn_q"))?,
                wk: self.matrix(p("attn_k"))?,
                wv: self.matrix(p("attn_v"))?,
                wo: self.matrix(p("attn_output"))?,
                ffn_norm: self.vector(p("ffn_norm"))?,
                w1: self.matrix(p("ffn_gate"))?,
                w3: self.matrix(p("ffn_up"))?,
                w2: self.matrix(p("ffn_down"))?,
            });
        }
        let token_embd = self.matrix("token_embd.weight".into())?;
        let output_norm = self.vector("output_norm.weight".into())?;
        let output = match self.tensors.contains_key("output.weight") {
            true => Some(self.matrix("output.weight".into())?),
            false => None,
        };
        Ok(GpuWeights {
            config: c,
            token_embd,
            layers,
            output_norm,
            output,
            gpu_bytes: self.gpu_bytes,
            notes: self.notes,
        })
    }

    fn take(&mut self, name: String) -> Result<Uploaded, Error> {
        self.tensors
            .remove(&name)
            .ok_or(Error::Model(ModelError::MissingTensor(name)))
    }

    fn matrix(&mut self, name: String) -> Result<GpuMatrix, Error> {
        match self.take(name.clone())? {
            Uploaded::Matrix(m) => Ok(m),
            Uploaded::Vector(_) => Err(GpuError::shape("weights", format!("{name} is 1-D")).into()),
        }
    }

    fn vector(&mut self, name: String) -> Result<wgpu::Buffer, Error> {
        match self.take(name.clone())? {
            Uploaded::Vector(b) => Ok(b),
            Uploaded::Matrix(_) => {
                Err(GpuError::shape("weights", format!("{name} is not 1-D")).into())
            }
        }
    }
}

fn is_model_tensor(name: &str) -> bool {
    name == "token_embd.weight"
        || name == "output_norm.weight"
        || name == "output.weight"
        || name.starts_with("blk.")
}
