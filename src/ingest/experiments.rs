//! Experiment ingest: a run's metrics as JSON lines, its parameters as a JSON object, both
//! parsed with `simd-json` into one [`WriteBatch`] (how they are stored: `quiver_sql::experiments`).
//!
//! A metrics line is `{"step": 10, "timestamp": 1732550400.5, "metrics": {"loss": 0.31, …}}`:
//! - `metrics` (required, non-empty): key → number, or `"NaN"`, `"Inf"`, `"+Inf"`, `"-Inf"`.
//! - `step` (optional): an integer; lines without one have a null step in `run_metrics`.
//! - `timestamp` (optional): unix seconds (a number, fractions allowed) or an RFC 3339 string;
//!   lines without one get the arrival time, one millisecond apart in line order, so that no two
//!   of them share a sample.
//!
//! A body is all or nothing: any bad line rejects the batch, and the error names every bad line
//! (the first ten) by its number.

use std::collections::HashMap;

use quiver_sql::experiments::{
    EXPERIMENT, PARAM, PARAM_METRIC, PARAM_TYPE, PARAM_VALUE, ParamType, RUN_ID, STEP_METRIC,
};
use quiver_storage::{LabelLimits, Labels, METRIC_NAME, Timestamp, WriteBatch};
use simd_json::StaticNode;
use simd_json::borrowed::Value;

/// Errors shown per batch before the rest are only counted.
const MAX_SHOWN_ERRORS: usize = 10;

/// What a metrics body holds.
#[derive(Debug)]
pub struct ParsedMetrics {
    pub batch: WriteBatch,
    pub lines: usize,
    pub samples: usize,
}

/// The bad lines of a body.
#[derive(Debug, PartialEq)]
pub struct LineErrors {
    pub shown: Vec<(usize, String)>,
    pub total: usize,
}

impl std::fmt::Display for LineErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .shown
            .iter()
            .map(|(line, e)| format!("line {line}: {e}"))
            .collect();
        write!(f, "{}", parts.join("; "))?;
        if self.total > self.shown.len() {
            write!(f, "; and {} more bad lines", self.total - self.shown.len())?;
        }
        write!(f, " (nothing of this batch was stored)")
    }
}

/// The number of lines of a body (the arrival timestamps it may need).
pub fn count_lines(body: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', body).count() + 1
}

/// Checks an experiment or run name from the URL.
pub fn check_name(what: &str, name: &str, limits: &LabelLimits) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} name is empty"));
    }
    if name.len() > limits.max_label_value_length {
        return Err(format!(
            "the {what} name is longer than {} bytes",
            limits.max_label_value_length
        ));
    }
    Ok(())
}

