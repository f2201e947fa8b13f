//! `load_with_nhcb`: besides the classic histogram series it loads (`x_bucket{le=…}`, `x_sum`,
//! `x_count`), Prometheus's test runner loads each classic histogram as a native histogram
//! with custom buckets (`x`, without `le`), one per timestamp at which any of its series has a
//! float sample. This ports `promqltest`'s `appendCustomHistogram` (storage's `nhcb` module is
//! `util/convertnhcb`).

use std::collections::BTreeMap;

use quiver_promql::series_desc::SequenceValue;
use quiver_storage::histogram::nhcb::{TempHistogram, parse_go_float};

use super::testfile::LoadSeries;

type LabelList = Vec<(String, String)>;

/// The native histogram series `load_with_nhcb` adds for the classic histograms in `series`.
pub fn convert(series: &[LoadSeries]) -> Result<Vec<LoadSeries>, String> {
    let mut classic: BTreeMap<LabelList, BTreeMap<i64, TempHistogram>> = BTreeMap::new();
    for s in series {
        let name = s
            .labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map_or("", |(_, v)| v.as_str());
        let (part, base) = if let Some(b) = name.strip_suffix("_bucket") {
            let Some(le) = s.labels.iter().find(|(n, _)| n == "le") else {
                return Err(format!("expected bucket label in metric {name}"));
            };
            match parse_go_float(&le.1) {
                Some(le) if !le.is_nan() => (Part::Bucket(le), b),
                _ => continue,
            }
        } else if let Some(b) = name.strip_suffix("_sum") {
            (Part::Sum, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (Part::Count, b)
        } else {
            continue;
        };
        let mut labels: LabelList = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le" && n != "__name__")
            .cloned()
            .collect();
        labels.push(("__name__".to_string(), base.to_string()));
        labels.sort();
        let by_time = classic.entry(labels).or_default();
        for (t, v) in &s.samples {
            if let SequenceValue::Float(v) = v {
                let h = by_time.entry(*t).or_default();
                match part {
                    Part::Bucket(le) => h.set_bucket_count(le, *v),
                    Part::Sum => h.set_sum(*v),
                    Part::Count => h.set_count(*v),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (labels, by_time) in classic {
        let mut samples = Vec::new();
        for (t, temp) in by_time {
            let h = temp.convert()?;
            h.validate().map_err(|e| e.to_string())?;
            samples.push((t, SequenceValue::Histogram { h, hint_set: false }));
        }
        out.push(LoadSeries { labels, samples });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Part {
    Bucket(f64),
    Sum,
    Count,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], values: &[f64]) -> LoadSeries {
        let mut labels: LabelList = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        LoadSeries {
            labels,
            samples: values
                .iter()
                .enumerate()
                .map(|(k, v)| (k as i64 * 1000, SequenceValue::Float(*v)))
                .collect(),
        }
    }

    #[test]
    fn classic_buckets_become_custom_buckets_per_timestamp() {
        let input = vec![
            series(
                &[("__name__", "x_bucket"), ("le", "+Inf"), ("j", "a")],
                &[4.0, 6.0],
            ),
            series(
                &[("__name__", "x_bucket"), ("le", "1"), ("j", "a")],
                &[1.0, 1.0],
            ),
            series(
                &[("__name__", "x_bucket"), ("le", "0.5"), ("j", "a")],
                &[0.0, 1.0],
            ),
            series(&[("__name__", "x_sum"), ("j", "a")], &[3.5, 7.0]),
            series(&[("__name__", "x_count"), ("j", "a")], &[4.0, 6.0]),
            series(&[("__name__", "y"), ("j", "a")], &[1.0, 1.0]),
        ];
        let out = convert(&input).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels,
            vec![
                ("__name__".to_string(), "x".to_string()),
                ("j".to_string(), "a".to_string())
            ]
        );
        let SequenceValue::Histogram { h, .. } = &out[0].samples[1].1 else {
            panic!("not a histogram");
        };
        assert_eq!(out[0].samples[1].0, 1000);
        assert_eq!(h.custom_values, vec![0.5, 1.0]);
        assert_eq!(h.positive_buckets, vec![1.0, 0.0, 5.0]);
        assert_eq!((h.count, h.sum), (6.0, 7.0));
    }

    #[test]
    fn buckets_that_are_not_cumulative_fail_the_load() {
        let input = vec![
            series(&[("__name__", "x_bucket"), ("le", "1")], &[5.0]),
            series(&[("__name__", "x_bucket"), ("le", "2")], &[3.0]),
        ];
        assert!(convert(&input).is_err());
    }
}
