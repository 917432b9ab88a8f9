//! The engine's errors and their one crossing into JavaScript: a JS `Error`
//! whose `name` is one of the stable names of the contract
//! (`web/README.md`; the JS classes are in `web/src/errors.ts`)
//! and whose `message` is the Rust `Display` text.

use wasm_bindgen::JsValue;

use crate::error::Error;
use crate::gpu::GpuError;
use crate::sampler::SamplerError;
use crate::speculative::SpeculativeError;
use crate::tokenizer::TokenizerError;

/// The stable error names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorName {
    WebGpuUnavailable,
    InvalidModel,
    UnsupportedModel,
    GpuOutOfMemory,
    DeviceLost,
    ContextOverflow,
    InvalidRequest,
    NotLoaded,
    Abort,
    EngineBusy,
    Internal,
}

impl ErrorName {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::WebGpuUnavailable => "WebGpuUnavailableError",
            ErrorName::InvalidModel => "InvalidModelError",
            ErrorName::UnsupportedModel => "UnsupportedModelError",
            ErrorName::GpuOutOfMemory => "GpuOutOfMemoryError",
            ErrorName::DeviceLost => "DeviceLostError",
            ErrorName::ContextOverflow => "ContextOverflowError",
            ErrorName::InvalidRequest => "InvalidRequestError",
            ErrorName::NotLoaded => "NotLoadedError",
            ErrorName::Abort => "AbortError",
            ErrorName::EngineBusy => "EngineBusyError",
            ErrorName::Internal => "InternalError",
        }
    }
}

/// An error on its way to JavaScript.
#[derive(Debug)]
pub enum WasmError {
    /// One of ours, named.
    Named { name: ErrorName, message: String },
    /// A value JavaScript threw (e.g. from the `onText` callback): passed back
    /// unchanged.
    Js(JsValue),
}

pub type WasmResult<T> = Result<T, WasmError>;

impl WasmError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> WasmError {
        WasmError::Named {
            name,
            message: message.into(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> WasmError {
        WasmError::new(ErrorName::InvalidRequest, message)
    }

    pub fn not_loaded() -> WasmError {
        WasmError::new(ErrorName::NotLoaded, "no model is loaded")
    }

    pub fn busy(running: &str) -> WasmError {
        WasmError::new(
            ErrorName::EngineBusy,
            format!("the engine is busy ({running} is running)"),
        )
    }

    /// The name this error carries into JavaScript (`None` for a JS value).
    pub fn name(&self) -> Option<ErrorName> {
        match self {
            WasmError::Named { name, .. } => Some(*name),
            WasmError::Js(_) => None,
        }
    }
}

/// The contract's mapping of the crate's errors.
pub fn error_name(e: &Error) -> ErrorName {
    use ErrorName::*;
    match e {
        Error::Gguf(_) => InvalidModel,
        Error::Model(_) | Error::Quant(_) => UnsupportedModel,
        // A vocabulary the tokenizer cannot be built from is the model's
        // fault; text or ids it cannot encode or decode are the request's.
        Error::Tokenizer(t) => match t {
            TokenizerError::NoInfillTokens(_)
            | TokenizerError::IdOutOfRange { .. }
            | TokenizerError::ForbiddenToken { .. }
            | TokenizerError::NoPrefixUnsupported
            | TokenizerError::Encode(_) => InvalidRequest,
            _ => UnsupportedModel,
        },
        Error::Prompt(_) | Error::Request(_) => InvalidRequest,
        Error::Decode(d) => match d {
            crate::cpu::DecodeError::ContextFull { .. } => ContextOverflow,
            crate::cpu::DecodeError::TokenOutOfRange { .. } => InvalidRequest,
        },
        Error::Sampler(s) => sampler_name(s),
        Error::Speculative(s) => match s {
            SpeculativeError::MaxDraft(_) | SpeculativeError::Ngram { .. } => InvalidRequest,
            // A backend broke `Backend::verify`'s contract.
            SpeculativeError::Verify { .. } => Internal,
        },
        Error::ContextOverflow(_) => ContextOverflow,
        Error::Gpu(g) => gpu_name(g),
        Error::Io { .. } => Internal,
    }
}

fn sampler_name(e: &SamplerError) -> ErrorName {
    match e {
        SamplerError::BadSetting { .. } => ErrorName::InvalidRequest,
        // Not the request's fault: the model produced NaN or infinities.
        SamplerError::NoFiniteLogits => ErrorName::Internal,
    }
}

fn gpu_name(e: &GpuError) -> ErrorName {
    match e {
        GpuError::NoAdapter(_) | GpuError::RequestDevice(_) => ErrorName::WebGpuUnavailable,
        // A buffer past the device's limits: the model does not fit this GPU.
        GpuError::OutOfMemory | GpuError::BufferTooLarge { .. } => ErrorName::GpuOutOfMemory,
        GpuError::DeviceLost(_) => ErrorName::DeviceLost,
        GpuError::ContextFull { .. } => ErrorName::ContextOverflow,
        GpuError::Sampler(s) => sampler_name(s),
        GpuError::Validation(_)
        | GpuError::Internal(_)
        | GpuError::Shape { .. }
        | GpuError::ReadBack(_) => ErrorName::Internal,
        // The file's bytes disagree with its own tensor table.
        GpuError::UploadLength { .. } | GpuError::UploadOrder { .. } => ErrorName::InvalidModel,
    }
}

impl From<Error> for WasmError {
    fn from(e: Error) -> WasmError {
        WasmError::new(error_name(&e), e.to_string())
    }
}

impl From<GpuError> for WasmError {
    fn from(e: GpuError) -> WasmError {
        Error::from(e).into()
    }
}

impl From<TokenizerError> for WasmError {
    fn from(e: TokenizerError) -> WasmError {
        Error::from(e).into()
    }
}

/// The only place errors cross into JavaScript.
impl From<WasmError> for JsValue {
    fn from(e: WasmError) -> JsValue {
        match e {
            WasmError::Named { name, message } => {
                let err = js_sys::Error::new(&message);
                err.set_name(name.as_str());
                err.into()
            }
            WasmError::Js(v) => v,
        }
    }
}