/// Parses JSON lines of run metrics. A line without a timestamp gets `arrival_base` plus its
/// line index, so the caller reserves [`count_lines`] milliseconds from `arrival_base`.
pub fn parse_metrics(
    body: &mut [u8],
    experiment: &str,
    run: &str,
    arrival_base: Timestamp,
    limits: &LabelLimits,
) -> Result<ParsedMetrics, LineErrors> {
    let mut batch = WriteBatch::default();
    let mut series: HashMap<String, u32> = HashMap::new();
    let mut step_series: Option<u32> = None;
    // Timestamp -> (step, line) of the lines seen, so two steps never share a timestamp.
    let mut step_at: HashMap<Timestamp, (i64, usize)> = HashMap::new();
    let mut errors = LineErrors {
        shown: Vec::new(),
        total: 0,
    };
    let mut buffers = simd_json::Buffers::default();
    let (mut lines, mut samples) = (0, 0);
    let mut start = 0;
    let mut index = 0;
    while start <= body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let line_no = index + 1;
        let arrival = arrival_base + index as i64;
        index += 1;
        let line = &mut body[start..end];
        start = end + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut fail = |e: String| {
            errors.total += 1;
            if errors.shown.len() < MAX_SHOWN_ERRORS {
                errors.shown.push((line_no, e));
            }
        };
        let parsed = match parse_line(line, &mut buffers, arrival) {
            Ok(p) => p,
            Err(e) => {
                fail(e);
                continue;
            }
        };
        if let Some(step) = parsed.step {
            match step_at.get(&parsed.timestamp) {
                Some((other, other_line)) if *other != step => {
                    fail(format!(
                        "step {step} has the same timestamp ({} ms) as step {other} on line {other_line}; give each step its own timestamp (or leave timestamps out)",
                        parsed.timestamp
                    ));
                    continue;
                }
                Some(_) => {}
                None => {
                    step_at.insert(parsed.timestamp, (step, line_no));
                }
            }
        }
        // Series first, so a bad key rejects the line before anything of it is added.
        let mut line_series = Vec::with_capacity(parsed.metrics.len());
        let mut bad = None;
        for (key, _) in &parsed.metrics {
            if let Some(idx) = series.get(key.as_str()) {
                line_series.push(*idx);
                continue;
            }
            match metric_labels(key, experiment, run, limits) {
                Ok(labels) => {
                    let idx = batch.push_series(labels);
                    series.insert(key.clone(), idx);
                    line_series.push(idx);
                }
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = bad {
            fail(e);
            continue;
        }
        if errors.total > 0 {
            // The batch is lost anyway: only look for more errors.
            continue;
        }
        lines += 1;
        for (idx, (_, v)) in line_series.iter().zip(&parsed.metrics) {
            batch.push_sample(*idx, parsed.timestamp, *v);
            samples += 1;
        }
        if let Some(step) = parsed.step {
            let idx = *step_series.get_or_insert_with(|| {
                batch.push_series(Labels::from_validated(&sorted(&[
                    (METRIC_NAME, STEP_METRIC),
                    (EXPERIMENT, experiment),
                    (RUN_ID, run),
                ])))
            });
            batch.push_sample(idx, parsed.timestamp, step as f64);
        }
    }
    if errors.total > 0 {
        return Err(errors);
    }
    if lines == 0 {
        return Err(LineErrors {
            shown: vec![(1, "the body has no lines".into())],
            total: 1,
        });
    }
    Ok(ParsedMetrics {
        batch,
        lines,
        samples,
    })
}

fn sorted<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = pairs.to_vec();
    v.sort();
    v
}

fn metric_labels(
    key: &str,
    experiment: &str,
    run: &str,
    limits: &LabelLimits,
) -> Result<Labels, String> {
    if key.is_empty() {
        return Err("a metric key is empty".into());
    }
    if key.starts_with("__") || key == STEP_METRIC || key == PARAM_METRIC {
        return Err(format!(
            "metric key {key:?} is reserved (keys may not start with \"__\" or be {STEP_METRIC} or {PARAM_METRIC})"
        ));
    }
    Labels::try_from_pairs(
        [(METRIC_NAME, key), (EXPERIMENT, experiment), (RUN_ID, run)],
        limits,
    )
    .map_err(|e| format!("metric key {key:?}: {e}"))
}

struct Line {
    step: Option<i64>,
    timestamp: Timestamp,
    metrics: Vec<(String, f64)>,
}

