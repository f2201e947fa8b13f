//! What a PromQL query may ask for, checked before it is planned: its length, its depth, its
//! durations and times. Each refusal is `bad_data` (400), so a hostile query is answered, not
//! obeyed.
//!
//! - **Length and depth.** The parser builds one tree node per operator and bracket, and the
//!   planner, `Display` and `Drop` recurse once per level: `1+1+1+…` a megabyte long would
//!   overflow a worker's stack and abort the server. A query longer than [`MAX_QUERY_BYTES`] is
//!   refused unread; a long one is parsed on a stack of its own, large enough for any tree that
//!   length can make, and its tree refused (and dropped, on that stack) past [`MAX_DEPTH`]
//!   levels, so every later stage sees a shallow tree.
//! - **Parser panics.** promql-parser turns a number literal used as a duration into a
//!   `Duration` with `from_secs_f64`, which panics for `x[1e300]` or `x offset Inf`; parsing runs
//!   under `catch_unwind` and such a query is a parse error.
//! - **Durations and times.** Ranges, offsets and subquery steps longer than [`MAX_DURATION_MS`]
//!   (Go's largest `time.Duration`, so Prometheus cannot express more either), and evaluation or
//!   `@` times beyond ±[`MAX_TIME_MS`], are refused: with these bounds no sum of a time and a
//!   few durations overflows an `i64`.
//! - **Subquery grids** are bounded where they are planned (`planner/subquery.rs`): their points
//!   count against `--query.max-samples` before anything is allocated.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use promql_parser::parser::{self, AtModifier, Expr, Offset};

use crate::error::{Error, Result};

/// Longest query accepted, in bytes. Prometheus has no such bound; dashboards' queries are a
/// few hundred bytes, generated ones a few tens of kilobytes.
pub const MAX_QUERY_BYTES: usize = 256 << 10;

/// Deepest expression accepted (nested calls, brackets, and chained binary operators, each a
/// level).
pub const MAX_DEPTH: usize = 256;

/// Most binary operators accepted. promql-parser checks each operator's operands by walking
/// them, so a chain of n operators (`1+1+…`, `a or b or …`) costs n² steps: 100,000 of them
/// took minutes. Counted before parsing (a conservative count: every `-` and comparison sign
/// outside strings, matchers and brackets).
pub const MAX_BINARY_OPERATORS: usize = 1024;

/// Most regular-expression matchers (`=~`, `!~`) one query may hold, and one request's
/// selectors together. Each may compile to `REGEX_SIZE_LIMIT` (2 MiB) and more for its lazy
/// DFA: a bound on their number is a bound on their memory. Checked before parsing, because
/// the parser compiles them too (with the `regex` crate's default limit, 10 MiB each).
pub const MAX_REGEX_MATCHERS: usize = 64;

/// Longest duration accepted: Go's `time.Duration` maximum, about 292 years.
pub const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Farthest evaluation or `@` time from the epoch accepted (about ±73 million years).
pub const MAX_TIME_MS: i64 = 1 << 61;

/// Queries at least this long are parsed on a stack of their own; shorter ones cannot nest
/// deeply enough to need it.
const OWN_STACK_FROM_BYTES: usize = 1 << 10;

/// The stack a long query is parsed on (reserved, and committed only as it is used).
const OWN_STACK_BYTES: usize = 512 << 20;

/// Parses `query` within the bounds above.
pub fn parse_bounded(query: &str) -> Result<Expr> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(Error::BadData(format!(
            "the query is {} bytes long; Quiver accepts at most {MAX_QUERY_BYTES}",
            query.len()
        )));
    }
    check_regexes(query)?;
    check_number_durations(query)?;
    let operators = count_operators(query);
    if operators > MAX_BINARY_OPERATORS {
        return Err(Error::BadData(format!(
            "the query has {operators} operators; Quiver accepts at most {MAX_BINARY_OPERATORS}"
        )));
    }
    let parse = || {
        let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| parser::parse(query)))
            .map_err(|_| {
                Error::Parse("invalid query: a number or duration is out of range".into())
            })?
            .map_err(Error::Parse)?;
        check(&parsed, 1)?;
        Ok(parsed)
    };
    if query.len() < OWN_STACK_FROM_BYTES {
        parse()
    } else {
        // A refused tree is dropped inside the closure, on the same stack.
        stacker::grow(OWN_STACK_BYTES, parse)
    }
}

