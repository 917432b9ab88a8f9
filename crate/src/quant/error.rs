//! Typed errors of the dequantizers.

use thiserror::Error;

use crate::GgmlType;

/// Why a buffer could not be dequantized.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QuantError {
    /// The element count is not a whole number of blocks of the type.
    #[error(
        "{n_elems} elements are not a whole number of {ty} blocks ({block_elems} elements each)"
    )]
    NotWholeBlocks {
        ty: GgmlType,
        n_elems: usize,
        block_elems: usize,
    },
    /// The byte count does not match the element count.
    #[error("{n_elems} {ty} elements take {expected} bytes, got {actual}")]
    LengthMismatch {
        ty: GgmlType,
        n_elems: usize,
        expected: usize,
        actual: usize,
    },
    /// The byte size of the element count does not fit in `usize`.
    #[error("{n_elems} {ty} elements do not fit in memory")]
    TooLarge { ty: GgmlType, n_elems: usize },
}
