//! `POST /api/v1/read`: Prometheus remote read, so a Prometheus with `remote_read` pointing at
//! Quiver queries Quiver's data. `SAMPLES` or `STREAMED_XOR_CHUNKS` answers, whichever the
//! client lists first (see `quiver_ingest::remote_read` and `xor_chunks`);
//! each read takes a query turn and is bounded by `--storage.remote.read-sample-limit`, checked
//! against an upper bound before anything is read.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quiver_ingest::histogram::proto::Histogram;
use quiver_ingest::remote_read::{
    self, LabelMatcher, QueryResult, ReadResponse, STREAMED_XOR_CHUNKS, response_type,
};
use quiver_ingest::remote_write::{Label, Sample, TimeSeries};
use quiver_storage::{MatchOp, Matcher, Matchers};

use super::series::read_labelled;
use super::write::read_body;
use super::{ApiError, AppState};
use crate::error::ErrorType;

/// Most series one read answers.
const MAX_SERIES: usize = 1_000_000;

/// Most label matchers over all the queries of one request.
const MAX_MATCHERS: usize = 1_000;

pub async fn read(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let db = state.db()?.clone();
    let flags = state.flags();
    let body = read_body(req, flags.max_request_body_bytes).await?;
    let request = remote_read::decode_request(&body, flags.max_decoded_body_bytes)?;
    let Some(kind) = response_type(&request) else {
        return Err(ApiError::bad_data(
            "none of the accepted response types is supported: Quiver answers SAMPLES and \
             STREAMED_XOR_CHUNKS",
        ));
    };
    let _permit = state.query_permit().await?;
    // Bounded in time like a query, too.
    let timeout = state.query_timeout();
    let results = tokio::time::timeout(timeout, answer(&state, &db, &request))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorType::Timeout,
                format!("remote read timed out in {timeout:?} (--query.timeout)"),
            )
        })??;
    if kind == STREAMED_XOR_CHUNKS {
        // Each series as XOR chunks, in frames (built whole: the read is bounded by the
        // sample limit already).
        let mut body = Vec::new();
        if results
            .iter()
            .flat_map(|r| &r.timeseries)
            .any(|ts| !ts.histograms.is_empty())
        {
            // Never answer without data Quiver holds: the client can ask for SAMPLES.
            return Err(ApiError::new(
                ErrorType::Execution,
                "the read selects native histograms, which Quiver does not stream as chunks \
                 yet: ask for SAMPLES (accepted_response_types)",
            ));
        }
        for (i, r) in results.iter().enumerate() {
            for ts in &r.timeseries {
                let samples: Vec<(i64, f64)> =
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                quiver_ingest::xor_chunks::series_frames(i as i64, &ts.labels, &samples, &mut body);
            }
        }
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                quiver_ingest::xor_chunks::CONTENT_TYPE,
            )],
            body,
        )
            .into_response());
    }
    let body = remote_read::encode_response(&ReadResponse { results });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/x-protobuf; proto=prometheus.ReadResponse",
            ),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        body,
    )
        .into_response())
}

/// One result per query, within the sample limit.
async fn answer(
    state: &AppState,
    db: &quiver_storage::Db,
    request: &remote_read::ReadRequest,
) -> Result<Vec<QueryResult>, ApiError> {
    let flags = state.flags();
    let matchers: usize = request.queries.iter().map(|q| q.matchers.len()).sum();
    if matchers > MAX_MATCHERS {
        // Each regex may compile to megabytes: their number is bounded, not only the body.
        return Err(ApiError::bad_data(format!(
            "{matchers} matchers in one read request, more than {MAX_MATCHERS}"
        )));
    }
    // Regex matchers (types 2 and 3) are bounded as in a PromQL query.
    let regexes = request
        .queries
        .iter()
        .flat_map(|q| &q.matchers)
        .filter(|m| m.r#type == 2 || m.r#type == 3)
        .count();
    let max_regexes = quiver_promql::bounds::MAX_REGEX_MATCHERS;
    if regexes > max_regexes {
        return Err(ApiError::bad_data(format!(
            "{regexes} regular-expression matchers in one read request, more than {max_regexes}"
        )));
    }
    let limit = match flags.remote_read_sample_limit {
        // Prometheus reads 0 as no limit; Quiver keeps every read bounded.
        0 => flags.query_max_samples,
        n => n,
    };
    let mut sampled = 0usize;
    let mut results = Vec::with_capacity(request.queries.len());
    for q in &request.queries {
        let matchers = Matchers(
            q.matchers
                .iter()
                .map(matcher)
                .collect::<Result<Vec<_>, _>>()?,
        );
        if !matchers.has_non_empty_matcher() {
            return Err(ApiError::bad_data(
                "a read query needs at least one matcher that does not match the empty string",
            ));
        }
        let (start, end) = (q.start_timestamp_ms, q.end_timestamp_ms);
        let series = db.series(&matchers, start, end);
        if series.len() > MAX_SERIES {
            return Err(too_much(format!(
                "{} series selected, more than {MAX_SERIES}",
                series.len()
            )));
        }
        let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
        sampled = sampled.saturating_add(db.sample_bound(&ids, start, end));
        if sampled > limit {
            return Err(too_much(format!(
                "exceeded sample limit ({limit}): the read would return up to {sampled} samples \
                 (--storage.remote.read-sample-limit)"
            )));
        }
        let floats = read_labelled(db, &series, start, end).await?;
        // Native histograms travel in the same series, as float histograms.
        let mut hists: std::collections::HashMap<_, _> = db
            .read_histograms(&ids, start, end)
            .await
            .map_err(ApiError::from_storage)?
            .into_iter()
            .map(|h| (h.id, h))
            .collect();
        let mut floats: std::collections::HashMap<_, _> =
            floats.into_iter().map(|(_, s)| (s.id, s)).collect();
        let timeseries = series
            .iter()
            .filter_map(|(id, labels)| {
                let f = floats.remove(id);
                let h = hists.remove(id);
                if f.is_none() && h.is_none() {
                    return None;
                }
                Some(TimeSeries {
                    labels: labels
                        .iter()
                        .map(|l| Label {
                            name: l.name.to_string(),
                            value: l.value.to_string(),
                        })
                        .collect(),
                    samples: f
                        .map(|s| {
                            s.timestamps
                                .iter()
                                .zip(&s.values)
                                .map(|(t, v)| Sample {
                                    value: *v,
                                    timestamp: *t,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    histograms: h
                        .map(|h| {
                            h.timestamps
                                .iter()
                                .zip(&h.histograms)
                                .map(|(t, h)| Histogram::from_float(*t, h))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        results.push(QueryResult { timeseries });
    }
    Ok(results)
}

/// A storage matcher from a remote-read one (regexes anchored as everywhere).
fn matcher(m: &LabelMatcher) -> Result<Matcher, ApiError> {
    let op = match m.r#type {
        0 => MatchOp::Equal,
        1 => MatchOp::NotEqual,
        2 => MatchOp::RegexMatch,
        3 => MatchOp::RegexNoMatch,
        t => return Err(ApiError::bad_data(format!("unknown matcher type {t}"))),
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(ApiError::from_storage)
}

fn too_much(message: String) -> ApiError {
    ApiError::new(ErrorType::Execution, message)
}