/// Refuses a duration written as a bare number (seconds: `x[1e300]`, `x offset 1e30`,
/// `x[5m:1e300]`) that no `Duration` holds, before the parser turns it into one with a
/// conversion that panics. (Parsing also runs under `catch_unwind`; this keeps the panic from
/// happening at all.)
fn check_number_durations(query: &str) -> Result<()> {
    let bad = |token: &str| -> Result<()> {
        let t = token.trim();
        let Some(v) = plain_number(t) else {
            return Ok(());
        };
        if !v.is_finite() || v.abs() * 1000.0 > MAX_DURATION_MS as f64 {
            return Err(Error::BadData(format!(
                "the duration {t:?} is out of range (at most about 292 years)"
            )));
        }
        Ok(())
    };
    let b = query.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => {
                let end = query[i..].find(']').map_or(b.len(), |e| i + e);
                for part in query[i + 1..end].split(':') {
                    bad(part)?;
                }
                i = end;
            }
            // On bytes: `offset` is ASCII, but the six bytes after an ASCII letter may end
            // inside a multi-byte character.
            c if c.is_ascii_alphabetic()
                && b.len() - i >= 6
                && b[i..i + 6].eq_ignore_ascii_case(b"offset")
                && (i == 0 || !is_word(b[i - 1]))
                && b.get(i + 6).is_none_or(|c| !is_word(*c)) =>
            {
                let rest = query[i + 6..].trim_start();
                let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
                let end = rest
                    .find(|c: char| c.is_whitespace() || "()[]{},+*/%^=!<>".contains(c))
                    .unwrap_or(rest.len());
                bad(&rest[..end])?;
                i += 6;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// A number as PromQL's lexer reads one where a duration may stand (decimal, exponent, hex,
/// `Inf`, `NaN`); `None` for anything else (a duration with units, an expression).
fn plain_number(t: &str) -> Option<f64> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
            .map(|v| v as f64)
            .ok()
            .or_else(|| {
                (!hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()))
                    .then_some(f64::INFINITY)
            })?
    } else if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        body.parse::<f64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// An upper bound on the binary (and unary) operators of a query, from its text: operator
/// signs and the keyword operators, outside string literals, comments, label matchers (`{…}`)
/// and ranges (`[…]`).
/// Refuses a query with more than [`MAX_REGEX_MATCHERS`] regex matchers, or with one that
/// compiles past the size limit: checked before the parser compiles them.
fn check_regexes(query: &str) -> Result<()> {
    let patterns = regex_literals(query);
    if patterns.len() > MAX_REGEX_MATCHERS {
        return Err(Error::BadData(format!(
            "the query has {} regular-expression matchers; Quiver accepts at most {MAX_REGEX_MATCHERS}",
            patterns.len()
        )));
    }
    for p in &patterns {
        if let Some(why) = quiver_storage::matchers::regex_too_large(p) {
            return Err(Error::BadData(why));
        }
    }
    Ok(())
}

/// How many regex matchers (`=~`, `!~` outside strings and comments) `query` holds.
pub fn regex_matcher_count(query: &str) -> usize {
    regex_literals(query).len()
}

