//! The API's one error type. Every error answers with Prometheus's envelope,
//! `{"status":"error","errorType":"…","error":"…"}`, and the status code Prometheus uses for
//! that `errorType`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_storage::ErrorKind;

/// Prometheus's `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Internal,
    Unavailable,
    NotFound,
    Unauthorized,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::Unauthorized => "unauthorized",
        }
    }
}

/// An error answered by the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub error_type: ErrorType,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        let status = match error_type {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
        };
        ApiError {
            error_type,
            status,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// A body or request over a size limit: `bad_data` with 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::bad_data(message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    /// Maps an error of a running SQL query: past `--query.timeout`, `timeout` (503);
    /// everything else, a memory bound included, `execution` (422).
    pub fn from_sql_execution(e: &datafusion::error::DataFusionError) -> Self {
        if quiver_sql::guard::is_timeout(e) {
            Self::new(ErrorType::Timeout, e.to_string())
        } else {
            Self::new(ErrorType::Execution, e.to_string())
        }
    }

    /// Maps a storage error by whose fault it is (the one place kinds become codes).
    pub fn from_storage(e: quiver_storage::Error) -> Self {
        let message = error_chain(&e);
        match e.kind() {
            ErrorKind::BadInput => Self::bad_data(message),
            ErrorKind::LimitExceeded => Self::too_large(message),
            ErrorKind::NotFound => Self::new(ErrorType::NotFound, message),
            ErrorKind::Unavailable => Self::unavailable(message),
            ErrorKind::Internal => Self::internal(message),
        }
    }
}

impl From<quiver_ingest::remote_write::DecodeError> for ApiError {
    fn from(e: quiver_ingest::remote_write::DecodeError) -> Self {
        use quiver_ingest::remote_write::DecodeError;
        match e {
            DecodeError::BadData(m) => Self::bad_data(m),
            DecodeError::TooLarge(m) => Self::too_large(m),
        }
    }
}

/// An error and its sources, joined: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    quiver_storage::error::chain(e)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(error_type = self.error_type.as_str(), "{}", self.message);
        } else {
            tracing::debug!(error_type = self.error_type.as_str(), "{}", self.message);
        }
        let body = serde_json::json!({
            "status": "error",
            "errorType": self.error_type.as_str(),
            "error": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}
