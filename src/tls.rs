//! TLS on the HTTP and Flight listeners: the rustls server configuration a web configuration
//! file asks for ([`server_config`]), and [`TlsListener`], which accepts TCP connections and
//! completes their handshakes off the accept loop, for axum (it is an `axum::serve::Listener`)
//! and for tonic ([`TlsListener::incoming`]). Both ports use one configuration, so the same
//! certificate, client CA and client-auth policy apply to both. The listener asks its
//! [`ConfigSource`] for the configuration at every connection, so a re-read web configuration
//! (new certificate, new client CA) applies to the next handshake.
//!
//! rustls with the *ring* provider, the one reqwest already brings into the tree.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::web::{ClientAuthType, TlsSettings, TlsVersion};

/// A `tls_server_config` field and what is wrong with it.
#[derive(Debug)]
pub struct TlsError {
    pub field: &'static str,
    pub message: String,
}

fn fail(field: &'static str, message: impl Into<String>) -> TlsError {
    TlsError {
        field,
        message: message.into(),
    }
}

/// The rustls server configuration for `settings` (no ALPN protocols: each listener sets its
/// own).
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&settings.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("cert_file", format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail("cert_file", "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&settings.key_pem)
        .map_err(|e| fail("key_file", format!("no PEM private key: {e}")))?;

    let provider = Arc::new(provider(settings)?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (settings.min_version..=settings.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| fail("cipher_suites", format!("no usable TLS setup: {e}")))?;
    let verifier = client_verifier(settings, &provider)?;
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            fail(
                "key_file",
                format!("cannot use the certificate and key: {e}"),
            )
        })?;
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    Ok(config)
}

/// The ring provider narrowed to the configured cipher suites and curves.
fn provider(settings: &TlsSettings) -> Result<CryptoProvider, TlsError> {
    let mut provider = ring::default_provider();
    if let Some(names) = &settings.cipher_suites {
        provider.cipher_suites = cipher_suites(names)?;
    }
    if let Some(names) = &settings.curve_preferences {
        provider.kx_groups = names
            .iter()
            .map(|n| curve(n))
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(provider)
}

/// Go's names for TLS 1.3's suites. Go does not let them be configured (TLS 1.3 always offers
/// all three), and neither does Quiver: listing them is accepted and changes nothing.
const TLS13_GO_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// `cipher_suites` (Go's names, for TLS 1.2) in the given order, after TLS 1.3's suites.
fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let all = ring::ALL_CIPHER_SUITES;
    let mut out: Vec<SupportedCipherSuite> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for name in names {
        if TLS13_GO_NAMES.contains(&name.as_str()) {
            continue;
        }
        // Go also accepts the ChaCha suites' names without the `_SHA256`.
        let full = if name.ends_with("_POLY1305") {
            format!("{name}_SHA256")
        } else {
            name.clone()
        };
        let Some(suite) = all
            .iter()
            .find(|s| s.version() == &rustls::version::TLS12 && format!("{:?}", s.suite()) == full)
        else {
            let offered: Vec<String> = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            return Err(fail(
                "cipher_suites",
                format!(
                    "{name:?} is not supported by Quiver (TLS 1.2 suites offered: {})",
                    offered.join(", ")
                ),
            ));
        };
        out.push(*suite);
    }
    Ok(out)
}

/// A `curve_preferences` entry (Go's names).
fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, TlsError> {
    match name {
        "X25519" => Ok(ring::kx_group::X25519),
        "CurveP256" => Ok(ring::kx_group::SECP256R1),
        "CurveP384" => Ok(ring::kx_group::SECP384R1),
        _ => Err(fail(
            "curve_preferences",
            format!("{name:?} is not supported by Quiver (X25519, CurveP256, CurveP384 are)"),
        )),
    }
}

/// The client-certificate policy of `client_auth_type`.
fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let verified = |roots: RootCertStore| {
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
    };
    match settings.client_auth {
        ClientAuthType::NoClientCert => Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuthType::RequestClientCert => Ok(Arc::new(AnyClientCert {
            mandatory: false,
            provider: provider.clone(),
        })),
        ClientAuthType::RequireAnyClientCert => Ok(Arc::new(AnyClientCert {
            mandatory: true,
            provider: provider.clone(),
        })),
        ClientAuthType::VerifyClientCertIfGiven => verified(roots(settings)?)
            .allow_unauthenticated()
            .build()
            .map_err(|e| fail("client_ca_file", e.to_string())),
        ClientAuthType::RequireAndVerifyClientCert => verified(roots(settings)?)
            .build()
            .map_err(|e| fail("client_ca_file", e.to_string())),
    }
}

/// The client CA certificates.
fn roots(settings: &TlsSettings) -> Result<RootCertStore, TlsError> {
    let pem = settings.client_ca_pem.as_deref().unwrap_or_default();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| fail("client_ca_file", format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail("client_ca_file", format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("client_ca_file", "holds no PEM certificate"));
    }
    Ok(roots)
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for
/// (and, when mandatory, required) but not checked against any CA; the client still has to
/// prove it holds the certificate's key. Prometheus warns these are not authentication.
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for AnyClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyClientCert")
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How long a client may take over its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a listener gets the server configuration for the next handshake (ALPN unset); an
/// error refuses the connection.
pub type ConfigSource = Arc<dyn Fn() -> Result<Arc<ServerConfig>, String> + Send + Sync>;

/// Accepts TCP connections and completes each TLS handshake in a task of its own, so a slow
/// or refused client never holds up the next one. Dropping it stops accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: Option<SocketAddr>,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with the configuration `source` gives at each connection and these ALPN
    /// protocols on `listener`.
    pub fn new(listener: TcpListener, source: ConfigSource, alpn: &[&[u8]]) -> TlsListener {
        let local = listener.local_addr().ok();
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        // The acceptor of the configuration last seen, rebuilt when the source gives another.
        let mut current: Option<(Arc<ServerConfig>, TlsAcceptor)> = None;
        let (tx, ready) = mpsc::channel(64);
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let base = match source() {
                    Ok(c) => c,
                    Err(e) => {
                        // Logged once where the file is read; one line per refused connection
                        // would let anyone flood the log.
                        tracing::debug!("refused a connection from {peer}: {e}");
                        continue;
                    }
                };
                let acceptor = match &current {
                    Some((seen, acceptor)) if Arc::ptr_eq(seen, &base) => acceptor.clone(),
                    _ => {
                        let mut config = (*base).clone();
                        config.alpn_protocols = alpn.clone();
                        let acceptor = TlsAcceptor::from(Arc::new(config));
                        current = Some((base, acceptor.clone()));
                        acceptor
                    }
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        TlsListener {
            ready,
            local,
            accept,
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn incoming(self) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send {
        futures::stream::unfold(self, |mut l| async move {
            let (tls, _) = l.ready.recv().await?;
            Some((Ok(tls), l))
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The accept loop owns the socket: stopping it closes the port.
        self.accept.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .ok_or_else(|| io::Error::other("the listener had no local address"))
    }
}
