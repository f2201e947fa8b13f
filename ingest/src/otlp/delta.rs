//! Delta temporality made cumulative, as Prometheus's `otlp-deltatocumulative` feature does it
//! (OpenTelemetry's deltatocumulative processor): each stream (resource, scope, metric and the
//! point's attributes) keeps its running total in memory, and each delta point is stored as
//! the total so far. A point not newer than the stream's last is refused (out of order); a
//! histogram whose bucket bounds change starts again from that point.
//!
//! The state is bounded: at most [`MAX_STREAMS`] streams; streams not updated for
//! [`STALE_AFTER_MS`] are forgotten first, then a new stream is refused.

use std::collections::HashMap;

/// Most streams remembered.
pub const MAX_STREAMS: usize = 100_000;
/// A stream not updated for this long (wall clock) is forgotten when room is needed.
pub const STALE_AFTER_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone)]
enum Total {
    Sum(f64),
    Histogram {
        count: u64,
        sum: Option<f64>,
        buckets: Vec<u64>,
        bounds: Vec<f64>,
    },
}

#[derive(Debug, Clone)]
struct Stream {
    last_ns: u64,
    seen_ms: i64,
    total: Total,
}

/// The running totals of every delta stream.
#[derive(Debug, Default)]
pub struct DeltaState {
    streams: HashMap<u64, Stream>,
}

/// Why a delta point was not made cumulative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    OutOfOrder,
    TooManyStreams,
}

impl DeltaState {
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Room for one more stream, forgetting stale ones if needed.
    fn room(&mut self, now_ms: i64) -> bool {
        if self.streams.len() < MAX_STREAMS {
            return true;
        }
        self.streams
            .retain(|_, s| now_ms - s.seen_ms < STALE_AFTER_MS);
        self.streams.len() < MAX_STREAMS
    }

    /// Adds a delta sum point; answers the stream's total.
    pub fn sum(&mut self, key: u64, time_ns: u64, value: f64, now_ms: i64) -> Result<f64, Refusal> {
        match self.streams.get_mut(&key) {
            Some(s) => {
                if time_ns <= s.last_ns {
                    return Err(Refusal::OutOfOrder);
                }
                let total = match &mut s.total {
                    Total::Sum(t) => {
                        *t += value;
                        *t
                    }
                    other => {
                        *other = Total::Sum(value);
                        value
                    }
                };
                s.last_ns = time_ns;
                s.seen_ms = now_ms;
                Ok(total)
            }
            None => {
                if !self.room(now_ms) {
                    return Err(Refusal::TooManyStreams);
                }
                self.streams.insert(
                    key,
                    Stream {
                        last_ns: time_ns,
                        seen_ms: now_ms,
                        total: Total::Sum(value),
                    },
                );
                Ok(value)
            }
        }
    }

    /// Adds a delta histogram point (count, sum, per-bucket counts, bounds); answers the
    /// stream's totals in the same shape.
    pub fn histogram(
        &mut self,
        key: u64,
        time_ns: u64,
        point: (u64, Option<f64>, &[u64], &[f64]),
        now_ms: i64,
    ) -> Result<(u64, Option<f64>, Vec<u64>), Refusal> {
        let (count, sum, buckets, bounds) = point;
        let fresh = || Total::Histogram {
            count,
            sum,
            buckets: buckets.to_vec(),
            bounds: bounds.to_vec(),
        };
        let stream = match self.streams.get_mut(&key) {
            Some(s) => {
                if time_ns <= s.last_ns {
                    return Err(Refusal::OutOfOrder);
                }
                match &mut s.total {
                    Total::Histogram {
                        count: c,
                        sum: total_sum,
                        buckets: b,
                        bounds: old_bounds,
                    } if old_bounds.as_slice() == bounds && b.len() == buckets.len() => {
                        *c = c.saturating_add(count);
                        *total_sum = match (*total_sum, sum) {
                            (Some(a), Some(x)) => Some(a + x),
                            _ => None,
                        };
                        for (t, x) in b.iter_mut().zip(buckets) {
                            *t = t.saturating_add(*x);
                        }
                    }
                    // New bounds (or a stream that was a sum): start again from this point.
                    other => *other = fresh(),
                }
                s.last_ns = time_ns;
                s.seen_ms = now_ms;
                s
            }
            None => {
                if !self.room(now_ms) {
                    return Err(Refusal::TooManyStreams);
                }
                self.streams.entry(key).or_insert(Stream {
                    last_ns: time_ns,
                    seen_ms: now_ms,
                    total: fresh(),
                })
            }
        };
        match &stream.total {
            Total::Histogram {
                count,
                sum,
                buckets,
                ..
            } => Ok((*count, *sum, buckets.clone())),
            Total::Sum(_) => unreachable!("set to a histogram above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_accumulate_in_order_and_refuse_the_past() {
        let mut d = DeltaState::default();
        assert_eq!(d.sum(1, 10, 0.0, 0), Ok(0.0));
        assert_eq!(d.sum(1, 20, 1.0, 0), Ok(1.0));
        assert_eq!(d.sum(1, 30, 2.0, 0), Ok(3.0));
        assert_eq!(d.sum(1, 30, 5.0, 0), Err(Refusal::OutOfOrder));
        assert_eq!(d.sum(2, 5, 7.0, 0), Ok(7.0));
    }

    #[test]
    fn histograms_accumulate_and_start_again_when_bounds_change() {
        let mut d = DeltaState::default();
        assert_eq!(
            d.histogram(1, 10, (3, Some(1.5), &[1, 2], &[0.5]), 0),
            Ok((3, Some(1.5), vec![1, 2]))
        );
        assert_eq!(
            d.histogram(1, 20, (2, Some(1.0), &[2, 0], &[0.5]), 0),
            Ok((5, Some(2.5), vec![3, 2]))
        );
        assert_eq!(
            d.histogram(1, 30, (1, None, &[1, 0, 0], &[0.5, 1.0]), 0),
            Ok((1, None, vec![1, 0, 0]))
        );
    }

    #[test]
    fn streams_are_bounded_and_stale_ones_go_first() {
        let mut d = DeltaState::default();
        for k in 0..MAX_STREAMS as u64 {
            d.sum(k, 1, 1.0, 0).unwrap();
        }
        assert_eq!(d.sum(u64::MAX, 1, 1.0, 1), Err(Refusal::TooManyStreams));
        // Later, the old ones are stale and make room.
        assert_eq!(d.sum(u64::MAX, 1, 1.0, STALE_AFTER_MS + 1), Ok(1.0));
        assert_eq!(d.len(), 1);
    }
}
