//! The web configuration file (`--web.config.file`): Prometheus's format (exporter-toolkit's
//! `web-config.yml`) for TLS on the listeners, response headers and basic-auth users.
//!
//! Read strictly, as the main configuration is ([`super::file::parse_strict`]): an unknown
//! field, a wrong type, a file that cannot be read or a setting Quiver does not implement is an
//! error naming the file, the line and the field; a security setting is never ignored. Relative
//! paths resolve against the folder of the web configuration file, as in Prometheus. The file is
//! read once at startup (Prometheus re-reads it on every request; see `docs/security.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::ConfigError;
use super::file::{error_at, locate, parse_strict};

/// The file as written.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: TlsServerConfig,
    http_server_config: HttpServerConfig,
    /// User name → bcrypt hash of the password.
    basic_auth_users: BTreeMap<String, String>,
    /// Prometheus's token-bucket limiter: not implemented, so refused when set.
    rate_limit: Option<serde_yaml_ng::Value>,
}

/// `tls_server_config`.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TlsServerConfig {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<ClientAuthType>,
    /// Not implemented (it needs the client certificate's SANs matched): refused when set.
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

/// Go's `tls.ClientAuthType` names, as Prometheus reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    /// Asks for a certificate; none is required and one sent is not verified.
    RequestClientCert,
    /// Requires a certificate, not verified (Prometheus's old name `RequireClientCert` too).
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// A certificate sent must chain to the client CA; none is required.
    VerifyClientCertIfGiven,
    /// A certificate chaining to the client CA is required.
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// `http_server_config`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HttpServerConfig {
    /// Whether HTTP/2 may be used. Quiver's HTTP port speaks HTTP/1.1 either way (clients
    /// negotiate it through ALPN), so both values are accepted.
    http2: bool,
    headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// The response headers Prometheus lets the file set, and the values each accepts (any when
/// empty).
const SETTABLE_HEADERS: [(&str, &[&str]); 5] = [
    ("Content-Security-Policy", &[]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-XSS-Protection", &[]),
    ("Strict-Transport-Security", &[]),
];

/// The TLS settings, with the PEM material read and checked.
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
    pub client_auth: ClientAuthType,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Go's cipher-suite names, in the server's order of preference (`None`: the defaults).
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: bool,
    /// Go's curve names, in order of preference (`None`: the defaults).
    pub curve_preferences: Option<Vec<String>>,
}

/// The web configuration in force: what the listeners and the auth layer need.
pub struct WebConfig {
    /// The file it came from.
    pub source: String,
    /// The TLS server configuration (no ALPN set: each listener sets its own), when TLS is on.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub client_auth: ClientAuthType,
    /// Headers added to every HTTP response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User name → bcrypt hash; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    /// SHA-256 of the file's text and every PEM it reads: the same fingerprint on a re-read
    /// means nothing changed.
    pub fingerprint: [u8; 32],
}

impl WebConfig {
    /// Reads and checks `path`, and builds the TLS configuration it asks for.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let yaml = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: source.clone(),
            location: None,
            message: format!("cannot read: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&source, &yaml, dir)
    }

