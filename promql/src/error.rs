//! Errors of the PromQL engine, each knowing whose fault it is.

use datafusion::error::DataFusionError;

/// What kind of failure an [`Error`] is; the API maps it to a status code and `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query is malformed or asks for something impossible (400 `bad_data`).
    BadData,
    /// The query is valid but failed while running (422 `execution`).
    Execution,
    /// The query ran out of time (503 `timeout`).
    Timeout,
    /// The query would exceed a resource limit (422 `execution`).
    Limit,
    /// A bug or a storage fault (500 `internal`).
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Limit(String),
    #[error("storage error")]
    Storage(#[source] quiver_storage::Error),
    #[error("query engine error: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::BadData(_) => ErrorKind::BadData,
            Error::Execution(_) => ErrorKind::Execution,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Limit(_) => ErrorKind::Limit,
            Error::Storage(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// An execution error raised inside a DataFusion operator, carried through as
    /// `DataFusionError::External` so it comes out with its kind intact.
    pub(crate) fn into_df(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        // Operators wrap our own errors; find them again under DataFusion's context layers.
        let mut cur: &DataFusionError = &e;
        loop {
            match cur {
                DataFusionError::External(inner) => {
                    if let Some(ours) = inner.downcast_ref::<Error>() {
                        return match ours {
                            Error::Parse(m) => Error::Parse(m.clone()),
                            Error::BadData(m) => Error::BadData(m.clone()),
                            Error::Execution(m) => Error::Execution(m.clone()),
                            Error::Timeout(m) => Error::Timeout(m),
                            Error::Limit(m) => Error::Limit(m.clone()),
                            Error::Storage(_) | Error::Internal(_) => {
                                Error::Internal(ours.to_string())
                            }
                        };
                    }
                    return Error::Internal(inner.to_string());
                }
                DataFusionError::Context(_, inner) => cur = inner,
                DataFusionError::Shared(inner) => cur = inner,
                DataFusionError::ResourcesExhausted(m) => return Error::Limit(m.clone()),
                _ => return Error::Internal(e.to_string()),
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
