//! Quiver's storage engine: samples in, Arrow batches and Parquet files out.
//!
//! ```text
//!  WriteBatch ─► Db::append ─► series registry (ids, inverted index)
//!                    │
//!                    ├─► WAL (segments, CRC per record, group commit, fsync) ─► acknowledged
//!                    └─► head (per-series sorted samples, queryable at once)
//!                                 │  Db::flush (head due: 2 h span or too many samples)
//!                                 ▼
//!               blocks: samples + series (+ histograms) .parquet per aligned window, via object_store
//!                                 │  manifest.json replaced atomically; WAL segments dropped
//!                                 ▼
//!               Db::compact (merge windows: 2 h, 1 d) · Db::apply_retention (drop old blocks)
//!
//!  Db::read / Db::series ◄── blocks (by seq) + frozen heads + head, newest wins
//!  provider::{SamplesTable, SeriesTable} ─► DataFusion
//! ```
//!
//! Start reading at [`Db`] (`db/mod.rs`; reads in `db/read.rs`), then [`wal`], [`head`], [`block`], [`maintenance`].
//! The persisted formats are described in `docs/storage-format.md`.

pub mod block;
mod db;
pub mod error;
pub mod fsync;
pub mod head;
pub mod histogram;
pub mod index;
pub mod labels;
pub mod lease;
pub mod maintenance;
pub mod manifest;
pub mod matchers;
pub mod provider;
pub mod registry;
pub mod wal;

pub use db::{
    Cardinality, Db, HeadStats, Limits, Options, ScanSources, SeriesHistograms, SeriesSamples,
    StorageMetrics, WriteBatch,
};
pub use error::{Error, ErrorKind, Result};
pub use histogram::{CounterResetHint, FloatHistogram, Span};
pub use labels::{
    LabelLimits, Labels, METRIC_NAME, STALE_NAN_BITS, SeriesId, Timestamp, is_stale_nan,
    legacy_label_name, legacy_metric_name, valid_label_name,
};
pub use matchers::{MatchOp, Matcher, Matchers, anchored_regex};
