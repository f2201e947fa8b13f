//! The native-histogram part of the series notation, as Prometheus's lexer and grammar read it
//! (`promql/parser/lex.go`, `generated_parser.y`, `parse.go`):
//!
//! ```text
//! {{schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] offset:1
//!   n_buckets:[1] n_offset:0 custom_values:[…] counter_reset_hint:gauge}}
//! {{…}}x3            the histogram, then three more times
//! {{a}}+{{b}}x3      a, a+b, a+2b, a+3b (and `-` to subtract)
//! ```
//!
//! Keys are case-insensitive and each may appear once; every one is optional (an empty
//! `{{}}` is a histogram of schema 0 with nothing in it). `buckets` (or `n_buckets`) become one
//! span starting at `offset` (or `n_offset`). Numbers take a `-` sign (not `+`), except
//! `z_bucket_w`; `schema` and the offsets are integers.

use quiver_storage::histogram::{CounterResetHint, FloatHistogram, Span};

use super::{SequenceValue, parse_number};

/// A parsed `{{…}}`: the histogram and whether it set `counter_reset_hint` explicitly.
struct Parsed {
    h: FloatHistogram,
    hint_set: bool,
}

/// Reads a histogram item at the start of `s` (which starts with `{{`): one histogram or a
/// `x`/`+`/`-` sequence of them, appended to `out`. Answers the length read.
pub(super) fn read_item(s: &str, out: &mut Vec<SequenceValue>) -> Result<usize, String> {
    let (base, mut pos) = read_histogram(s)?;
    let rest = &s[pos..];
    match rest.chars().next() {
        None => {}
        Some(c) if c.is_whitespace() => {}
        Some('x') => {
            let (times, n) = read_uint(&rest[1..])?;
            pos += 1 + n;
            for _ in 0..=times {
                out.push(base.value());
            }
            return Ok(pos);
        }
        Some(op @ ('+' | '-')) => {
            pos += 1;
            if !s[pos..].starts_with("{{") {
                return Err(format!(
                    "expected a histogram after `{op}` in {:?}",
                    truncate(s)
                ));
            }
            let (inc, n) = read_histogram(&s[pos..])?;
            pos += n;
            let Some(after) = s[pos..].strip_prefix('x') else {
                return Err(format!(
                    "expected `x<n>` after `{{{{…}}}}{op}{{{{…}}}}` in {:?}",
                    truncate(s)
                ));
            };
            let (times, n) = read_uint(after)?;
            pos += 1 + n;
            series(base.h, &inc, times, op == '-', out)?;
            return Ok(pos);
        }
        Some(c) => {
            return Err(format!(
                "unexpected {c:?} after a histogram in {:?}",
                truncate(s)
            ));
        }
    }
    out.push(base.value());
    Ok(pos)
}

impl Parsed {
    fn value(&self) -> SequenceValue {
        SequenceValue::Histogram {
            h: self.h.clone(),
            hint_set: self.hint_set,
        }
    }
}

/// Prometheus's `histogramsSeries`: the base, then `times` more, each the previous one plus
/// (or minus) `inc`. Every value carries the increment's `hint_set` (the flag Go's parser
/// holds when it builds the sequence is the last histogram's).
fn series(
    base: FloatHistogram,
    inc: &Parsed,
    times: u64,
    subtract: bool,
    out: &mut Vec<SequenceValue>,
) -> Result<(), String> {
    let hint_set = inc.hint_set;
    let mut cur = base;
    out.push(SequenceValue::Histogram {
        h: cur.clone(),
        hint_set,
    });
    for _ in 0..times {
        if cur.schema > inc.h.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                inc.h.schema, cur.schema
            ));
        }
        let combined = if subtract {
            cur.sub(&inc.h)
        } else {
            cur.add(&inc.h)
        };
        combined.map_err(|e| format!("error combining histograms: {e}"))?;
        out.push(SequenceValue::Histogram {
            h: cur.clone(),
            hint_set,
        });
    }
    Ok(())
}

/// Reads `{{…}}` at the start of `s`; answers the histogram and the length read.
fn read_histogram(s: &str) -> Result<(Parsed, usize), String> {
    let body_start = 2;
    let Some(len) = s[body_start..].find("}}") else {
        return Err(format!("unterminated histogram in {:?}", truncate(s)));
    };
    let body = &s[body_start..body_start + len];
    let parsed = parse_body(body).map_err(|e| format!("{e} in {{{{{body}}}}}"))?;
    Ok((parsed, body_start + len + 2))
}

/// The fields of a histogram, as given.
#[derive(Default)]
struct Fields {
    schema: Option<i64>,
    sum: Option<f64>,
    count: Option<f64>,
    z_bucket: Option<f64>,
    z_bucket_w: Option<f64>,
    custom_values: Option<Vec<f64>>,
    buckets: Option<Vec<f64>>,
    offset: Option<i64>,
    n_buckets: Option<Vec<f64>>,
    n_offset: Option<i64>,
    hint: Option<CounterResetHint>,
}