    /// Parses the text of a web configuration whose relative paths are relative to `dir`.
    pub fn parse(source: &str, yaml: &str, dir: &Path) -> Result<Self, ConfigError> {
        let err =
            |field: &str, message: String| error_at(source, yaml, present(yaml, field), message);
        let file: WebConfigFile = parse_strict(source, yaml)?;
        if file.rate_limit.is_some() {
            return Err(err(
                "rate_limit",
                "rate_limit: not supported by Quiver (put a rate-limiting proxy in front)".into(),
            ));
        }
        let headers = headers(&file.http_server_config.headers).map_err(|(h, m)| {
            err(
                &format!("http_server_config.headers.{h}"),
                format!("http_server_config.headers.{h}: {m}"),
            )
        })?;
        for (user, hash) in &file.basic_auth_users {
            if let Err(e) = hash.parse::<bcrypt::HashParts>() {
                let field = format!("basic_auth_users.{user}");
                // The hash itself is a secret: name the user, not the value.
                return Err(err(
                    &field,
                    format!(
                        "{field}: not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                    ),
                ));
            }
        }
        let t = &file.tls_server_config;
        let mut fingerprint = ring::digest::Context::new(&ring::digest::SHA256);
        fingerprint.update(&(yaml.len() as u64).to_le_bytes());
        fingerprint.update(yaml.as_bytes());
        let (tls, client_auth) = match tls_settings(t, dir) {
            Ok(None) => (None, ClientAuthType::NoClientCert),
            Ok(Some(settings)) => {
                for pem in [&settings.cert_pem, &settings.key_pem]
                    .into_iter()
                    .chain(settings.client_ca_pem.as_ref())
                {
                    fingerprint.update(&(pem.len() as u64).to_le_bytes());
                    fingerprint.update(pem);
                }
                let config = crate::tls::server_config(&settings).map_err(|e| {
                    let field = format!("tls_server_config.{}", e.field);
                    err(&field, format!("{field}: {}", e.message))
                })?;
                (Some(Arc::new(config)), settings.client_auth)
            }
            Err((field, message)) => {
                let field = format!("tls_server_config.{field}");
                return Err(err(&field, format!("{field}: {message}")));
            }
        };
        Ok(WebConfig {
            source: source.to_string(),
            tls,
            client_auth,
            headers,
            users: file.basic_auth_users,
            fingerprint: fingerprint.finish().as_ref().try_into().unwrap_or([0; 32]),
        })
    }
}

/// The deepest part of the field path `field` the file has: a missing field is reported at the
/// line of its section.
fn present<'a>(yaml: &str, field: &'a str) -> &'a str {
    let mut f = field;
    while locate(yaml, f).is_none() {
        match f.rsplit_once('.') {
            Some((parent, _)) => f = parent,
            None => return field,
        }
    }
    f
}

/// A field of `tls_server_config` and what is wrong with it.
type FieldError = (&'static str, String);

/// The TLS settings, `None` when `tls_server_config` sets nothing.
fn tls_settings(t: &TlsServerConfig, dir: &Path) -> Result<Option<TlsSettings>, FieldError> {
    if t.client_allowed_sans.is_some() {
        return Err((
            "client_allowed_sans",
            "not supported by Quiver; use RequireAndVerifyClientCert with a client CA that signs only the allowed clients".into(),
        ));
    }
    let anything = t.cert.is_some()
        || t.key.is_some()
        || t.client_ca.is_some()
        || t.cert_file.is_some()
        || t.key_file.is_some()
        || t.client_ca_file.is_some()
        || t.client_auth_type.is_some()
        || t.min_version.is_some()
        || t.max_version.is_some()
        || t.cipher_suites.is_some()
        || t.prefer_server_cipher_suites.is_some()
        || t.curve_preferences.is_some();
    if !anything {
        return Ok(None);
    }
    let cert = pem(("cert", &t.cert), ("cert_file", &t.cert_file), dir)?.ok_or((
        "cert_file",
        "missing: TLS needs a certificate (cert_file or cert)".into(),
    ))?;
    let key = pem(("key", &t.key), ("key_file", &t.key_file), dir)?.ok_or((
        "key_file",
        "missing: TLS needs a private key (key_file or key)".into(),
    ))?;
    let client_ca = pem(
        ("client_ca", &t.client_ca),
        ("client_ca_file", &t.client_ca_file),
        dir,
    )?;
    let client_auth = t.client_auth_type.unwrap_or_default();
    match client_auth {
        ClientAuthType::NoClientCert if client_ca.is_some() => {
            return Err((
                "client_auth_type",
                "a client CA is set but client_auth_type is NoClientCert (set RequireAndVerifyClientCert to check client certificates)".into(),
            ));
        }
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
            if client_ca.is_none() =>
        {
            return Err((
                "client_auth_type",
                format!("{client_auth:?} needs client_ca_file (or client_ca) to verify against"),
            ));
        }
        _ => {}
    }
    let min_version = t.min_version.unwrap_or(TlsVersion::TLS12);
    let max_version = t.max_version.unwrap_or(TlsVersion::TLS13);
    for (field, v) in [("min_version", min_version), ("max_version", max_version)] {
        if v < TlsVersion::TLS12 {
            return Err((
                field,
                format!("{v:?} is not supported by Quiver (rustls speaks TLS 1.2 and 1.3 only)"),
            ));
        }
    }
    if min_version > max_version {
        return Err((
            "min_version",
            format!("{min_version:?} is above max_version {max_version:?}"),
        ));
    }
    Ok(Some(TlsSettings {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: client_ca,
        client_auth,
        min_version,
        max_version,
        cipher_suites: t.cipher_suites.clone(),
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curve_preferences: t.curve_preferences.clone(),
    }))
}

/// PEM given inline or as a file (at most one of the two), the file relative to `dir`.
fn pem(
    (inline_field, inline): (&'static str, &Option<String>),
    (file_field, file): (&'static str, &Option<PathBuf>),
    dir: &Path,
) -> Result<Option<Vec<u8>>, FieldError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err((
            file_field,
            format!("at most one of {inline_field} and {file_field} may be set"),
        )),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(p)) => {
            let p = dir.join(p);
            std::fs::read(&p)
                .map(Some)
                .map_err(|e| (file_field, format!("cannot read {}: {e}", p.display())))
        }
        (None, None) => Ok(None),
    }
}