fn parse_line(
    line: &mut [u8],
    buffers: &mut simd_json::Buffers,
    arrival: Timestamp,
) -> Result<Line, String> {
    quiver_ingest::json_depth::check(line)?;
    let value = simd_json::borrowed::to_value_with_buffers(line, buffers)
        .map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(format!(
            "expected an object like {{\"step\": 1, \"metrics\": {{\"loss\": 0.5}}}}, got {}",
            kind(&value)
        ));
    };
    let mut step = None;
    let mut timestamp = None;
    let mut metrics = None;
    for (k, v) in obj.iter() {
        match k.as_ref() {
            "step" => step = parse_step(v)?,
            "timestamp" => timestamp = parse_timestamp(v)?,
            "metrics" => {
                let Value::Object(m) = v else {
                    return Err(format!("\"metrics\" must be an object, got {}", kind(v)));
                };
                let mut out = Vec::with_capacity(m.len());
                for (key, v) in m.iter() {
                    let v =
                        metric_value(v).map_err(|e| format!("metric {:?}: {e}", key.as_ref()))?;
                    out.push((key.to_string(), v));
                }
                metrics = Some(out);
            }
            other => {
                return Err(format!(
                    "unknown field {other:?} (a line has \"step\", \"timestamp\" and \"metrics\")"
                ));
            }
        }
    }
    let metrics = metrics.ok_or("the line has no \"metrics\" object")?;
    if metrics.is_empty() {
        return Err("\"metrics\" is empty".into());
    }
    Ok(Line {
        step,
        timestamp: timestamp.unwrap_or(arrival),
        metrics,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Static(StaticNode::Null) => "null",
        Value::Static(StaticNode::Bool(_)) => "a boolean",
        Value::Static(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Steps are integers that a float holds exactly.
const MAX_STEP: i64 = 1 << 53;

fn parse_step(v: &Value) -> Result<Option<i64>, String> {
    let step = match v {
        Value::Static(StaticNode::Null) => return Ok(None),
        Value::Static(StaticNode::I64(i)) => *i,
        Value::Static(StaticNode::U64(u)) => i64::try_from(*u).unwrap_or(i64::MAX),
        Value::Static(StaticNode::F64(f)) if f.fract() == 0.0 && f.abs() <= MAX_STEP as f64 => {
            *f as i64
        }
        other => return Err(format!("\"step\" must be an integer, got {}", show(other))),
    };
    if step.abs() > MAX_STEP {
        return Err(format!("\"step\" {step} is beyond ±2^53"));
    }
    Ok(Some(step))
}

fn show(v: &Value) -> String {
    match v {
        Value::Static(StaticNode::F64(f)) => f.to_string(),
        Value::String(s) => format!("{:?}", s.as_ref()),
        other => kind(other).to_string(),
    }
}

/// Unix seconds or RFC 3339, to milliseconds.
fn parse_timestamp(v: &Value) -> Result<Option<Timestamp>, String> {
    let secs = match v {
        Value::Static(StaticNode::Null) => return Ok(None),
        Value::Static(StaticNode::I64(i)) => *i as f64,
        Value::Static(StaticNode::U64(u)) => *u as f64,
        Value::Static(StaticNode::F64(f)) => *f,
        Value::String(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
                format!(
                    "\"timestamp\" {:?} is not RFC 3339 ({e}); give unix seconds or a time like 2026-11-25T12:00:00Z",
                    s.as_ref()
                )
            })?;
            return Ok(Some(t.timestamp_millis()));
        }
        other => {
            return Err(format!(
                "\"timestamp\" must be unix seconds or an RFC 3339 string, got {}",
                kind(other)
            ));
        }
    };
    // Beyond year 292 277 no millisecond fits an i64; such a value is a unit mistake anyway.
    if !secs.is_finite() || secs.abs() > 9.2e15 {
        return Err(format!("\"timestamp\" {secs} is out of range"));
    }
    Ok(Some((secs * 1000.0).round() as i64))
}

fn metric_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Static(StaticNode::I64(i)) => Ok(*i as f64),
        Value::Static(StaticNode::U64(u)) => Ok(*u as f64),
        Value::Static(StaticNode::F64(f)) => Ok(*f),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "nan" => Ok(f64::NAN),
            "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
            "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(format!(
                "{:?} is not a number (strings may be \"NaN\", \"+Inf\" or \"-Inf\")",
                s.as_ref()
            )),
        },
        other => Err(format!("{} is not a number", kind(other))),
    }
}

/// A run's parameters: names (nested objects flattened with `.`) and their values as text,
/// with the number each stands for (1 for text).
/// One run parameter: its (flattened) name, its value as text, its sample value (the number,
/// or 1 for a parameter that is not a number) and its JSON type.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub text: String,
    pub number: f64,
    pub kind: ParamType,
}