fn parse_body(body: &str) -> Result<Parsed, String> {
    let mut f = Fields::default();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        let Some(value) = rest[key_end..].strip_prefix(':') else {
            return Err(if key.is_empty() {
                format!("unexpected {:?}", truncate(rest))
            } else {
                format!("missing `:` after {key:?}")
            });
        };
        let (consumed, duplicate) = match key.as_str() {
            "schema" => set(&mut f.schema, read_int(value)?),
            "sum" => set(&mut f.sum, read_signed(value)?),
            "count" => set(&mut f.count, read_signed(value)?),
            "z_bucket" => set(&mut f.z_bucket, read_signed(value)?),
            "z_bucket_w" => set(&mut f.z_bucket_w, read_unsigned(value)?),
            "custom_values" => set(&mut f.custom_values, read_list(value)?),
            "buckets" => set(&mut f.buckets, read_list(value)?),
            "offset" => set(&mut f.offset, read_int(value)?),
            "n_buckets" => set(&mut f.n_buckets, read_list(value)?),
            "n_offset" => set(&mut f.n_offset, read_int(value)?),
            "counter_reset_hint" => set(&mut f.hint, read_hint(value)?),
            _ => return Err(format!("bad histogram descriptor {key:?}")),
        };
        if duplicate {
            return Err(format!("duplicate key {key:?} in histogram"));
        }
        let after = &value[consumed..];
        if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            return Err(format!("unexpected {:?} after {key}", truncate(after)));
        }
        rest = after.trim_start();
    }
    Ok(build(f))
}

/// Stores `v` in `slot`; answers the length read and whether the slot was already set.
fn set<T>(slot: &mut Option<T>, (v, n): (T, usize)) -> (usize, bool) {
    let duplicate = slot.is_some();
    if !duplicate {
        *slot = Some(v);
    }
    (n, duplicate)
}

/// Prometheus's `buildHistogramFromMap`.
fn build(f: Fields) -> Parsed {
    let side = |buckets: Option<Vec<f64>>, offset: Option<i64>| -> (Vec<Span>, Vec<f64>) {
        let buckets = buckets.unwrap_or_default();
        let spans = if buckets.is_empty() {
            Vec::new()
        } else {
            vec![Span {
                offset: offset.unwrap_or(0) as i32,
                length: buckets.len() as u32,
            }]
        };
        (spans, buckets)
    };
    let (positive_spans, positive_buckets) = side(f.buckets, f.offset);
    let (negative_spans, negative_buckets) = side(f.n_buckets, f.n_offset);
    Parsed {
        hint_set: f.hint.is_some(),
        h: FloatHistogram {
            hint: f.hint.unwrap_or_default(),
            schema: f.schema.unwrap_or(0) as i32,
            zero_threshold: f.z_bucket_w.unwrap_or(0.0),
            zero_count: f.z_bucket.unwrap_or(0.0),
            count: f.count.unwrap_or(0.0),
            sum: f.sum.unwrap_or(0.0),
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: f.custom_values.unwrap_or_default(),
        },
    }
}

