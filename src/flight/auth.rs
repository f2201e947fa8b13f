//! Flight's auth layer: every call (the handshake included) must carry credentials
//! [`crate::auth::Auth::check`] accepts when any are configured, in the `authorization` header:
//! `Bearer <token>` (`--flight.token-file`, or a session token from the handshake), or Basic
//! auth of a web configuration user (or with the token as password). The accepted
//! [`Principal`] goes into the request's extensions, where the handshake reads whom to answer
//! with a token.
//!
//! A tower service rather than a tonic interceptor: interceptors are synchronous, and a bcrypt
//! check must not block a runtime worker.

use std::convert::Infallible;
use std::sync::Arc;

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;

use crate::auth::{Auth, Principal, Refusal};
use crate::web::Web;

/// `inner`, answering only calls with accepted credentials.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    web: Arc<Web>,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, web: Arc<Web>) -> Self {
        Authenticated { inner, web }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for Authenticated<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let web = self.web.clone();
        Box::pin(async move {
            // The web configuration is re-read as calls come; one that cannot be used refuses
            // every call until it is fixed.
            if let Err(e) = web.refresh() {
                // The reason is logged; a caller not yet authenticated learns nothing of the file.
                tracing::debug!("refused a Flight call: {e}");
                return Ok(Status::internal("internal error").into_http());
            }
            let auth = web.auth();
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match auth.check(given).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(refusal) => Ok(refused(auth, refusal).into_http()),
            }
        })
    }
}

/// The status a refused call gets, saying what would be accepted.
fn refused(auth: &Auth, refusal: Refusal) -> Status {
    let wanted = if auth.has_users() {
        "a user and password of --web.config.file (basic auth) or a bearer token"
    } else {
        "a bearer token"
    };
    match refusal {
        Refusal::Missing => Status::unauthenticated(format!("this Quiver needs {wanted}")),
        Refusal::Invalid => Status::unauthenticated("the credentials are not valid"),
    }
}

/// The `authorization` value a successful handshake answers with: what the client sends from
/// then on. `None` when no credentials are configured.
pub fn handshake_token(auth: &Auth, principal: Option<&Principal>) -> Option<String> {
    match principal? {
        Principal::Anonymous => None,
        Principal::Token => auth.token().map(|t| format!("Bearer {t}")),
        Principal::User(user) => Some(format!("Bearer {}", auth.issue_session(user))),
    }
}
