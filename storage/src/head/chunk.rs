//! The head's compressed chunks: Gorilla-style encoding (Pelkonen et al., VLDB 2015), as
//! Prometheus's XOR chunks use. Timestamps as delta-of-delta in variable-width buckets, values
//! as the XOR with the previous value, storing only the meaningful bits. Regular 15 s scrapes
//! of slowly changing gauges take one to two bytes a sample instead of sixteen.

/// A closed, immutable run of samples, sorted by time with unique timestamps.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    bits: Vec<u64>,
    len_bits: usize,
    count: u32,
    min_time: i64,
    max_time: i64,
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
        for (&t, &v) in timestamps[1..].iter().zip(&values[1..]) {
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
        }
    }

    /// Decodes every sample, appending to the given vectors.
    pub fn decode_into(&self, timestamps: &mut Vec<i64>, values: &mut Vec<f64>) {
        let mut r = BitReader {
            bits: &self.bits,
            pos: 0,
        };
        let mut t = r.read(64) as i64;
        let mut v = r.read(64);
        timestamps.push(t);
        values.push(f64::from_bits(v));
        let (mut delta, mut leading, mut trailing) = (0i64, 0u32, 0u32);
        for _ in 1..self.count {
            let dod = if r.read(1) == 0 {
                0
            } else if r.read(1) == 0 {
                sign_extend(r.read(14), 14)
            } else if r.read(1) == 0 {
                sign_extend(r.read(17), 17)
            } else if r.read(1) == 0 {
                sign_extend(r.read(20), 20)
            } else {
                r.read(64) as i64
            };
            delta = delta.wrapping_add(dod);
            t = t.wrapping_add(delta);
            if r.read(1) == 1 {
                if r.read(1) == 1 {
                    leading = r.read(5) as u32;
                    let sig = match r.read(6) as u32 {
                        0 => 64,
                        s => s,
                    };
                    trailing = 64 - leading - sig;
                }
                let sig = 64 - leading - trailing;
                v ^= r.read(sig) << trailing;
            }
            timestamps.push(t);
            values.push(f64::from_bits(v));
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
    fn read(&mut self, n: u32) -> u64 {
        if n == 0 {
            return 0;
        }
        let word = self.pos / 64;
        let used = (self.pos % 64) as u32;
        let free = 64 - used;
        let first = self.bits.get(word).copied().unwrap_or(0) << used;
        let out = if n <= free {
            first >> (64 - n)
        } else {
            let second = self.bits.get(word + 1).copied().unwrap_or(0);
            (first >> (64 - n)) | (second >> (64 - (n - free)))
        };
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
