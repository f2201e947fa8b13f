//! Experiment runs (JSON lines of metrics, and parameters). The wire formats that know no
//! server (remote write, the exposition formats) are the `quiver-ingest` crate.

pub mod experiments;
