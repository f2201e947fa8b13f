//! Quiver's wire formats, decoded without a server: what a client or a scrape target sends,
//! turned into label sets and samples. The server (`quiver`) owns the endpoints, limits and
//! storage calls around them; nothing here knows HTTP.
//!
//! - [`exposition`]: one streaming parser for the Prometheus text format 0.0.4 and OpenMetrics
//!   1.0 (scraping), and [`text`], a wrapper for backfill imports; [`exposition_proto`]: the
//!   protobuf exposition format (native histograms); [`nhcb`]: classic histograms of the text
//!   formats converted to custom buckets.
//! - [`remote_write`]: remote write 1.0 (snappy and protobuf), with the series cache that skips
//!   label parsing for series seen before; [`remote_write2`]: remote write 2.0 (a symbols
//!   table, float samples and metadata); [`histogram`]: the native histogram message both
//!   carry.
//! - [`otlp`]: OpenTelemetry metrics over OTLP/HTTP (protobuf and JSON), translated to series
//!   as Prometheus 3 does.
//! - [`remote_read`]: remote read requests and their `SAMPLES` answers; [`xor_chunks`]: the
//!   `STREAMED_XOR_CHUNKS` answer (Prometheus's XOR chunks in framed messages).
//! - [`json_depth`]: the nesting check every JSON body passes before a parser sees it.

pub mod exposition;
pub mod exposition_proto;
pub mod histogram;
pub mod json_depth;
pub mod nhcb;
pub mod otlp;
pub mod remote_read;
pub mod remote_write;
pub mod remote_write2;
pub mod text;
pub mod xor_chunks;
