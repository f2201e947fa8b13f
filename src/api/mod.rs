//! The HTTP API: Prometheus's routes and envelope. `app(state)` builds the router so tests can
//! call it without a socket.

pub mod auth;
mod experiments;
mod export;
mod otlp;
pub mod params;
pub mod query;
mod read;
mod rules;
pub mod series;
mod sql;
mod status;
mod targets;
mod write;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorType};
use crate::state::AppState;

/// A handler's answer: the success envelope, or an error envelope.
pub type ApiResult = Result<Response, ApiError>;

/// `{"status":"success","data":…}` with an optional warning.
pub fn success(data: Value, warning: Option<&str>) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if let Some(w) = warning {
        body["warnings"] = json!([w]);
    }
    Json(body).into_response()
}

/// Every route.
pub fn app(state: AppState) -> Router {
    let mut api = Router::new()
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/metadata", get(targets::metadata))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alertmanagers", get(rules::alertmanagers))
        .route("/api/v1/sql", get(sql::sql).post(sql::sql))
        .route("/api/v1/targets/metadata", get(targets::targets_metadata))
        .route("/api/v1/status/config", get(targets::config))
        .route("/api/v1/status/flags", get(targets::flags))
        .route(
            "/api/v1/labels",
            get(series::label_names).post(series::label_names),
        )
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/export", get(export::export).post(export::export))
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/otlp/v1/metrics", post(otlp::metrics))
        .route("/api/v1/read", post(read::read))
        .route("/api/v1/import/prometheus", post(write::import_text))
        .route(
            "/api/v1/experiments/{experiment}/runs/{run}/metrics",
            post(experiments::metrics),
        )
        .route(
            "/api/v1/experiments/{experiment}/runs/{run}/params",
            post(experiments::params),
        )
        .route("/-/healthy", get(status::healthy).head(status::healthy))
        .route("/-/ready", get(status::ready).head(status::ready))
        .route("/metrics", get(status::metrics));
    if state.flags().web_enable_admin_api {
        api = api.route(
            "/api/v1/admin/flush",
            post(status::flush).put(status::flush),
        );
    }
    if state.flags().web_enable_lifecycle {
        api = api
            .route("/-/quit", post(status::quit).put(status::quit))
            .route("/-/reload", post(targets::reload).put(targets::reload));
    }
    let api = api.layer(middleware::from_fn_with_state(state.clone(), observe));
    // Outside the timing: refused requests are not routes' latencies. Applied with `layer`, so
    // they cover every route and the fallback alike.
    // With a web configuration file (its users and headers may change while running), or
    // users set some other way.
    let api = if state.web().configured() || state.auth().has_users() {
        api.layer(middleware::from_fn_with_state(
            state.web().clone(),
            auth::require_credentials,
        ))
    } else {
        api
    };
    let api = if state.web().configured() {
        // Outermost, so refusals carry the headers too.
        api.layer(middleware::from_fn_with_state(
            state.web().clone(),
            auth::add_response_headers,
        ))
    } else {
        api
    };
    api.with_state(state)
}

/// Times every request by route, for `/metrics`.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    if let Some(route) = route {
        state
            .metrics()
            .observe_request(&route, resp.status().as_u16(), start.elapsed());
    }
    resp
}
