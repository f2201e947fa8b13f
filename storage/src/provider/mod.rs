//! DataFusion table providers over the engine: `samples` (every sample of every series) and
//! `series` (every series with its labels).
//!
//! `samples` pushes down equality and `IN` filters on `metric` and `series_id` (resolved in the
//! series index, so only the selected series are read) and range filters on `timestamp`
//! (only the blocks and rows in range are read). Pushdown is inexact: DataFusion still applies
//! the filters, so a filter this provider does not understand is simply not pushed.
//!
//! - [`range`]: what pushed filters narrow a scan to ([`ScanRange`]).
//! - [`samples`]: the `samples` table; a scan reads blocks that share no time with another
//!   source straight from their Parquet files ([`block_scan`], streamed and in parallel) and
//!   merges the rest (head, frozen heads, overlapping blocks) through `Db::read`.
//!   [`SeriesScan`] is what PromQL's selectors read: given series over a time range, or only
//!   each one's newest sample there.
//! - [`series`]: the `series` table.
//! - [`histograms`]: the `histograms` table, native histogram samples as a struct column.

mod block_scan;
mod histograms;
mod range;
mod samples;
mod series;

pub use histograms::{HistogramsTable, histograms_table_schema};
pub use range::ScanRange;
pub use samples::{
    SamplesTable, ScanBudget, SeriesScan, histogram_weight, series_scan_histogram_schema,
};
pub use series::SeriesTable;
