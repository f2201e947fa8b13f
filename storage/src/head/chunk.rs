//! The head's compressed chunks: Gorilla-style encoding (Pelkonen et al., VLDB 2015), as
//! Prometheus's XOR chunks use. Timestamps as delta-of-delta in variable-width buckets, values
//! as the XOR with the previous value, storing only the meaningful bits. Regular 15 s scrapes
//! of slowly changing gauges take one to two bytes a sample instead of sixteen.

use std::num::NonZeroU16;

/// A closed, immutable run of samples, sorted by time with unique timestamps.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    bits: Vec<u64>,
    len_bits: usize,
    count: u32,
    min_time: i64,
    max_time: i64,
    /// Where a read of the chunk's last quarter may start (chunks of at least
    /// [`CHECKPOINT_MIN_SAMPLES`]): queries at "now" want a series' newest samples, and a
    /// Gorilla stream otherwise decodes only from its first sample.
    checkpoint: Option<Checkpoint>,
}

/// Samples a chunk needs to get a [`Checkpoint`].
const CHECKPOINT_MIN_SAMPLES: usize = 32;

/// The decoder's state before one sample: the previous sample, the previous delta and XOR
/// window, and the bit position.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    /// The index of the sample decoding resumes at (never the first: `Option<Checkpoint>` is
    /// then no larger than a checkpoint, 32 bytes).
    index: NonZeroU16,
    pos: u32,
    t: i64,
    v: u64,
    delta: i64,
    leading: u8,
    trailing: u8,
}

impl Chunk {
    /// Encodes samples (sorted by time, unique timestamps, at least one).
    pub fn encode(timestamps: &[i64], values: &[f64]) -> Self {
        debug_assert!(!timestamps.is_empty() && timestamps.len() == values.len());
        let mut w = BitWriter::default();
        w.write(timestamps[0] as u64, 64);
        w.write(values[0].to_bits(), 64);
        let (mut prev_t, mut prev_delta) = (timestamps[0], 0i64);
        let (mut prev_v, mut leading, mut trailing) = (values[0].to_bits(), u32::MAX, 0u32);
        let checkpoint_at =
            (timestamps.len() >= CHECKPOINT_MIN_SAMPLES).then(|| timestamps.len() * 3 / 4);
        let mut checkpoint = None;
        for (i, (&t, &v)) in timestamps.iter().zip(values).enumerate().skip(1) {
            if Some(i) == checkpoint_at
                && let (Some(index), Ok(pos)) = (
                    u16::try_from(i).ok().and_then(NonZeroU16::new),
                    u32::try_from(w.len),
                )
            {
                // (A chunk grown past u16 samples by late inserts just has none.)
                checkpoint = Some(Checkpoint {
                    index,
                    pos,
                    t: prev_t,
                    v: prev_v,
                    delta: prev_delta,
                    // No window yet (u32::MAX): the next value opens one, so any will do.
                    leading: leading.min(63) as u8,
                    trailing: trailing as u8,
                });
            }
            let delta = t.wrapping_sub(prev_t);
            let dod = delta.wrapping_sub(prev_delta);
            match dod {
                0 => w.write(0, 1),
                d if fits(d, 14) => {
                    w.write(0b10, 2);
                    w.write(d as u64, 14);
                }
                d if fits(d, 17) => {
                    w.write(0b110, 3);
                    w.write(d as u64, 17);
                }
                d if fits(d, 20) => {
                    w.write(0b1110, 4);
                    w.write(d as u64, 20);
                }
                d => {
                    w.write(0b1111, 4);
                    w.write(d as u64, 64);
                }
            }
            prev_t = t;
            prev_delta = delta;

            let bits = v.to_bits();
            let xor = bits ^ prev_v;
            if xor == 0 {
                w.write(0, 1);
            } else {
                let lz = xor.leading_zeros().min(31);
                let tz = xor.trailing_zeros();
                if leading != u32::MAX && lz >= leading && tz >= trailing {
                    // Fits in the previous window: control bits 10.
                    w.write(0b10, 2);
                    w.write(xor >> trailing, 64 - leading - trailing);
                } else {
                    leading = lz;
                    trailing = tz;
                    let sig = 64 - lz - tz;
                    w.write(0b11, 2);
                    w.write(lz as u64, 5);
                    w.write((sig & 63) as u64, 6); // 64 significant bits are written as 0
                    w.write(xor >> tz, sig);
                }
            }
            prev_v = bits;
        }
        w.bits.shrink_to_fit();
        Chunk {
            len_bits: w.len,
            bits: w.bits,
            count: timestamps.len() as u32,
            min_time: timestamps[0],
            max_time: *timestamps.last().expect("non-empty"),
            checkpoint,
        }
    }

