//! Reads blocks: the series file once at open, then only the rows (and pages) of the series a
//! query selected from the samples file.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, Float64Array, MapArray, RecordBatch, TimestampMillisecondArray,
};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt8Type, UInt64Type,
};
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::PageIndexPolicy;

use super::io::StoreFile;

use super::BlockMeta;
use crate::error::{Error, Result};
use crate::histogram::FloatHistogram;
use crate::histogram::arrow::decode_columns;
use crate::labels::{Label, Labels, METRIC_NAME, SeriesId, Timestamp};

/// Where one series' samples are in a block.
#[derive(Debug, Clone, Copy)]
struct SeriesEntry {
    first_row: usize,
    num_rows: usize,
    min_time: Timestamp,
    max_time: Timestamp,
    hist_first_row: usize,
    hist_num_rows: usize,
}

/// An open block: its metadata, its series locations and the samples file's footer.
#[derive(Debug)]
pub struct BlockReader {
    meta: BlockMeta,
    store: Arc<dyn ObjectStore>,
    entries: HashMap<SeriesId, SeriesEntry>,
    samples_metadata: ArrowReaderMetadata,
    /// The histograms file's footer, for a block that has one.
    histograms_metadata: Option<ArrowReaderMetadata>,
}

/// The native histogram samples a block holds for some series, and per series its run.
#[derive(Debug, Default)]
pub struct BlockHistograms {
    pub runs: Vec<(SeriesId, std::ops::Range<usize>)>,
    pub timestamps: Vec<Timestamp>,
    pub histograms: Vec<Arc<FloatHistogram>>,
}

/// The samples a block holds for some series: one column pair and, per series, its run.
#[derive(Debug)]
pub struct BlockRead {
    pub runs: Vec<(SeriesId, std::ops::Range<usize>)>,
    pub timestamps: TimestampMillisecondArray,
    pub values: Float64Array,
}

