//! A model's weights on the GPU, uploaded as the GGUF reader hands them out.
//! [`WeightLoader::add_piece`] takes a tensor's bytes in pieces (the reader's
//! piece mode: slices of each chunk read) and streams each matrix into its GPU
//! buffers row group by row group ([`MatrixUpload`]), so host memory stays
//! around one read chunk plus one row group, whatever the tensor sizes;
//! [`WeightLoader::add`] is the same with the whole tensor as one piece. Only
//! 1-D tensors (norm weights, a few KiB) are collected whole.
//!
//! Formats with a GPU kernel (F32, F16, Q8_0, Q4_0, Q4_K, Q6_K) are uploaded
//! as they are; the other ggml formats are dequantized to F16 at load time
//! (row group by row group too) and each such tensor leaves a note in
//! [`GpuWeights::notes`].

use std::collections::HashMap;

use super::qmatmul::GpuMatrix;
use super::upload::{MatrixUpload, UploadOptions};
use super::{GpuContext, GpuError};
use crate::error::Error;
use crate::gguf::{Header, TensorInfo};
use crate::model::tensors::{self, is_model_tensor, LayerTensor};
use crate::model::{Config, ModelError, SyntheticModel};
use crate::quant;

/// The stacked matrices' name parts: `blk.N.attn_qkv.weight` (Q | K | V) and
/// `blk.N.ffn_gate_up.weight` (gate | up).
const QKV_STACK: &str = "attn_qkv";
const GATE_UP_STACK: &str = "ffn_gate_up";

/// One transformer block on the GPU.
#[derive(Debug)]
pub struct GpuLayer {
    pub attn_norm: wgpu::Buffer, // (dim) f32
    /// Wq (dim, dim), Wk, Wv (kv_dim, dim): rows q | k | v.
    pub qkv: Stack,
    pub wo: GpuMatrix,          // (dim, dim)
    pub ffn_norm: wgpu::Buffer, // (dim) f32
    /// W1 (gate), W3 (up) (ffn, dim): rows gate | up.
    pub gate_up: Stack,
    pub w2: GpuMatrix, // down (dim, ffn)
}

/// Matrices that multiply the same input, stacked by rows: one matrix (one
/// product per token: fewer dispatches, the input read once) when they share
/// a format, else each apart, in order.
#[derive(Debug)]
pub enum Stack {
    One(GpuMatrix),
    Apart(Vec<GpuMatrix>),
}

impl Stack {
    /// The matrices as stored.
    pub fn matrices(&self) -> Vec<&GpuMatrix> {
        match self {
            Stack::One(m) => vec![m],
            Stack::Apart(v) => v.iter().collect(),
        }
    }
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
            .flat_map(|l| {
                let mut v = l.qkv.matrices();
                v.extend(l.gate_up.matrices());
                v.extend([&l.wo, &l.w2]);
                v
            })
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

