//! Outbound HTTP as a Prometheus configuration describes it: the client a scrape config or an
//! Alertmanager config asks for (TLS, redirects, compression) and the credentials each request
//! carries (basic auth, `authorization`, bearer tokens, from the file or from files).

use std::path::{Path, PathBuf};

use crate::config::file::{Authorization, BasicAuth, TlsConfig};

/// The credentials of a config section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub basic_auth: Option<&'a BasicAuth>,
    pub authorization: Option<&'a Authorization>,
    pub bearer_token: Option<&'a String>,
    pub bearer_token_file: Option<&'a PathBuf>,
}

/// A client with the section's TLS settings; `resolve` pins a host name to an address (for
/// `tls_config.server_name`).
pub fn build_client(
    tls: Option<&TlsConfig>,
    follow_redirects: bool,
    gzip: bool,
    resolve: Option<(&str, std::net::SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("Quiver/", env!("CARGO_PKG_VERSION")))
        .gzip(gzip)
        .redirect(if follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
    if let Some(tls) = tls {
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        let ca = match (&tls.ca, &tls.ca_file) {
            (Some(pem), _) => Some(pem.clone().into_bytes()),
            (None, Some(f)) => Some(
                std::fs::read(f).map_err(|e| format!("tls_config.ca_file {}: {e}", f.display()))?,
            ),
            _ => None,
        };
        if let Some(pem) = ca {
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config: bad CA certificate: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let (Some(c), Some(k)) = (&tls.cert_file, &tls.key_file) {
            let mut pem = std::fs::read(c)
                .map_err(|e| format!("tls_config.cert_file {}: {e}", c.display()))?;
            pem.extend(
                std::fs::read(k)
                    .map_err(|e| format!("tls_config.key_file {}: {e}", k.display()))?,
            );
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("tls_config: bad client certificate or key: {e}"))?,
            );
        }
    }
    if let Some((name, addr)) = resolve {
        b = b.resolve(name, addr);
    }
    b.build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Adds the credentials to a request (secrets in files are read at each request, so a rotated
/// file takes effect without a reload).
pub fn authorize(
    mut req: reqwest::RequestBuilder,
    creds: Credentials<'_>,
) -> Result<reqwest::RequestBuilder, String> {
    if let Some(b) = creds.basic_auth {
        let password = match (&b.password, &b.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => Some(read_secret(f)?),
            (None, None) => None,
        };
        req = req.basic_auth(&b.username, password);
    }
    let bearer = match (
        creds.authorization,
        creds.bearer_token,
        creds.bearer_token_file,
    ) {
        (Some(a), _, _) => {
            let cred = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_secret(f)?,
                (None, None) => String::new(),
            };
            Some(format!("{} {cred}", a.kind))
        }
        (None, Some(t), _) => Some(format!("Bearer {t}")),
        (None, None, Some(f)) => Some(format!("Bearer {}", read_secret(f)?)),
        _ => None,
    };
    if let Some(b) = bearer {
        req = req.header(reqwest::header::AUTHORIZATION, b);
    }
    Ok(req)
}

fn read_secret(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}