/// The characters of a number: digits, `.`, `_`, exponents with their sign, or `Inf`/`NaN`.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        return b
            .iter()
            .position(|c| !c.is_ascii_alphabetic())
            .unwrap_or(b.len());
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' | b'.' | b'_' => i += 1,
            b'e' | b'E' => {
                i += 1;
                if i < b.len() && matches!(b[i], b'+' | b'-') {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    i
}

/// An unsigned number (`number` in Go's grammar).
fn read_unsigned(s: &str) -> Result<(f64, usize), String> {
    let n = number_len(s);
    let v = parse_number(&s[..n]).ok_or_else(|| format!("bad number {:?}", truncate(s)))?;
    Ok((v, n))
}

/// A number with an optional `-` (`signed_or_unsigned_number`).
fn read_signed(s: &str) -> Result<(f64, usize), String> {
    match s.strip_prefix('-') {
        Some(r) => read_unsigned(r).map(|(v, n)| (-v, n + 1)),
        None => read_unsigned(s),
    }
}

/// Decimal digits (`uint`: a repetition count).
fn read_uint(s: &str) -> Result<(u64, usize), String> {
    let n = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let v = s[..n]
        .parse()
        .map_err(|_| format!("invalid repetition in series values: {:?}", truncate(s)))?;
    Ok((v, n))
}

/// An integer with an optional `-` (`int`).
fn read_int(s: &str) -> Result<(i64, usize), String> {
    let (neg, r) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (v, n) = read_uint(r)?;
    let v = i64::try_from(v).map_err(|_| format!("integer out of range: {v}"))?;
    Ok((if neg { -v } else { v }, n + usize::from(neg)))
}

/// `[1 2 -3]`: at least one number, separated by blanks.
fn read_list(s: &str) -> Result<(Vec<f64>, usize), String> {
    let Some(inner) = s.strip_prefix('[') else {
        return Err(format!("expected `[` at {:?}", truncate(s)));
    };
    let end = inner
        .find(']')
        .ok_or_else(|| format!("unterminated bucket list at {:?}", truncate(s)))?;
    let mut values = Vec::new();
    for tok in inner[..end].split_whitespace() {
        let (v, n) = read_signed(tok)?;
        if n != tok.len() {
            return Err(format!("invalid character in buckets description: {tok:?}"));
        }
        values.push(v);
    }
    if values.is_empty() {
        return Err("empty bucket list".to_string());
    }
    Ok((values, end + 2))
}

fn read_hint(s: &str) -> Result<(CounterResetHint, usize), String> {
    let n = s
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
        .unwrap_or(s.len());
    let hint = match s[..n].to_ascii_lowercase().as_str() {
        "unknown" => CounterResetHint::Unknown,
        "reset" => CounterResetHint::Reset,
        "not_reset" => CounterResetHint::NotReset,
        "gauge" => CounterResetHint::Gauge,
        other => return Err(format!("error parsing counter_reset_hint: {other:?}")),
    };
    Ok((hint, n))
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SequenceValue, expand_sequence};
    use super::*;

    fn histograms(s: &str) -> Vec<(FloatHistogram, bool)> {
        expand_sequence(s)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                SequenceValue::Histogram { h, hint_set } => (h, hint_set),
                other => panic!("{s}: not a histogram: {other:?}"),
            })
            .collect()
    }

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    #[test]
    fn every_field_lands_where_prometheus_puts_it() {
        let got = histograms(
            "{{schema:1 sum:-5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1 ] offset:1 \
             n_buckets:[3] n_offset:-2 counter_reset_hint:gauge}}",
        );
        let want = FloatHistogram {
            hint: CounterResetHint::Gauge,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 4.0,
            sum: -5.0,
            positive_spans: vec![span(1, 3)],
            positive_buckets: vec![1.0, 2.0, 1.0],
            negative_spans: vec![span(-2, 1)],
            negative_buckets: vec![3.0],
            custom_values: vec![],
        };
        assert_eq!(got, vec![(want, true)]);
    }

    #[test]
    fn keys_are_optional_and_case_insensitive() {
        let got = histograms("{{}} {{ }} {{SCHEMA:-53 Custom_Values:[1 5] Buckets:[2] SUM:Inf}}");
        assert_eq!(got[0], (FloatHistogram::default(), false));
        assert_eq!(got[1], (FloatHistogram::default(), false));
        let h = &got[2].0;
        assert_eq!(h.schema, -53);
        assert_eq!(h.custom_values, vec![1.0, 5.0]);
        assert_eq!(h.positive_spans, vec![span(0, 1)]);
        assert_eq!(h.sum, f64::INFINITY);
        // An offset without buckets gives no span.
        assert!(histograms("{{offset:3}}")[0].0.positive_spans.is_empty());
    }

    #[test]
    fn repetition_gives_the_histogram_n_more_times() {
        let got = histograms("{{count:1 counter_reset_hint:reset}}x2");
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(h, set)| h.count == 1.0 && *set));
    }

    #[test]
    fn increase_adds_the_increment_at_each_step() {
        let got = histograms("{{count:1 sum:2 buckets:[1]}}+{{count:2 sum:1 buckets:[1 1]}}x2");
        let counts: Vec<f64> = got.iter().map(|(h, _)| h.count).collect();
        let sums: Vec<f64> = got.iter().map(|(h, _)| h.sum).collect();
        assert_eq!(counts, vec![1.0, 3.0, 5.0]);
        assert_eq!(sums, vec![2.0, 3.0, 4.0]);
        assert_eq!(got[2].0.positive_buckets, vec![3.0, 2.0]);
        assert_eq!(got[2].0.positive_spans, vec![span(0, 2)]);
    }

    #[test]
    fn decrease_subtracts_the_decrement_at_each_step() {
        let got = histograms("{{count:10 buckets:[5 5]}}-{{count:3 buckets:[1 2]}}x2");
        let counts: Vec<f64> = got.iter().map(|(h, _)| h.count).collect();
        assert_eq!(counts, vec![10.0, 7.0, 4.0]);
        assert_eq!(got[2].0.positive_buckets, vec![3.0, 1.0]);
    }

    #[test]
    fn a_sequence_takes_hint_set_from_its_increment() {
        let got = histograms("{{count:1}}+{{count:1 counter_reset_hint:gauge}}x1");
        assert!(got.iter().all(|(_, set)| *set));
        let got = histograms("{{count:1 counter_reset_hint:gauge}}+{{count:1}}x1");
        assert!(got.iter().all(|(_, set)| !*set));
    }

    #[test]
    fn malformed_histograms_are_refused() {
        for bad in [
            "{{count:1 count:2}}",
            "{{bucket:[1]}}",
            "{{count 1}}",
            "{{count: 1}}",
            "{{count:+1}}",
            "{{z_bucket_w:-1}}",
            "{{buckets:[]}}",
            "{{buckets:[1 x]}}",
            "{{schema:0.5}}",
            "{{counter_reset_hint:sometimes}}",
            "{{count:1",
            "{{count:1}}+{{count:1}}",
            "{{count:1}}x",
            "{{count:1}}y",
            "{{schema:1}}+{{schema:0}}x1",
            "{{schema:-53 custom_values:[1]}}+{{schema:0}}x1",
        ] {
            assert!(expand_sequence(bad).is_err(), "{bad} was accepted");
        }
    }
}