    /// Decodes every sample, appending to the given vectors.
    pub fn decode_into(&self, timestamps: &mut Vec<i64>, values: &mut Vec<f64>) {
        self.decode_range_into(i64::MIN, i64::MAX, timestamps, values);
    }

    /// Decodes the samples with `mint <= t <= maxt`, appending to the given vectors; decoding
    /// stops at the first sample after `maxt`.
    pub fn decode_range_into(
        &self,
        mint: i64,
        maxt: i64,
        timestamps: &mut Vec<i64>,
        values: &mut Vec<f64>,
    ) {
        let mut r = BitReader {
            bits: &self.bits,
            pos: 0,
        };
        let (mut t, mut v, mut delta, mut leading, mut trailing, first);
        match self.checkpoint {
            // Every sample before the checkpoint is at or before `cp.t`, so before `mint`.
            Some(cp) if mint > cp.t => {
                r.pos = cp.pos as usize;
                (t, v, delta) = (cp.t, cp.v, cp.delta);
                (leading, trailing) = (u32::from(cp.leading), u32::from(cp.trailing));
                first = u32::from(cp.index.get());
            }
            _ => {
                t = r.read(64) as i64;
                v = r.read(64);
                if t > maxt {
                    return;
                }
                if t >= mint {
                    timestamps.push(t);
                    values.push(f64::from_bits(v));
                }
                (delta, leading, trailing) = (0, 0, 0);
                first = 1;
            }
        }
        // Room for the samples still to come in range, from the chunk's mean interval, at
        // most the rest of the chunk: one allocation instead of doubling from empty, and no
        // room for a whole chunk when the window is narrow (reads keep these vectors).
        let rest = (self.count - first) as usize;
        let interval =
            self.max_time.saturating_sub(self.min_time) / i64::from(self.count.max(2) - 1);
        let window = maxt.min(self.max_time).saturating_sub(mint.max(t));
        let expected = (window.max(0) / interval.max(1)) as usize + 2;
        timestamps.reserve(rest.min(expected));
        values.reserve(rest.min(expected));
        for _ in first..self.count {
            // Each field's control bits are read from one look at the next 64 bits.
            let p = r.peek();
            let dod = match p.leading_ones() {
                0 => {
                    r.skip(1);
                    0
                }
                1 => {
                    r.skip(2 + 14);
                    sign_extend((p << 2) >> (64 - 14), 14)
                }
                2 => {
                    r.skip(3 + 17);
                    sign_extend((p << 3) >> (64 - 17), 17)
                }
                3 => {
                    r.skip(4 + 20);
                    sign_extend((p << 4) >> (64 - 20), 20)
                }
                _ => {
                    r.skip(4);
                    r.read(64) as i64
                }
            };
            delta = delta.wrapping_add(dod);
            t = t.wrapping_add(delta);
            let p = r.peek();
            if p >> 63 == 0 {
                r.skip(1);
            } else {
                if (p << 1) >> 63 == 1 {
                    leading = ((p << 2) >> (64 - 5)) as u32;
                    let sig = match ((p << 7) >> (64 - 6)) as u32 {
                        0 => 64,
                        s => s,
                    };
                    trailing = 64 - leading - sig;
                    r.skip(13);
                } else {
                    r.skip(2);
                }
                let sig = 64 - leading - trailing;
                v ^= r.read(sig) << trailing;
            }
            if t > maxt {
                break;
            }
            if t >= mint {
                timestamps.push(t);
                values.push(f64::from_bits(v));
            }
        }
        debug_assert!(r.pos <= self.len_bits);
    }

    pub fn count(&self) -> usize {
        self.count as usize
    }

    pub fn min_time(&self) -> i64 {
        self.min_time
    }

    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    /// Heap bytes held.
    pub fn byte_size(&self) -> usize {
        self.bits.capacity() * 8
    }
}

fn fits(v: i64, bits: u32) -> bool {
    let lim = 1i64 << (bits - 1);
    (-lim..lim).contains(&v)
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

#[derive(Default)]
struct BitWriter {
    bits: Vec<u64>,
    len: usize,
}

impl BitWriter {
    /// Appends the low `n` bits of `v`, most significant first.
    fn write(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let used = (self.len % 64) as u32;
        if used == 0 {
            self.bits.push(0);
        }
        let free = 64 - used;
        let last = self.bits.len() - 1;
        if n <= free {
            self.bits[last] |= v << (free - n);
        } else {
            self.bits[last] |= v >> (n - free);
            self.bits.push(v << (64 - (n - free)));
        }
        self.len += n as usize;
    }
}

struct BitReader<'a> {
    bits: &'a [u64],
    pos: usize,
}

