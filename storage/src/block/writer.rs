//! Writes a block's Parquet files from series-sorted samples.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, MapBuilder, RecordBatch, StringBuilder, StringDictionaryBuilder,
    TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::Int32Type;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::values::ValueColumns;
use super::{BlockMeta, block_id, histograms_file_schema, samples_file_schema, series_file_schema};
use crate::error::Result;
use crate::histogram::FloatHistogram;
use crate::histogram::arrow::HistogramBuilder;
use crate::labels::{Labels, METRIC_NAME, SeriesId, Timestamp};

/// One series' samples for a block: sorted by time, unique timestamps.
#[derive(Debug, Clone, Copy)]
pub struct SeriesSamples<'a> {
    pub id: SeriesId,
    pub labels: &'a Labels,
    pub timestamps: &'a [Timestamp],
    pub values: &'a [f64],
    /// Native histogram samples: sorted by time, unique timestamps.
    pub hist_timestamps: &'a [Timestamp],
    pub histograms: &'a [Arc<FloatHistogram>],
}

impl SeriesSamples<'_> {
    fn is_empty(&self) -> bool {
        self.timestamps.is_empty() && self.hist_timestamps.is_empty()
    }

    /// The first and last time of either kind (the series must not be empty).
    fn span(&self) -> (Timestamp, Timestamp) {
        let firsts = self
            .timestamps
            .first()
            .into_iter()
            .chain(self.hist_timestamps.first());
        let lasts = self
            .timestamps
            .last()
            .into_iter()
            .chain(self.hist_timestamps.last());
        (
            *firsts.min().expect("non-empty"),
            *lasts.max().expect("non-empty"),
        )
    }
}

/// A block encoded in memory, ready to be put.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    samples: Bytes,
    series: Bytes,
    histograms: Option<Bytes>,
}

const ROW_GROUP_ROWS: usize = 1 << 20;

/// Encodes `series` (any order; sorted here by metric, then id) as block `seq`. Series without
/// samples are left out; `None` when nothing is left. CPU-bound: run it off the async runtime.
pub fn encode_block(
    seq: u64,
    level: u32,
    mut series: Vec<SeriesSamples<'_>>,
) -> Result<Option<EncodedBlock>> {
    series.retain(|s| !s.is_empty());
    if series.is_empty() {
        return Ok(None);
    }
    series.sort_unstable_by(|a, b| {
        a.labels
            .metric_name()
            .cmp(&b.labels.metric_name())
            .then(a.id.cmp(&b.id))
    });
    let (samples, index, histograms) = encode(&series)?;
    let meta = BlockMeta {
        id: block_id(seq),
        seq,
        min_time: series.iter().map(|s| s.span().0).min().unwrap_or_default(),
        max_time: series.iter().map(|s| s.span().1).max().unwrap_or_default(),
        num_samples: series.iter().map(|s| s.timestamps.len() as u64).sum(),
        num_series: series.len() as u64,
        level,
        samples_bytes: samples.len() as u64,
        series_bytes: index.len() as u64,
        num_histograms: series.iter().map(|s| s.histograms.len() as u64).sum(),
        histograms_bytes: histograms.as_ref().map_or(0, |h| h.len() as u64),
    };
    Ok(Some(EncodedBlock {
        meta,
        samples,
        series: index,
        histograms,
    }))
}

/// Puts both files of an encoded block (the manifest does not name it yet).
pub async fn put_block(store: &Arc<dyn ObjectStore>, block: &EncodedBlock) -> Result<()> {
    store
        .put(
            &block.meta.samples_path(),
            PutPayload::from_bytes(block.samples.clone()),
        )
        .await?;
    store
        .put(
            &block.meta.series_path(),
            PutPayload::from_bytes(block.series.clone()),
        )
        .await?;
    if let Some(h) = &block.histograms {
        store
            .put(
                &block.meta.histograms_path(),
                PutPayload::from_bytes(h.clone()),
            )
            .await?;
    }
    Ok(())
}

