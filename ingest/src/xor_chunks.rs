//! Remote read's `STREAMED_XOR_CHUNKS` answer: series as Prometheus's XOR (Gorilla) chunks,
//! in `ChunkedReadResponse` frames (`prompb/remote.proto`, `prompb/types.proto`), each frame a
//! uvarint length, the big-endian CRC-32C of the message, and the message.
//!
//! The chunk encoding is Prometheus's `tsdb/chunkenc/xor.go`, bit for bit: a 2-byte big-endian
//! sample count, then the first timestamp (varint) and value (64 bits), the second timestamp's
//! delta (uvarint) and the value XORed with the previous one, then delta-of-deltas in 1, 16, 20,
//! 24 or 68 bits and XORed values with their leading and trailing zero counts.

use prost::Message;

use crate::remote_write::Label;

/// `Chunk.Encoding.XOR`.
pub const XOR: i32 = 1;

/// Samples in one chunk, as Prometheus's head cuts them.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Most bytes of chunks in one frame (Prometheus's `--storage.remote.read-max-bytes-in-frame`).
pub const MAX_BYTES_IN_FRAME: usize = 1 << 20;

/// The Content-Type of the answer.
pub const CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

#[derive(Clone, PartialEq, Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// Bits written most significant first, as Prometheus's `bstream`.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte.
    free: u8,
}

