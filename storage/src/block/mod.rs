//! Blocks: immutable Parquet files holding the samples of one time range, written through
//! `object_store`. See `docs/storage-format.md` for the layout.
//!
//! Each block is a folder with two files:
//! - `samples.parquet`: `metric` (dictionary string), `series_id`, `timestamp` (ms, UTC),
//!   and the value as `value` / `value_mantissa` / `value_scale` ([`values`]), sorted by
//!   (metric, series_id, timestamp) and declared so;
//! - `series.parquet`: one row per series: `series_id`, `metric`, `labels` (a map without
//!   `__name__`), and where its samples are (`first_row`, `num_rows`, `min_time`, `max_time`,
//!   and `histogram_first_row`, `histogram_num_rows`), so a query reads only the rows (and
//!   pages) of the series it selected;
//! - `histograms.parquet`, only in a block that holds native histogram samples: one row per
//!   sample, sorted as `samples.parquet`, the histogram's fields as columns (spans and buckets
//!   as lists).

mod io;
mod reader;
pub mod values;
mod writer;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

pub use reader::{BlockHistograms, BlockRead, BlockReader};
pub use writer::{EncodedBlock, SeriesSamples, encode_block, put_block};

use crate::histogram::arrow::histogram_fields;
use crate::labels::Timestamp;

pub const SAMPLES_FILE: &str = "samples.parquet";
pub const SERIES_FILE: &str = "series.parquet";
pub const HISTOGRAMS_FILE: &str = "histograms.parquet";
/// Every file a block may hold (the only names Quiver deletes in a block folder).
pub const BLOCK_FILES: [&str; 3] = [SAMPLES_FILE, SERIES_FILE, HISTOGRAMS_FILE];

/// What the manifest records of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// The block's folder name.
    pub id: String,
    /// Order of writing: where blocks overlap, a sample in the higher `seq` wins.
    pub seq: u64,
    pub min_time: Timestamp,
    pub max_time: Timestamp,
    pub num_samples: u64,
    pub num_series: u64,
    /// 0 for a block cut from the head; compaction raises it.
    pub level: u32,
    pub samples_bytes: u64,
    pub series_bytes: u64,
    /// Native histogram samples (in `histograms.parquet`; none: the file does not exist).
    /// Blocks holding some are named by a version-2 manifest only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_histograms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub histograms_bytes: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl BlockMeta {
    pub fn samples_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}/{SAMPLES_FILE}", self.id))
    }

    pub fn series_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}/{SERIES_FILE}", self.id))
    }

    pub fn histograms_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}/{HISTOGRAMS_FILE}", self.id))
    }

    /// The paths of the files this block has.
    pub fn paths(&self) -> Vec<object_store::path::Path> {
        let mut out = vec![self.samples_path(), self.series_path()];
        if self.num_histograms > 0 {
            out.push(self.histograms_path());
        }
        out
    }

    pub fn overlaps(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        self.min_time <= maxt && self.max_time >= mint
    }
}

/// The folder name of the block with this sequence number.
pub fn block_id(seq: u64) -> String {
    format!("b{seq:012}")
}

/// Whether a folder name is one [`block_id`] makes (`b` and at least twelve digits): the only
/// folders the engine ever deletes as orphans.
pub fn is_block_id(name: &str) -> bool {
    name.strip_prefix('b')
        .is_some_and(|digits| digits.len() >= 12 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The type of the timestamp columns: milliseconds, UTC, so DuckDB and pandas see times.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The schema of the `samples` table (values whole).
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        metric_field("metric"),
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", timestamp_type(), false),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// The schema of `samples.parquet` on disk: the value split as `values.rs` describes.
pub fn samples_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        metric_field("metric"),
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", timestamp_type(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("value_mantissa", DataType::Int64, true),
        Field::new("value_scale", DataType::UInt8, false),
    ]))
}

/// The schema of `series.parquet`.
pub fn series_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        metric_field("metric"),
        labels_field(),
        Field::new("first_row", DataType::UInt64, false),
        Field::new("num_rows", DataType::UInt64, false),
        Field::new("min_time", timestamp_type(), false),
        Field::new("max_time", timestamp_type(), false),
        Field::new("histogram_first_row", DataType::UInt64, false),
        Field::new("histogram_num_rows", DataType::UInt64, false),
    ]))
}

/// The schema of `histograms.parquet`.
pub fn histograms_file_schema() -> SchemaRef {
    let mut fields = vec![
        metric_field("metric"),
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", timestamp_type(), false),
    ];
    fields.extend(histogram_fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

/// A dictionary-encoded string column (metric names repeat on every row).
fn metric_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    )
}

/// The `labels` map column: label name to value, `__name__` left out (it is `metric`).
pub fn labels_field() -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    Field::new("labels", DataType::Map(Arc::new(entries), false), false)
}