pub fn parse_params(body: &mut [u8]) -> Result<Vec<Param>, String> {
    quiver_ingest::json_depth::check(body)?;
    let value = simd_json::borrowed::to_value(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(_) = value else {
        return Err(format!(
            "expected an object of parameters like {{\"lr\": 0.001, \"optimizer\": \"adam\"}}, got {}",
            kind(&value)
        ));
    };
    let mut out = Vec::new();
    flatten("", &value, &mut out)?;
    if out.is_empty() {
        return Err("no parameters in the body".into());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!("parameter {:?} is given twice", w[0].name));
    }
    Ok(out)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<Param>) -> Result<(), String> {
    let (text, number, kind) = match v {
        Value::Object(obj) => {
            for (k, v) in obj.iter() {
                if k.is_empty() {
                    return Err(format!("an empty parameter name under {prefix:?}"));
                }
                let name = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out)?;
            }
            return Ok(());
        }
        // A null parameter is not set.
        Value::Static(StaticNode::Null) => return Ok(()),
        Value::Static(StaticNode::Bool(b)) => {
            (b.to_string(), if *b { 1.0 } else { 0.0 }, ParamType::Bool)
        }
        Value::Static(StaticNode::I64(i)) => (i.to_string(), *i as f64, ParamType::Number),
        Value::Static(StaticNode::U64(u)) => (u.to_string(), *u as f64, ParamType::Number),
        Value::Static(StaticNode::F64(f)) => (f.to_string(), *f, ParamType::Number),
        Value::String(s) => (s.to_string(), 1.0, ParamType::String),
        Value::Array(_) => (
            simd_json::to_string(v).map_err(|e| format!("parameter {prefix:?}: {e}"))?,
            1.0,
            ParamType::Json,
        ),
    };
    // An empty label value is no label: keep the parameter visible as `""`.
    let text = if text.is_empty() { "\"\"".into() } else { text };
    out.push(Param {
        name: prefix.to_string(),
        text,
        number,
        kind,
    });
    Ok(())
}

