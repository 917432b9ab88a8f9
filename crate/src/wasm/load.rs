//! Streaming a GGUF file onto the GPU chunk by chunk: `beginLoad` makes a
//! [`Loading`], each `push` feeds one chunk to the [`GgufReader`] and uploads
//! what it completed, `finishLoad` checks the end of the file and builds the
//! decoder and its session.
//!
//! The reader runs in piece mode: tensor bytes come out as slices of the chunk
//! fed, never assembled into a tensor-sized buffer, and the weight loader
//! uploads whole row groups as they complete, so wasm memory holds about one
//! chunk whatever the model's size. The reader reports through a synchronous
//! callback, but uploads are async (error scopes resolve on the browser's
//! event loop), so a chunk is fed first, with the callback only noting which
//! range of the chunk belongs to which tensor, and the uploads run after it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use super::errors::{WasmError, WasmResult};
use super::json::{AdapterJson, LoadOptions, LoadProgress, ModelInfo};
use crate::error::Error;
use crate::generate::Session;
use crate::gguf::{Event, GgufReader, Header, ReaderOptions, TensorInfo};
use crate::gpu::decoder::{DecoderOptions, GpuDecoder};
use crate::gpu::weights::WeightLoader;
use crate::gpu::GpuContext;
use crate::tokenizer::Tokenizer;

/// Tokens per prefill batch (the decoder's activation buffers are sized for it).
const PREFILL_CHUNK: usize = 128;
/// The largest `contextLength` accepted.
pub const MAX_CONTEXT: u64 = 1 << 20;

/// What the header says that the model info reports.
struct HeaderFacts {
    architecture: String,
    name: String,
    tensor_types: BTreeMap<String, usize>,
    tensors_total: usize,
}

impl HeaderFacts {
    fn new(h: &Header) -> HeaderFacts {
        let mut tensor_types = BTreeMap::new();
        for t in &h.tensors {
            *tensor_types.entry(t.ty.name().to_string()).or_insert(0) += 1;
        }
        let text = |k: &str| h.metadata.get_str(k).unwrap_or_default().to_string();
        HeaderFacts {
            architecture: text("general.architecture"),
            name: text("general.name"),
            tensor_types,
            tensors_total: h.tensors.len(),
        }
    }
}

/// Where a piece's bytes lie in the chunk fed (piece mode hands out slices
/// of the chunk; anything else would be a reader bug, reported, not trusted).
fn locate(bytes: &[u8], chunk: &[u8]) -> Result<Range<usize>, Error> {
    let start = (bytes.as_ptr() as usize).wrapping_sub(chunk.as_ptr() as usize);
    match start.checked_add(bytes.len()) {
        Some(end) if start <= chunk.len() && end <= chunk.len() => Ok(start..end),
        _ => Err(Error::Gpu(crate::gpu::GpuError::Internal(
            "a tensor piece outside the chunk fed".into(),
        ))),
    }
}

/// A tensor piece to upload once the feed returns.
struct Queued {
    info: TensorInfo,
    offset: u64,
    range: Range<usize>,
    last: bool,
}

/// A load between `beginLoad` and `finishLoad`.
pub struct Loading {
    opts: LoadOptions,
    reader: GgufReader,
    facts: Option<HeaderFacts>,
    loader: Option<WeightLoader>,
    tok: Option<Tokenizer>,
    tensors_done: usize,
    last_tensor: Option<String>,
}

impl Loading {
    /// `Err(InvalidRequestError)` for a context length out of range.
    pub fn new(opts: LoadOptions) -> WasmResult<Loading> {
        if let Some(n) = opts.context_length {
            if !(1..=MAX_CONTEXT).contains(&n) {
                return Err(WasmError::invalid_request(format!(
                    "contextLength {n} is not in 1..={MAX_CONTEXT}"
                )));
            }
        }
        let reader = GgufReader::new(ReaderOptions {
            total_len: opts.total_bytes,
            pieces: true,
            ..Default::default()
        });
        Ok(Loading {
            opts,
            reader,
            facts: None,
            loader: None,
            tok: None,
            tensors_done: 0,
            last_tensor: None,
        })
    }

    /// The file's size, when the load was told it.
    pub fn total_bytes(&self) -> Option<u64> {
        self.opts.total_bytes
    }

    pub fn progress(&self) -> LoadProgress {
        LoadProgress {
            bytes_done: self.reader.bytes_read(),
            bytes_total: self.opts.total_bytes,
            tensor: self.last_tensor.clone(),
            tensors_done: self.tensors_done,
            tensors_total: self.facts.as_ref().map(|f| f.tensors_total),
        }
    }

