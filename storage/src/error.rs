//! Errors of the storage engine. Each error knows whose fault it is ([`ErrorKind`]), so the server
//! maps it to an HTTP status and a Prometheus `errorType` in one place.

use std::io;

/// Whose fault an error is, and so what a client should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong: do not retry it.
    BadInput,
    /// A limit was reached: the input is too large.
    LimitExceeded,
    /// The thing asked for does not exist.
    NotFound,
    /// The engine cannot serve this now (starting, shutting down): retry later.
    Unavailable,
    /// Our bug or a fault of the disk or object store.
    Internal,
}

/// The storage engine's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid series: {0}")]
    InvalidSeries(String),
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("the storage is shutting down")]
    ShuttingDown,
    #[error("retry: {0}")]
    Retry(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The WAL could not write or sync a record (disk full, I/O error): the append is
    /// refused, nothing of it is acknowledged, and a retry may succeed once the disk recovers.
    #[error("the WAL could not take this write ({path}); retry later")]
    WalUnavailable {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The manifest is missing next to existing blocks, or cannot be read: starting as an empty
    /// database would delete those blocks as orphans, so the engine refuses to open.
    #[error("{0}")]
    Manifest(String),
    #[error("i/o error on {path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("object store error")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet error")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow error")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("json error in {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whose fault this error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSeries(_) | Error::InvalidMatcher(_) => ErrorKind::BadInput,
            Error::LimitExceeded(_) => ErrorKind::LimitExceeded,
            Error::ShuttingDown | Error::Retry(_) | Error::WalUnavailable { .. } => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Internal,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// An error and its sources, joined: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The storage engine's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