impl BitWriter {
    fn bit(&mut self, one: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if one {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    fn bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    fn byte(&mut self, b: u8) {
        self.bits(u64::from(b), 8);
    }
}

/// Whether `x` fits Prometheus's `bitRange(x, nbits)`: -(2^(n-1) - 1) ..= 2^(n-1).
fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// One XOR chunk of `samples` (at most 65,535; in time order).
pub fn xor_chunk(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut w = BitWriter {
        bytes: vec![0, 0],
        free: 0,
    };
    let (mut t_prev, mut v_prev, mut t_delta_prev) = (0i64, 0f64, 0u64);
    let (mut leading, mut trailing) = (0xffu8, 0u8);
    for (i, &(t, v)) in samples.iter().enumerate() {
        match i {
            0 => {
                let mut buf = Vec::with_capacity(10);
                prost::encoding::encode_varint(((t << 1) ^ (t >> 63)) as u64, &mut buf);
                buf.iter().for_each(|b| w.byte(*b));
                w.bits(v.to_bits(), 64);
            }
            1 => {
                let delta = t.wrapping_sub(t_prev) as u64;
                let mut buf = Vec::with_capacity(10);
                prost::encoding::encode_varint(delta, &mut buf);
                buf.iter().for_each(|b| w.byte(*b));
                xor_write(&mut w, v, v_prev, &mut leading, &mut trailing);
                t_delta_prev = delta;
            }
            _ => {
                let delta = t.wrapping_sub(t_prev) as u64;
                let dod = delta.wrapping_sub(t_delta_prev) as i64;
                if dod == 0 {
                    w.bit(false);
                } else if bit_range(dod, 14) {
                    w.bits(0b10, 2);
                    w.bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    w.bits(0b110, 3);
                    w.bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    w.bits(0b1110, 4);
                    w.bits(dod as u64, 20);
                } else {
                    w.bits(0b1111, 4);
                    w.bits(dod as u64, 64);
                }
                xor_write(&mut w, v, v_prev, &mut leading, &mut trailing);
                t_delta_prev = delta;
            }
        }
        t_prev = t;
        v_prev = v;
    }
    let n = samples.len().min(u16::MAX as usize) as u16;
    w.bytes[..2].copy_from_slice(&n.to_be_bytes());
    w.bytes
}

fn xor_write(w: &mut BitWriter, v: f64, prev: f64, leading: &mut u8, trailing: &mut u8) {
    let delta = v.to_bits() ^ prev.to_bits();
    if delta == 0 {
        w.bit(false);
        return;
    }
    w.bit(true);
    let new_leading = (delta.leading_zeros() as u8).min(31);
    let new_trailing = delta.trailing_zeros() as u8;
    if *leading != 0xff && new_leading >= *leading && new_trailing >= *trailing {
        w.bit(false);
        w.bits(
            delta >> *trailing,
            64 - u32::from(*leading) - u32::from(*trailing),
        );
        return;
    }
    *leading = new_leading;
    *trailing = new_trailing;
    w.bit(true);
    w.bits(u64::from(new_leading), 5);
    let sigbits = 64 - new_leading - new_trailing;
    // 64 significant bits are written as 0 (they do not fit 6 bits; 0 never occurs).
    w.bits(u64::from(sigbits), 6);
    w.bits(delta >> new_trailing, u32::from(sigbits));
}

/// Reads an XOR chunk back (Prometheus's `xorIterator`): the client side, for tests.
pub fn decode_xor_chunk(data: &[u8]) -> Result<Vec<(i64, f64)>, String> {
    struct R<'a> {
        b: &'a [u8],
        pos: usize,
    }
    impl R<'_> {
        fn bit(&mut self) -> Result<bool, String> {
            let byte = *self.b.get(self.pos / 8).ok_or("unexpected end of chunk")?;
            let bit = (byte >> (7 - self.pos % 8)) & 1 == 1;
            self.pos += 1;
            Ok(bit)
        }
        fn bits(&mut self, n: u32) -> Result<u64, String> {
            let mut v = 0u64;
            for _ in 0..n {
                v = (v << 1) | u64::from(self.bit()?);
            }
            Ok(v)
        }
        fn varint(&mut self) -> Result<u64, String> {
            let mut out = 0u64;
            for shift in (0..64).step_by(7) {
                let b = self.bits(8)?;
                out |= (b & 0x7f) << shift;
                if b < 0x80 {
                    return Ok(out);
                }
            }
            Err("varint too long".into())
        }
    }
    if data.len() < 2 {
        return Err("chunk shorter than its header".into());
    }
    let n = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut r = R {
        b: &data[2..],
        pos: 0,
    };
    let mut out = Vec::with_capacity(n);
    let (mut t, mut v_bits, mut t_delta) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    let mut read_value = |r: &mut R<'_>, v_bits: &mut u64| -> Result<(), String> {
        if !r.bit()? {
            return Ok(());
        }
        if r.bit()? {
            leading = r.bits(5)? as u32;
            let mut sig = r.bits(6)? as u32;
            if sig == 0 {
                sig = 64;
            }
            trailing = 64 - leading - sig;
        }
        let sig = 64 - leading - trailing;
        *v_bits ^= r.bits(sig)? << trailing;
        Ok(())
    };
    for i in 0..n {
        match i {
            0 => {
                let z = r.varint()?;
                t = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v_bits = r.bits(64)?;
            }
            1 => {
                t_delta = r.varint()?;
                t = t.wrapping_add(t_delta as i64);
                read_value(&mut r, &mut v_bits)?;
            }
            _ => {
                let mut size = 0;
                for s in [14u32, 17, 20, 64] {
                    if !r.bit()? {
                        break;
                    }
                    size = s;
                }
                let mut dod = r.bits(size)? as i64;
                if size != 0 && size != 64 && dod > 1 << (size - 1) {
                    dod -= 1 << size;
                }
                t_delta = t_delta.wrapping_add(dod as u64);
                t = t.wrapping_add(t_delta as i64);
                read_value(&mut r, &mut v_bits)?;
            }
        }
        out.push((t, f64::from_bits(v_bits)));
    }
    Ok(out)
}

/// Appends one frame: the message's length (uvarint), its CRC-32C (big-endian), the message.
pub fn frame(msg: &ChunkedReadResponse, out: &mut Vec<u8>) {
    let bytes = msg.encode_to_vec();
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// Reads the frames of an answer back (the client side, for tests), checking each CRC.
pub fn read_frames(mut body: &[u8]) -> Result<Vec<ChunkedReadResponse>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = prost::encoding::decode_varint(&mut body).map_err(|e| e.to_string())? as usize;
        if body.len() < 4 + len {
            return Err("truncated frame".into());
        }
        let crc = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
        let msg = &body[4..4 + len];
        if crc32c::crc32c(msg) != crc {
            return Err("frame checksum mismatch".into());
        }
        out.push(ChunkedReadResponse::decode(msg).map_err(|e| e.to_string())?);
        body = &body[4 + len..];
    }
    Ok(out)
}

