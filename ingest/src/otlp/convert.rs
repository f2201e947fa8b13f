//! A decoded OTLP request turned into Prometheus series, as Prometheus 3's receiver does it
//! (`storage/remote/otlptranslator/prometheusremotewrite`): gauges and cumulative sums one
//! series each, histograms `_bucket`/`_sum`/`_count`, summaries `{quantile}`/`_sum`/`_count`,
//! `job` and `instance` from the resource, the other resource attributes on `target_info`.
//!
//! Where Prometheus fails the whole request (a delta sum, an exponential histogram Quiver
//! cannot store yet, a name that translates to nothing), Quiver refuses only the metric's
//! points and says so in OTLP's partial-success answer: the sender learns what was not
//! stored, and everything else is.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_storage::{Labels, Limits, METRIC_NAME, STALE_NAN_BITS, WriteBatch};

use super::translate::{self, Kind, LabelNamer, Strategy};
use super::{Attr, Data, Metric, Point, Request, ResourceMetrics, ScopeMetrics, Temporality};
use crate::exposition::MetricType;
use crate::remote_write::DecodeError;
use crate::remote_write2::Metadata;

/// The `otlp:` section of the configuration, and the lookback that spaces `target_info`.
#[derive(Debug, Clone)]
pub struct Options {
    pub translation_strategy: Strategy,
    pub promote_resource_attributes: Vec<String>,
    pub promote_all_resource_attributes: bool,
    pub ignore_resource_attributes: Vec<String>,
    pub keep_identifying_resource_attributes: bool,
    pub promote_scope_metadata: bool,
    pub label_name_underscore_sanitization: bool,
    pub label_name_preserve_multiple_underscores: bool,
    /// `--query.lookback-delta` in milliseconds: `target_info` is written every half of it
    /// over the span of a resource's points, so it is found at every instant between them.
    pub lookback_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            translation_strategy: Strategy::default(),
            promote_resource_attributes: Vec::new(),
            promote_all_resource_attributes: false,
            ignore_resource_attributes: Vec::new(),
            keep_identifying_resource_attributes: false,
            promote_scope_metadata: false,
            label_name_underscore_sanitization: true,
            label_name_preserve_multiple_underscores: true,
            lookback_ms: 5 * 60 * 1000,
        }
    }
}

/// Most `target_info` samples one resource gets in one request (its points may span years).
pub const MAX_TARGET_INFO_SAMPLES: i64 = 1000;

/// Most distinct refusal messages kept for the answer.
const MAX_MESSAGES: usize = 8;

/// What a request became.
#[derive(Debug, Default)]
pub struct Converted {
    pub batch: WriteBatch,
    /// Each family's type, help and unit, for `/api/v1/metadata`.
    pub metadata: Vec<(String, Metadata)>,
    /// Data points not stored, and why (the first few reasons).
    pub rejected_points: u64,
    pub messages: Vec<String>,
    /// Exemplars received and not stored (Quiver has no exemplar storage).
    pub exemplars_dropped: u64,
}

impl Converted {
    fn reject(&mut self, points: usize, message: String) {
        self.rejected_points += points as u64;
        if self.messages.len() < MAX_MESSAGES && !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }

    /// OTLP's `partial_success.error_message`: the refusals, and the exemplars dropped.
    pub fn error_message(&self) -> String {
        let mut parts = self.messages.clone();
        if self.exemplars_dropped > 0 {
            parts.push(format!(
                "{} exemplars were not stored: Quiver does not store exemplars (their data \
                 points were)",
                self.exemplars_dropped
            ));
        }
        parts.join("; ")
    }
}

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// Turns a request into series, checking each against `limits`.
pub fn convert(
    req: &Request<'_>,
    opts: &Options,
    limits: &Limits,
) -> Result<Converted, DecodeError> {
    let mut c = Converter {
        opts,
        limits,
        namer: LabelNamer {
            escape: opts.translation_strategy.escapes(),
            underscore_sanitization: opts.label_name_underscore_sanitization,
            preserve_multiple_underscores: opts.label_name_preserve_multiple_underscores,
        },
        out: Converted::default(),
        series: HashMap::new(),
        families: HashMap::new(),
        samples: 0,
    };
    for rm in &req.resources {
        c.resource(rm)?;
    }
    Ok(c.out)
}

struct Converter<'o> {
    opts: &'o Options,
    limits: &'o Limits,
    namer: LabelNamer,
    out: Converted,
    series: HashMap<Labels, u32>,
    families: HashMap<String, usize>,
    samples: usize,
}

/// The labels every series of one resource and scope carries, below the point's own.
struct Context {
    /// Promoted resource attributes: added when the point has no such label.
    promoted: Vec<(String, String)>,
    job: String,
    instance: String,
    /// Scope labels (`otel_scope_*`): they override the point's.
    scope: Vec<(String, String)>,
}

