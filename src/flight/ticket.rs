//! Plain Flight's JSON tickets, for `pyarrow.flight` without a Flight SQL client:
//! `{"sql": "…"}`, `{"promql": "…", "start": …, "end": …, "step": …}` (a range query) or
//! `{"promql": "…", "time": …}` (an instant query), each turned into the SQL it stands for.

use tonic::Status;

/// The SQL statement a JSON ticket stands for.
#[allow(clippy::result_large_err)]
pub(super) fn json_ticket_sql(ticket: &[u8]) -> Result<String, Status> {
    let v: serde_json::Value = serde_json::from_slice(ticket)
        .map_err(|e| Status::invalid_argument(format!("the ticket is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Status::invalid_argument("a JSON ticket is an object"))?;
    if let Some(sql) = obj.get("sql") {
        if let Some(other) = obj.keys().find(|k| *k != "sql") {
            return Err(Status::invalid_argument(format!(
                "unknown ticket field {other:?} (a SQL ticket is {{\"sql\": \"…\"}})"
            )));
        }
        return sql
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Status::invalid_argument("\"sql\" must be a string"));
    }
    let Some(expr) = obj.get("promql") else {
        return Err(Status::invalid_argument(
            "a JSON ticket is {\"sql\": \"…\"} or {\"promql\": \"…\", \"start\": …, \"end\": …, \"step\": …}",
        ));
    };
    let expr = expr
        .as_str()
        .ok_or_else(|| Status::invalid_argument("\"promql\" must be a string"))?;
    let arg = |name: &str| -> Result<Option<String>, Status> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::String(s)) => Ok(Some(sql_literal(s))),
            Some(_) => Err(Status::invalid_argument(format!(
                "\"{name}\" must be a number (unix seconds) or a string (RFC 3339, or a duration for \"step\")"
            ))),
        }
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "promql" | "start" | "end" | "step" | "time"))
    {
        return Err(Status::invalid_argument(format!(
            "unknown ticket field {other:?} (a PromQL ticket has promql, start, end, step, or time)"
        )));
    }
    let expr = sql_literal(expr);
    match (arg("start")?, arg("end")?, arg("step")?, arg("time")?) {
        (Some(start), Some(end), Some(step), None) => Ok(format!(
            "SELECT * FROM promql({expr}, {start}, {end}, {step})"
        )),
        (None, None, None, Some(time)) => Ok(format!("SELECT * FROM promql({expr}, {time})")),
        (None, None, None, None) => {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            Ok(format!("SELECT * FROM promql({expr}, {now})"))
        }
        _ => Err(Status::invalid_argument(
            "a PromQL ticket has start, end and step (a range query), or time (an instant query)",
        )),
    }
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_tickets_become_sql() {
        assert_eq!(
            json_ticket_sql(br#"{"sql": "SELECT 1"}"#).unwrap(),
            "SELECT 1"
        );
        assert_eq!(
            json_ticket_sql(br#"{"promql": "rate(x[5m])", "start": 0, "end": "2026-01-01T00:00:00Z", "step": "15s"}"#)
                .unwrap(),
            "SELECT * FROM promql('rate(x[5m])', 0, '2026-01-01T00:00:00Z', '15s')"
        );
        assert_eq!(
            json_ticket_sql(br#"{"promql": "up{job='a'}", "time": 10.5}"#).unwrap(),
            "SELECT * FROM promql('up{job=''a''}', 10.5)"
        );
        for bad in [
            &br#"{"promql": "up", "start": 0}"#[..],
            br#"{"sql": 1}"#,
            br#"{"query": "x"}"#,
            br#"{"sql": "SELECT 1", "x": 1}"#,
            b"{not json",
        ] {
            assert!(
                json_ticket_sql(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
