//! A histogram as text, in the format of Prometheus's `FloatHistogram.String` (which
//! `count_values` uses as a label value, so the text must match Prometheus's to the
//! character): `{count:…, sum:…, [-4,-2.82842712474619):2, [-0.01,0.01]:5.5, (1,2]:3}`.

use std::fmt;

use super::FloatHistogram;

/// A float written as Go's `%g` (and `%v`) writes it: the shortest digits that read back as
/// the same float, in exponent form (`1e+06`, `2.5e-05`) when the exponent is below -4 or at
/// least 6 (Go's rule for `%g` without a precision), `+Inf`, `-Inf` and `NaN` for the
/// special values.
#[derive(Debug, Clone, Copy)]
pub struct GoFloat(pub f64);

impl fmt::Display for GoFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        }
        let sign = if v.is_sign_negative() { "-" } else { "" };
        if v == 0.0 {
            return write!(f, "{sign}0");
        }
        // Rust's `{:e}` writes the same shortest round-trip digits as Go's strconv, as
        // `d[.ddd]e[-]x`: take the digits and the decimal exponent from it.
        let sci = format!("{:e}", v.abs());
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        if !(-4..6).contains(&exp) {
            let (first, rest) = digits.split_at(1);
            let dot = if rest.is_empty() { "" } else { "." };
            let exp_sign = if exp < 0 { '-' } else { '+' };
            return write!(
                f,
                "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
                exp.unsigned_abs()
            );
        }
        // Plain form: the decimal point goes after `exp + 1` digits.
        let point = exp + 1;
        let n = digits.len() as i32;
        if point <= 0 {
            write!(
                f,
                "{sign}0.{}{digits}",
                "0".repeat(point.unsigned_abs() as usize)
            )
        } else if point >= n {
            write!(f, "{sign}{digits}{}", "0".repeat((point - n) as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

/// Go's `FloatHistogram.String`: count and sum, then every bucket with a count other than 0
/// from the lowest value to the highest (negative buckets, the zero bucket, positive buckets).
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{count:{}, sum:{}",
            GoFloat(self.count),
            GoFloat(self.sum)
        )?;
        let negative: Vec<_> = self
            .negative_bucket_iter()
            .filter(|b| b.count != 0.0)
            .collect();
        for b in negative.iter().rev() {
            write!(f, ", {b}")?;
        }
        if self.zero_count != 0.0 {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for b in self.positive_bucket_iter().filter(|b| b.count != 0.0) {
            write!(f, ", {b}")?;
        }
        f.write_str("}")
    }
}

/// Go's `labels.FormatOpenMetricsFloat`, which names `histogram_quantiles`' series: `%g`
/// (shortest), with `.0` added to a whole number (`0.0`, `1.0`, `0.25`, `1e-05`).
pub fn format_openmetrics_float(v: f64) -> String {
    if v == 0.0 {
        return "0.0".into();
    }
    let s = GoFloat(v).to_string();
    if !v.is_finite() || s.contains(['e', '.']) {
        s
    } else {
        s + ".0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_labels_are_written_as_openmetrics_floats() {
        for (v, want) in [
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.25, "0.25"),
            (100.0, "100.0"),
            (1e6, "1e+06"),
            (0.00001, "1e-05"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_openmetrics_float(v), want, "{v}");
        }
    }

    #[test]
    fn floats_are_written_as_go_writes_them_with_percent_g() {
        for (v, go) in [
            (0.1, "0.1"),
            (100000.0, "100000"),
            (123456.7, "123456.7"),
            (1e6, "1e+06"),
            (1234567.8, "1.2345678e+06"),
            (2349209.324, "2.349209324e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000012345, "1.2345e-05"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (-22.62741699796952, "-22.62741699796952"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(GoFloat(v).to_string(), go, "{v:?}");
        }
    }
}