/// The frames for one series of query `query_index`: its samples cut into chunks of
/// [`SAMPLES_PER_CHUNK`], the chunks grouped into frames of at most [`MAX_BYTES_IN_FRAME`]
/// (a long series spans several frames, each with its labels, as Prometheus sends it).
pub fn series_frames(
    query_index: i64,
    labels: &[Label],
    samples: &[(i64, f64)],
    out: &mut Vec<u8>,
) {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut bytes = 0usize;
    let flush = |chunks: &mut Vec<Chunk>, out: &mut Vec<u8>| {
        if chunks.is_empty() {
            return;
        }
        frame(
            &ChunkedReadResponse {
                chunked_series: vec![ChunkedSeries {
                    labels: labels.to_vec(),
                    chunks: std::mem::take(chunks),
                }],
                query_index,
            },
            out,
        );
    };
    for part in samples.chunks(SAMPLES_PER_CHUNK) {
        let data = xor_chunk(part);
        bytes += data.len();
        chunks.push(Chunk {
            min_time_ms: part[0].0,
            max_time_ms: part[part.len() - 1].0,
            r#type: XOR,
            data,
        });
        if bytes >= MAX_BYTES_IN_FRAME {
            flush(&mut chunks, out);
            bytes = 0;
        }
    }
    flush(&mut chunks, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_regular_series_encodes_as_prometheus_does() {
        // 15 s steps and one value: the second timestamp is a 2-byte uvarint delta, then a
        // zero dod and an unchanged value are one bit each.
        let samples: Vec<(i64, f64)> = (0..5).map(|i| (1_000 + i * 15_000, 1.0)).collect();
        let chunk = xor_chunk(&samples);
        // Header 5; t0 = 1000 as zigzag varint (2000 = d0 0f); 1.0's bits; delta 15000 (98 75);
        // then 1 bit (value unchanged) + 3 × (1 bit dod 0, 1 bit value unchanged) = 7 zero bits.
        let mut want = vec![0, 5, 0xd0, 0x0f];
        want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        want.extend_from_slice(&[0x98, 0x75, 0x00]);
        assert_eq!(chunk, want);
        assert_eq!(decode_xor_chunk(&chunk).unwrap(), samples);
    }

    proptest! {
        #[test]
        fn chunks_read_back_exactly(
            start in -1_000_000_000_000i64..1_000_000_000_000,
            steps in prop::collection::vec(0i64..100_000_000, 0..200),
            values in prop::collection::vec(prop::num::f64::ANY, 200),
        ) {
            let mut t = start;
            let samples: Vec<(i64, f64)> = steps.iter().zip(&values).map(|(d, v)| { t += d; (t, *v) }).collect();
            let back = decode_xor_chunk(&xor_chunk(&samples)).unwrap();
            prop_assert_eq!(back.len(), samples.len());
            for (a, b) in back.iter().zip(&samples) {
                prop_assert_eq!(a.0, b.0);
                prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
            }
        }
    }

    #[test]
    fn frames_carry_their_checksum_and_long_series_span_several() {
        let labels = vec![Label {
            name: "__name__".into(),
            value: "up".into(),
        }];
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64)).collect();
        let mut body = Vec::new();
        series_frames(3, &labels, &samples, &mut body);
        let frames = read_frames(&body).unwrap();
        let chunks: Vec<&Chunk> = frames
            .iter()
            .flat_map(|f| &f.chunked_series)
            .flat_map(|s| &s.chunks)
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!((chunks[0].min_time_ms, chunks[0].max_time_ms), (0, 119_000));
        let back: Vec<(i64, f64)> = chunks
            .iter()
            .flat_map(|c| decode_xor_chunk(&c.data).unwrap())
            .collect();
        assert_eq!(back, samples);
        assert!(frames.iter().all(|f| f.query_index == 3));
        body[10] ^= 1;
        assert!(read_frames(&body).is_err());
    }
}
