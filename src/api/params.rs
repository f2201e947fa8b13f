//! Request parameters as Prometheus reads them: from the URL query string or an
//! `application/x-www-form-urlencoded` POST body (Go's `r.FormValue`), with repeated keys
//! (`match[]`), and its time and duration spellings.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use quiver_storage::Timestamp;

use super::ApiError;
use crate::time::parse_time;

/// Form bodies larger than this are refused.
const MAX_FORM_BYTES: usize = 8 << 20;

/// Every parameter of a request, query string first, then the form body.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter, or `default` when absent or empty.
    pub fn time_or(&self, key: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => parse_time(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter {key:?}: {e}"))),
        }
    }

    /// A non-negative integer parameter (`limit`), 0 meaning none.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit").filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"limit\": cannot parse {v:?} to a valid limit"
                ))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let req =
                req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, MAX_FORM_BYTES)));
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("cannot read the form body: {e}")))?;
            pairs.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        Ok(Params(pairs))
    }
}
