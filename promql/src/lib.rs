//! PromQL for Quiver: `promql-parser` ASTs compiled to DataFusion logical plans over
//! `quiver-storage`'s table providers, with extension nodes for what SQL operators do not
//! express (lookback selection, range windows, extrapolated rates, vector matching).
//!
//! Built by the PromQL issue; the workspace carries the crate from the start so the layering
//! (`promql` and `sql` siblings over `storage`) is fixed in `Cargo.toml`.
