//! The parsers every entry point runs on what a client or a file sends, each as a function of
//! arbitrary bytes: the fuzz targets (`fuzz/`, `cargo fuzz run <name>`) and the regression test
//! that replays every input that once found a bug (`tests/server/fuzz_regressions.rs`) call
//! these, so both exercise exactly what the server runs. An error is a fine answer; a panic, an
//! abort, a hang or a runaway allocation is a bug.

use quiver_storage::LabelLimits;

use crate::ingest::experiments;
use quiver_ingest::{exposition, remote_write};

/// A fuzz target: its name (the folder of its seeds and regressions) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("remote_write", remote_write_body),
    ("remote_write_protobuf", remote_write_protobuf),
    ("remote_write2", remote_write2_protobuf),
    ("remote_read", remote_read_protobuf),
    ("otlp", otlp),
    ("exposition", exposition_text),
    ("exposition_proto", exposition_protobuf),
    ("promql", promql),
    ("sql", sql),
    ("experiments", experiment_json),
    ("config", config_yaml),
    ("rule_file", rule_file),
    ("flight_ticket", flight_ticket),
    ("wal_record", wal_record),
];

/// A remote-write body as sent: snappy, then protobuf.
pub fn remote_write_body(data: &[u8]) {
    let _ = remote_write::decode(data, 1 << 20, &quiver_storage::Limits::default());
}

/// The protobuf decoder alone: the input is compressed first, so every input reaches it.
pub fn remote_write_protobuf(data: &[u8]) {
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        remote_write_body(&body);
    }
}

/// The remote write 2.0 decoder (compressed first, so every input reaches the protobuf).
pub fn remote_write2_protobuf(data: &[u8]) {
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = quiver_ingest::remote_write2::decode(
            &body,
            1 << 20,
            &quiver_storage::Limits::default(),
        );
    }
}

/// A remote read request (compressed first, as for the write targets).
pub fn remote_read_protobuf(data: &[u8]) {
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = quiver_ingest::remote_read::decode_request(&body, 1 << 20);
    }
}

/// An OTLP metrics body, read both as protobuf and as JSON, and each translated to series
/// under every strategy (`/api/v1/otlp/v1/metrics`).
pub fn otlp(data: &[u8]) {
    use quiver_ingest::otlp;
    let limits = quiver_storage::Limits::default();
    let decoded = [otlp::protobuf::decode(data), otlp::json::decode(data)];
    for request in decoded.iter().flatten() {
        for strategy in [
            otlp::Strategy::UnderscoreEscapingWithSuffixes,
            otlp::Strategy::NoUTF8EscapingWithSuffixes,
        ] {
            let opts = otlp::Options {
                translation_strategy: strategy,
                promote_all_resource_attributes: true,
                promote_scope_metadata: true,
                ..otlp::Options::default()
            };
            let _ = otlp::convert(request, &opts, &limits);
        }
    }
}

/// The text format and OpenMetrics (scrapes and `/api/v1/import/prometheus`).
pub fn exposition_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [exposition::Format::Text, exposition::Format::OpenMetrics] {
        for entry in exposition::Parser::new(text, format) {
            if let Ok(exposition::Entry::Sample(s)) = entry {
                let _ = exposition::parse_series(s.series);
            }
        }
    }
    let _ = quiver_ingest::text::parse(text);
}

/// The protobuf exposition format (scrapes), under every histogram setting, and the text
/// format's conversion of classic histograms.
pub fn exposition_protobuf(data: &[u8]) {
    use quiver_ingest::exposition_proto::{HistogramOptions, ProtoEntry, parse};
    for (native, always_classic, convert_to_nhcb) in [
        (false, false, false),
        (true, false, false),
        (true, true, true),
        (false, true, true),
    ] {
        let opts = HistogramOptions {
            native,
            always_classic,
            convert_to_nhcb,
        };
        if let Ok(entries) = parse(data, opts) {
            for e in entries {
                if let ProtoEntry::Float(s, ..) | ProtoEntry::Histogram(s, ..) = e {
                    let _ = exposition::parse_series(&s);
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut classic = quiver_ingest::nhcb::ClassicHistograms::default();
        for entry in exposition::Parser::new(text, exposition::Format::Text).flatten() {
            match entry {
                exposition::Entry::Type(n, k) => classic.on_type(n, k),
                exposition::Entry::Sample(s) => {
                    classic.offer(s.series, s.timestamp_ms, s.value);
                }
                _ => {}
            }
        }
        let _ = classic.finish();
    }
}

/// A PromQL query (`/api/v1/query`, rule expressions, `match[]`).
pub fn promql(data: &[u8]) {
    if let Ok(q) = std::str::from_utf8(data)
        && let Ok(expr) = quiver_promql::parse(q)
    {
        let _ = expr.prettify();
    }
}

/// A SQL statement's parse and read-only check.
pub fn sql(data: &[u8]) {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = quiver_sql::guard::check_query_text(q);
    }
}

/// Experiment metrics (JSON lines) and parameters (a JSON object).
pub fn experiment_json(data: &[u8]) {
    let limits = LabelLimits::default();
    let _ = experiments::parse_metrics(&mut data.to_vec(), "e", "r", 0, &limits);
    let _ = experiments::parse_params(&mut data.to_vec());
}

/// The configuration file.
pub fn config_yaml(data: &[u8]) {
    if let Ok(yaml) = std::str::from_utf8(data) {
        let _ = crate::config::Config::from_yaml("fuzz.yml", yaml);
    }
}

/// A rule file.
pub fn rule_file(data: &[u8]) {
    if let Ok(yaml) = std::str::from_utf8(data) {
        let _ = crate::rules::file::parse("fuzz.rules.yml", yaml);
    }
}

/// Flight tickets: plain Flight's JSON tickets and prepared-statement handles.
pub fn flight_ticket(data: &[u8]) {
    let _ = crate::flight::fuzz_ticket(data);
}

/// A WAL record's payload (read back at every start).
pub fn wal_record(data: &[u8]) {
    let _ = quiver_storage::wal::WalRecord::decode(data);
}
