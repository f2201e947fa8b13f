//! Functions of one instant-vector value: math, trigonometry, rounding, clamping and the date
//! functions (whose input is a Unix time in seconds).

use chrono::{DateTime, Datelike, Timelike};

use crate::plan::Param;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstantFn {
    Abs,
    Ceil,
    Floor,
    Exp,
    Ln,
    Log2,
    Log10,
    Sqrt,
    Sgn,
    Deg,
    Rad,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Neg,
    Round(Param),
    ClampMin(Param),
    ClampMax(Param),
    Clamp(Param, Param),
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
    Month,
    Year,
}

impl InstantFn {
    /// The functions of one argument, by PromQL name.
    pub fn from_name(name: &str) -> Option<Self> {
        use InstantFn::*;
        Some(match name {
            "abs" => Abs,
            "ceil" => Ceil,
            "floor" => Floor,
            "exp" => Exp,
            "ln" => Ln,
            "log2" => Log2,
            "log10" => Log10,
            "sqrt" => Sqrt,
            "sgn" => Sgn,
            "deg" => Deg,
            "rad" => Rad,
            "sin" => Sin,
            "cos" => Cos,
            "tan" => Tan,
            "asin" => Asin,
            "acos" => Acos,
            "atan" => Atan,
            "sinh" => Sinh,
            "cosh" => Cosh,
            "tanh" => Tanh,
            "asinh" => Asinh,
            "acosh" => Acosh,
            "atanh" => Atanh,
            "day_of_month" => DayOfMonth,
            "day_of_week" => DayOfWeek,
            "day_of_year" => DayOfYear,
            "days_in_month" => DaysInMonth,
            "hour" => Hour,
            "minute" => Minute,
            "month" => Month,
            "year" => Year,
            _ => return None,
        })
    }

    pub fn is_date(self) -> bool {
        use InstantFn::*;
        matches!(
            self,
            DayOfMonth | DayOfWeek | DayOfYear | DaysInMonth | Hour | Minute | Month | Year
        )
    }

    pub fn apply(self, v: f64) -> f64 {
        use InstantFn::*;
        match self {
            Abs => v.abs(),
            Ceil => v.ceil(),
            Floor => v.floor(),
            Exp => v.exp(),
            Ln => v.ln(),
            Log2 => v.log2(),
            Log10 => v.log10(),
            Sqrt => v.sqrt(),
            Sgn => {
                if v < 0.0 {
                    -1.0
                } else if v > 0.0 {
                    1.0
                } else {
                    v
                }
            }
            Deg => v * 180.0 / std::f64::consts::PI,
            Rad => v * std::f64::consts::PI / 180.0,
            Sin => v.sin(),
            Cos => v.cos(),
            Tan => v.tan(),
            Asin => v.asin(),
            Acos => v.acos(),
            Atan => v.atan(),
            Sinh => v.sinh(),
            Cosh => v.cosh(),
            Tanh => v.tanh(),
            Asinh => v.asinh(),
            Acosh => v.acosh(),
            Atanh => v.atanh(),
            Neg => -v,
            Round(to) => {
                let inv = 1.0 / to.0;
                (v * inv + 0.5).floor() / inv
            }
            ClampMin(lo) => go_max(lo.0, v),
            ClampMax(hi) => go_min(hi.0, v),
            Clamp(lo, hi) => go_max(lo.0, go_min(hi.0, v)),
            DayOfMonth | DayOfWeek | DayOfYear | DaysInMonth | Hour | Minute | Month | Year => {
                date(self, v)
            }
        }
    }
}

/// Go's `math.Max`: NaN if either is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn date(f: InstantFn, v: f64) -> f64 {
    if v.is_nan() || v.is_infinite() {
        return f64::NAN;
    }
    let Some(t) = DateTime::from_timestamp(v as i64, 0) else {
        return f64::NAN;
    };
    match f {
        InstantFn::DayOfMonth => t.day() as f64,
        InstantFn::DayOfWeek => t.weekday().num_days_from_sunday() as f64,
        InstantFn::DayOfYear => t.ordinal() as f64,
        InstantFn::DaysInMonth => {
            let (y, m) = (t.year(), t.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1);
            let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1);
            match (first, next) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => f64::NAN,
            }
        }
        InstantFn::Hour => t.hour() as f64,
        InstantFn::Minute => t.minute() as f64,
        InstantFn::Month => t.month() as f64,
        InstantFn::Year => t.year() as f64,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_functions_read_unix_seconds_in_utc() {
        // 2020-02-29T13:45:00Z, a Saturday
        let t = 1_582_983_900.0;
        assert_eq!(InstantFn::DaysInMonth.apply(t), 29.0);
        assert_eq!(InstantFn::DayOfWeek.apply(t), 6.0);
        assert_eq!(InstantFn::Hour.apply(t), 13.0);
        assert_eq!(InstantFn::DayOfYear.apply(t), 60.0);
    }

    #[test]
    fn round_goes_half_up_to_the_nearest_multiple() {
        assert_eq!(InstantFn::Round(Param(1.0)).apply(2.5), 3.0);
        assert_eq!(InstantFn::Round(Param(1.0)).apply(-2.5), -2.0);
        assert_eq!(InstantFn::Round(Param(0.1)).apply(1.234), 1.2);
    }
}
