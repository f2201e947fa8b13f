//! Arrow Flight and Flight SQL (`--flight.listen-address`, default `0.0.0.0:50051`).
//!
//! - **Flight SQL** for ADBC and JDBC-style clients: `CommandStatementQuery`, `GetSqlInfo`,
//!   `GetCatalogs`, `GetDbSchemas`, `GetTables` (with schemas), `GetTableTypes`, and prepared
//!   statements (create, query with or without `$1` parameters, close).
//! - **Plain Flight** `DoGet` with a JSON ticket, for `pyarrow.flight` without a Flight SQL
//!   client: `{"sql": "…"}`, or `{"promql": "…", "start": …, "end": …, "step": …}` (a range query)
//!   or `{"promql": "…", "time": …}` (an instant query), times and steps as `promql()` takes them.
//!
//! Every ticket and prepared-statement handle carries its whole query (and bound parameters), so
//! any Quiver with the same storage answers any `DoGet`: nothing is kept between calls. Results
//! stream as DataFusion produces them, dictionary columns sent as plain values so that every
//! client reads them. With `--flight.token-file`, every call needs `authorization: Bearer
//! <token>` (or Basic auth with the token as password, which the handshake answers with the
//! bearer header). With users in `--web.config.file`, Basic auth of a user works too, and the
//! handshake answers it with a session token ([`auth`]); with TLS there, Flight serves TLS with
//! the same certificate and client-certificate policy.

//!
//! Layout: `mod.rs` serves (behind [`auth`]) and puts the JSON tickets ([`ticket`]) in front of
//! Flight SQL ([`sql`]); prepared statements travel as self-contained handles ([`handle`]).

mod auth;
mod handle;
mod sql;
mod ticket;

use std::pin::Pin;
use std::time::Duration;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use futures::Stream;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::state::AppState;
use sql::QuiverFlightSql;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Serves Flight on `listener` until `shutdown` resolves, over TLS when the web configuration
/// has it (the same source as the HTTP port's, so both share certificate and client policy).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let server = FlightServiceServer::new(FlightFront {
        sql: QuiverFlightSql {
            state: state.clone(),
        },
    })
    .max_decoding_message_size(64 << 20);
    let service = auth::Authenticated::new(server, state.web().clone());
    let mut builder = tonic::transport::Server::builder()
        // Long queries: keep idle connections and NATs alive while the first batch is computed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    let router = builder.add_service(service);
    match state.web().tls_on() {
        false => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        true => {
            // gRPC is HTTP/2 only.
            let source = state.web().tls_source();
            let incoming = crate::tls::TlsListener::new(listener, source, &[b"h2"]).incoming();
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// Flight SQL's service with the JSON tickets of plain Flight in front of it.
struct FlightFront {
    sql: QuiverFlightSql,
}

#[tonic::async_trait]
impl FlightService for FlightFront {
    type HandshakeStream = <QuiverFlightSql as FlightService>::HandshakeStream;
    type ListFlightsStream = <QuiverFlightSql as FlightService>::ListFlightsStream;
    type DoGetStream = DoGetStream;
    type DoPutStream = <QuiverFlightSql as FlightService>::DoPutStream;
    type DoActionStream = <QuiverFlightSql as FlightService>::DoActionStream;
    type ListActionsStream = <QuiverFlightSql as FlightService>::ListActionsStream;
    type DoExchangeStream = <QuiverFlightSql as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&self.sql, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&self.sql, request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(&self.sql, request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        FlightService::get_schema(&self.sql, request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = &request.get_ref().ticket;
        if ticket.trim_ascii_start().first() == Some(&b'{') {
            let sql = ticket::json_ticket_sql(ticket)?;
            return Ok(Response::new(self.sql.stream(&sql, None).await?));
        }
        FlightService::do_get(&self.sql, request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(&self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(&self.sql, request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&self.sql, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&self.sql, request).await
    }
}

/// What a ticket's bytes decode to, without a server (the fuzz target): a JSON ticket's SQL,
/// or a prepared statement's handle and its parameters.
#[allow(clippy::result_large_err)]
pub fn fuzz_ticket(bytes: &[u8]) -> Result<(), Status> {
    let _ = ticket::json_ticket_sql(bytes);
    handle::Handle::decode(bytes)?.param_values()?;
    Ok(())
}