    /// Streams a GGUF file from disk into GPU buffers (the reader's piece
    /// mode: host memory stays around one 4 MiB read chunk), calling
    /// `on_progress` after each tensor.
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
        gguf::read_path_pieces(path, |ev| -> Result<(), Error> {
            match ev {
                Event::Header(h) => loader = Some(WeightLoader::new(h)?),
                Event::TensorPiece(p) => {
                    if let Some(l) = loader.as_mut() {
                        ctx.block_on(l.add_piece(ctx, p.info, p.offset, p.bytes))?;
                        if p.is_last() {
                            on_progress(&LoadProgress {
                                bytes_done: h_end(p.info),
                                bytes_total: total,
                                tensor: &p.info.name,
                            });
                        }
                    }
                }
                // Piece mode hands out no whole tensors.
                Event::Tensor(_) => {}
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

/// The tensor whose pieces are arriving.
struct InFlight {
    info: TensorInfo,
    received: u64,
    sink: Sink,
}

enum Sink {
    Matrix(Box<MatrixUpload>),
    /// A member of stack `i` ([`WeightLoader::stacks`]): its rows go into
    /// the stack's upload.
    Member(usize),
    /// A 1-D tensor's bytes (a norm weight: small), uploaded once complete.
    Vector(Vec<u8>),
}

/// Tensors uploaded as one matrix ([`Stack::One`]) when they arrive.
struct StackUpload {
    /// The stacked matrix's name (`blk.N.attn_qkv`, `blk.N.ffn_gate_up`).
    name: String,
    members: Vec<TensorInfo>,
    /// Whether the stack must be one part (SwiGLU pairs rows across it).
    one_part: bool,
    /// Decided when the first member arrives: `Some(upload)` while stacking,
    /// `None` with `apart` set when the members are uploaded each alone.
    upload: Option<Box<MatrixUpload>>,
    apart: bool,
    done: Vec<bool>,
}

impl StackUpload {
    /// The first row of member `i`.
    fn offset(&self, i: usize) -> usize {
        self.members[..i]
            .iter()
            .map(|m| m.n_elements() as usize / m.dims[0] as usize)
            .sum()
    }

    /// The stacked tensor: the members' rows one after the other.
    fn info(&self) -> TensorInfo {
        let first = &self.members[0];
        let rows: u64 = self
            .members
            .iter()
            .map(|m| m.n_elements() / m.dims[0])
            .sum();
        TensorInfo {
            name: self.name.clone(),
            dims: vec![first.dims[0], rows],
            ty: first.ty,
            offset: 0,
            n_bytes: self.members.iter().map(|m| m.n_bytes).sum(),
        }
    }
}

/// Collects uploaded tensors until every one the model needs is there.
pub struct WeightLoader {
    config: Config,
    tensors: HashMap<String, Uploaded>,
    current: Option<InFlight>,
    /// Stacks planned from the header, and which stack each member is in.
    stacks: Vec<StackUpload>,
    member_of: HashMap<String, (usize, usize)>,
    gpu_bytes: u64,
    notes: Vec<String>,
}

impl WeightLoader {
    /// Reads the hyperparameters and checks the tensor list of `header`;
    /// plans the stacks (Q | K | V and gate | up of each layer, where the
    /// members share a type and width).
    pub fn new(header: &Header) -> Result<WeightLoader, Error> {
        let config = Config::from_header(header)?;
        let by_name: HashMap<&str, &TensorInfo> = header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut stacks = Vec::new();
        let mut member_of = HashMap::new();
        for l in 0..config.n_layers {
            for (name, parts, one_part) in [
                (QKV_STACK, &tensors::QKV[..], false),
                (GATE_UP_STACK, &tensors::GATE_UP[..], true),
            ] {
                let members: Option<Vec<TensorInfo>> = parts
                    .iter()
                    .map(|p| by_name.get(p.name(l).as_str()).map(|t| (*t).clone()))
                    .collect();
                let Some(members) = members else { continue };
                let first = &members[0];
                let alike = members
                    .iter()
                    .all(|m| m.ty == first.ty && m.dims.len() == 2 && m.dims[0] == first.dims[0]);
                if !alike {
                    continue;
                }
                let i = stacks.len();
                for (j, m) in members.iter().enumerate() {
                    member_of.insert(m.name.clone(), (i, j));
                }
                stacks.push(StackUpload {
                    name: tensors::layer_name(l, name),
                    done: vec![false; members.len()],
                    members,
                    one_part,
                    upload: None,
                    apart: false,
                });
            }
        }
        Ok(WeightLoader {
            config,
            tensors: HashMap::new(),
            current: None,
            stacks,
            member_of,
            gpu_bytes: 0,
            notes: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Uploads one whole tensor (ignored unless the model reads it): one
    /// piece of [`WeightLoader::add_piece`].
    pub async fn add(
        &mut self,
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if is_model_tensor(&info.name) && bytes.len() as u64 != info.n_bytes {
            return Err(GpuError::UploadLength {
                tensor: info.name.clone(),
                expected: info.n_bytes,
                got: bytes.len() as u64,
            }
            .into());
        }
        self.add_piece(ctx, info, 0, bytes).await
    }

    /// Takes the bytes `offset..offset + bytes.len()` of tensor `info`
    /// (ignored unless the model reads it) and uploads the row groups they
    /// complete; the tensor is done when its last byte arrives. Pieces of a
    /// tensor must come in order without gaps (the first at offset 0), and a
    /// tensor must be complete before the next begins: else an
    /// [`GpuError::UploadOrder`] or [`GpuError::UploadLength`].
    pub async fn add_piece(
        &mut self,
        ctx: &GpuContext,
        info: &TensorInfo,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if !is_model_tensor(&info.name) {
            return Ok(());
        }
        let continues = self
            .current
            .as_ref()
            .is_some_and(|c| c.info.name == info.name);
        if !continues {
            if let Some(c) = self.current.take() {
                return Err(GpuError::UploadLength {
                    tensor: c.info.name,
                    expected: c.info.n_bytes,
                    got: c.received,
                }
                .into());
            }
            if offset != 0 {
                return Err(order_error(info, 0, offset));
            }
            self.current = Some(self.begin(ctx, info).await?);
        }
        let c = self.current.as_mut().expect("begun above");
        if offset != c.received {
            return Err(order_error(info, c.received, offset));
        }
        let got = c.received + bytes.len() as u64;
        match &mut c.sink {
            Sink::Matrix(m) => m.push(ctx, bytes)?,
            Sink::Member(i) => self.stacks[*i]
                .upload
                .as_mut()
                .expect("a stacking member has its stack's upload")
                .push(ctx, bytes)?,
            Sink::Vector(v) if got <= c.info.n_bytes => v.extend_from_slice(bytes),
            Sink::Vector(_) => {
                return Err(GpuError::UploadLength {
                    tensor: c.info.name.clone(),
                    expected: c.info.n_bytes,
                    got,
                }
                .into())
            }
        }
        c.received = got;
        if c.received == c.info.n_bytes {
            let c = self.current.take().expect("in flight");
            self.complete(ctx, c).await?;
        }
        Ok(())
    }

    /// The name of the tensor whose pieces are arriving, if any.
    pub fn in_flight(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.info.name.as_str())
    }

    async fn begin(&mut self, ctx: &GpuContext, info: &TensorInfo) -> Result<InFlight, Error> {
        if let Some(&(i, j)) = self.member_of.get(&info.name) {
            if let Some(sink) = self.begin_member(ctx, info, i, j).await? {
                return Ok(InFlight {
                    info: info.clone(),
                    received: 0,
                    sink,
                });
            }
        }
        let sink = if info.dims.len() == 1 {
            // Never trust a size for an allocation: grow with the data.
            Sink::Vector(Vec::with_capacity(info.n_bytes.min(1 << 20) as usize))
        } else {
            let opts = UploadOptions {
                widen: true,
                ..Default::default()
            };
            let m = MatrixUpload::begin_with(ctx, info, opts).await?;
            if m.is_widened() {
                self.notes.push(format!(
                    "{}: {:?} has no GPU kernel; dequantized to F16 at load time",
                    info.name, info.ty
                ));
            }
            Sink::Matrix(Box::new(m))
        };
        Ok(InFlight {
            info: info.clone(),
            received: 0,
            sink,
        })
    }

    /// Starts member `j` of stack `i`: begins the stack's upload on its first
    /// member (or decides to upload the members apart: a stack that cannot be
    /// one matrix), and moves it to the member's rows. `None`: upload the
    /// member alone.
    async fn begin_member(
        &mut self,
        ctx: &GpuContext,
        info: &TensorInfo,
        i: usize,
        j: usize,
    ) -> Result<Option<Sink>, Error> {
        let st = &mut self.stacks[i];
        if st.members[j] != *info || st.done[j] {
            // Not the tensor the header listed (or twice): leave it to the
            // plain path, whose checks report it.
            return Ok(None);
        }
        if st.apart {
            return Ok(None);
        }
        if st.upload.is_none() {
            let opts = UploadOptions {
                widen: true,
                ..Default::default()
            };
            let up = MatrixUpload::begin_with(ctx, &st.info(), opts).await?;
            let g = up.group_rows();
            let whole_groups = (0..st.members.len()).all(|m| st.offset(m).is_multiple_of(g))
                && up.total_bytes() == st.info().n_bytes;
            if (st.one_part && up.parts() != 1) || !whole_groups {
                st.apart = true;
                return Ok(None);
            }
            if up.is_widened() {
                self.notes.push(format!(
                    "{}: {:?} has no GPU kernel; dequantized to F16 at load time",
                    st.name, info.ty
                ));
            }
            st.upload = Some(Box::new(up));
        }
        let offset = st.offset(j);
        st.upload.as_mut().expect("begun above").seek_row(offset)?;
        Ok(Some(Sink::Member(i)))
    }

    async fn complete(&mut self, ctx: &GpuContext, c: InFlight) -> Result<(), Error> {
        let uploaded = match c.sink {
            Sink::Matrix(m) => {
                let m = m.finish(ctx)?;
                self.gpu_bytes += m.gpu_bytes();
                Uploaded::Matrix(m)
            }
            Sink::Member(i) => {
                let (_, j) = self.member_of[&c.info.name];
                let st = &mut self.stacks[i];
                st.done[j] = true;
                if !st.done.iter().all(|&d| d) {
                    return Ok(());
                }
                let m = st.upload.take().expect("a stack's upload").finish(ctx)?;
                self.gpu_bytes += m.gpu_bytes();
                self.tensors.insert(st.name.clone(), Uploaded::Matrix(m));
                return Ok(());
            }
            Sink::Vector(bytes) => {
                let n = c.info.n_elements() as usize;
                let values = quant::dequantize_to_vec(c.info.ty, &bytes, n)?;
                let buffer = ctx.storage_f32(&c.info.name, &values).await?;
                self.gpu_bytes += buffer.size();
                Uploaded::Vector(buffer)
            }
        };
        self.tensors.insert(c.info.name, uploaded);
        Ok(())
    }

    /// The weights, once every tensor has been added.
    pub fn finish(mut self) -> Result<GpuWeights, Error> {
        if let Some(c) = self.current.take() {
            return Err(GpuError::UploadLength {
                tensor: c.info.name,
                expected: c.info.n_bytes,
                got: c.received,
            }
            .into());
        }
        // A stack some of whose members never came: the first missing one.
        if let Some(st) = self.stacks.iter().find(|st| st.upload.is_some()) {
            let missing = st
                .members
                .iter()
                .zip(&st.done)
                .find(|(_, d)| !**d)
                .map(|(m, _)| m.name.clone())
                .unwrap_or_else(|| st.name.clone());
            return Err(Error::Model(ModelError::MissingTensor(missing)));
        }
        let c = self.config.clone();
        let mut layers = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            layers.push(GpuLayer {
                attn_norm: self.vector(LayerTensor::AttnNorm.name(l))?,
                qkv: self.stack(l, QKV_STACK, &tensors::QKV)?,
                wo: self.matrix(LayerTensor::AttnOutput.name(l))?,
                ffn_norm: self.vector(LayerTensor::FfnNorm.name(l))?,
                gate_up: self.stack(l, GATE_UP_STACK, &tensors::GATE_UP)?,
                w2: self.matrix(LayerTensor::FfnDown.name(l))?,
            });
        }
        let token_embd = self.matrix(tensors::TOKEN_EMBD.into())?;
        let output_norm = self.vector(tensors::OUTPUT_NORM.into())?;
        let output = match self.tensors.contains_key(tensors::OUTPUT) {
            true => Some(self.matrix(tensors::OUTPUT.into())?),
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

    /// Layer `l`'s stacked matrix `stack`, or its members apart.
    fn stack(&mut self, l: usize, stack: &str, members: &[LayerTensor]) -> Result<Stack, Error> {
        let name = tensors::layer_name(l, stack);
        if self.tensors.contains_key(&name) {
            return Ok(Stack::One(self.matrix(name)?));
        }
        let apart: Result<Vec<GpuMatrix>, Error> =
            members.iter().map(|m| self.matrix(m.name(l))).collect();
        Ok(Stack::Apart(apart?))
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

fn order_error(info: &TensorInfo, expected: u64, offset: u64) -> Error {
    GpuError::UploadOrder {
        tensor: info.name.clone(),
        expected,
        offset,
    }
    .into()
}
