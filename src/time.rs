//! Times and durations as Prometheus spells them, in API parameters, configuration files and
//! rule templates alike: the one copy every part of the server uses.

use quiver_storage::Timestamp;

/// The earliest and latest times Prometheus accepts (`minTime`, `maxTime`).
pub const MIN_TIME: Timestamp = -9_223_309_901_257_974; // -292273086-05-16T16:47:06Z in ms
pub const MAX_TIME: Timestamp = 9_223_309_901_257_974;

/// A time as Prometheus parses it: Unix seconds (float, rounded to ms) or RFC 3339.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (f * 1000.0).round();
        if ms < MIN_TIME as f64 || ms > MAX_TIME as f64 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok(ms as Timestamp);
    }
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME),
        _ => {}
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// A duration as Prometheus parses it: float seconds, or `1h30m`-style (ms, s, m, h, d, w, y).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f * 1000.0 > i64::MAX as f64 || f * 1000.0 < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    parse_prometheus_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// Prometheus's duration units and their milliseconds, largest first.
pub const DURATION_UNITS: [(&str, i64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// `1h30m`, `5m`, `100ms`, `2d`, `1w`, `1y`: units in descending order, each once.
pub fn parse_prometheus_duration(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = DURATION_UNITS;
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = s;
    let mut last_unit = 0usize;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        if idx < last_unit || (total > 0 && idx == last_unit) {
            return None;
        }
        last_unit = idx;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_does() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1759588388.4334843").unwrap(), 1_759_588_388_433);
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000_500);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123+00:00").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z").unwrap(), MIN_TIME);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations_parse_as_prometheus_does() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("100ms").unwrap(), 100);
        assert_eq!(parse_duration("15d").unwrap(), 15 * 86_400_000);
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
