//! The value columns of `samples.parquet`: decimal where exact, float otherwise.
//!
//! Most metric values are decimals written by a program (integers, `87.25`, counters): stored
//! as an integer mantissa with a per-series decimal scale they delta-encode to a byte or less,
//! where their IEEE bits cost five or more bytes. A series whose values are decimals of at
//! most [`MAX_SCALE`] places is stored as (`value_mantissa`, `value_scale`) with `value` null;
//! the value is exactly `value_mantissa / 10^value_scale` (one correctly rounded division, as
//! DuckDB, pandas and Quiver all compute it). Anything else — NaN, ±Inf, staleness markers,
//! `-0.0`, values with more digits — is kept bit for bit in `value`, with the mantissa null.

use datafusion::arrow::array::{
    Array, Float64Array, Float64Builder, Int64Array, Int64Builder, UInt8Array, UInt8Builder,
};

/// The largest decimal scale tried (10^15 is exact in f64, and so is every mantissa below 2^53).
pub const MAX_SCALE: u8 = 15;

const POW10: [f64; MAX_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

const MAX_EXACT: f64 = (1u64 << 53) as f64;

/// The mantissa of `v` at `scale`, if `mantissa / 10^scale` gives back exactly `v`.
fn mantissa_at(v: f64, scale: u8) -> Option<i64> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let p = POW10[scale as usize];
    let m = (v * p).round();
    (m.abs() < MAX_EXACT && (m / p).to_bits() == v.to_bits()).then_some(m as i64)
}

/// The smallest scale at which `v` is an exact decimal.
fn min_scale(v: f64) -> Option<u8> {
    (0..=MAX_SCALE).find(|s| mantissa_at(v, *s).is_some())
}

/// Builds the three value columns, series by series.
#[derive(Default)]
pub struct ValueColumns {
    floats: Float64Builder,
    mantissas: Int64Builder,
    scales: UInt8Builder,
}

impl ValueColumns {
    pub fn with_capacity(n: usize) -> Self {
        ValueColumns {
            floats: Float64Builder::with_capacity(n),
            mantissas: Int64Builder::with_capacity(n),
            scales: UInt8Builder::with_capacity(n),
        }
    }

    /// Appends one series' values with one scale for all of them (so the mantissa column
    /// delta-encodes well): the largest scale its decimal values need. If fewer than half of
    /// its values are decimals, the whole series is stored as floats.
    pub fn push_series(&mut self, values: &[f64]) {
        let mut scale = 0u8;
        let mut decimals = 0usize;
        for v in values {
            if let Some(s) = min_scale(*v) {
                scale = scale.max(s);
                decimals += 1;
            }
        }
        let use_decimal = decimals * 2 >= values.len() && decimals > 0;
        for v in values {
            match use_decimal.then(|| mantissa_at(*v, scale)).flatten() {
                Some(m) => {
                    self.floats.append_null();
                    self.mantissas.append_value(m);
                }
                None => {
                    self.floats.append_value(*v);
                    self.mantissas.append_null();
                }
            }
            self.scales
                .append_value(if use_decimal { scale } else { 0 });
        }
    }

    /// `value`, `value_mantissa`, `value_scale`.
    pub fn finish(mut self) -> (Float64Array, Int64Array, UInt8Array) {
        (
            self.floats.finish(),
            self.mantissas.finish(),
            self.scales.finish(),
        )
    }
}

/// The values back, exactly as they were written.
pub fn decode(floats: &Float64Array, mantissas: &Int64Array, scales: &UInt8Array) -> Float64Array {
    let n = floats.len();
    // A run of float series: the column as it is (no copy).
    if mantissas.null_count() == n && floats.null_count() == 0 {
        return floats.clone();
    }
    let (m, s) = (mantissas.values(), scales.values());
    let decimal = |i: usize| m[i] as f64 / POW10[(s[i].min(MAX_SCALE)) as usize];
    let out: Vec<f64> = match mantissas.nulls() {
        // Only decimals: one tight loop.
        None => (0..n).map(decimal).collect(),
        Some(valid) => {
            let f = floats.values();
            (0..n)
                .map(|i| if valid.is_valid(i) { decimal(i) } else { f[i] })
                .collect()
        }
    };
    Float64Array::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> Vec<u64> {
        let mut c = ValueColumns::default();
        c.push_series(values);
        let (f, m, s) = c.finish();
        decode(&f, &m, &s)
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    proptest! {
        #[test]
        fn any_values_round_trip_bit_for_bit(bits in proptest::collection::vec(any::<u64>(), 1..50)) {
            let values: Vec<f64> = bits.iter().map(|b| f64::from_bits(*b)).collect();
            prop_assert_eq!(round_trip(&values), bits);
        }

        #[test]
        fn decimals_round_trip_bit_for_bit(ms in proptest::collection::vec(-10_000_000i64..10_000_000, 1..50), scale in 0u8..6) {
            let values: Vec<f64> = ms.iter().map(|m| *m as f64 / 10f64.powi(scale as i32)).collect();
            let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(round_trip(&values), bits);
        }
    }

    #[test]
    fn decimal_series_use_the_mantissa_columns() {
        let mut c = ValueColumns::default();
        c.push_series(&[87.25, 88.5, 90.0, f64::NAN]);
        let (f, m, s) = c.finish();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [Some(8725), Some(8850), Some(9000), None]
        );
        assert_eq!(s.values().to_vec(), [2, 2, 2, 2]);
        assert_eq!(f.null_count(), 3);
        assert!(f.value(3).is_nan());
    }

    #[test]
    fn full_precision_series_stay_floats() {
        let mut c = ValueColumns::default();
        // 16 and 17 significant digits: more places than MAX_SCALE.
        c.push_series(&[1.0 / 3.0, 0.1 + 0.2, 2f64.sqrt() / 10.0]);
        let (f, m, _) = c.finish();
        assert_eq!(m.null_count(), 3);
        assert_eq!(f.null_count(), 0);
    }

    #[test]
    fn negative_zero_and_stale_markers_keep_their_bits() {
        let stale = f64::from_bits(crate::labels::STALE_NAN_BITS);
        let values = [1.0, -0.0, stale, 2.0];
        assert_eq!(
            round_trip(&values),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