impl BitReader<'_> {
    /// The next 64 bits (zeros past the end), without consuming them.
    #[inline]
    fn peek(&self) -> u64 {
        let word = self.pos / 64;
        let used = (self.pos % 64) as u32;
        let first = self.bits.get(word).copied().unwrap_or(0);
        if used == 0 {
            first
        } else {
            let second = self.bits.get(word + 1).copied().unwrap_or(0);
            (first << used) | (second >> (64 - used))
        }
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.pos += n as usize;
    }

    /// The next `n` bits (`n <= 64`) as the low bits of the answer.
    #[inline]
    fn read(&mut self, n: u32) -> u64 {
        if n == 0 {
            return 0;
        }
        let out = self.peek() >> (64 - n);
        self.pos += n as usize;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64], vs: &[f64]) -> (Vec<i64>, Vec<u64>) {
        let c = Chunk::encode(ts, vs);
        let (mut t, mut v) = (Vec::new(), Vec::new());
        c.decode_into(&mut t, &mut v);
        (t, v.into_iter().map(f64::to_bits).collect())
    }

    proptest! {
        #[test]
        fn any_sorted_samples_round_trip_bit_for_bit(
            start in any::<i64>().prop_map(|t| t / 4),
            deltas in proptest::collection::vec(1i64..1_000_000_000_000, 0..200),
            values in proptest::collection::vec(any::<u64>(), 201),
        ) {
            let mut ts = vec![start];
            for d in &deltas {
                ts.push(ts.last().unwrap() + d);
            }
            let vs: Vec<f64> = values[..ts.len()].iter().map(|b| f64::from_bits(*b)).collect();
            let (t, v) = round_trip(&ts, &vs);
            prop_assert_eq!(t, ts);
            prop_assert_eq!(v, vs.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn a_range_decodes_exactly_the_samples_inside_it(
            deltas in proptest::collection::vec(1i64..100_000, 0..150),
            bits in proptest::collection::vec(any::<u64>(), 151),
            a in 0i64..16_000_000,
            len in 0i64..4_000_000,
        ) {
            let mut ts = vec![1_000i64];
            for d in &deltas {
                ts.push(ts.last().unwrap() + d);
            }
            // Values that repeat, change a little (the XOR window reused) and jump.
            let vs: Vec<f64> = ts
                .iter()
                .enumerate()
                .map(|(i, t)| match bits[i] % 4 {
                    0 => 1.0,
                    1 => (*t as f64).sqrt(),
                    2 => (t / 1000) as f64,
                    _ => f64::from_bits(bits[i]),
                })
                .collect();
            let c = Chunk::encode(&ts, &vs);
            let (mint, maxt) = (a, a + len);
            let (mut t, mut v) = (Vec::new(), Vec::new());
            c.decode_range_into(mint, maxt, &mut t, &mut v);
            let want: Vec<(i64, u64)> = ts
                .iter()
                .zip(&vs)
                .filter(|(t, _)| (mint..=maxt).contains(*t))
                .map(|(t, v)| (*t, v.to_bits()))
                .collect();
            let got: Vec<(i64, u64)> = t.into_iter().zip(v.iter().map(|v| v.to_bits())).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_checkpoint_costs_no_more_than_its_fields() {
        assert_eq!(std::mem::size_of::<Option<Checkpoint>>(), 32);
    }

    #[test]
    fn regular_scrapes_of_a_gauge_compress_well() {
        let ts: Vec<i64> = (0..120).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        let vs: Vec<f64> = (0..120).map(|i| (40 + (i % 7)) as f64).collect();
        let c = Chunk::encode(&ts, &vs);
        assert!(
            c.byte_size() < 120 * 3,
            "{} bytes for 120 samples",
            c.byte_size()
        );
        assert_eq!(round_trip(&ts, &vs).0, ts);
    }

    #[test]
    fn stale_markers_nan_and_infinities_survive() {
        let stale = f64::from_bits(crate::labels::STALE_NAN_BITS);
        let vs = [
            1.0,
            stale,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
        ];
        let ts: Vec<i64> = (0..vs.len() as i64).collect();
        let (_, v) = round_trip(&ts, &vs);
        assert_eq!(v, vs.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}
