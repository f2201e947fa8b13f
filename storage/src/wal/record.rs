//! The WAL record: one append (its new series and its samples) in a columnar layout.
//!
//! ```text
//! u8 type (1 = append)
//! u32 series count, then per series: u64 id, u16 label count, then per label:
//!     u32 name length, name bytes, u32 value length, value bytes
//! u32 sample count n, then n x u64 series id, n x i64 timestamp (ms), n x u64 value bits
//! type 2 only: u32 histogram count m, then m x u64 series id, m x i64 timestamp (ms), then
//!     m histograms in `FloatHistogram::encode`'s form
//! ```
//! All integers are little-endian. A record without histograms is written as type 1, so a
//! server that never received one writes exactly what earlier versions wrote.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::histogram::FloatHistogram;
use crate::labels::{Label, Labels, SeriesId, Timestamp};

const TYPE_APPEND: u8 = 1;
const TYPE_APPEND_HISTOGRAMS: u8 = 2;

/// One append as the WAL stores it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalRecord {
    /// Series first seen in this append, with their ids.
    pub new_series: Vec<(SeriesId, Labels)>,
    pub series_ids: Vec<SeriesId>,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
    /// Native histogram samples: series, time, value (columns of equal length).
    pub hist_ids: Vec<SeriesId>,
    pub hist_timestamps: Vec<Timestamp>,
    pub histograms: Vec<Arc<FloatHistogram>>,
}

impl WalRecord {
    /// Encodes the record into `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = self.series_ids.len();
        out.reserve(1 + 8 + n * 24 + self.new_series.len() * 64);
        out.push(if self.histograms.is_empty() {
            TYPE_APPEND
        } else {
            TYPE_APPEND_HISTOGRAMS
        });
        out.extend_from_slice(&(self.new_series.len() as u32).to_le_bytes());
        for (id, labels) in &self.new_series {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
            for l in labels.iter() {
                out.extend_from_slice(&(l.name.len() as u32).to_le_bytes());
                out.extend_from_slice(l.name.as_bytes());
                out.extend_from_slice(&(l.value.len() as u32).to_le_bytes());
                out.extend_from_slice(l.value.as_bytes());
            }
        }
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for id in &self.series_ids {
            out.extend_from_slice(&id.0.to_le_bytes());
        }
        for t in &self.timestamps {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in &self.values {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        if self.histograms.is_empty() {
            return;
        }
        out.extend_from_slice(&(self.histograms.len() as u32).to_le_bytes());
        for id in &self.hist_ids {
            out.extend_from_slice(&id.0.to_le_bytes());
        }
        for t in &self.hist_timestamps {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for h in &self.histograms {
            h.encode(out);
        }
    }

    /// Samples of both kinds.
    pub fn num_samples(&self) -> usize {
        self.timestamps.len() + self.histograms.len()
    }

    /// Decodes a record; any inconsistency is a corruption error, never a panic.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader { buf, pos: 0 };
        let ty = r.u8()?;
        if ty != TYPE_APPEND && ty != TYPE_APPEND_HISTOGRAMS {
            return Err(corrupt(format!("unknown record type {ty}")));
        }
        let n_series = r.u32()? as usize;
        let mut new_series = Vec::with_capacity(n_series.min(buf.len() / 10));
        for _ in 0..n_series {
            let id = SeriesId(r.u64()?);
            let n_labels = r.u16()? as usize;
            let mut labels = Vec::with_capacity(n_labels);
            for _ in 0..n_labels {
                let name = r.string()?;
                let value = r.string()?;
                labels.push(Label { name, value });
            }
            new_series.push((id, Labels::from_trusted(labels)));
        }
        let n = r.u32()? as usize;
        let fits = if ty == TYPE_APPEND {
            r.remaining() == n * 24
        } else {
            r.remaining() >= n * 24
        };
        if !fits {
            return Err(corrupt(format!(
                "{n} samples need {} bytes, {} left",
                n * 24,
                r.remaining()
            )));
        }
        let series_ids = (0..n)
            .map(|_| r.u64().map(SeriesId))
            .collect::<Result<_>>()?;
        let timestamps = (0..n)
            .map(|_| r.u64().map(|v| v as i64))
            .collect::<Result<_>>()?;
        let values = (0..n)
            .map(|_| r.u64().map(f64::from_bits))
            .collect::<Result<_>>()?;
        let (mut hist_ids, mut hist_timestamps, mut histograms) =
            (Vec::new(), Vec::new(), Vec::new());
        if ty == TYPE_APPEND_HISTOGRAMS {
            let m = r.u32()? as usize;
            // Each histogram takes at least 57 bytes.
            if m == 0 || r.remaining() < m * (16 + 57) {
                return Err(corrupt(format!(
                    "{m} histograms cannot fit in {} bytes",
                    r.remaining()
                )));
            }
            hist_ids = (0..m)
                .map(|_| r.u64().map(SeriesId))
                .collect::<Result<_>>()?;
            hist_timestamps = (0..m)
                .map(|_| r.u64().map(|v| v as i64))
                .collect::<Result<_>>()?;
            histograms = Vec::with_capacity(m);
            for _ in 0..m {
                let (h, used) = FloatHistogram::decode(&r.buf[r.pos..])
                    .map_err(|e| corrupt(format!("histogram: {e}")))?;
                r.pos += used;
                histograms.push(Arc::new(h));
            }
            if r.remaining() != 0 {
                return Err(corrupt(format!(
                    "{} bytes after the histograms",
                    r.remaining()
                )));
            }
        }
        Ok(WalRecord {
            new_series,
            series_ids,
            timestamps,
            values,
            hist_ids,
            hist_timestamps,
            histograms,
        })
    }
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        what: "wal record".into(),
        detail,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.remaining() < n {
            return Err(corrupt(format!("record ends early at byte {}", self.pos)));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<Arc<str>> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Arc::from)
            .map_err(|_| corrupt("label is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelLimits;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(
            names in proptest::collection::vec("[a-z]{1,8}", 0..4),
            samples in proptest::collection::vec((0u64..100, any::<i64>(), any::<u64>()), 0..50),
        ) {
            let new_series = names.iter().enumerate().map(|(i, n)| {
                let l = Labels::try_from_pairs([("__name__", n.as_str()), ("i", "x")], &LabelLimits::default()).unwrap();
                (SeriesId(i as u64), l)
            }).collect();
            let rec = WalRecord {
                new_series,
                series_ids: samples.iter().map(|s| SeriesId(s.0)).collect(),
                timestamps: samples.iter().map(|s| s.1).collect(),
                values: samples.iter().map(|s| f64::from_bits(s.2)).collect(),
                ..Default::default()
            };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            let back = WalRecord::decode(&buf).unwrap();
            prop_assert_eq!(&back.new_series, &rec.new_series);
            prop_assert_eq!(&back.series_ids, &rec.series_ids);
            prop_assert_eq!(&back.timestamps, &rec.timestamps);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back.values), bits(&rec.values));
            prop_assert!(back.histograms.is_empty());
            prop_assert_eq!(buf[0], TYPE_APPEND);
        }

