//! Prometheus's series notation (`ParseSeriesDesc`): a series as `name{label="value"}` and its
//! values as `1+2x3 _ 10-1x2 stale`, one per step. The PromQL test files' `load` blocks use it,
//! and so do rule unit tests (`promtool test rules`).

use quiver_storage::FloatHistogram;

mod histogram;

/// A label set, sorted, `__name__` included.
pub type LabelList = Vec<(String, String)>;

/// The bits of Prometheus's staleness marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One step of a series: Prometheus's `SequenceValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceValue {
    /// `_`: no sample at this step.
    Omitted,
    /// A number, `Inf`, `NaN` or `stale` (the staleness marker, [`STALE_NAN`]).
    Float(f64),
    /// `{{…}}`. `hint_set` says whether the notation gave `counter_reset_hint:` (for a
    /// `{{a}}+{{b}}xN` sequence: whether `b` did); Prometheus's test runner compares an
    /// expected histogram's hint only then.
    Histogram { h: FloatHistogram, hint_set: bool },
}

/// Parses a number as Prometheus's series notation does: `Inf`, `NaN` (any case, with an
/// optional `+`/`-`), `stale`, a decimal or float literal (`1_000`, `1e-3`) or, as Go's
/// `strconv.ParseInt(s, 0, 64)` reads it first, an octal integer with a leading 0 (`010`
/// is 8). Never hex: `0x3` is "0 three more times".
pub fn parse_value(s: &str) -> Option<f64> {
    if s == "stale" {
        return Some(f64::from_bits(STALE_NAN));
    }
    parse_number(s)
}

/// [`parse_value`] without `stale`.
fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || b == b'_') => {
            parse_go_int(body)?
        }
        // Rust also reads `inf`, `infinity` and `nan` spelled otherwise; Go does not.
        _ if body
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E')) =>
        {
            return None;
        }
        _ => body.parse::<f64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Digits and underscores as Go's `ParseInt(s, 0, 64)` reads them (a leading 0 means
/// octal), falling back to `ParseFloat` (decimal, no underscores) as Prometheus does.
fn parse_go_int(s: &str) -> Option<f64> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    let underscores_ok = !s.starts_with('_') && !s.ends_with('_') && !s.contains("__");
    if underscores_ok {
        let parsed = if digits.len() > 1 && digits.starts_with('0') {
            i64::from_str_radix(&digits[1..], 8).ok()
        } else {
            digits.parse::<i64>().ok()
        };
        if let Some(n) = parsed {
            return Some(n as f64);
        }
    }
    if s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Expands a series' values, floats and native histograms mixed: `1+2x3 _ {{count:1}}x2
/// {{sum:1}}+{{sum:2}}x3 _x2 stale`, one value per step.
pub fn expand_sequence(s: &str) -> Result<Vec<SequenceValue>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let len = if rest.starts_with("{{") {
            histogram::read_item(rest, &mut out)?
        } else {
            let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            expand_float(&rest[..len], &mut out)?;
            len
        };
        rest = rest[len..].trim_start();
    }
    Ok(out)
}

/// Expands `1+2x3 _ 5 _x2 stale` into one value per step (`None` for `_`); a native
/// histogram is an error (see [`expand_sequence`]).
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    expand_sequence(s)?
        .into_iter()
        .map(|v| match v {
            SequenceValue::Omitted => Ok(None),
            SequenceValue::Float(f) => Ok(Some(f)),
            SequenceValue::Histogram { .. } => {
                Err(format!("a native histogram where floats are expected: {s}"))
            }
        })
        .collect()
}

/// One float item: `_`, `_xN`, a value, `startxN` or `start+incxN` / `start-incxN`.
fn expand_float(tok: &str, out: &mut Vec<SequenceValue>) -> Result<(), String> {
    let bad = || format!("bad token {tok}");
    if tok == "_" {
        out.push(SequenceValue::Omitted);
        return Ok(());
    }
    if let Some(n) = tok.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| bad())?;
        out.extend(std::iter::repeat_n(SequenceValue::Omitted, n));
        return Ok(());
    }
    if let Some(v) = parse_value(tok) {
        out.push(SequenceValue::Float(v));
        return Ok(());
    }
    let (head, times) = tok.rsplit_once('x').ok_or_else(bad)?;
    let times: usize = times.parse().map_err(|_| bad())?;
    let bytes = head.as_bytes();
    let sep = (1..bytes.len())
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (start, inc) = match sep {
        Some(i) => {
            let inc = parse_value(&head[i + 1..]).ok_or_else(bad)?;
            let inc = if bytes[i] == b'-' { -inc } else { inc };
            (parse_value(&head[..i]).ok_or_else(bad)?, inc)
        }
        None => (parse_value(head).ok_or_else(bad)?, 0.0),
    };
    if start.to_bits() == STALE_NAN {
        out.extend(std::iter::repeat_n(SequenceValue::Float(start), times + 1));
        return Ok(());
    }
    // Go adds the increment step by step (`$1 += $2`), so rounding accumulates as there.
    let mut v = start;
    for _ in 0..=times {
        out.push(SequenceValue::Float(v));
        v += inc;
    }
    Ok(())
}

