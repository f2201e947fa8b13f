//! Ingest formats: remote write, the text exposition format (for backfill import), and
//! experiment runs (JSON lines).

pub mod experiments;
pub mod exposition;
pub mod json_depth;
pub mod remote_write;
pub mod text;