impl BlockReader {
    /// Opens a block and answers its series with their labels (for the registry).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        meta: BlockMeta,
    ) -> Result<(Self, Vec<(SeriesId, Labels)>)> {
        let series_batches = read_all(&store, &meta.series_path(), meta.series_bytes).await?;
        let mut entries = HashMap::new();
        let mut labels = Vec::new();
        for batch in &series_batches {
            let corrupt = |d: &str| Error::Corrupt {
                what: format!("block {} series file", meta.id),
                detail: d.into(),
            };
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| corrupt(&format!("missing column {name}")))
            };
            let ids = col("series_id")?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| corrupt("series_id type"))?;
            let metric = datafusion::arrow::compute::cast(
                col("metric")?,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let metric = metric.as_string::<i32>();
            let map: &MapArray = col("labels")?
                .as_map_opt()
                .ok_or_else(|| corrupt("labels type"))?;
            let first = col("first_row")?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| corrupt("first_row type"))?;
            let num = col("num_rows")?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| corrupt("num_rows type"))?;
            let min_t = col("min_time")?
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| corrupt("min_time"))?;
            let max_t = col("max_time")?
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| corrupt("max_time"))?;
            // Blocks written before histograms were stored lack these columns.
            let optional = |name: &str| match batch.column_by_name(name) {
                None => Ok(None),
                Some(c) => c
                    .as_primitive_opt::<UInt64Type>()
                    .map(Some)
                    .ok_or_else(|| corrupt(&format!("{name} type"))),
            };
            let h_first = optional("histogram_first_row")?;
            let h_num = optional("histogram_num_rows")?;
            let keys = map.keys().as_string::<i32>();
            let values = map.values().as_string::<i32>();
            for row in 0..batch.num_rows() {
                let id = SeriesId(ids.value(row));
                let mut ls = vec![Label {
                    name: Arc::from(METRIC_NAME),
                    value: Arc::from(metric.value(row)),
                }];
                let offsets = map.value_offsets();
                for i in offsets[row] as usize..offsets[row + 1] as usize {
                    ls.push(Label {
                        name: Arc::from(keys.value(i)),
                        value: Arc::from(values.value(i)),
                    });
                }
                labels.push((id, Labels::from_trusted(ls)));
                entries.insert(
                    id,
                    SeriesEntry {
                        first_row: first.value(row) as usize,
                        num_rows: num.value(row) as usize,
                        min_time: min_t.value(row),
                        max_time: max_t.value(row),
                        hist_first_row: h_first.map_or(0, |c| c.value(row) as usize),
                        hist_num_rows: h_num.map_or(0, |c| c.value(row) as usize),
                    },
                );
            }
        }
        let mut reader = StoreFile::new(store.clone(), meta.samples_path(), meta.samples_bytes);
        let samples_metadata = ArrowReaderMetadata::load_async(
            &mut reader,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .await?;
        let histograms_metadata = if meta.num_histograms > 0 {
            let mut reader =
                StoreFile::new(store.clone(), meta.histograms_path(), meta.histograms_bytes);
            Some(
                ArrowReaderMetadata::load_async(
                    &mut reader,
                    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
                )
                .await?,
            )
        } else {
            None
        };
        Ok((
            BlockReader {
                meta,
                store,
                entries,
                samples_metadata,
                histograms_metadata,
            },
            labels,
        ))
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Whether the block has samples of `id` in `[mint, maxt]`.
    pub fn has(&self, id: SeriesId, mint: Timestamp, maxt: Timestamp) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.min_time <= maxt && e.max_time >= mint)
    }

    /// The ids of every series in the block.
    pub fn series_ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.entries.keys().copied()
    }

    /// The rows of `ids` (every series for `None`) whose series' time span meets
    /// `[mint, maxt]`: a selection (`None` for the whole file) and how many rows it keeps.
    pub fn row_selection(
        &self,
        ids: Option<&[SeriesId]>,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> (Option<RowSelection>, usize) {
        let total = self.meta.num_samples as usize;
        if ids.is_none() && self.meta.min_time >= mint && self.meta.max_time <= maxt {
            return (None, total);
        }
        let meets = |e: &&SeriesEntry| e.min_time <= maxt && e.max_time >= mint;
        let mut ranges: Vec<std::ops::Range<usize>> = match ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.entries.get(id))
                .filter(meets)
                .map(|e| e.first_row..e.first_row + e.num_rows)
                .collect(),
            None => self
                .entries
                .values()
                .filter(meets)
                .map(|e| e.first_row..e.first_row + e.num_rows)
                .collect(),
        };
        ranges.sort_unstable_by_key(|r| r.start);
        let n: usize = ranges.iter().map(|r| r.len()).sum();
        if n == total {
            return (None, total);
        }
        let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), total);
        (Some(selection), n)
    }

    /// Reads the samples of `ids` that fall in `[mint, maxt]`. Only the rows of those series are
    /// decoded (the page index skips the pages of others).
    pub async fn read(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<BlockRead> {
        let mut wanted: Vec<(SeriesId, SeriesEntry)> = ids
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| (*id, *e)))
            .filter(|(_, e)| e.num_rows > 0 && e.min_time <= maxt && e.max_time >= mint)
            .collect();
        wanted.sort_unstable_by_key(|(_, e)| e.first_row);
        if wanted.is_empty() {
            return Ok(BlockRead {
                runs: Vec::new(),
                timestamps: TimestampMillisecondArray::from(Vec::<i64>::new()),
                values: Float64Array::from(Vec::<f64>::new()),
            });
        }
        let total_rows = self.meta.num_samples as usize;
        let selection = RowSelection::from_consecutive_ranges(
            wanted
                .iter()
                .map(|(_, e)| e.first_row..e.first_row + e.num_rows),
            total_rows,
        );
        let reader = StoreFile::new(
            self.store.clone(),
            self.meta.samples_path(),
            self.meta.samples_bytes,
        );
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            reader,
            self.samples_metadata.clone(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), [2, 3, 4, 5]);
        let batches: Vec<RecordBatch> = builder
            .with_projection(mask)
            .with_row_selection(selection)
            .with_batch_size(64 * 1024)
            .build()?
            .try_collect()
            .await?;
        let column = |i: usize| -> Result<Arc<dyn Array>> {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            Ok(concat(&parts)?)
        };
        let timestamps = column(0)?
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        let values = super::values::decode(
            column(1)?.as_primitive::<Float64Type>(),
            column(2)?.as_primitive::<Int64Type>(),
            column(3)?.as_primitive::<UInt8Type>(),
        );
        let expected: usize = wanted.iter().map(|(_, e)| e.num_rows).sum();
        if timestamps.len() != expected {
            return Err(Error::Corrupt {
                what: format!("block {}", self.meta.id),
                detail: format!(
                    "read {} rows, the series file promised {expected}",
                    timestamps.len()
                ),
            });
        }
        // Each series' run, narrowed to [mint, maxt] (its samples are sorted by time).
        let ts_values = timestamps.values();
        let mut runs = Vec::with_capacity(wanted.len());
        let mut start = 0;
        for (id, e) in &wanted {
            let run = &ts_values[start..start + e.num_rows];
            let lo = run.partition_point(|t| *t < mint);
            let hi = run.partition_point(|t| *t <= maxt);
            if hi > lo {
                runs.push((*id, start + lo..start + hi));
            }
            start += e.num_rows;
        }
        Ok(BlockRead {
            runs,
            timestamps,
            values,
        })
    }
}