impl Converter<'_> {
    fn resource(&mut self, rm: &ResourceMetrics<'_>) -> Result<(), DecodeError> {
        let attr = |k: &str| {
            rm.attributes
                .iter()
                .rev()
                .find(|a| a.key == k)
                .map(|a| a.value.as_ref())
                .filter(|v| !v.is_empty())
        };
        let job = match (attr(SERVICE_NAMESPACE), attr(SERVICE_NAME)) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.to_string(),
            _ => String::new(),
        };
        let instance = attr(SERVICE_INSTANCE_ID).unwrap_or_default().to_string();
        let mut promoted: Vec<(String, String)> = Vec::new();
        let o = self.opts;
        for a in &rm.attributes {
            let promote = if o.promote_all_resource_attributes {
                !o.ignore_resource_attributes.iter().any(|k| *k == a.key)
            } else {
                o.promote_resource_attributes.iter().any(|k| *k == a.key)
            };
            if !promote || a.value.is_empty() {
                continue;
            }
            let Ok(name) = self.namer.build(&a.key) else {
                continue;
            };
            // Two attributes named alike: the last wins.
            promoted.retain(|(n, _)| *n != name);
            promoted.push((name, a.value.to_string()));
        }
        let (mut earliest, mut latest, mut any_point) = (i64::MAX, i64::MIN, false);
        for sm in &rm.scopes {
            let ctx = Context {
                promoted: promoted.clone(),
                job: job.clone(),
                instance: instance.clone(),
                scope: self.scope_labels(sm),
            };
            for m in &sm.metrics {
                for t in point_times(m) {
                    any_point = true;
                    earliest = earliest.min(t);
                    latest = latest.max(t);
                }
                self.metric(m, &ctx)?;
            }
        }
        let identifying = [SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID];
        let has_other = rm
            .attributes
            .iter()
            .any(|a| !identifying.contains(&a.key.as_ref()));
        if !has_other || !any_point || (job.is_empty() && instance.is_empty()) {
            return Ok(());
        }
        // target_info: every resource attribute but the identifying ones (unless kept).
        let attrs: Vec<&Attr<'_>> = rm
            .attributes
            .iter()
            .filter(|a| {
                self.opts.keep_identifying_resource_attributes
                    || !identifying.contains(&a.key.as_ref())
            })
            .collect();
        let mut labels = match self.attribute_labels(&attrs) {
            Ok(l) => l,
            Err(e) => {
                self.out.reject(0, format!("target_info: {e}"));
                return Ok(());
            }
        };
        set(&mut labels, "job", &job);
        set(&mut labels, "instance", &instance);
        set(&mut labels, METRIC_NAME, "target_info");
        let step = (self.opts.lookback_ms / 2).max(1);
        let first =
            earliest.max(latest.saturating_sub(step.saturating_mul(MAX_TARGET_INFO_SAMPLES)));
        let mut times = Vec::new();
        let mut t = first;
        while t < latest {
            times.push(t);
            t = t.saturating_add(step);
        }
        times.push(latest);
        let samples: Vec<(i64, f64)> = times.iter().map(|&t| (t, 1.0)).collect();
        self.push(labels, &samples)?;
        self.record_metadata(
            "target_info".into(),
            MetricType::Gauge,
            "Target metadata",
            String::new(),
        );
        Ok(())
    }

    fn scope_labels(&self, sm: &ScopeMetrics<'_>) -> Vec<(String, String)> {
        if !self.opts.promote_scope_metadata || sm.name.is_empty() {
            return Vec::new();
        }
        let mut out = vec![
            ("otel_scope_name".to_string(), sm.name.to_string()),
            ("otel_scope_version".to_string(), sm.version.to_string()),
            (
                "otel_scope_schema_url".to_string(),
                sm.schema_url.to_string(),
            ),
        ];
        for a in &sm.attributes {
            if let Ok(name) = self.namer.build(&format!("otel_scope_{}", a.key)) {
                out.retain(|(n, _)| *n != name);
                out.push((name, a.value.to_string()));
            }
        }
        out.retain(|(_, v)| !v.is_empty());
        out
    }

    /// Labels from attributes: sorted by key as sent, keys translated, the values of keys
    /// that translate alike joined with `;` (Prometheus's rule).
    fn attribute_labels(&self, attrs: &[&Attr<'_>]) -> Result<Vec<(String, String)>, String> {
        let mut sorted: Vec<&Attr<'_>> = attrs
            .iter()
            .copied()
            .filter(|a| a.key != METRIC_NAME)
            .collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out: Vec<(String, String)> = Vec::with_capacity(sorted.len());
        for a in sorted {
            let name = self.namer.build(&a.key)?;
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) if !v.is_empty() => {
                    v.push(';');
                    v.push_str(&a.value);
                }
                Some((_, v)) => *v = a.value.to_string(),
                None => out.push((name, a.value.to_string())),
            }
            if out.len() > self.limits.labels.max_labels_per_series {
                return Err(format!(
                    "more than {} labels",
                    self.limits.labels.max_labels_per_series
                ));
            }
        }
        Ok(out)
    }

    fn metric(&mut self, m: &Metric<'_>, ctx: &Context) -> Result<(), DecodeError> {
        let strategy = self.opts.translation_strategy;
        let (kind, temporality, points) = match &m.data {
            Data::Empty => return Ok(()),
            Data::Gauge(p) => (Kind::Gauge, Temporality::Cumulative, p.len()),
            Data::Sum {
                monotonic,
                temporality,
                points,
            } => (
                if *monotonic {
                    Kind::MonotonicCounter
                } else {
                    Kind::NonMonotonicCounter
                },
                *temporality,
                points.len(),
            ),
            Data::Histogram {
                temporality,
                points,
            } => (Kind::Histogram, *temporality, points.len()),
            Data::ExponentialHistogram {
                temporality,
                points,
            } => (Kind::ExponentialHistogram, *temporality, *points),
            Data::Summary(p) => (Kind::Summary, Temporality::Cumulative, p.len()),
        };
        if points == 0 {
            return Ok(());
        }
        if temporality != Temporality::Cumulative {
            let what = if temporality == Temporality::Delta {
                "delta temporality is not supported: Quiver stores cumulative data (configure \
                 the exporter for cumulative temporality, or convert with the Collector's \
                 deltatocumulative processor)"
            } else {
                "the aggregation temporality is unspecified"
            };
            self.out.reject(
                points,
                format!(
                    "invalid temporality and type combination for metric {:?}: {what}",
                    m.name
                ),
            );
            return Ok(());
        }
        if kind == Kind::ExponentialHistogram {
            self.out.reject(
                points,
                format!(
                    "exponential histogram {:?} not stored: it becomes a native histogram, \
                     which Quiver does not store yet",
                    m.name
                ),
            );
            return Ok(());
        }
        let name = match translate::metric_name(&m.name, &m.unit, kind, strategy) {
            Ok(n) => n,
            Err(e) => {
                self.out.reject(points, e);
                return Ok(());
            }
        };
        let before = self.out.rejected_points;
        match &m.data {
            Data::Gauge(p) | Data::Sum { points: p, .. } => {
                for p in p {
                    let v = value(&p.point, p.value);
                    self.point(&name, "", &p.point, ctx, &[(None, v)])?;
                }
            }
            Data::Histogram { points, .. } => {
                for p in points {
                    let mut series: Vec<(Option<(&str, String)>, f64)> = Vec::new();
                    let mut cumulative = 0u64;
                    for (count, bound) in p.bucket_counts.iter().zip(&p.explicit_bounds) {
                        cumulative = cumulative.saturating_add(*count);
                        series.push((
                            Some(("le", format_le(*bound))),
                            value(&p.point, cumulative as f64),
                        ));
                    }
                    series.push((Some(("le", "+Inf".into())), value(&p.point, p.count as f64)));
                    self.point(&name, "_bucket", &p.point, ctx, &series)?;
                    self.point(
                        &name,
                        "_count",
                        &p.point,
                        ctx,
                        &[(None, value(&p.point, p.count as f64))],
                    )?;
                    if let Some(sum) = p.sum {
                        self.point(
                            &name,
                            "_sum",
                            &p.point,
                            ctx,
                            &[(None, value(&p.point, sum))],
                        )?;
                    }
                }
            }
            Data::Summary(points) => {
                for p in points {
                    let series: Vec<(Option<(&str, String)>, f64)> = p
                        .quantiles
                        .iter()
                        .map(|(q, v)| (Some(("quantile", format_le(*q))), value(&p.point, *v)))
                        .collect();
                    self.point(&name, "", &p.point, ctx, &series)?;
                    self.point(
                        &name,
                        "_count",
                        &p.point,
                        ctx,
                        &[(None, value(&p.point, p.count as f64))],
                    )?;
                    self.point(
                        &name,
                        "_sum",
                        &p.point,
                        ctx,
                        &[(None, value(&p.point, p.sum))],
                    )?;
                }
            }
            Data::Empty | Data::ExponentialHistogram { .. } => {}
        }
        // Metadata for a family with at least one point stored.
        if self.out.rejected_points - before < points as u64 {
            let kind = match kind {
                Kind::Gauge | Kind::NonMonotonicCounter => MetricType::Gauge,
                Kind::MonotonicCounter => MetricType::Counter,
                Kind::Histogram | Kind::ExponentialHistogram => MetricType::Histogram,
                Kind::Summary => MetricType::Summary,
            };
            self.record_metadata(name, kind, &m.description, translate::unit_name(&m.unit));
        }
        Ok(())
    }

    fn record_metadata(&mut self, family: String, kind: MetricType, help: &str, unit: String) {
        let m = Metadata {
            kind,
            help: Arc::from(help),
            unit: Arc::from(unit),
        };
        match self.families.get(&family) {
            Some(&i) => self.out.metadata[i].1 = m,
            None => {
                self.families
                    .insert(family.clone(), self.out.metadata.len());
                self.out.metadata.push((family, m));
            }
        }
    }

    /// The series of one data point: `name` + `suffix`, each with its extra label (`le`,
    /// `quantile`) and value. A point whose labels are refused is refused whole.
    fn point(
        &mut self,
        name: &str,
        suffix: &str,
        p: &Point<'_>,
        ctx: &Context,
        series: &[(Option<(&str, String)>, f64)],
    ) -> Result<(), DecodeError> {
        self.out.exemplars_dropped += p.exemplars as u64;
        let attrs: Vec<&Attr<'_>> = p.attributes.iter().collect();
        let mut base = match self.attribute_labels(&attrs) {
            Ok(l) => l,
            Err(e) => {
                self.out.reject(1, format!("metric {name:?}: {e}"));
                return Ok(());
            }
        };
        for (n, v) in &ctx.promoted {
            if !base.iter().any(|(bn, bv)| bn == n && !bv.is_empty()) {
                set(&mut base, n, v);
            }
        }
        if !ctx.job.is_empty() {
            set(&mut base, "job", &ctx.job);
        }
        if !ctx.instance.is_empty() {
            set(&mut base, "instance", &ctx.instance);
        }
        for (n, v) in &ctx.scope {
            set(&mut base, n, v);
        }
        set(&mut base, METRIC_NAME, &format!("{name}{suffix}"));
        let t = (p.time_ns / 1_000_000) as i64;
        for (extra, v) in series {
            let mut labels = base.clone();
            if let Some((n, value)) = extra {
                set(&mut labels, n, value);
            }
            if let Err(e) = self.push(labels, &[(t, *v)]) {
                match e {
                    DecodeError::BadData(m) => {
                        self.out.reject(1, format!("metric {name:?}: {m}"));
                        return Ok(());
                    }
                    e => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Appends samples to one series. A series whose labels break the limits is bad data
    /// (refused alone); too many series or samples in the request is too large (refused whole).
    fn push(
        &mut self,
        labels: Vec<(String, String)>,
        samples: &[(i64, f64)],
    ) -> Result<(), DecodeError> {
        let labels = Labels::try_from_pairs(labels, &self.limits.labels)
            .map_err(|e| DecodeError::BadData(quiver_storage::error::chain(&e)))?;
        self.samples += samples.len();
        if self.samples > self.limits.max_samples_per_write {
            return Err(DecodeError::TooLarge(format!(
                "more than {} samples in one write",
                self.limits.max_samples_per_write
            )));
        }
        let idx = match self.series.get(&labels) {
            Some(&i) => i,
            None => {
                if self.series.len() >= self.limits.max_series_per_write {
                    return Err(DecodeError::TooLarge(format!(
                        "more than {} series in one write",
                        self.limits.max_series_per_write
                    )));
                }
                let i = self.out.batch.push_series(labels.clone());
                self.series.insert(labels, i);
                i
            }
        };
        for &(t, v) in samples {
            self.out.batch.push_sample(idx, t, v);
        }
        Ok(())
    }
}

/// Sets label `name` to `value`, replacing it if present.
fn set(labels: &mut Vec<(String, String)>, name: &str, value: &str) {
    match labels.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v = value.to_string(),
        None => labels.push((name.to_string(), value.to_string())),
    }
}

/// A point's value, or the stale marker when it has none (`FLAG_NO_RECORDED_VALUE`).
fn value(p: &Point<'_>, v: f64) -> f64 {
    if p.no_recorded_value() {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        v
    }
}

/// A bucket bound or quantile as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
fn format_le(v: f64) -> String {
    super::format_double(v)
}

/// The times (ms) of a metric's points.
fn point_times<'a>(m: &'a Metric<'_>) -> Box<dyn Iterator<Item = i64> + 'a> {
    let ms = |p: &Point<'_>| (p.time_ns / 1_000_000) as i64;
    match &m.data {
        Data::Gauge(p) | Data::Sum { points: p, .. } => {
            Box::new(p.iter().map(move |p| ms(&p.point)))
        }
        Data::Histogram { points, .. } => Box::new(points.iter().map(move |p| ms(&p.point))),
        Data::Summary(points) => Box::new(points.iter().map(move |p| ms(&p.point))),
        Data::Empty | Data::ExponentialHistogram { .. } => Box::new(std::iter::empty()),
    }
}