/// The labels of a parameter's series.
pub fn param_labels(
    experiment: &str,
    run: &str,
    param: &Param,
    limits: &LabelLimits,
) -> Result<Labels, String> {
    Labels::try_from_pairs(
        [
            (METRIC_NAME, PARAM_METRIC),
            (EXPERIMENT, experiment),
            (RUN_ID, run),
            (PARAM, param.name.as_str()),
            (PARAM_VALUE, param.text.as_str()),
            (PARAM_TYPE, param.kind.as_str()),
        ],
        limits,
    )
    .map_err(|e| format!("parameter {:?}: {e}", param.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ParsedMetrics, LineErrors> {
        let mut b = body.as_bytes().to_vec();
        parse_metrics(&mut b, "e", "r", 1_000, &LabelLimits::default())
    }

    #[test]
    fn lines_become_samples_and_steps() {
        let p = parse(concat!(
            "{\"step\": 1, \"timestamp\": 10.5, \"metrics\": {\"loss\": 0.5, \"acc\": 1}}\n",
            "\n",
            "{\"step\": 2, \"metrics\": {\"loss\": \"NaN\"}}\n",
        ))
        .unwrap();
        assert_eq!((p.lines, p.samples), (2, 3));
        // loss, acc, step series.
        assert_eq!(p.batch.num_series(), 3);
        assert_eq!(p.batch.num_samples(), 3 + 2);
    }

    #[test]
    fn bad_lines_are_named_and_reject_the_batch() {
        let e = parse(concat!(
            "{\"step\": 1, \"metrics\": {\"loss\": 0.5}}\n",
            "{\"step\": 1.5, \"metrics\": {\"loss\": 0.5}}\n",
            "{\"step\": 3, \"metrics\": {\"loss\": true}}\n",
            "not json\n",
            "{\"step\": 4, \"metric\": {}}\n",
            "{\"step\": 5, \"metrics\": {\"__x\": 1}}\n",
        ))
        .unwrap_err();
        let lines: Vec<usize> = e.shown.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        let text = e.to_string();
        assert!(
            text.contains("line 2: \"step\" must be an integer, got 1.5"),
            "{text}"
        );
        assert!(
            text.contains("line 3: metric \"loss\": a boolean is not a number"),
            "{text}"
        );
        assert!(text.contains("line 4: not valid JSON"), "{text}");
        assert!(text.contains("line 5: unknown field \"metric\""), "{text}");
        assert!(
            text.contains("line 6: metric key \"__x\" is reserved"),
            "{text}"
        );
        assert!(
            text.ends_with("(nothing of this batch was stored)"),
            "{text}"
        );
    }

    #[test]
    fn two_steps_may_not_share_a_timestamp() {
        let e = parse(concat!(
            "{\"step\": 1, \"timestamp\": 5, \"metrics\": {\"loss\": 0.5}}\n",
            "{\"step\": 1, \"timestamp\": 5, \"metrics\": {\"acc\": 0.5}}\n",
            "{\"step\": 2, \"timestamp\": 5, \"metrics\": {\"loss\": 0.4}}\n",
        ))
        .unwrap_err();
        assert_eq!(e.shown.len(), 1);
        assert_eq!(e.shown[0].0, 3);
        assert!(
            e.shown[0]
                .1
                .contains("same timestamp (5000 ms) as step 1 on line 1")
        );
    }

    #[test]
    fn timestamps_are_seconds_or_rfc3339_and_arrivals_are_distinct() {
        for (ts, want) in [
            ("1.5", 1_500),
            ("\"1970-01-01T00:00:02.25Z\"", 2_250),
            ("null", 1_000),
        ] {
            let p = parse(&format!(
                "{{\"step\": 1, \"timestamp\": {ts}, \"metrics\": {{\"x\": 1}}}}"
            ))
            .unwrap();
            assert_eq!(p.batch.num_samples(), 2);
            // The first sample is the metric's.
            assert_eq!(batch_timestamps(&p.batch)[0], want, "{ts}");
        }
        let p = parse("{\"metrics\": {\"x\": 1}}\n{\"metrics\": {\"x\": 2}}").unwrap();
        assert_eq!(batch_timestamps(&p.batch), [1_000, 1_001]);
        let e = parse("{\"timestamp\": \"yesterday\", \"metrics\": {\"x\": 1}}").unwrap_err();
        assert!(e.shown[0].1.contains("is not RFC 3339"), "{e}");
    }

    fn batch_timestamps(b: &WriteBatch) -> Vec<Timestamp> {
        b.samples().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn params_flatten_and_keep_their_text() {
        let mut b =
            br#"{"lr": 0.001, "layers": 4, "opt": {"name": "adam", "beta": 0.9}, "tags": ["a", "b"], "fast": true, "none": null}"#
                .to_vec();
        let p = parse_params(&mut b).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["fast", "layers", "lr", "opt.beta", "opt.name", "tags"]
        );
        let summary = |p: &Param| (p.text.clone(), p.number, p.kind);
        assert_eq!(summary(&p[2]), ("0.001".into(), 0.001, ParamType::Number));
        assert_eq!(summary(&p[4]), ("adam".into(), 1.0, ParamType::String));
        assert_eq!(
            summary(&p[5]),
            ("[\"a\",\"b\"]".into(), 1.0, ParamType::Json)
        );
        assert_eq!(summary(&p[0]), ("true".into(), 1.0, ParamType::Bool));
        // A number written as a string stays a string.
        let mut b = br#"{"gpu": "0"}"#.to_vec();
        assert_eq!(parse_params(&mut b).unwrap()[0].kind, ParamType::String);
        assert!(parse_params(&mut b"[1]".to_vec()).is_err());
    }
}
