//! The GPU engine.

pub mod repack;