impl BlockReader {
    /// An upper bound of the histogram samples of `ids` in `[mint, maxt]`: all of each
    /// series whose span meets the range.
    pub fn histogram_bound(&self, ids: &[SeriesId], mint: Timestamp, maxt: Timestamp) -> usize {
        if self.meta.num_histograms == 0 {
            return 0;
        }
        ids.iter()
            .filter_map(|id| self.entries.get(id))
            .filter(|e| e.min_time <= maxt && e.max_time >= mint)
            .map(|e| e.hist_num_rows)
            .sum()
    }

    /// Reads the histogram samples of `ids` that fall in `[mint, maxt]` (only their rows and
    /// pages are decoded).
    pub async fn read_histograms(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<BlockHistograms> {
        let Some(metadata) = &self.histograms_metadata else {
            return Ok(BlockHistograms::default());
        };
        let mut wanted: Vec<(SeriesId, SeriesEntry)> = ids
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| (*id, *e)))
            .filter(|(_, e)| e.hist_num_rows > 0 && e.min_time <= maxt && e.max_time >= mint)
            .collect();
        if wanted.is_empty() {
            return Ok(BlockHistograms::default());
        }
        wanted.sort_unstable_by_key(|(_, e)| e.hist_first_row);
        let total = self.meta.num_histograms as usize;
        let corrupt = |d: String| Error::Corrupt {
            what: format!("block {} histograms file", self.meta.id),
            detail: d,
        };
        if wanted
            .iter()
            .any(|(_, e)| e.hist_first_row.saturating_add(e.hist_num_rows) > total)
        {
            return Err(corrupt(
                "a series' rows lie past the end of the file".into(),
            ));
        }
        let selection = RowSelection::from_consecutive_ranges(
            wanted
                .iter()
                .map(|(_, e)| e.hist_first_row..e.hist_first_row + e.hist_num_rows),
            total,
        );
        let reader = StoreFile::new(
            self.store.clone(),
            self.meta.histograms_path(),
            self.meta.histograms_bytes,
        );
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), 2..14);
        let batches: Vec<RecordBatch> = builder
            .with_projection(mask)
            .with_row_selection(selection)
            .with_batch_size(8 * 1024)
            .build()?
            .try_collect()
            .await?;
        let mut out = BlockHistograms::default();
        for b in &batches {
            decode_histograms(b, &mut out).map_err(corrupt)?;
        }
        let expected: usize = wanted.iter().map(|(_, e)| e.hist_num_rows).sum();
        if out.timestamps.len() != expected {
            return Err(corrupt(format!(
                "read {} rows, the series file promised {expected}",
                out.timestamps.len()
            )));
        }
        let mut start = 0;
        for (id, e) in &wanted {
            let run = &out.timestamps[start..start + e.hist_num_rows];
            let lo = run.partition_point(|t| *t < mint);
            let hi = run.partition_point(|t| *t <= maxt);
            if hi > lo {
                out.runs.push((*id, start + lo..start + hi));
            }
            start += e.hist_num_rows;
        }
        Ok(out)
    }
}

/// Decodes the projected columns of `histograms.parquet` (timestamp … custom_values).
fn decode_histograms(
    b: &RecordBatch,
    out: &mut BlockHistograms,
) -> std::result::Result<(), String> {
    let ts = b
        .column(0)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or("timestamp type")?;
    decode_columns(&b.columns()[1..], None, |row, h| {
        if let Some(h) = h {
            out.timestamps.push(ts.value(row));
            out.histograms.push(Arc::new(h));
        }
    })
}

/// Reads a whole (small) Parquet file.
async fn read_all(
    store: &Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
    size: u64,
) -> Result<Vec<RecordBatch>> {
    let reader = StoreFile::new(store.clone(), path.clone(), size);
    let batches = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .build()?
        .try_collect()
        .await?;
    Ok(batches)
}