        #[test]
        fn records_with_histograms_round_trip(
            samples in proptest::collection::vec((0u64..100, any::<i64>(), 0u32..5, any::<u64>()), 1..20),
        ) {
            let rec = WalRecord {
                series_ids: vec![SeriesId(9)],
                timestamps: vec![3],
                values: vec![1.5],
                hist_ids: samples.iter().map(|s| SeriesId(s.0)).collect(),
                hist_timestamps: samples.iter().map(|s| s.1).collect(),
                histograms: samples.iter().map(|s| Arc::new(FloatHistogram {
                    schema: 3,
                    sum: f64::from_bits(s.3),
                    count: s.2 as f64,
                    positive_spans: vec![crate::histogram::Span { offset: -2, length: s.2 }],
                    positive_buckets: (0..s.2).map(f64::from).collect(),
                    ..Default::default()
                })).collect(),
                ..Default::default()
            };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            prop_assert_eq!(buf[0], TYPE_APPEND_HISTOGRAMS);
            let back = WalRecord::decode(&buf).unwrap();
            prop_assert_eq!(&back.hist_ids, &rec.hist_ids);
            prop_assert_eq!(&back.hist_timestamps, &rec.hist_timestamps);
            prop_assert_eq!(back.histograms.len(), rec.histograms.len());
            for (a, b) in back.histograms.iter().zip(&rec.histograms) {
                prop_assert_eq!(a.sum.to_bits(), b.sum.to_bits());
                prop_assert_eq!(&a.positive_buckets, &b.positive_buckets);
            }
            prop_assert_eq!(&back.values, &rec.values);
            for cut in 0..buf.len() {
                prop_assert!(WalRecord::decode(&buf[..cut]).is_err());
            }
        }

        #[test]
        fn truncated_records_are_errors_not_panics(cut in 0usize..200) {
            let rec = WalRecord {
                new_series: vec![(SeriesId(1), Labels::try_from_pairs([("__name__", "up")], &LabelLimits::default()).unwrap())],
                series_ids: vec![SeriesId(1); 4], timestamps: vec![1, 2, 3, 4], values: vec![1.0; 4],
                hist_ids: vec![SeriesId(1)], hist_timestamps: vec![5],
                histograms: vec![Arc::new(FloatHistogram { count: 1.0, ..Default::default() })],
            };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            if cut < buf.len() {
                prop_assert!(WalRecord::decode(&buf[..cut]).is_err());
            }
        }
    }
}
