//! The HTTP API's auth layer: with `basic_auth_users` in the web configuration, every request
//! (every route, `/metrics`, `/-/healthy` and `/-/ready` included, as Prometheus does) needs a
//! user's Basic credentials, the `--flight.token-file` token, or a user's session token;
//! otherwise 401 with `WWW-Authenticate: Basic`. And the response headers the web
//! configuration sets. Both follow the file as it is re-read (`crate::web`); while it cannot be
//! used, every request gets 500, as in Prometheus.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::web::Web;

/// Lets a request through with its [`crate::auth::Principal`] in its extensions, or answers 401.
pub async fn require_credentials(
    State(web): State<Arc<Web>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Err(e) = web.refresh() {
        tracing::debug!(path = %req.uri().path(), "refused: {e}");
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response();
    }
    let auth = web.auth();
    if !auth.has_users() {
        // Without users, only the token guards its endpoints (`AppState::authorize`).
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check(given).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(refusal) => {
            tracing::debug!(path = %req.uri().path(), "refused: {refusal}");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic")],
                "Unauthorized\n",
            )
                .into_response()
        }
    }
}

/// Adds the configured headers to every response.
pub async fn add_response_headers(
    State(web): State<Arc<Web>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    for (name, value) in web.headers().iter() {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}