/// `name{a="b", "c"="d"}` (either part optional) and the rest of the line.
pub fn parse_labels(s: &str) -> Result<(LabelList, &str), String> {
    let mut labels = Vec::new();
    let s = s.trim_start();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    if name_end > 0 {
        labels.push(("__name__".to_string(), s[..name_end].to_string()));
    }
    let mut rest = &s[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut r = inner.trim_start();
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, after) = if r.starts_with('"') {
                read_quoted(r)?
            } else {
                let end = r
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                    .unwrap_or(r.len());
                (r[..end].to_string(), &r[end..])
            };
            let after = after.trim_start();
            if let Some(v) = after.strip_prefix('=') {
                let (value, after) = read_quoted(v.trim_start())?;
                labels.push((name, value));
                r = after.trim_start();
            } else {
                // A bare quoted string is the metric name.
                labels.push(("__name__".to_string(), name));
                r = after;
            }
            r = r.trim_start();
            if let Some(after) = r.strip_prefix(',') {
                r = after.trim_start();
            }
        }
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    Ok((labels, rest.trim()))
}

pub fn read_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    if q != '"' && q != '\'' && q != '`' {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, &s[1 + i + 1..]));
        }
        if c == '\\' && q != '`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, c)) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(v: &[Option<f64>]) -> Vec<SequenceValue> {
        v.iter()
            .map(|v| v.map_or(SequenceValue::Omitted, SequenceValue::Float))
            .collect()
    }

    #[test]
    fn values_expand_as_prometheus_documents() {
        assert_eq!(
            expand_values("1+2x3 _ 10-1x2 _x2").unwrap(),
            vec![
                Some(1.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                None,
                Some(10.0),
                Some(9.0),
                Some(8.0),
                None,
                None
            ]
        );
    }

    #[test]
    fn numbers_read_as_go_reads_them() {
        assert_eq!(parse_value("1_000"), Some(1000.0));
        assert_eq!(parse_value("010"), Some(8.0));
        assert_eq!(parse_value("09"), Some(9.0));
        assert_eq!(parse_value("1e-3"), Some(0.001));
        assert_eq!(parse_value("-INF"), Some(f64::NEG_INFINITY));
        assert!(parse_value("nan").is_some_and(f64::is_nan));
        assert_eq!(parse_value("infinity"), None);
        assert_eq!(parse_value("1__0"), None);
        assert_eq!(
            parse_value("stale").map(f64::to_bits),
            Some(STALE_NAN),
            "stale is the staleness marker"
        );
    }

    #[test]
    fn float_steps_accumulate_as_go_adds_them() {
        let got = expand_values("0+0.1x3").unwrap();
        let mut want = Vec::new();
        let mut v = 0.0;
        for _ in 0..4 {
            want.push(Some(v));
            v += 0.1;
        }
        assert_eq!(got, want);
    }

    #[test]
    fn floats_and_histograms_mix_in_one_series() {
        let got = expand_sequence("1 _ {{count:2}} stale {{sum:3}}x1  2-1x1 _x2").unwrap();
        let h = |count: f64, sum: f64| SequenceValue::Histogram {
            h: FloatHistogram {
                count,
                sum,
                ..FloatHistogram::default()
            },
            hint_set: false,
        };
        let stale = f64::from_bits(STALE_NAN);
        let mut want = floats(&[Some(1.0), None]);
        want.push(h(2.0, 0.0));
        want.push(SequenceValue::Float(stale));
        want.extend([h(0.0, 3.0), h(0.0, 3.0)]);
        want.extend(floats(&[Some(2.0), Some(1.0), None, None]));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                (SequenceValue::Float(a), SequenceValue::Float(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits())
                }
                _ => assert_eq!(g, w),
            }
        }
    }

    #[test]
    fn float_series_refuse_histograms() {
        assert!(expand_values("1 {{count:1}}").is_err());
    }
}
