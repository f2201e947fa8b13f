//! Prepared-statement handles that carry their whole statement, so any Quiver answers them.

use datafusion::common::{ParamValues, ScalarValue};
use tonic::Status;

/// A prepared statement's handle: its SQL and, once bound, its parameters (an Arrow IPC stream
/// of one row). `Q1`, the SQL's length (u32, little-endian), the SQL, the parameters.
pub(super) struct Handle {
    pub sql: String,
    pub params: Option<Vec<u8>>,
}

impl Handle {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"Q1".to_vec();
        out.extend_from_slice(&(self.sql.len() as u32).to_le_bytes());
        out.extend_from_slice(self.sql.as_bytes());
        if let Some(p) = &self.params {
            out.extend_from_slice(p);
        }
        out
    }

    #[allow(clippy::result_large_err)]
    pub fn decode(bytes: &[u8]) -> Result<Handle, Status> {
        let bad = || Status::invalid_argument("not a prepared statement handle of Quiver");
        let rest = bytes.strip_prefix(b"Q1").ok_or_else(bad)?;
        let len = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().unwrap()) as usize;
        let sql = rest.get(4..4 + len).ok_or_else(bad)?;
        let sql = String::from_utf8(sql.to_vec()).map_err(|_| bad())?;
        let params = &rest[4 + len..];
        Ok(Handle {
            sql,
            params: (!params.is_empty()).then(|| params.to_vec()),
        })
    }

    /// The bound parameters as DataFusion's positional values.
    #[allow(clippy::result_large_err)]
    pub fn param_values(&self) -> Result<Option<ParamValues>, Status> {
        let Some(bytes) = &self.params else {
            return Ok(None);
        };
        let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(&bytes[..], None)
            .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        let mut values = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
            if batch.num_rows() == 0 {
                continue;
            }
            for col in batch.columns() {
                values.push(
                    ScalarValue::try_from_array(col, 0)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
            break;
        }
        Ok(Some(ParamValues::from(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        let h = Handle {
            sql: "SELECT $1".into(),
            params: Some(vec![1, 2, 3]),
        };
        let d = Handle::decode(&h.encode()).unwrap();
        assert_eq!(
            (d.sql.as_str(), d.params),
            ("SELECT $1", Some(vec![1, 2, 3]))
        );
        assert!(Handle::decode(b"SELECT 1").is_err());
    }
}
