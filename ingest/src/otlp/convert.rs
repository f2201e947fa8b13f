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
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quiver_storage::{
    CounterResetHint, FloatHistogram, Labels, Limits, METRIC_NAME, STALE_NAN_BITS, Span, WriteBatch,
};

use super::delta::{DeltaState, Refusal};
use super::translate::{self, Kind, LabelNamer, Strategy};
use super::{
    Attr, Data, ExponentialPoint, Metric, Point, Request, ResourceMetrics, ScopeMetrics,
    Temporality,
};
use crate::exposition::MetricType;
use crate::histogram::HistogramSample;
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

/// Most bytes of label names and values the series of one request may carry together. The
/// labels a resource or metric gives every point (`job`, promoted attributes, the name) are
/// shared, not copied, but each series is still hashed and checked in full: this bounds that
/// work, whatever the body repeats.
pub const MAX_LABEL_BYTES: usize = 512 << 20;

/// Most label pairs the new series of one request may hold together (the pointers alone of a
/// million series of 128 labels are 2 GiB).
pub const MAX_NEW_LABEL_PAIRS: usize = 16_000_000;

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
    /// Counts `points` refused, keeping the reason if there is room (it is formatted only
    /// then).
    fn reject(&mut self, points: usize, message: impl FnOnce() -> String) {
        self.rejected_points += points as u64;
        if self.messages.len() < MAX_MESSAGES {
            let message = message();
            if !self.messages.contains(&message) {
                self.messages.push(message);
            }
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

/// A label as series share it.
type Pair = (Arc<str>, Arc<str>);

/// A name as a message shows it: at most 128 characters.
fn short(s: &str) -> String {
    match s.char_indices().nth(128) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// Turns a request into series, checking each against `limits`. Delta points are refused.
pub fn convert(
    req: &Request<'_>,
    opts: &Options,
    limits: &Limits,
) -> Result<Converted, DecodeError> {
    convert_with(req, opts, limits, None)
}

/// [`convert`], with delta sums and histograms made cumulative in `delta` when given
/// (Prometheus's `otlp-deltatocumulative`).
pub fn convert_with(
    req: &Request<'_>,
    opts: &Options,
    limits: &Limits,
    delta: Option<&mut DeltaState>,
) -> Result<Converted, DecodeError> {
    let mut c = Converter {
        delta,
        now_ms: now_ms(),
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
        label_bytes: 0,
        new_pairs: 0,
    };
    for rm in &req.resources {
        c.resource(rm)?;
    }
    Ok(c.out)
}

struct Converter<'o> {
    delta: Option<&'o mut DeltaState>,
    now_ms: i64,
    opts: &'o Options,
    limits: &'o Limits,
    namer: LabelNamer,
    out: Converted,
    series: HashMap<Labels, u32>,
    families: HashMap<String, usize>,
    samples: usize,
    label_bytes: usize,
    new_pairs: usize,
}

/// The labels every series of one resource and scope carries, besides the point's own, built
/// once and shared.
struct Context {
    /// Promoted resource attributes: added when the point has no such label.
    promoted: Vec<Pair>,
    job: Option<Arc<str>>,
    instance: Option<Arc<str>>,
    /// Scope labels (`otel_scope_*`): they override the point's.
    scope: Vec<Pair>,
    /// The resource's and scope's part of a delta stream's identity.
    stream_seed: u64,
}

/// One series of a data point: its name (shared by the metric's points), the extra label
/// (`le`, `quantile`) and the value.
struct SeriesOf<'a> {
    name: &'a Arc<str>,
    extra: Option<(&'static str, String)>,
    value: f64,
}

impl Converter<'_> {
    fn resource(&mut self, rm: &ResourceMetrics<'_>) -> Result<(), DecodeError> {
        let attr = |k: &str| {
            rm.attributes
                .iter()
                .rev()
                .find(|a| a.key == k)
                .map(|a| a.value.as_ref())
        };
        // Prometheus's rule: `namespace/name` when the namespace is set at all.
        let job = match (attr(SERVICE_NAMESPACE), attr(SERVICE_NAME)) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.to_string(),
            _ => String::new(),
        };
        let instance = attr(SERVICE_INSTANCE_ID).unwrap_or_default().to_string();
        let points: usize = rm
            .scopes
            .iter()
            .flat_map(|s| &s.metrics)
            .map(point_count)
            .sum();
        let max_labels = self.limits.labels.max_labels_per_series;
        let o = self.opts;
        let mut promoted: Vec<Pair> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for a in &rm.attributes {
            let promote = if o.promote_all_resource_attributes {
                !o.ignore_resource_attributes.iter().any(|k| *k == a.key)
            } else {
                o.promote_resource_attributes.iter().any(|k| *k == a.key)
            };
            if !promote || a.value.is_empty() {
                continue;
            }
            let name = match self.namer.build(&a.key) {
                Ok(n) => n,
                Err(e) => {
                    self.out
                        .reject(0, || format!("promoted resource attribute: {e}"));
                    continue;
                }
            };
            // Two attributes named alike: the last wins.
            let pair: Pair = (Arc::from(name.as_str()), Arc::from(a.value.as_ref()));
            match index.entry(name) {
                Entry::Occupied(e) => promoted[*e.get()] = pair,
                Entry::Vacant(e) => {
                    e.insert(promoted.len());
                    promoted.push(pair);
                }
            }
            if promoted.len() > max_labels {
                self.out.reject(points, || {
                    format!("a resource promotes more than {max_labels} attributes to labels")
                });
                return Ok(());
            }
        }
        let non_empty = |s: String| (!s.is_empty()).then(|| Arc::from(s.as_str()));
        let (job_label, instance_label) = (non_empty(job), non_empty(instance));
        let (mut earliest, mut latest, mut any_point) = (i64::MAX, i64::MIN, false);
        for sm in &rm.scopes {
            let scope = match self.scope_labels(sm) {
                Ok(s) => s,
                Err(e) => {
                    let n: usize = sm.metrics.iter().map(point_count).sum();
                    self.out.reject(n, || e);
                    continue;
                }
            };
            let stream_seed = {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                hash_attributes(&rm.attributes, &mut h);
                (sm.name.as_ref(), sm.version.as_ref()).hash(&mut h);
                h.finish()
            };
            let ctx = Context {
                promoted: promoted.clone(),
                job: job_label.clone(),
                instance: instance_label.clone(),
                scope,
                stream_seed,
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
        if !has_other || !any_point {
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
                self.out.reject(0, || format!("target_info: {e}"));
                return Ok(());
            }
        };
        if let Some(j) = &job_label {
            set(&mut labels, "job", j.clone());
        }
        if let Some(i) = &instance_label {
            set(&mut labels, "instance", i.clone());
        }
        if !labels
            .iter()
            .any(|(n, _)| &**n == "job" || &**n == "instance")
        {
            return Ok(());
        }
        set(&mut labels, METRIC_NAME, Arc::from("target_info"));
        let labels = match Labels::try_from_pairs(labels, &self.limits.labels) {
            Ok(l) => l,
            Err(e) => {
                self.out.reject(0, || {
                    format!("target_info: {}", quiver_storage::error::chain(&e))
                });
                return Ok(());
            }
        };
        // Every half lookback from the earliest point to the latest (the latest 1,000 steps).
        let step = (self.opts.lookback_ms / 2).max(1);
        let first =
            earliest.max(latest.saturating_sub(step.saturating_mul(MAX_TARGET_INFO_SAMPLES)));
        let mut samples = Vec::new();
        let mut t = first;
        while t < latest {
            samples.push((t, 1.0));
            t = t.saturating_add(step);
        }
        samples.push((latest, 1.0));
        self.push(labels, &samples)?;
        self.record_metadata(
            "target_info".into(),
            MetricType::Gauge,
            "Target metadata",
            String::new(),
        );
        Ok(())
    }

    /// `otel_scope_*` labels when asked for: the scope's attributes, then its name, version
    /// and schema URL, which win (an empty one is no label).
    fn scope_labels(&self, sm: &ScopeMetrics<'_>) -> Result<Vec<Pair>, String> {
        if !self.opts.promote_scope_metadata || sm.name.is_empty() {
            return Ok(Vec::new());
        }
        let max_labels = self.limits.labels.max_labels_per_series;
        let mut out: Vec<(String, String)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut put = |out: &mut Vec<(String, String)>, name: String, value: String| match index
            .entry(name.clone())
        {
            Entry::Occupied(e) => out[*e.get()].1 = value,
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push((name, value));
            }
        };
        for a in &sm.attributes {
            let name = self
                .namer
                .build(&format!("otel_scope_{}", a.key))
                .map_err(|e| format!("scope attribute: {e}"))?;
            put(&mut out, name, a.value.to_string());
            if out.len() > max_labels {
                return Err(format!("a scope has more than {max_labels} attributes"));
            }
        }
        put(&mut out, "otel_scope_name".into(), sm.name.to_string());
        put(
            &mut out,
            "otel_scope_version".into(),
            sm.version.to_string(),
        );
        put(
            &mut out,
            "otel_scope_schema_url".into(),
            sm.schema_url.to_string(),
        );
        Ok(out
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str())))
            .collect())
    }

    /// Labels from attributes: sorted by key as sent, keys translated, the values of keys
    /// that translate alike joined with `;` (Prometheus's rule). More than the label limit is
    /// refused as soon as it is passed.
    fn attribute_labels(&self, attrs: &[&Attr<'_>]) -> Result<Vec<Pair>, String> {
        let max_labels = self.limits.labels.max_labels_per_series;
        if attrs.len() > 2 * max_labels + 8 {
            // Many keys could join into few labels, but not this many.
            return Err(format!("more than {max_labels} labels"));
        }
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
            if out.len() > max_labels {
                return Err(format!("more than {max_labels} labels"));
            }
        }
        Ok(out
            .into_iter()
            .map(|(n, v)| (Arc::from(n.as_str()), Arc::from(v.as_str())))
            .collect())
    }

    fn metric(&mut self, m: &Metric<'_>, ctx: &Context) -> Result<(), DecodeError> {
        let strategy = self.opts.translation_strategy;
        let points = point_count(m);
        let (kind, temporality) = match &m.data {
            Data::Empty => return Ok(()),
            Data::Gauge(_) => (Kind::Gauge, Temporality::Cumulative),
            Data::Sum {
                monotonic,
                temporality,
                ..
            } => (
                if *monotonic {
                    Kind::MonotonicCounter
                } else {
                    Kind::NonMonotonicCounter
                },
                *temporality,
            ),
            Data::Histogram { temporality, .. } => (Kind::Histogram, *temporality),
            Data::ExponentialHistogram { temporality, .. } => {
                (Kind::ExponentialHistogram, *temporality)
            }
            Data::Summary(_) => (Kind::Summary, Temporality::Cumulative),
        };
        if points == 0 {
            return Ok(());
        }
        let delta = temporality == Temporality::Delta
            && self.delta.is_some()
            && matches!(
                kind,
                Kind::MonotonicCounter | Kind::NonMonotonicCounter | Kind::Histogram
            );
        if temporality != Temporality::Cumulative && !delta {
            let what = if temporality == Temporality::Delta {
                "delta temporality is not supported: Quiver stores cumulative data (configure \
                 the exporter for cumulative temporality, or convert with the Collector's \
                 deltatocumulative processor)"
            } else {
                "the aggregation temporality is unspecified"
            };
            self.out.reject(points, || {
                format!(
                    "invalid temporality and type combination for metric {}: {what}",
                    short(&m.name)
                )
            });
            return Ok(());
        }
        // The longest suffix is `_bucket`: a name too long for a label value is refused once.
        let max_value = self.limits.labels.max_label_value_length;
        if m.name.len() + m.unit.len() + 32 > max_value {
            self.out.reject(points, || {
                format!(
                    "metric {}: the name is longer than {max_value} bytes",
                    short(&m.name)
                )
            });
            return Ok(());
        }
        let name = match translate::metric_name(&m.name, &m.unit, kind, strategy) {
            Ok(n) => n,
            Err(e) => {
                self.out.reject(points, || e);
                return Ok(());
            }
        };
        let named = |suffix: &str| -> Arc<str> { Arc::from(format!("{name}{suffix}").as_str()) };
        let (plain, bucket, count, sum) =
            (named(""), named("_bucket"), named("_count"), named("_sum"));
        let rejected_before = self.out.rejected_points;
        match &m.data {
            Data::Gauge(p) | Data::Sum { points: p, .. } => {
                for p in p {
                    let mut v = value(&p.point, p.value);
                    if delta && !p.point.no_recorded_value() {
                        let key = stream_key(ctx.stream_seed, m, &p.point);
                        let (t, now) = (p.point.time_ns, self.now_ms);
                        match self
                            .delta
                            .as_mut()
                            .expect("delta")
                            .sum(key, t, p.value, now)
                        {
                            Ok(total) => v = total,
                            Err(r) => {
                                self.out.reject(1, || refusal(&m.name, r));
                                continue;
                            }
                        }
                    }
                    self.point(
                        &p.point,
                        ctx,
                        vec![SeriesOf {
                            name: &plain,
                            extra: None,
                            value: v,
                        }],
                    )?;
                }
            }
            Data::Histogram { points, .. } => {
                for p in points {
                    // A delta point adds to its stream's totals, which are stored instead.
                    let totals;
                    let (p_count, p_sum, p_buckets) = if delta && !p.point.no_recorded_value() {
                        let key = stream_key(ctx.stream_seed, m, &p.point);
                        let (t, now) = (p.point.time_ns, self.now_ms);
                        let shape = (p.count, p.sum, &p.bucket_counts[..], &p.explicit_bounds[..]);
                        match self
                            .delta
                            .as_mut()
                            .expect("delta")
                            .histogram(key, t, shape, now)
                        {
                            Ok(v) => {
                                totals = v;
                                (totals.0, totals.1, &totals.2[..])
                            }
                            Err(r) => {
                                self.out.reject(1, || refusal(&m.name, r));
                                continue;
                            }
                        }
                    } else {
                        (p.count, p.sum, &p.bucket_counts[..])
                    };
                    let mut series = Vec::with_capacity(p_buckets.len() + 3);
                    let mut cumulative = 0u64;
                    for (c, bound) in p_buckets.iter().zip(&p.explicit_bounds) {
                        cumulative = cumulative.saturating_add(*c);
                        series.push(SeriesOf {
                            name: &bucket,
                            extra: Some(("le", super::format_double(*bound))),
                            value: value(&p.point, cumulative as f64),
                        });
                    }
                    let total = value(&p.point, p_count as f64);
                    series.push(SeriesOf {
                        name: &bucket,
                        extra: Some(("le", "+Inf".into())),
                        value: total,
                    });
                    series.push(SeriesOf {
                        name: &count,
                        extra: None,
                        value: total,
                    });
                    if let Some(s) = p_sum {
                        series.push(SeriesOf {
                            name: &sum,
                            extra: None,
                            value: value(&p.point, s),
                        });
                    }
                    self.point(&p.point, ctx, series)?;
                }
            }
            Data::Summary(points) => {
                for p in points {
                    let mut series: Vec<SeriesOf<'_>> = p
                        .quantiles
                        .iter()
                        .map(|(q, v)| SeriesOf {
                            name: &plain,
                            extra: Some(("quantile", super::format_double(*q))),
                            value: value(&p.point, *v),
                        })
                        .collect();
                    series.push(SeriesOf {
                        name: &count,
                        extra: None,
                        value: value(&p.point, p.count as f64),
                    });
                    series.push(SeriesOf {
                        name: &sum,
                        extra: None,
                        value: value(&p.point, p.sum),
                    });
                    self.point(&p.point, ctx, series)?;
                }
            }
            Data::ExponentialHistogram { points, .. } => {
                for p in points {
                    match exponential_to_native(p) {
                        Ok(h) => self.histogram_point(&p.point, ctx, &plain, h)?,
                        Err(e) => self
                            .out
                            .reject(1, || format!("metric {}: {e}", short(&m.name))),
                    }
                }
            }
            Data::Empty => {}
        }
        // Metadata for a family with at least one point stored.
        if self.out.rejected_points - rejected_before < points as u64 {
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

    /// The series of one data point, stored all or none: a point whose labels are refused is
    /// refused whole, and counted once.
    fn point(
        &mut self,
        p: &Point<'_>,
        ctx: &Context,
        series: Vec<SeriesOf<'_>>,
    ) -> Result<(), DecodeError> {
        let Some(base) = self.base_labels(p, ctx, series[0].name) else {
            return Ok(());
        };
        let t = (p.time_ns / 1_000_000) as i64;
        let mut built = Vec::with_capacity(series.len());
        for s in &series {
            let mut labels = base.clone();
            set(&mut labels, METRIC_NAME, s.name.clone());
            if let Some((n, v)) = &s.extra {
                set(&mut labels, n, Arc::from(v.as_str()));
            }
            match Labels::try_from_pairs(labels, &self.limits.labels) {
                Ok(l) => built.push((l, s.value)),
                Err(e) => {
                    self.out.reject(1, || {
                        format!(
                            "metric {}: {}",
                            short(s.name),
                            quiver_storage::error::chain(&e)
                        )
                    });
                    return Ok(());
                }
            }
        }
        for (labels, v) in built {
            self.push(labels, &[(t, v)])?;
        }
        Ok(())
    }

    /// Stores a native histogram sample of series `name` (a staleness marker as a float one).
    fn histogram_point(
        &mut self,
        p: &Point<'_>,
        ctx: &Context,
        name: &Arc<str>,
        h: HistogramSample,
    ) -> Result<(), DecodeError> {
        let Some(mut labels) = self.base_labels(p, ctx, name) else {
            return Ok(());
        };
        set(&mut labels, METRIC_NAME, name.clone());
        let labels = match Labels::try_from_pairs(labels, &self.limits.labels) {
            Ok(l) => l,
            Err(e) => {
                self.out.reject(1, || {
                    format!(
                        "metric {}: {}",
                        short(name),
                        quiver_storage::error::chain(&e)
                    )
                });
                return Ok(());
            }
        };
        let idx = self.series_index(labels, 1)?;
        crate::remote_write::push_histogram(&mut self.out.batch, idx, h);
        Ok(())
    }

    /// A point's labels before its metric name: its attributes, the promoted resource
    /// attributes, `job`, `instance` and the scope's. `None` when they are refused (counted).
    fn base_labels(&mut self, p: &Point<'_>, ctx: &Context, name: &str) -> Option<Vec<Pair>> {
        self.out.exemplars_dropped += p.exemplars as u64;
        let attrs: Vec<&Attr<'_>> = p.attributes.iter().collect();
        let mut base = match self.attribute_labels(&attrs) {
            Ok(l) => l,
            Err(e) => {
                self.out
                    .reject(1, || format!("metric {}: {e}", short(name)));
                return None;
            }
        };
        for (n, v) in &ctx.promoted {
            if !base.iter().any(|(bn, bv)| bn == n && !bv.is_empty()) {
                set(&mut base, n, v.clone());
            }
        }
        if let Some(j) = &ctx.job {
            set(&mut base, "job", j.clone());
        }
        if let Some(i) = &ctx.instance {
            set(&mut base, "instance", i.clone());
        }
        for (n, v) in &ctx.scope {
            set(&mut base, n, v.clone());
        }
        Some(base)
    }

    /// Appends samples to one series. Too many series, samples or label bytes in the request
    /// is too large (the request is refused whole).
    fn push(&mut self, labels: Labels, samples: &[(i64, f64)]) -> Result<(), DecodeError> {
        let idx = self.series_index(labels, samples.len())?;
        for &(t, v) in samples {
            self.out.batch.push_sample(idx, t, v);
        }
        Ok(())
    }

    /// The batch's index of a series, added if new, counting `samples` more samples.
    fn series_index(&mut self, labels: Labels, samples: usize) -> Result<u32, DecodeError> {
        self.samples += samples;
        self.label_bytes += labels
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>();
        if self.samples > self.limits.max_samples_per_write || self.label_bytes > MAX_LABEL_BYTES {
            return Err(DecodeError::TooLarge(format!(
                "more than {} samples, or {} MiB of labels over its series, in one write",
                self.limits.max_samples_per_write,
                MAX_LABEL_BYTES >> 20
            )));
        }
        let idx = match self.series.get(&labels) {
            Some(&i) => i,
            None => {
                self.new_pairs += labels.len();
                if self.series.len() >= self.limits.max_series_per_write
                    || self.new_pairs > MAX_NEW_LABEL_PAIRS
                {
                    return Err(DecodeError::TooLarge(format!(
                        "more than {} series, or {MAX_NEW_LABEL_PAIRS} labels over its new series, in one write",
                        self.limits.max_series_per_write
                    )));
                }
                let i = self.out.batch.push_series(labels.clone());
                self.series.insert(labels, i);
                i
            }
        };
        Ok(idx)
    }
}

/// A delta stream's identity: its resource and scope (`seed`), the metric, and the point's
/// attributes as sent.
fn stream_key(seed: u64, m: &Metric<'_>, p: &Point<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    (m.name.as_ref(), m.unit.as_ref()).hash(&mut h);
    hash_attributes(&p.attributes, &mut h);
    h.finish()
}

/// Hashes attributes whatever their order.
fn hash_attributes(attributes: &[Attr<'_>], h: &mut impl Hasher) {
    let mut attrs: Vec<(&str, &str)> = attributes
        .iter()
        .map(|a| (a.key.as_ref(), a.value.as_ref()))
        .collect();
    attrs.sort_unstable();
    attrs.hash(h);
}

fn refusal(name: &str, r: Refusal) -> String {
    match r {
        Refusal::OutOfOrder => format!(
            "metric {}: a delta point not newer than the last of its stream is refused",
            short(name)
        ),
        Refusal::TooManyStreams => format!(
            "metric {}: more than {} delta streams are being converted to cumulative",
            short(name),
            super::delta::MAX_STREAMS
        ),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sets label `name` to `value`, replacing it if present.
fn set(labels: &mut Vec<Pair>, name: &str, value: Arc<str>) {
    match labels.iter_mut().find(|(n, _)| &**n == name) {
        Some((_, v)) => *v = value,
        None => labels.push((Arc::from(name), value)),
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

/// Prometheus's `exponentialToNativeHistogram` for a cumulative point: the scale is the schema
/// (a scale above 8 is reduced to 8 by merging buckets; below -4 is refused), OTel bucket
/// `offset + i` is native bucket `offset + i + 1`, the zero threshold is Prometheus's default
/// (1e-128), the reset hint unknown; a point flagged "no recorded value" is a staleness marker.
/// Its count must be its buckets' total, as Prometheus checks integer histograms.
pub(crate) fn exponential_to_native(p: &ExponentialPoint<'_>) -> Result<HistogramSample, String> {
    use quiver_storage::histogram::{EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN};
    let t = (p.point.time_ns / 1_000_000) as i64;
    if p.scale < EXPONENTIAL_SCHEMA_MIN {
        return Err(format!(
            "cannot convert exponential to native histogram. Scale must be >= {EXPONENTIAL_SCHEMA_MIN}, was {}",
            p.scale
        ));
    }
    if p.point.no_recorded_value() {
        return Ok(HistogramSample::Stale(t));
    }
    let scale = p.scale;
    let side = |b: &super::ExponentialBuckets| -> Result<(Vec<Span>, Vec<f64>, u64), String> {
        let total = b
            .bucket_counts
            .iter()
            .try_fold(0u64, |a, c| a.checked_add(*c))
            .ok_or("bucket counts overflow")?;
        if b.bucket_counts.is_empty() {
            return Ok((Vec::new(), Vec::new(), 0));
        }
        let length = u32::try_from(b.bucket_counts.len()).map_err(|_| "too many buckets")?;
        let offset = b
            .offset
            .checked_add(1)
            .ok_or("bucket offset out of range")?;
        let buckets = b.bucket_counts.iter().map(|c| *c as f64).collect();
        Ok((vec![Span { offset, length }], buckets, total))
    };
    let (positive_spans, positive_buckets, p_total) = side(&p.positive)?;
    let (negative_spans, negative_buckets, n_total) = side(&p.negative)?;
    let mut h = FloatHistogram {
        hint: CounterResetHint::Unknown,
        schema: scale,
        zero_threshold: 1e-128,
        zero_count: p.zero_count as f64,
        count: p.count as f64,
        sum: p.sum.unwrap_or(0.0),
        positive_spans,
        positive_buckets,
        negative_spans,
        negative_buckets,
        custom_values: Vec::new(),
    };
    let in_buckets = p_total
        .checked_add(n_total)
        .and_then(|s| s.checked_add(p.zero_count))
        .ok_or("bucket counts overflow")?;
    if h.sum.is_nan() {
        if in_buckets > p.count {
            return Err(format!(
                "{in_buckets} observations found in buckets, but the Count field is {}: histogram's observation count should be at least the number of observations found in the buckets",
                p.count
            ));
        }
    } else if in_buckets != p.count {
        return Err(format!(
            "{in_buckets} observations found in buckets, but the Count field is {}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)",
            p.count
        ));
    }
    if scale > EXPONENTIAL_SCHEMA_MAX {
        h.reduce_resolution(EXPONENTIAL_SCHEMA_MAX);
    }
    h.validate().map_err(|e| e.0)?;
    Ok(HistogramSample::Value(t, h))
}

/// How many data points a metric has.
fn point_count(m: &Metric<'_>) -> usize {
    match &m.data {
        Data::Empty => 0,
        Data::Gauge(p) | Data::Sum { points: p, .. } => p.len(),
        Data::Histogram { points, .. } => points.len(),
        Data::ExponentialHistogram { points, .. } => points.len(),
        Data::Summary(p) => p.len(),
    }
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
        Data::ExponentialHistogram { points, .. } => {
            Box::new(points.iter().map(move |p| ms(&p.point)))
        }
        Data::Empty => Box::new(std::iter::empty()),
    }
}
