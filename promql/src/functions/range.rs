//! Functions over a range window: `rate`, `*_over_time`, `deriv`… Each sees one series'
//! samples inside `(ref - range, ref]`, sorted by time, staleness markers removed.

use super::{kahan_inc, mean, quantile, variance};
use crate::error::{Error, Result};

/// What a range function does with the native histograms in its window, as Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramMode {
    /// Computes with them (a histogram result, or `irate`'s, `rate`'s…).
    Computes,
    /// Counts them as samples (`count_over_time`, `present_over_time`, `ts_of_last_…`).
    Counts,
    /// Leaves them out and works on the floats (`max_over_time`, `deriv`…).
    Ignores,
    /// Not built yet: the planner refuses (none today; kept for the next function).
    Refuses,
}

/// A range-vector function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Resets,
    Changes,
    Deriv,
    PredictLinear,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    MadOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
    DoubleExponentialSmoothing,
    /// The raw samples (a range selector as the result of an instant query).
    Raw,
}

impl RangeFn {
    pub fn from_name(name: &str) -> Option<Self> {
        use RangeFn::*;
        Some(match name {
            "rate" => Rate,
            "increase" => Increase,
            "delta" => Delta,
            "irate" => Irate,
            "idelta" => Idelta,
            "resets" => Resets,
            "changes" => Changes,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "avg_over_time" => AvgOverTime,
            "sum_over_time" => SumOverTime,
            "count_over_time" => CountOverTime,
            "min_over_time" => MinOverTime,
            "max_over_time" => MaxOverTime,
            "last_over_time" => LastOverTime,
            "first_over_time" => FirstOverTime,
            "present_over_time" | "absent_over_time" => PresentOverTime,
            "quantile_over_time" => QuantileOverTime,
            "stddev_over_time" => StddevOverTime,
            "stdvar_over_time" => StdvarOverTime,
            "mad_over_time" => MadOverTime,
            "ts_of_min_over_time" => TsOfMinOverTime,
            "ts_of_max_over_time" => TsOfMaxOverTime,
            "ts_of_last_over_time" => TsOfLastOverTime,
            "ts_of_first_over_time" => TsOfFirstOverTime,
            "double_exponential_smoothing" | "holt_winters" => DoubleExponentialSmoothing,
            _ => return None,
        })
    }

