//! SQL for Quiver: a DataFusion session over `quiver-storage` with the `metrics`, `samples`,
//! `experiments` and `system` catalog, and time-series functions for ML analysis.
//!
//! Built by the SQL and Flight issue; the workspace carries the crate from the start so the
//! layering (`promql` and `sql` siblings over `storage`) is fixed in `Cargo.toml`.