/// Encodes the files (histograms only when there are some); CPU-bound.
fn encode(series: &[SeriesSamples<'_>]) -> Result<(Bytes, Bytes, Option<Bytes>)> {
    let total: usize = series.iter().map(|s| s.timestamps.len()).sum();
    let mut metric = StringDictionaryBuilder::<Int32Type>::with_capacity(total, 1024, 64 * 1024);
    let mut ids = Vec::with_capacity(total);
    let mut ts = Vec::with_capacity(total);
    let mut vals = ValueColumns::with_capacity(total);

    let mut s_metric = StringDictionaryBuilder::<Int32Type>::new();
    let mut s_ids = Vec::with_capacity(series.len());
    let mut s_labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let (mut first_row, mut num_rows, mut min_t, mut max_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut h_first, mut h_num) = (Vec::new(), Vec::new());
    let mut hists = HistogramColumns::default();

    for s in series {
        let name = s.labels.metric_name().unwrap_or("");
        first_row.push(ids.len() as u64);
        num_rows.push(s.timestamps.len() as u64);
        let (lo, hi) = s.span();
        min_t.push(lo);
        max_t.push(hi);
        h_first.push(hists.len() as u64);
        h_num.push(s.histograms.len() as u64);
        hists.push_series(name, s);
        s_ids.push(s.id.0);
        s_metric.append_value(name);
        for l in s.labels.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
            s_labels.keys().append_value(&l.name);
            s_labels.values().append_value(&l.value);
        }
        s_labels.append(true)?;

        // The dictionary builder dedups the name; one append per sample is cheap.
        for _ in 0..s.timestamps.len() {
            metric.append_value(name);
        }
        ids.extend(std::iter::repeat_n(s.id.0, s.timestamps.len()));
        ts.extend_from_slice(s.timestamps);
        vals.push_series(s.values);
    }

    let (floats, mantissas, scales) = vals.finish();
    let samples = RecordBatch::try_new(
        samples_file_schema(),
        vec![
            Arc::new(metric.finish()) as ArrayRef,
            Arc::new(UInt64Array::from(ids)),
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(floats),
            Arc::new(mantissas),
            Arc::new(scales),
        ],
    )?;
    let index = RecordBatch::try_new(
        series_file_schema(),
        vec![
            Arc::new(s_ids.into_iter().collect::<UInt64Array>()) as ArrayRef,
            Arc::new(s_metric.finish()),
            Arc::new(s_labels.finish()),
            Arc::new(UInt64Array::from(first_row)),
            Arc::new(UInt64Array::from(num_rows)),
            Arc::new(TimestampMillisecondArray::from(min_t).with_timezone("UTC")),
            Arc::new(TimestampMillisecondArray::from(max_t).with_timezone("UTC")),
            Arc::new(UInt64Array::from(h_first)),
            Arc::new(UInt64Array::from(h_num)),
        ],
    )?;
    let histograms = match hists.len() {
        0 => None,
        _ => Some(write_parquet(&hists.finish()?, histograms_properties())?),
    };
    Ok((
        write_parquet(&samples, samples_properties())?,
        write_parquet(&index, series_properties())?,
        histograms,
    ))
}

/// The columns of `histograms.parquet` being built.
#[derive(Default)]
struct HistogramColumns {
    metric: StringDictionaryBuilder<Int32Type>,
    ids: Vec<u64>,
    ts: Vec<i64>,
    hists: HistogramBuilder,
}

impl HistogramColumns {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn push_series(&mut self, name: &str, s: &SeriesSamples<'_>) {
        for (t, h) in s.hist_timestamps.iter().zip(s.histograms) {
            self.metric.append_value(name);
            self.ids.push(s.id.0);
            self.ts.push(*t);
            self.hists.push(h);
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut columns = vec![
            Arc::new(self.metric.finish()) as ArrayRef,
            Arc::new(UInt64Array::from(self.ids)),
            Arc::new(TimestampMillisecondArray::from(self.ts).with_timezone("UTC")),
        ];
        columns.extend(self.hists.finish());
        Ok(RecordBatch::try_new(histograms_file_schema(), columns)?)
    }
}

fn write_parquet(batch: &RecordBatch, props: WriterProperties) -> Result<Bytes> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(Bytes::from(buf))
}

fn zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level"))
}

/// Samples: delta-encoded times, ids and mantissas, byte-stream-split floats, zstd, page statistics,
/// declared sorted by (metric, series_id, timestamp).
fn samples_properties() -> WriterProperties {
    let col = |n: &str| ColumnPath::from(n);
    WriterProperties::builder()
        .set_compression(zstd())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(col("metric"), true)
        .set_column_encoding(col("series_id"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(col("timestamp"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(col("value"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_encoding(col("value_mantissa"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(col("value_scale"), true)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 2,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build()
}

/// Histograms: sorted as the samples, zstd, byte-stream-split doubles, page statistics.
fn histograms_properties() -> WriterProperties {
    let col = |n: &str| ColumnPath::from(n);
    let mut b = WriterProperties::builder()
        .set_compression(zstd())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_encoding(col("series_id"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(col("timestamp"), Encoding::DELTA_BINARY_PACKED);
    for c in ["zero_threshold", "zero_count", "count", "sum"] {
        b = b
            .set_column_dictionary_enabled(col(c), false)
            .set_column_encoding(col(c), Encoding::BYTE_STREAM_SPLIT);
    }
    for c in ["positive_buckets", "negative_buckets"] {
        let path = ColumnPath::new(vec![c.into(), "list".into(), "item".into()]);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
    }
    b.set_sorting_columns(Some(
        (0..3)
            .map(|i| SortingColumn {
                column_idx: i,
                descending: false,
                nulls_first: false,
            })
            .collect(),
    ))
    .build()
}

fn series_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(zstd())
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build()
}
