//! The arithmetic of PromQL: range-window kernels, aggregations, instant-vector functions
//! and the DataFusion UDFs that carry them into plans.

pub mod aggregate;
pub mod instant;
pub mod native;
pub mod range;
pub mod udf;

/// Kahan–Neumaier compensated addition, as Prometheus sums (`kahansum.Inc`).
pub use quiver_storage::histogram::kahan_inc;

/// Prometheus's `quantile`: linear interpolation between the closest ranks, NaN sorted first.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// The mean as Prometheus computes it: a compensated sum, switching to an incremental mean
/// when the sum overflows.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut c, mut mean, mut count) = (0.0, 0.0, 0.0, 0.0);
    let mut incremental = false;
    for f in values {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        (mean, c) = kahan_inc(f / count - corrected / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

/// Population variance by Welford's method with compensated sums.
pub fn variance(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut count, mut m, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for f in values {
        count += 1.0;
        let delta = f - (m + cm);
        (m, cm) = kahan_inc(delta / count, m, cm);
        (aux, ca) = kahan_inc(delta * (f - (m + cm)), aux, ca);
    }
    (aux + ca) / count
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, with Prometheus's spellings of the specials.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

pub use quiver_storage::histogram::format_openmetrics_float;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahan_sum_keeps_small_terms_next_to_large_ones() {
        let (mut s, mut c) = (0.0, 0.0);
        for v in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(v, s, c);
        }
        assert_eq!(s + c, 1.0);
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn mean_survives_overflowing_sums() {
        assert_eq!(mean([f64::MAX, f64::MAX]), f64::MAX);
        assert_eq!(mean([1.0, 2.0, 3.0]), 2.0);
    }

    #[test]
    fn format_float_never_uses_exponents() {
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
    }
}