/// The string after each `=~` and `!~` outside strings and comments, unescaped as PromQL does
/// for the common escapes (an unusual escape is kept as written: the pattern is only sized).
fn regex_literals(query: &str) -> Vec<String> {
    let b = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Reads the string literal starting at `i` (a quote): its text and where it ends.
    let literal = |mut i: usize| -> (String, usize) {
        let quote = b[i];
        i += 1;
        let mut text = Vec::new();
        while i < b.len() && b[i] != quote {
            if quote != b'`' && b[i] == b'\\' && i + 1 < b.len() {
                let e = b[i + 1];
                match e {
                    b'n' => text.push(b'\n'),
                    b't' => text.push(b'\t'),
                    b'r' => text.push(b'\r'),
                    b'\\' | b'"' | b'\'' => text.push(e),
                    _ => text.extend_from_slice(&b[i..i + 2]),
                }
                i += 2;
                continue;
            }
            text.push(b[i]);
            i += 1;
        }
        (String::from_utf8_lossy(&text).into_owned(), i + 1)
    };
    let mut regex_next = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                let (text, end) = literal(i);
                if regex_next {
                    out.push(text);
                }
                regex_next = false;
                i = end;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'=' | b'!' if b.get(i + 1) == Some(&b'~') => {
                regex_next = true;
                i += 2;
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            _ => regex_next = false,
        }
        i += 1;
    }
    out
}