    /// Feeds `chunk` and uploads every tensor it completes, unless
    /// `aborted()` says the load is gone (checked before each upload).
    pub async fn push(
        &mut self,
        ctx: &GpuContext,
        chunk: &[u8],
        aborted: &dyn Fn() -> bool,
    ) -> Result<LoadProgress, Error> {
        let mut queue: Vec<Queued> = Vec::new();
        {
            let (facts, loader, tok) = (&mut self.facts, &mut self.loader, &mut self.tok);
            self.reader.feed(chunk, |ev| -> Result<(), Error> {
                match ev {
                    Event::Header(h) => {
                        // The architecture and tensor list first (the most
                        // telling error), then the vocabulary.
                        *loader = Some(WeightLoader::new(h)?);
                        *tok = Some(Tokenizer::from_metadata(&h.metadata)?);
                        *facts = Some(HeaderFacts::new(h));
                    }
                    Event::TensorPiece(p) => queue.push(Queued {
                        info: p.info.clone(),
                        offset: p.offset,
                        range: locate(p.bytes, chunk)?,
                        last: p.is_last(),
                    }),
                    // Whole tensors only come outside piece mode.
                    Event::Tensor(t) => queue.push(Queued {
                        info: t.info.clone(),
                        offset: 0,
                        range: locate(t.bytes, chunk)?,
                        last: true,
                    }),
                }
                Ok(())
            })?;
        }
        for q in queue {
            if aborted() {
                break;
            }
            let loader = self.loader.as_mut().expect("tensors come after the header");
            loader
                .add_piece(ctx, &q.info, q.offset, &chunk[q.range])
                .await?;
            if q.last {
                self.tensors_done += 1;
                self.last_tensor = Some(q.info.name);
            }
        }
        Ok(self.progress())
    }

    /// Checks the file is complete, then builds the decoder.
    pub async fn finish(
        mut self,
        ctx: Arc<GpuContext>,
        adapter: &AdapterJson,
    ) -> WasmResult<Loaded> {
        self.reader.finish().map_err(Error::from)?;
        let file_bytes = self.reader.bytes_read();
        let (Some(loader), Some(tok), Some(facts)) = (self.loader, self.tok, self.facts) else {
            return Err(WasmError::new(
                super::errors::ErrorName::InvalidModel,
                "the file has no header",
            ));
        };
        let mut weights = loader.finish()?;
        let trained = weights.config.context_length;
        let mut notes = weights.notes.clone();
        let context = self.opts.context_length.map_or(trained, |n| n as usize);
        if context > trained {
            notes.push(format!(
                "contextLength {context} exceeds the {trained} tokens the model was trained \
                 with: output past {trained} tokens may degrade"
            ));
            weights.config.context_length = context;
        }
        let kv_cache = self.opts.kv_cache.unwrap_or_default();
        let decoder = GpuDecoder::new(
            ctx,
            weights,
            DecoderOptions {
                max_len: context,
                prefill_chunk: PREFILL_CHUNK,
                kv_format: kv_cache,
                all_logits: false,
            },
        )
        .await?;
        let c = decoder.config();
        let gpu_bytes = decoder.weights().gpu_bytes;
        let info = ModelInfo {
            architecture: facts.architecture,
            name: facts.name,
            vocab_size: c.vocab_size,
            dim: c.dim,
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            ffn_dim: c.ffn_dim,
            head_dim: c.head_dim(),
            rope_theta: c.rope_theta,
            trained_context: trained,
            context_length: decoder.max_len(),
            kv_cache,
            tensor_types: facts.tensor_types,
            file_bytes,
            gpu_bytes,
            kv_bytes_per_token: decoder.kv_bytes_per_token(),
            kv_bytes: decoder.gpu_bytes() - gpu_bytes,
            notes,
            adapter: adapter.clone(),
        };
        Ok(Loaded {
            tok: Rc::new(tok),
            info,
            session: Some(Session::new(decoder)),
        })
    }
}

/// A loaded model: its tokenizer, its description and the session holding
/// the decoder (taken out while a generation runs).
pub struct Loaded {
    pub tok: Rc<Tokenizer>,
    pub info: ModelInfo,
    pub session: Option<Session<GpuDecoder>>,
}

impl Loaded {
    /// The info with the KV cache's current size.
    pub fn info(&mut self) -> &ModelInfo {
        if let Some(s) = &self.session {
            self.info.kv_bytes = s.decoder.gpu_bytes() - self.info.gpu_bytes;
        }
        &self.info
    }
}
