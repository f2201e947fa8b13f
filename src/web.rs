//! The web configuration in force (`--web.config.file`), re-read while running as Prometheus
//! does: a changed file, certificate, key or client CA takes effect for the next connection
//! and the next request, without a restart (cert-manager and the like rotate certificates in
//! place). The file is read again at most once a second, when a request or a connection
//! arrives, and applied only when its fingerprint (its text and every PEM it reads) changed.
//!
//! A file that cannot be read or is wrong fails closed, as Prometheus does: HTTP requests get
//! 500, Flight calls `internal`, TLS handshakes are refused, until the file is right again.
//! Whether the ports speak TLS at all is decided at startup (a listener cannot change that).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use rustls::ServerConfig;

use crate::auth::Auth;
use crate::config::web::WebConfig;

/// How often, at most, the file is read again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Headers added to every HTTP response.
pub type Headers = Arc<Vec<(HeaderName, HeaderValue)>>;

/// The web configuration in force and where it comes from.
pub struct Web {
    /// `--web.config.file`, if given.
    path: Option<PathBuf>,
    /// The credentials; its users follow the file.
    auth: Arc<Auth>,
    /// Whether the ports serve TLS (fixed at startup).
    tls_on: bool,
    live: parking_lot::Mutex<Live>,
}

struct Live {
    next_check: Instant,
    fingerprint: [u8; 32],
    tls: Option<Arc<ServerConfig>>,
    headers: Headers,
    /// Why the file in force cannot be used, while it cannot.
    broken: Option<String>,
}

impl Web {
    /// The configuration read at startup (`initial`, from `path`) and the credentials it set.
    pub fn new(path: Option<PathBuf>, initial: Option<&WebConfig>, auth: Arc<Auth>) -> Arc<Web> {
        Arc::new(Web {
            path,
            auth,
            tls_on: initial.is_some_and(|w| w.tls.is_some()),
            live: parking_lot::Mutex::new(Live {
                next_check: Instant::now() + RECHECK,
                fingerprint: initial.map_or([0; 32], |w| w.fingerprint),
                tls: initial.and_then(|w| w.tls.clone()),
                headers: Arc::new(initial.map(|w| w.headers.clone()).unwrap_or_default()),
                broken: None,
            }),
        })
    }

    /// No web configuration: no TLS, no headers, the credentials of `auth` only.
    pub fn none(auth: Arc<Auth>) -> Arc<Web> {
        Web::new(None, None, auth)
    }

    /// Whether a web configuration file is in use (the HTTP layers are installed for it).
    pub fn configured(&self) -> bool {
        self.path.is_some()
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// Whether the ports serve TLS.
    pub fn tls_on(&self) -> bool {
        self.tls_on
    }

    /// The TLS configuration source the listeners ask at every connection.
    pub fn tls_source(self: &Arc<Self>) -> crate::tls::ConfigSource {
        let web = self.clone();
        Arc::new(move || web.tls())
    }

    /// Reads the file again when it is due; an error while the file cannot be used.
    pub fn refresh(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // One caller a second claims the read; the others go on with what is in force. The file
        // is read outside the lock, so a slow file system holds up no request.
        let due = {
            let mut live = self.live.lock();
            let now = Instant::now();
            let due = now >= live.next_check;
            if due {
                live.next_check = now + RECHECK;
            }
            due
        };
        if due {
            let loaded = WebConfig::load(path);
            let mut live = self.live.lock();
            match loaded {
                Ok(w) => {
                    if w.fingerprint != live.fingerprint || live.broken.is_some() {
                        self.apply(&mut live, w);
                    }
                }
                Err(e) => {
                    if live.broken.is_none() {
                        tracing::error!(
                            "the web configuration cannot be used, refusing requests until it is fixed: {e}"
                        );
                    }
                    live.broken = Some(format!("the web configuration cannot be used: {e}"));
                }
            }
        }
        let live = self.live.lock();
        match &live.broken {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn apply(&self, live: &mut Live, w: WebConfig) {
        if w.tls.is_some() != self.tls_on {
            tracing::warn!(
                file = %w.source,
                "the web configuration turns TLS {}: that takes a restart",
                if self.tls_on { "off" } else { "on" }
            );
        }
        self.auth.set_users(w.users);
        live.fingerprint = w.fingerprint;
        live.tls = w.tls;
        live.headers = Arc::new(w.headers);
        live.broken = None;
        tracing::info!(file = %w.source, "web configuration re-read");
    }

    /// The headers to add to responses.
    pub fn headers(&self) -> Headers {
        self.live.lock().headers.clone()
    }

    /// The TLS configuration for the next handshake (refreshed first).
    pub fn tls(&self) -> Result<Arc<ServerConfig>, String> {
        self.refresh()?;
        self.live.lock().tls.clone().ok_or_else(|| {
            "the web configuration no longer has tls_server_config; restart to serve without TLS"
                .to_string()
        })
    }
}