fn count_operators(query: &str) -> usize {
    let b = query.as_bytes();
    let (mut i, mut count, mut braces, mut brackets) = (0, 0usize, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // A string literal: skip to its closing quote (backslash escapes, not in `…`).
                i += 1;
                while i < b.len() && b[i] != c {
                    if c != b'`' && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => braces += 1,
            b'}' => braces = braces.saturating_sub(1),
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            _ if braces > 0 || brackets > 0 => {}
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'!' | b'=' => count += 1,
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    count += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    count
}

/// Checks a parsed expression (rules parse once and are checked here too).
pub fn check(expr: &Expr, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::BadData(format!(
            "the query nests more than {MAX_DEPTH} levels deep"
        )));
    }
    let next = depth + 1;
    match expr {
        Expr::Aggregate(a) => {
            check(&a.expr, next)?;
            if let Some(p) = &a.param {
                check(p, next)?;
            }
        }
        Expr::Unary(u) => check(&u.expr, next)?,
        Expr::Binary(b) => {
            check(&b.lhs, next)?;
            check(&b.rhs, next)?;
        }
        Expr::Paren(p) => check(&p.expr, next)?,
        Expr::Subquery(s) => {
            duration(&s.range, "subquery range")?;
            if let Some(step) = &s.step {
                duration(step, "subquery step")?;
            }
            offset_and_at(&s.offset, &s.at)?;
            check(&s.expr, next)?;
        }
        Expr::VectorSelector(v) => offset_and_at(&v.offset, &v.at)?,
        Expr::MatrixSelector(m) => {
            duration(&m.range, "range")?;
            offset_and_at(&m.vs.offset, &m.vs.at)?;
        }
        Expr::Call(c) => {
            for arg in &c.args.args {
                check(arg, next)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// An evaluation time (a query's `time`, `start` or `end`) within ±[`MAX_TIME_MS`].
pub fn check_time(t: i64, what: &str) -> Result<()> {
    if t.unsigned_abs() > MAX_TIME_MS as u64 {
        return Err(Error::BadData(format!("{what} {t} ms is out of range")));
    }
    Ok(())
}

fn duration(d: &Duration, what: &str) -> Result<()> {
    if d.as_millis() > MAX_DURATION_MS as u128 {
        return Err(Error::BadData(format!(
            "{what} {d:?} is longer than the longest duration accepted (about 292 years)"
        )));
    }
    Ok(())
}

fn offset_and_at(offset: &Option<Offset>, at: &Option<AtModifier>) -> Result<()> {
    match offset {
        Some(Offset::Pos(d)) | Some(Offset::Neg(d)) => duration(d, "offset")?,
        None => {}
    }
    if let Some(AtModifier::At(t)) = at {
        let ms = crate::planner::system_time_ms(*t);
        check_time(ms, "the @ time")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(q: &str) -> String {
        match parse_bounded(q) {
            Ok(_) => panic!("{q:.80} was accepted"),
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::BadData, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn regex_matchers_are_bounded_in_number_and_size() {
        // Six characters that would compile to megabytes are refused before the parser sees them.
        let err = parse_bounded(r#"up{job=~"\\w{100}"}"#).unwrap_err();
        assert!(err.to_string().contains("compiles to more than"), "{err}");
        let err = parse_bounded(r#"up{job!~'\w{100}'}"#).unwrap_err();
        assert!(err.to_string().contains("compiles to more than"), "{err}");
        let many = |n: usize| {
            let m: Vec<String> = (0..n).map(|i| format!("l{i}=~\"v{i}.*\"")).collect();
            format!("up{{{}}}", m.join(","))
        };
        assert_eq!(
            regex_matcher_count(&many(MAX_REGEX_MATCHERS + 1)),
            MAX_REGEX_MATCHERS + 1
        );
        let err = parse_bounded(&many(MAX_REGEX_MATCHERS + 1)).unwrap_err();
        assert!(
            err.to_string().contains("regular-expression matchers"),
            "{err}"
        );
        assert!(parse_bounded(&many(MAX_REGEX_MATCHERS)).is_ok());
        // `=~` inside a string or a comment is not a matcher; ordinary regexes pass.
        assert_eq!(regex_matcher_count(r#"up{a="=~\"x\""} # b=~"y""#), 0);
        assert!(parse_bounded(r#"up{pod=~"(gpu-node-[0-9]+|cpu-.*)", a!~"x"}"#).is_ok());
    }

    #[test]
    fn number_durations_that_panic_the_parser_are_parse_errors() {
        let long = format!("1111[{}]", "5".repeat(90));
        for q in [
            "x[1e300]",
            "x offset 1e300",
            "x[Inf]",
            "rate(x[NaN])",
            "x[5m:1e300]",
            // A duration of 90 digits (a rule file's fuzz input).
            long.as_str(),
            "x offset 0xffffffffffffffffff",
        ] {
            // Refused before parsing (the parser's panic, caught, would say "a number or
            // duration is out of range").
            assert!(refused(q).contains("at most about 292 years"), "{q}");
        }
        // Fine durations, with units, as numbers, in strings and names, still parse.
        for q in [
            "x[5m]",
            "x[300]",
            "x[5m:30]",
            "x offset 90",
            "rate(x[1h] offset -1d)",
            "x{a=\"[1e300]\"}",
            "offset_total[5m]",
        ] {
            assert!(parse_bounded(q).is_ok(), "{q}");
        }
        // A letter followed by multi-byte characters within six bytes is looked at as bytes
        // (the fuzz input `hi\u{61b}a\u{60b}` once split a character); not a panic.
        check_number_durations("hi\u{61b}a\u{60b}").unwrap();
        check_number_durations("offse\u{e9}[5m]").unwrap();
    }

    #[test]
    fn durations_and_at_times_past_the_bounds_are_refused() {
        assert!(refused("x[300y]").contains("longest duration"));
        assert!(refused("x offset 300y").contains("longest duration"));
        assert!(refused("x[5m:300y]").contains("longest duration"));
        assert!(refused("x @ 9e18").contains("out of range"));
        parse_bounded("x[290y]").unwrap();
        parse_bounded("x @ 1700000000 offset 100y").unwrap();
    }

    #[test]
    fn deep_and_long_queries_are_refused_without_overflowing_the_stack() {
        // Run where a server worker would: on a thread with a 2 MiB stack.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let chain = vec!["1"; 100_000].join("+");
                assert!(refused(&chain).contains("operators"));
                let chain = vec!["x"; 1000].join(" or ");
                assert!(refused(&chain).contains("levels deep"));
                let unary = format!("{}1", "-".repeat(5000));
                assert!(refused(&unary).contains("operators"));
                let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
                assert!(refused(&parens).contains("levels deep"));
                let calls = format!("{}x{}", "abs(".repeat(20_000), ")".repeat(20_000));
                assert!(refused(&calls).contains("levels deep"));
                assert!(refused(&"x+".repeat(200_000)).contains("bytes long"));
                // Operators inside strings, matchers and ranges do not count.
                let labels = format!(
                    "x{{a=\"{}\", b!~\"{}\"}}[5m]",
                    "+-".repeat(5000),
                    "==".repeat(5000)
                );
                parse_bounded(&labels).unwrap();
                // Just inside the bound: parsed and accepted.
                let ok = vec!["1"; MAX_DEPTH - 1].join("+");
                parse_bounded(&ok).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