/// The configured response headers, checked as Prometheus checks them; a blank value unsets.
fn headers(
    configured: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, (String, String)> {
    let mut out = Vec::new();
    for (name, value) in configured {
        let Some((_, allowed)) = SETTABLE_HEADERS.iter().find(|(h, _)| h == name) else {
            let names: Vec<&str> = SETTABLE_HEADERS.iter().map(|(h, _)| *h).collect();
            return Err((
                name.clone(),
                format!("cannot be configured (one of {})", names.join(", ")),
            ));
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err((
                name.clone(),
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        let v = HeaderValue::from_str(value).map_err(|_| {
            (
                name.clone(),
                format!("{value:?} is not a valid header value"),
            )
        })?;
        // `from_bytes` lower-cases; the table's names are valid, so this does not fail.
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| (name.clone(), "not a valid header name".to_string()))?;
        out.push((n, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with a self-signed `server.pem` / `server.key` (also usable as a client CA).
    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("server.pem"), made.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server.key"),
            made.signing_key.serialize_pem(),
        )
        .unwrap();
        dir
    }

    fn parse(yaml: &str, dir: &Path) -> Result<WebConfig, ConfigError> {
        WebConfig::parse("web.yml", yaml, dir)
    }

    const TLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

    /// The error's line and message.
    fn refused(yaml: &str, dir: &Path) -> (Option<usize>, String) {
        match parse(yaml, dir) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => (e.location.map(|l| l.0), e.to_string()),
        }
    }

    #[test]
    fn an_empty_file_turns_nothing_on() {
        let w = parse("", Path::new(".")).unwrap();
        assert!(w.tls.is_none() && w.users.is_empty() && w.headers.is_empty());
    }

    #[test]
    fn tls_paths_resolve_against_the_files_folder() {
        let dir = certs();
        let w = parse(TLS, dir.path()).unwrap();
        assert!(w.tls.is_some());
        assert_eq!(w.client_auth, ClientAuthType::NoClientCert);
        // From elsewhere, the same relative names are not found, and the error says where it
        // looked.
        let other = tempfile::tempdir().unwrap();
        let (line, msg) = refused(TLS, other.path());
        assert_eq!(line, Some(2), "{msg}");
        assert!(
            msg.contains("tls_server_config.cert_file: cannot read"),
            "{msg}"
        );
        assert!(msg.contains(&other.path().display().to_string()), "{msg}");
    }

    #[test]
    fn unknown_fields_and_bad_values_name_line_and_field() {
        let dir = certs();
        let (line, msg) = refused(
            &format!("{TLS}  client_auth: RequireAndVerifyClientCert\n"),
            dir.path(),
        );
        assert_eq!(line, Some(4), "{msg}");
        assert!(msg.contains("client_auth"), "{msg}");
        let (line, msg) = refused(&format!("{TLS}  client_auth_type: Sometimes\n"), dir.path());
        assert_eq!(line, Some(4), "{msg}");
        assert!(msg.contains("tls_server_config.client_auth_type"), "{msg}");
        let (line, msg) = refused("basic_auth_users:\n  alice: hunter2\n", dir.path());
        assert_eq!(line, Some(2), "{msg}");
        assert!(
            msg.contains("basic_auth_users.alice: not a bcrypt hash"),
            "{msg}"
        );
        assert!(
            !msg.contains("hunter2"),
            "the secret is not repeated: {msg}"
        );
    }

    #[test]
    fn settings_quiver_does_not_implement_are_refused_not_ignored() {
        let dir = certs();
        for (extra, field) in [
            (
                "  client_allowed_sans: [client]\n",
                "client_allowed_sans: not supported",
            ),
            (
                "  min_version: TLS11\n",
                "min_version: TLS11 is not supported",
            ),
            (
                "  max_version: TLS10\n",
                "max_version: TLS10 is not supported",
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                "\"CurveP521\" is not supported",
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "\"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported",
            ),
        ] {
            let (line, msg) = refused(&format!("{TLS}{extra}"), dir.path());
            assert_eq!(line, Some(4), "{msg}");
            assert!(msg.contains(field), "{field}: {msg}");
        }
        let (line, msg) = refused("rate_limit:\n  interval: 1s\n  burst: 1\n", dir.path());
        assert_eq!(line, Some(1), "{msg}");
        assert!(msg.contains("rate_limit: not supported"), "{msg}");
    }

    #[test]
    fn supported_tls_settings_are_taken() {
        let dir = certs();
        let yaml = format!(
            "{TLS}  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n  client_ca_file: server.pem\n  client_auth_type: VerifyClientCertIfGiven\n"
        );
        let w = parse(&yaml, dir.path()).unwrap();
        let tls = w.tls.unwrap();
        assert!(!tls.ignore_client_order);
        assert_eq!(w.client_auth, ClientAuthType::VerifyClientCertIfGiven);
        for kind in [
            "RequestClientCert",
            "RequireAnyClientCert",
            "RequireClientCert",
        ] {
            parse(&format!("{TLS}  client_auth_type: {kind}\n"), dir.path()).unwrap();
        }
    }

    #[test]
    fn client_ca_and_client_auth_type_must_agree() {
        let dir = certs();
        let (_, msg) = refused(&format!("{TLS}  client_ca_file: server.pem\n"), dir.path());
        assert!(msg.contains("client_auth_type is NoClientCert"), "{msg}");
        let (_, msg) = refused(
            &format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
            dir.path(),
        );
        assert!(msg.contains("needs client_ca_file"), "{msg}");
        let (_, msg) = refused(&format!("{TLS}  cert: inline\n"), dir.path());
        assert!(msg.contains("at most one of cert and cert_file"), "{msg}");
        let (line, msg) = refused("tls_server_config:\n  key_file: server.key\n", dir.path());
        assert!(msg.contains("cert_file: missing"), "{msg}");
        assert_eq!(line, Some(1), "{msg}");
    }

    #[test]
    fn headers_are_checked_as_prometheus_does() {
        let dir = certs();
        let w = parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"\"\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(w.headers.len(), 1);
        assert_eq!(w.headers[0].0.as_str(), "x-frame-options");
        let (line, msg) = refused(
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            dir.path(),
        );
        assert_eq!(line, Some(3), "{msg}");
        assert!(msg.contains("is not one of deny, sameorigin"), "{msg}");
        let (_, msg) = refused(
            "http_server_config:\n  headers:\n    Server: x\n",
            dir.path(),
        );
        assert!(msg.contains("cannot be configured"), "{msg}");
    }
}
