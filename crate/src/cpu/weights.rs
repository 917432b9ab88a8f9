//! The weights of a llama model for the CPU reference decoder, collected from
//! the streaming GGUF reader tensor by tensor.

use std::collections::HashMap;
use std::path::Path;

use super::matrix::QMatrix;
use crate::error::Error;
use crate::gguf::{self, Event, GgufFile, Header};
use crate::model::tensors::{self, is_model_tensor, LayerTensor};
use crate::model::{Config, ModelError};

/// One transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>, // (dim)
    pub wq: QMatrix,         // (dim, dim)
    pub wk: QMatrix,         // (kv_dim, dim)
    pub wv: QMatrix,         // (kv_dim, dim)
    pub wo: QMatrix,         // (dim, dim)
    pub ffn_norm: Vec<f32>,  // (dim)
    pub w1: QMatrix,         // gate (ffn, dim)
    pub w3: QMatrix,         // up (ffn, dim)
    pub w2: QMatrix,         // down (dim, ffn)
}

/// Every weight the forward pass reads.
#[derive(Clone, Debug)]
pub struct CpuWeights {
    pub config: Config,
    pub header: Header,
    pub token_embd: QMatrix, // (vocab, dim)
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>, // (dim)
    /// (vocab, dim); `None` when tied to `token_embd`.
    pub output: Option<QMatrix>,
}

impl CpuWeights {
    /// Streams a GGUF file from disk, keeping only the tensors the model uses.
    pub fn load(path: &Path) -> Result<CpuWeights, Error> {
        let mut cfg: Option<Config> = None;
        let mut wanted: HashMap<String, QMatrix> = HashMap::new();
        let header = gguf::read_path(path, |ev| -> Result<(), Error> {
            match ev {
                Event::Header(h) => cfg = Some(Config::from_header(h)?),
                Event::Tensor(t) => {
                    if is_model_tensor(&t.info.name) {
                        wanted.insert(t.info.name.clone(), QMatrix::new(t.info, t.bytes.to_vec())?);
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
        Self::assemble(cfg.expect("header comes first"), header, wanted)
    }

    /// Builds the weights from a file already in memory.
    pub fn from_file(file: &GgufFile) -> Result<CpuWeights, Error> {
        let cfg = Config::from_header(&file.header)?;
        let mut wanted = HashMap::new();
        for (info, bytes) in file.header.tensors.iter().zip(&file.data) {
            if is_model_tensor(&info.name) {
                wanted.insert(info.name.clone(), QMatrix::new(info, bytes.clone())?);
            }
        }
        Self::assemble(cfg, file.header.clone(), wanted)
    }

    fn assemble(
        config: Config,
        header: Header,
        mut t: HashMap<String, QMatrix>,
    ) -> Result<CpuWeights, Error> {
        let mut take = |name: String| {
            t.remove(&name)
                .ok_or(Error::Model(ModelError::MissingTensor(name)))
        };
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let mut take = |x: LayerTensor| take(x.name(l));
            layers.push(LayerWeights {
                attn_norm: take(LayerTensor::AttnNorm)?.to_f32(),
                wq: take(LayerTensor::AttnQ)?,
                wk: take(LayerTensor::AttnK)?,
                wv: take(LayerTensor::AttnV)?,
                wo: take(LayerTensor::AttnOutput)?,
                ffn_norm: take(LayerTensor::FfnNorm)?.to_f32(),
                w1: take(LayerTensor::FfnGate)?,
                w3: take(LayerTensor::FfnUp)?,
                w2: take(LayerTensor::FfnDown)?,
            });
        }
        let token_embd = take(tensors::TOKEN_EMBD.into())?;
        let output_norm = take(tensors::OUTPUT_NORM.into())?.to_f32();
        let output = t.remove(tensors::OUTPUT);
        Ok(CpuWeights {
            config,
            header,
            token_embd,
            layers,
            output_norm,
            output,
        })
    }

    /// The output projection (the embedding when tied).
    pub fn output(&self) -> &QMatrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}
