//! Ingest formats: remote write and the text exposition format (for backfill import).

pub mod exposition;
pub mod remote_write;
pub mod text;