    /// The function's name (Prometheus's; `raw` for a range as a query's result).
    pub fn name(self) -> &'static str {
        use RangeFn::*;
        match self {
            Rate => "rate",
            Increase => "increase",
            Delta => "delta",
            Irate => "irate",
            Idelta => "idelta",
            Resets => "resets",
            Changes => "changes",
            Deriv => "deriv",
            PredictLinear => "predict_linear",
            AvgOverTime => "avg_over_time",
            SumOverTime => "sum_over_time",
            CountOverTime => "count_over_time",
            MinOverTime => "min_over_time",
            MaxOverTime => "max_over_time",
            LastOverTime => "last_over_time",
            FirstOverTime => "first_over_time",
            PresentOverTime => "present_over_time",
            QuantileOverTime => "quantile_over_time",
            StddevOverTime => "stddev_over_time",
            StdvarOverTime => "stdvar_over_time",
            MadOverTime => "mad_over_time",
            TsOfMinOverTime => "ts_of_min_over_time",
            TsOfMaxOverTime => "ts_of_max_over_time",
            TsOfLastOverTime => "ts_of_last_over_time",
            TsOfFirstOverTime => "ts_of_first_over_time",
            DoubleExponentialSmoothing => "double_exponential_smoothing",
            Raw => "a range selector",
        }
    }

    /// What the function does with native histograms in its window.
    pub fn histogram_mode(self) -> HistogramMode {
        use RangeFn::*;
        match self {
            Raw | Rate | Increase | Delta | Irate | Idelta | SumOverTime | AvgOverTime
            | LastOverTime | FirstOverTime | Resets | Changes => HistogramMode::Computes,
            CountOverTime | PresentOverTime | TsOfLastOverTime | TsOfFirstOverTime => {
                HistogramMode::Counts
            }
            _ => HistogramMode::Ignores,
        }
    }

    /// Whether the result may be a native histogram.
    pub fn handles_histograms(self) -> bool {
        self.histogram_mode() == HistogramMode::Computes
            && !matches!(self, RangeFn::Resets | RangeFn::Changes)
    }

    /// Whether the result keeps the series' `__name__`.
    pub fn keeps_name(self) -> bool {
        matches!(
            self,
            RangeFn::LastOverTime | RangeFn::FirstOverTime | RangeFn::Raw
        )
    }

    /// Checks parameters that do not change per step.
    pub fn validate(self, args: &[f64]) -> Result<()> {
        if self == RangeFn::DoubleExponentialSmoothing {
            let (sf, tf) = (args[0], args[1]);
            if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                return Err(Error::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                return Err(Error::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
        }
        Ok(())
    }
}

/// What a window function knows besides the samples.
pub struct Window {
    /// The evaluation step (ms).
    pub step: i64,
    /// `ref - range` and `ref` (ms): the window is `(start, end]`.
    pub start: i64,
    pub end: i64,
    /// Constant parameters (`quantile_over_time`'s φ, `predict_linear`'s seconds…).
    pub args: Vec<f64>,
}

/// The function's value over one window, or `None` when it yields no sample.
pub fn eval(f: RangeFn, ts: &[i64], vs: &[f64], w: &Window) -> Option<f64> {
    use RangeFn::*;
    let n = vs.len();
    if n == 0 {
        return None;
    }
    Some(match f {
        Rate => extrapolated_rate(ts, vs, w, true, true, None)?,
        Increase => extrapolated_rate(ts, vs, w, true, false, None)?,
        Delta => extrapolated_rate(ts, vs, w, false, false, None)?,
        Irate | Idelta => {
            if n < 2 {
                return None;
            }
            let (last, prev) = (vs[n - 1], vs[n - 2]);
            let mut r = if f == Irate && last < prev {
                last
            } else {
                last - prev
            };
            let interval = ts[n - 1] - ts[n - 2];
            if interval == 0 {
                return None;
            }
            if f == Irate {
                r /= interval as f64 / 1000.0;
            }
            r
        }
        Resets => vs.windows(2).filter(|p| p[1] < p[0]).count() as f64,
        Changes => vs
            .windows(2)
            .filter(|p| !(p[1] == p[0] || (p[1].is_nan() && p[0].is_nan())))
            .count() as f64,
        Deriv => {
            if n < 2 {
                return None;
            }
            linear_regression(ts, vs, ts[0]).0
        }
        PredictLinear => {
            if n < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(ts, vs, w.step);
            slope * w.args[0] + intercept
        }
        AvgOverTime => mean(vs.iter().copied()),
        SumOverTime => {
            let (mut s, mut c) = (0.0, 0.0);
            for v in vs {
                (s, c) = kahan_inc(*v, s, c);
            }
            s + c
        }
        CountOverTime => n as f64,
        MinOverTime => vs
            .iter()
            .fold(vs[0], |m, v| if *v < m || m.is_nan() { *v } else { m }),
        MaxOverTime => vs
            .iter()
            .fold(vs[0], |m, v| if *v > m || m.is_nan() { *v } else { m }),
        LastOverTime => vs[n - 1],
        FirstOverTime => vs[0],
        PresentOverTime => 1.0,
        QuantileOverTime => quantile(w.args[0], &mut vs.to_vec()),
        StddevOverTime => variance(vs.iter().copied()).sqrt(),
        StdvarOverTime => variance(vs.iter().copied()),
        MadOverTime => {
            if vs.iter().any(|v| v.is_nan()) {
                return Some(f64::NAN);
            }
            let mut v = vs.to_vec();
            let median = quantile(0.5, &mut v);
            let mut dev: Vec<f64> = vs.iter().map(|x| (x - median).abs()).collect();
            quantile(0.5, &mut dev)
        }
        TsOfMinOverTime => ts_of(ts, vs, |cur, m| cur <= m || m.is_nan()),
        TsOfMaxOverTime => ts_of(ts, vs, |cur, m| cur >= m || m.is_nan()),
        TsOfLastOverTime => ts[n - 1] as f64 / 1000.0,
        TsOfFirstOverTime => ts[0] as f64 / 1000.0,
        DoubleExponentialSmoothing => {
            if n < 2 {
                return None;
            }
            let (sf, tf) = (w.args[0], w.args[1]);
            let (mut s0, mut s1, mut b) = (0.0, vs[0], vs[1] - vs[0]);
            for (i, v) in vs.iter().enumerate().skip(1) {
                let x = sf * v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                (s0, s1) = (s1, x + y);
            }
            s1
        }
        Raw => return None,
    })
}

fn ts_of(ts: &[i64], vs: &[f64], better: impl Fn(f64, f64) -> bool) -> f64 {
    let (mut best, mut at) = (vs[0], ts[0]);
    for (t, v) in ts.iter().zip(vs) {
        if better(*v, best) {
            (best, at) = (*v, *t);
        }
    }
    at as f64 / 1000.0
}

/// Prometheus's `extrapolatedRate`: the increase between the first and last sample (with
/// counter resets added back), extrapolated towards the window's edges when the samples come
/// close enough to them, and never below a counter's zero point.
///
/// `resets`, when given, is the sum of the values before each counter reset in the window,
/// precomputed (see `RangeFnOp`); otherwise the window is walked.
pub fn extrapolated_rate(
    ts: &[i64],
    vs: &[f64],
    w: &Window,
    counter: bool,
    rate: bool,
    resets: Option<f64>,
) -> Option<f64> {
    let n = vs.len();
    if n < 2 {
        return None;
    }
    let mut result = vs[n - 1] - vs[0];
    if counter {
        match resets {
            Some(r) => result += r,
            None => {
                let mut last = 0.0;
                for v in vs {
                    if *v < last {
                        result += last;
                    }
                    last = *v;
                }
            }
        }
    }
    let zero = (counter && result > 0.0 && vs[0] >= 0.0).then(|| vs[0] / result);
    let factor = extrapolation_factor(ts[0], ts[n - 1], n, w.start, w.end, zero, rate);
    Some(result * factor)
}

/// Prometheus's extrapolation of a window's change to the window's edges (shared by floats
/// and native histograms): samples close enough to an edge (within 110% of the average step)
/// are extended to it, others by half a step; a counter is not extended past its zero point
/// (`zero`: the first sample's value as a share of the change); per second for `rate`.
pub fn extrapolation_factor(
    first_t: i64,
    last_t: i64,
    n: usize,
    start: i64,
    end: i64,
    zero: Option<f64>,
    rate: bool,
) -> f64 {
    let mut to_start = (first_t - start) as f64 / 1000.0;
    let mut to_end = (end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_step = sampled / (n - 1) as f64;
    let threshold = avg_step * 1.1;
    if to_start >= threshold {
        to_start = avg_step / 2.0;
    }
    if let Some(share) = zero {
        let to_zero = sampled * share;
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_step / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if rate {
        factor /= (end - start) as f64 / 1000.0;
    }
    factor
}

/// Least-squares slope and intercept (at `intercept_t`), as Prometheus computes them.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init = vs[0];
    let mut const_y = true;
    for (i, (t, v)) in ts.iter().zip(vs).enumerate() {
        if const_y && i > 0 && *v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(*v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i64, end: i64) -> Window {
        Window {
            step: end,
            start,
            end,
            args: vec![],
        }
    }

    #[test]
    fn rate_extrapolates_to_range_boundaries() {
        // A counter rising 1/s sampled every 10 s from 5 s to 55 s, window (0, 60]: the samples
        // sit 5 s from each edge, under the 11 s threshold, so the rate is extrapolated to the
        // whole minute: exactly 1/s.
        let ts: Vec<i64> = (0..6).map(|i| 5_000 + i * 10_000).collect();
        let vs: Vec<f64> = (0..6).map(|i| 100.0 + 10.0 * i as f64).collect();
        let r = eval(RangeFn::Rate, &ts, &vs, &window(0, 60_000)).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
    }

    #[test]
    fn increase_adds_back_counter_resets() {
        let ts = [10_000, 20_000, 30_000];
        let vs = [5.0, 8.0, 2.0];
        // 5 -> 8 (+3), reset, 0 -> 2 (+2): 5 over 20 s, extrapolated by half a step each side.
        let r = eval(RangeFn::Increase, &ts, &vs, &window(5_000, 35_000)).unwrap();
        assert!((r - 5.0 * 30.0 / 20.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn deriv_of_a_line_is_its_slope() {
        let ts = [0, 10_000, 20_000];
        let vs = [1.0, 3.0, 5.0];
        let d = eval(RangeFn::Deriv, &ts, &vs, &window(-1, 20_000)).unwrap();
        assert!((d - 0.2).abs() < 1e-12);
    }
}
