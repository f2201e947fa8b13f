//! Integration tests of `quiver-promql`: Prometheus's test-file format, our own cases in
//! `tests/promql/*.test` at the workspace root, and the upstream files in
//! `../shared/promql-testdata/` when they are there.

mod conformance;
mod streaming;
mod support;
