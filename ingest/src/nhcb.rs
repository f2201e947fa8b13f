//! `convert_classic_histograms_to_nhcb` for the text formats, as Prometheus's `NHCBParser`
//! wraps its text parsers: the `_bucket`, `_count` and `_sum` series of a family typed
//! `histogram` (not `gaugehistogram`, which Prometheus leaves as it is) are gathered per label
//! set and become one native histogram with custom buckets, named as the family. A group whose buckets do not convert
//! (not cumulative, a count that disagrees with `+Inf`) gives no histogram, as in Prometheus.
//! The protobuf format converts in its own decoder ([`crate::exposition_proto`]).

use std::collections::HashMap;

use quiver_storage::FloatHistogram;
use quiver_storage::histogram::nhcb::{TempHistogram, parse_go_float};

use crate::exposition::{MetricType, parse_series};
use crate::exposition_proto::series_text;

/// A converted histogram: its series in the quoted text syntax, timestamp and histogram.
pub type Converted = (String, Option<i64>, FloatHistogram);

/// Gathers the classic histograms of one exposition.
#[derive(Default)]
pub struct ClassicHistograms {
    /// The family being read, if it is a histogram: its name.
    family: Option<String>,
    groups: Vec<Group>,
    index: HashMap<(String, Vec<(String, String)>), usize>,
}

struct Group {
    family: String,
    labels: Vec<(String, String)>,
    timestamp_ms: Option<i64>,
    temp: TempHistogram,
}

impl ClassicHistograms {
    /// A `# TYPE` line: the family that follows.
    pub fn on_type(&mut self, name: &str, kind: MetricType) {
        // Only `histogram` families: Prometheus's `NHCBParser` leaves gauge histograms (their
        // `_gcount` and `_gsum`) as they are in the text formats.
        self.family = match kind {
            MetricType::Histogram => Some(name.to_string()),
            _ => None,
        };
    }

    /// Takes a sample if it is part of a classic histogram (then it is gathered and `true`
    /// returned); other samples are left to the caller.
    pub fn offer(&mut self, series: &str, timestamp_ms: Option<i64>, value: f64) -> bool {
        let Some(family) = &self.family else {
            return false;
        };
        // Cheap test on the text first: the series must start with the family's name.
        let bare = series.trim_start_matches(['{', '"']);
        if !bare.starts_with(family.as_str()) {
            return false;
        }
        let Ok(mut labels) = parse_series(series) else {
            return false;
        };
        let Some(name) = labels
            .iter()
            .position(|(n, _)| n == "__name__")
            .map(|i| labels.remove(i).1)
        else {
            return false;
        };
        let Some(suffix) = name.strip_prefix(family.as_str()) else {
            return false;
        };
        let mut le = None;
        if suffix == "_bucket" {
            let Some(i) = labels.iter().position(|(n, _)| n == "le") else {
                return false;
            };
            match parse_go_float(&labels.remove(i).1) {
                Some(v) if !v.is_nan() => le = Some(v),
                _ => return false,
            }
        } else if suffix != "_count" && suffix != "_sum" {
            return false;
        }
        labels.sort();
        let key = (family.clone(), labels);
        let k = match self.index.get(&key) {
            Some(k) => *k,
            None => {
                self.groups.push(Group {
                    family: family.clone(),
                    labels: key.1.clone(),
                    timestamp_ms,
                    temp: TempHistogram::default(),
                });
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[k];
        match (suffix, le) {
            ("_bucket", Some(le)) => g.temp.set_bucket_count(le, value),
            ("_count", _) => g.temp.set_count(value),
            _ => g.temp.set_sum(value),
        }
        true
    }

    /// The converted histograms: (series in the quoted text syntax, timestamp, histogram).
    pub fn finish(self) -> Vec<Converted> {
        self.groups
            .into_iter()
            .filter_map(|g| {
                let h = g.temp.convert().ok()?;
                h.validate().ok()?;
                let labels: Vec<(&str, &str)> = g
                    .labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                Some((series_text(&g.family, "", &labels, None), g.timestamp_ms, h))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Entry, Format, Parser};

    fn run(text: &str) -> (Vec<String>, Vec<Converted>) {
        let mut c = ClassicHistograms::default();
        let mut rest = Vec::new();
        for e in Parser::new(text, Format::Text) {
            match e.unwrap() {
                Entry::Type(n, k) => c.on_type(n, k),
                Entry::Sample(s) if !c.offer(s.series, s.timestamp_ms, s.value) => {
                    rest.push(s.series.to_string());
                }
                _ => {}
            }
        }
        (rest, c.finish())
    }

    #[test]
    fn the_series_of_a_histogram_family_become_one_custom_buckets_histogram_per_label_set() {
        let (rest, hs) = run("# TYPE rpc_seconds histogram\n\
             rpc_seconds_bucket{svc=\"a\",le=\"0.5\"} 1\n\
             rpc_seconds_bucket{svc=\"a\",le=\"1\"} 3\n\
             rpc_seconds_bucket{svc=\"a\",le=\"+Inf\"} 4\n\
             rpc_seconds_sum{svc=\"a\"} 5\n\
             rpc_seconds_count{svc=\"a\"} 4\n\
             rpc_seconds_bucket{svc=\"b\",le=\"+Inf\"} 0\n\
             rpc_seconds_count{svc=\"b\"} 0\n\
             # TYPE other gauge\nother 1\nrpc_seconds_count 9\n");
        assert_eq!(rest, ["other", "rpc_seconds_count"]);
        assert_eq!(hs.len(), 2);
        let (series, t, h) = &hs[0];
        assert_eq!(
            parse_series(series).unwrap(),
            vec![
                ("__name__".to_string(), "rpc_seconds".to_string()),
                ("svc".to_string(), "a".to_string())
            ]
        );
        assert_eq!(*t, None);
        assert_eq!(h.custom_values, vec![0.5, 1.0]);
        assert_eq!(h.positive_buckets, vec![1.0, 2.0, 1.0]);
        assert_eq!((h.count, h.sum), (4.0, 5.0));
    }

    #[test]
    fn gauge_histograms_are_left_as_they_are() {
        let mut c = ClassicHistograms::default();
        c.on_type("q", MetricType::GaugeHistogram);
        assert!(!c.offer("q_bucket{le=\"1\"}", None, 1.0));
        assert!(c.finish().is_empty());
    }

    #[test]
    fn buckets_that_do_not_convert_give_no_histogram() {
        let (_, hs) = run("# TYPE h histogram\n\
             h_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 3\nh_count 5\n");
        assert!(hs.is_empty());
    }
}
