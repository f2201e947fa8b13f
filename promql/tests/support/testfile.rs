//! Prometheus's PromQL test-file format (`promql/promqltest`): `load`, `clear`, `eval instant`,
//! `eval range`, `expect …` and the older `eval_fail` / `eval_ordered` forms. Series and values
//! are in Prometheus's series notation (`quiver_promql::series_desc`).

use quiver_promql::series_desc::{
    SequenceValue, expand_sequence, parse_labels, parse_value, read_quoted,
};

/// One command of a test file.
#[derive(Debug, Clone)]
pub enum Command {
    Load(Load),
    Clear,
    Eval(Eval),
}

#[derive(Debug, Clone)]
pub struct Load {
    pub line: usize,
    pub series: Vec<LoadSeries>,
    /// `load_with_nhcb`: classic histograms (`x_bucket`, `x_sum`, `x_count`) are also loaded
    /// as native histograms with custom buckets (`x`).
    pub nhcb: bool,
}

#[derive(Debug, Clone)]
pub struct LoadSeries {
    pub labels: Vec<(String, String)>,
    /// (ms, value): floats (staleness markers are `STALE_NAN`) and native histograms, never
    /// `SequenceValue::Omitted`.
    pub samples: Vec<(i64, SequenceValue)>,
}

#[derive(Debug, Clone)]
pub enum EvalKind {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub kind: EvalKind,
    pub expr: String,
    pub fail: Option<Fail>,
    pub ordered: bool,
    /// `expect warn` / `info` and their negations, which this runner cannot check: counted.
    pub annotations: bool,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub enum Fail {
    Any,
    Msg(String),
    Regex(String),
}

/// An expected series: its labels and one value per step (`Omitted`: no point).
pub type SeriesRow = (Vec<(String, String)>, Vec<SequenceValue>);

#[derive(Debug, Clone)]
pub enum Expected {
    /// Series with one value (instant) or a point per step (`None` = no point).
    Series(Vec<SeriesRow>),
    Scalar(f64),
    String(String),
    /// `expect range vector from … to … step …` and its series.
    RangeVector {
        start: i64,
        step: i64,
        series: Vec<SeriesRow>,
    },
}

pub use quiver_promql::series_desc::STALE_NAN;

pub fn parse(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let no = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let body = |i: &mut usize| -> Vec<(usize, String)> {
            let mut b = Vec::new();
            while *i < lines.len() {
                let l = lines[*i];
                if l.trim().starts_with('#') {
                    *i += 1;
                    continue;
                }
                if l.trim().is_empty() || !l.starts_with([' ', '\t']) {
                    break;
                }
                b.push((*i + 1, l.trim().to_string()));
                *i += 1;
            }
            b
        };
        if line == "clear" {
            out.push(Command::Clear);
        } else if let Some(rest) = line
            .strip_prefix("load_with_nhcb ")
            .map(|r| (r, true))
            .or_else(|| line.strip_prefix("load ").map(|r| (r, false)))
        {
            let (interval, nhcb) = rest;
            let interval =
                parse_duration(interval.trim()).ok_or(format!("line {no}: bad interval"))?;
            let mut load = Load {
                line: no,
                series: Vec::new(),
                nhcb,
            };
            for (ln, l) in body(&mut i) {
                let (labels, rest) = parse_labels(&l).map_err(|e| format!("line {ln}: {e}"))?;
                let values = expand_sequence(rest).map_err(|e| format!("line {ln}: {e}"))?;
                let samples = values
                    .into_iter()
                    .enumerate()
                    .filter(|(_, v)| !matches!(v, SequenceValue::Omitted))
                    .map(|(k, v)| (k as i64 * interval, v))
                    .collect();
                load.series.push(LoadSeries { labels, samples });
            }
            out.push(Command::Load(load));
        } else if line.starts_with("eval") {
            let (head, rest) = line.split_once(' ').ok_or(format!("line {no}: bad eval"))?;
            let mut fail = None;
            let mut ordered = false;
            match head {
                "eval" => {}
                "eval_fail" => fail = Some(Fail::Any),
                "eval_ordered" => ordered = true,
                "eval_warn" | "eval_info" => {}
                other => return Err(format!("line {no}: unknown command {other}")),
            }
            let (kind, expr) = if let Some(r) = rest.strip_prefix("instant at ") {
                let (t, e) = r.split_once(' ').ok_or(format!("line {no}: bad eval"))?;
                (
                    EvalKind::Instant(parse_duration(t).ok_or(format!("line {no}: bad time {t}"))?),
                    e.trim().to_string(),
                )
            } else if let Some(r) = rest.strip_prefix("range from ") {
                let parts: Vec<&str> = r.splitn(6, ' ').collect();
                if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
                    return Err(format!("line {no}: bad range eval"));
                }
                let p = |s: &str| parse_duration(s).ok_or(format!("line {no}: bad time {s}"));
                (
                    EvalKind::Range {
                        start: p(parts[0])?,
                        end: p(parts[2])?,
                        step: p(parts[4])?,
                    },
                    parts[5].trim().to_string(),
                )
            } else {
                return Err(format!("line {no}: bad eval"));
            };
            let mut eval = Eval {
                line: no,
                kind,
                expr,
                fail,
                ordered,
                annotations: head == "eval_warn" || head == "eval_info",
                expected: Expected::Series(Vec::new()),
            };
            let mut series = Vec::new();
            let mut range_vector = None;
            for (ln, l) in body(&mut i) {
                if let Some(e) = l.strip_prefix("expect ") {
                    let e = e.trim();
                    if let Some(f) = e.strip_prefix("fail") {
                        let f = f.trim();
                        eval.fail = Some(if let Some(m) = f.strip_prefix("msg:") {
                            Fail::Msg(m.trim().to_string())
                        } else if let Some(r) = f.strip_prefix("regex:") {
                            Fail::Regex(r.trim().to_string())
                        } else {
                            Fail::Any
                        });
                    } else if e == "ordered" {
                        eval.ordered = true;
                    } else if let Some(s) = e.strip_prefix("string ") {
                        eval.expected = Expected::String(
                            unquote(s.trim()).ok_or(format!("line {ln}: bad string"))?,
                        );
                    } else if let Some(r) = e.strip_prefix("range vector from ") {
                        let parts: Vec<&str> = r.split_whitespace().collect();
                        if parts.len() != 5 {
                            return Err(format!("line {ln}: bad range vector"));
                        }
                        let p =
                            |s: &str| parse_duration(s).ok_or(format!("line {ln}: bad time {s}"));
                        range_vector = Some((p(parts[0])?, p(parts[4])?));
                    } else {
                        // warn, info, no_warn, no_info
                        eval.annotations = true;
                    }
                    continue;
                }
                if series.is_empty()
                    && !l.contains('{')
                    && !l.contains(' ')
                    && let Some(v) = parse_value(&l)
                {
                    eval.expected = Expected::Scalar(v);
                    continue;
                }
                let (labels, rest) = parse_labels(&l).map_err(|e| format!("line {ln}: {e}"))?;
                let values = expand_sequence(rest).map_err(|e| format!("line {ln}: {e}"))?;
                series.push((labels, values));
            }
            if let Some((start, step)) = range_vector {
                eval.expected = Expected::RangeVector {
                    start,
                    step,
                    series,
                };
            } else if !series.is_empty() {
                eval.expected = Expected::Series(series);
            }
            out.push(Command::Eval(eval));
        } else {
            return Err(format!("line {no}: unknown command {line:?}"));
        }
    }
    Ok(out)
}

/// A PromQL duration (`1h30m`, `90s`, `10s53ms`) or a bare number of seconds, in ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let ms = if let Ok(secs) = s.parse::<f64>() {
        (secs * 1000.0).round() as i64
    } else {
        let mut total = 0i64;
        let mut num = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().ok()?;
            num.clear();
            let unit = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                'y' => 365 * 86_400_000,
                'w' => 7 * 86_400_000,
                'd' => 86_400_000,
                'h' => 3_600_000,
                'm' => 60_000,
                's' => 1000,
                _ => return None,
            };
            total += n * unit;
        }
        if !num.is_empty() {
            return None;
        }
        total
    };
    Some(if neg { -ms } else { ms })
}

fn unquote(s: &str) -> Option<String> {
    read_quoted(s).ok().map(|(v, _)| v)
}
