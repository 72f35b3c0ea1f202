//! WebSocket transports (RFC 6455) for the protocol cores: one WebSocket message in or out is one
//! protocol message (RFC 7118 for SIP, RFC 7395 for XMPP, RFC 7977 for MSRP).
//!
//! TLS is rustls with the operating system's roots. A server whose certificate does not chain to
//! those roots is refused, unless the user has explicitly trusted that certificate (a PEM file for
//! this one account) — never a blanket "accept invalid certificates". Trusting a certificate
//! means pinning it: the server must present exactly that certificate (its handshake signature
//! is still verified). Pinning, not adding a root, because self-signed server certificates are
//! usually made as CA certificates, which WebPKI refuses as a server's own certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::ground::EngineError;

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest WebSocket message accepted from a server. SIP messages are a few KiB; this bound keeps
/// a hostile server from making us buffer without limit.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// How the connection to one server is made.
#[derive(Debug, Clone)]
pub struct WsTarget {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// The WebSocket sub-protocol the server must agree to (`sip`, `xmpp`, `msrp`).
    pub subprotocol: &'static str,
    /// A PEM certificate the user trusts for this server in addition to the system roots.
    pub trusted_certificate: Option<std::path::PathBuf>,
    /// Bound on TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
}

/// What arrived on a connection.
#[derive(Debug)]
pub enum Incoming {
    /// One complete protocol message.
    Message(Vec<u8>),
    /// Any traffic at all (pong or ping) that proves the flow is alive.
    Alive,
}

/// An open WebSocket with the agreed sub-protocol.
pub struct WsConnection {
    stream: Stream,
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection").finish_non_exhaustive()
    }
}

impl WsConnection {
    /// Opens the connection, bounded by `target.connect_timeout`.
    pub async fn connect(target: &WsTarget) -> Result<Self, EngineError> {
        let mut request =
            target.url.as_str().into_client_request().map_err(|e| {
                EngineError::InvalidConfig(format!("server URL {}: {e}", target.url))
            })?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(target.subprotocol),
        );
        let secure = target.url.starts_with("wss:");
        let connector = if secure {
            Connector::Rustls(Arc::new(tls_config(target.trusted_certificate.as_deref())?))
        } else {
            Connector::Plain
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let handshake = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            Some(connector),
        );
        let (stream, response) = tokio::time::timeout(target.connect_timeout, handshake)
            .await
            .map_err(|_| EngineError::Transport(format!("no answer from {} in time", target.url)))?
            .map_err(|e| ws_error(&target.url, &e))?;
        let agreed = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if agreed != Some(target.subprotocol) {
            return Err(EngineError::Transport(format!(
                "{} did not agree to the WebSocket sub-protocol `{}`",
                target.url, target.subprotocol
            )));
        }
        Ok(Self { stream })
    }

    /// Sends one protocol message as one text frame (SIP, XMPP and MSRP are all text on the wire;
    /// a message that is not UTF-8 goes as a binary frame, which RFC 7118 §5 also allows).
    pub async fn send(&mut self, message: Vec<u8>) -> Result<(), EngineError> {
        let frame = match String::from_utf8(message) {
            Ok(text) => Message::Text(text.into()),
            Err(e) => Message::Binary(e.into_bytes().into()),
        };
        self.stream
            .send(frame)
            .await
            .map_err(|e| EngineError::Transport(format!("send failed: {e}")))
    }

    /// Sends a WebSocket ping, the keep-alive of a WebSocket flow.
    pub async fn ping(&mut self) -> Result<(), EngineError> {
        self.stream
            .send(Message::Ping(Vec::new().into()))
            .await
            .map_err(|e| EngineError::Transport(format!("ping failed: {e}")))
    }

    /// Waits for the next message. `Ok(None)` means the server closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, EngineError> {
        loop {
            let Some(frame) = self.stream.next().await else {
                return Ok(None);
            };
            let frame =
                frame.map_err(|e| EngineError::Transport(format!("receive failed: {e}")))?;
            return Ok(Some(match frame {
                Message::Text(text) => Incoming::Message(text.as_bytes().to_vec()),
                Message::Binary(data) => Incoming::Message(data.to_vec()),
                Message::Ping(_) | Message::Pong(_) => Incoming::Alive,
                Message::Close(_) => return Ok(None),
                Message::Frame(_) => continue,
            }));
        }
    }

    /// Closes politely, bounded so a dead server cannot hold shutdown.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.close(None)).await;
    }
}

fn ws_error(url: &str, error: &tungstenite::Error) -> EngineError {
    let transport = |text: String| EngineError::Transport(text);
    match error {
        tungstenite::Error::Http(response) => transport(format!(
            "{url} refused the WebSocket upgrade: HTTP {}",
            response.status()
        )),
        // rustls reports handshake failures through the I/O error it returns.
        tungstenite::Error::Io(e) => match find_tls_error(e) {
            Some(rustls::Error::InvalidCertificate(why)) => {
                EngineError::Untrusted(untrusted_words(url, why))
            }
            Some(tls) => transport(format!("TLS with {url} failed: {tls}")),
            None => transport(format!("cannot reach {url}: {e}")),
        },
        tungstenite::Error::Tls(e) => transport(format!("TLS with {url} failed: {e}")),
        other => transport(format!("WebSocket to {url} failed: {other}")),
    }
}

/// What is wrong with a refused certificate and what the person can do about it, in words.
fn untrusted_words(url: &str, why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as Why;
    if let Why::Other(other) = why
        && let Some(mismatch) = other.0.downcast_ref::<PinMismatch>()
    {
        return format!(
            "{url} presented a certificate that does not match the certificate you trusted for \
             this account ({}). If the server's certificate was renewed, set the new one as the \
             account's trusted server certificate; otherwise someone may be intercepting the \
             connection.",
            certificate_fault(&mismatch.0)
        );
    }
    format!(
        "{url}'s certificate is not trusted: {}. If this is your own server, set its \
         certificate as the account's trusted server certificate; the account does not retry \
         until then.",
        certificate_fault(why)
    )
}

fn certificate_fault(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as Why;
    match why {
        Why::UnknownIssuer => "it is not signed by an authority this computer trusts".into(),
        Why::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "it is self-signed".into()
        }
        Why::Expired | Why::ExpiredContext { .. } => "it has expired".into(),
        Why::NotValidYet | Why::NotValidYetContext { .. } => {
            "it is not valid yet (check this computer's clock)".into()
        }
        Why::NotValidForName | Why::NotValidForNameContext { .. } => {
            "it is made out to a different server name".into()
        }
        Why::Revoked => "it has been revoked".into(),
        Why::BadSignature | Why::BadEncoding => "it is malformed or badly signed".into(),
        other => format!("{other:?}"),
    }
}

/// Whether a refusal is about who signed the certificate (it chains to no trusted certificate),
/// rather than about the certificate itself (dates, name, revocation).
fn is_issuer_fault(why: &rustls::CertificateError) -> bool {
    use rustls::CertificateError as Why;
    match why {
        Why::UnknownIssuer | Why::BadSignature => true,
        Why::Other(other) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity | webpki::Error::UnknownIssuer)
        ),
        _ => false,
    }
}

/// A server that presented a certificate other than the one pinned for the account, which the
/// ordinary checks refused too (carried inside rustls's error to word the refusal).
#[derive(Debug)]
struct PinMismatch(rustls::CertificateError);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not the trusted certificate ({:?})", self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// The TLS failure inside an I/O error, however deeply the layers between rustls and
/// tungstenite have wrapped it.
fn find_tls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as _),
            None => e.source(),
        };
    }
    None
}

/// rustls client configuration: the system's roots, plus a certificate the user explicitly trusts.
pub fn tls_config(trusted_certificate: Option<&Path>) -> Result<rustls::ClientConfig, EngineError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping an unreadable system certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "loaded system root certificates");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| EngineError::InvalidConfig(format!("TLS setup: {e}")))?;
    let pinned = match trusted_certificate {
        Some(path) => read_pem_certificates(path)?,
        None => Vec::new(),
    };
    if pinned.is_empty() {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    // A pinned certificate may also be a private CA that signed the server's certificate.
    for cert in &pinned {
        let _ = roots.add(cert.clone());
    }
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| EngineError::InvalidConfig(format!("TLS setup: {e}")))?;
    let verifier = PinnedOrWebPki {
        pinned,
        webpki,
        provider,
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, EngineError> {
    let invalid = |detail: String| {
        EngineError::InvalidConfig(format!("trusted certificate {}: {detail}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Accepts a server that presents exactly a pinned certificate; anything else must pass the
/// ordinary WebPKI checks against the roots. Handshake signatures are always verified.
#[derive(Debug)]
struct PinnedOrWebPki {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                // Only a certificate that chains to nothing trusted is "not the one you
                // trusted"; one from the trusted authority that has expired or names another
                // server is refused for that, in the ordinary words.
                rustls::Error::InvalidCertificate(why) if is_issuer_fault(&why) => {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                        rustls::OtherError(Arc::new(PinMismatch(why))),
                    ))
                }
                other => other,
            })
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

// Helpers for tasks that `select!` over an optional connection: a branch that has nothing to
// wait for waits forever, so `select!` simply never picks it.

/// The next message on the connection, if there is one.
pub(crate) async fn receive(
    conn: &mut Option<WsConnection>,
) -> Result<Option<Incoming>, EngineError> {
    match conn {
        Some(conn) => conn.recv().await,
        None => std::future::pending().await,
    }
}

/// The result of a connection attempt in progress, if there is one.
pub(crate) async fn join_connecting(
    connecting: &mut Option<tokio::task::JoinHandle<Result<WsConnection, EngineError>>>,
) -> Result<WsConnection, EngineError> {
    match connecting {
        Some(handle) => match handle.await {
            Ok(result) => result,
            Err(e) => Err(EngineError::Transport(format!("connect task failed: {e}"))),
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until the deadline, if there is one.
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How often an idle WebSocket flow is pinged, and how long a ping may go unanswered before
/// the flow counts as dead. RFC 5626 §4.4.1 suggests 95–120 s for connection-oriented flows
/// through NATs; a desktop client notices a dead server much sooner with a shorter period,
/// and a ping is a few bytes.
const PING_INTERVAL: Duration = Duration::from_secs(15);
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Liveness of one WebSocket flow: the WebSocket ping is the keep-alive (RFC 6455 §5.5.2), sent
/// after `PING_INTERVAL` without traffic; any traffic answers it, and none within
/// `PONG_TIMEOUT` means the flow is dead.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    last_heard: tokio::time::Instant,
    ping_sent: Option<tokio::time::Instant>,
}

impl KeepAlive {
    pub(crate) fn new() -> Self {
        Self {
            last_heard: tokio::time::Instant::now(),
            ping_sent: None,
        }
    }

    /// Something arrived on the flow (a message, a pong, a ping).
    pub(crate) fn heard(&mut self) {
        self.last_heard = tokio::time::Instant::now();
        self.ping_sent = None;
    }

    /// When [`KeepAlive::due`] must run next.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        match self.ping_sent {
            Some(sent) => sent + PONG_TIMEOUT,
            None => self.last_heard + PING_INTERVAL,
        }
    }

    /// Whether a ping is out and unanswered (the next deadline is the verdict, not a ping).
    pub(crate) fn awaiting_answer(&self) -> bool {
        self.ping_sent.is_some()
    }

    /// At the deadline: pings the flow, or says why it is dead.
    pub(crate) async fn due(&mut self, conn: &mut WsConnection) -> Result<(), String> {
        if self.ping_sent.is_some() {
            return Err(format!(
                "no answer to a keep-alive in {} s",
                PONG_TIMEOUT.as_secs()
            ));
        }
        conn.ping().await.map_err(|e| e.to_string())?;
        self.ping_sent = Some(tokio::time::Instant::now());
        Ok(())
    }
}

/// How long the first reconnect waits, and the longest any waits (jittered exponential
/// backoff in between; see `backoff.rs`).
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// One account's WebSocket flow through its life: a connection attempt under way (in its own
/// task, so the account keeps serving commands), an open connection, or a wait before the
/// next attempt. The account decides *when* to connect and what a lost flow means for its
/// protocol; this type owns the mechanics both the SIP and the XMPP account share.
pub(crate) struct Flow {
    target: WsTarget,
    connecting: Option<tokio::task::JoinHandle<Result<WsConnection, EngineError>>>,
    /// The open connection, if any.
    pub(crate) conn: Option<WsConnection>,
    reconnect_at: Option<tokio::time::Instant>,
    backoff: crate::backoff::Backoff,
}

/// What happened to a flow; see [`Flow::next`].
pub(crate) enum FlowEvent {
    /// A connection attempt succeeded; `conn` is set.
    Opened,
    /// A connection attempt failed.
    Failed(EngineError),
    /// The open connection delivered something, or ended (`Ok(None)`, `Err`).
    Incoming(Result<Option<Incoming>, EngineError>),
    /// The wait before the next attempt is over.
    ReconnectDue,
}

impl Flow {
    pub(crate) fn new(target: WsTarget) -> Flow {
        Flow {
            target,
            connecting: None,
            conn: None,
            reconnect_at: None,
            backoff: crate::backoff::Backoff::new(RECONNECT_FIRST, RECONNECT_MAX),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Starts a connection attempt unless a connection is open or an attempt is under way.
    /// True when one started (the account then reports `Connecting`).
    pub(crate) fn connect(&mut self) -> bool {
        if self.connecting.is_some() || self.conn.is_some() {
            return false;
        }
        self.reconnect_at = None;
        let target = self.target.clone();
        self.connecting = Some(tokio::spawn(
            async move { WsConnection::connect(&target).await },
        ));
        true
    }

    /// Waits for the next thing that happens to the flow. Cancel-safe, for `select!`.
    pub(crate) async fn next(&mut self) -> FlowEvent {
        tokio::select! {
            incoming = receive(&mut self.conn) => FlowEvent::Incoming(incoming),
            result = join_connecting(&mut self.connecting) => {
                self.connecting = None;
                match result {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        FlowEvent::Opened
                    }
                    Err(e) => FlowEvent::Failed(e),
                }
            }
            () = sleep_until_opt(self.reconnect_at) => {
                self.reconnect_at = None;
                FlowEvent::ReconnectDue
            }
        }
    }

    /// Drops the open connection (it is dead or done with); true if there was one.
    pub(crate) fn lose(&mut self) -> bool {
        self.conn.take().is_some()
    }

    /// Takes the open connection, to close it in an orderly way.
    pub(crate) fn take(&mut self) -> Option<WsConnection> {
        self.conn.take()
    }

    /// Schedules the next attempt after a jittered, growing delay, and says what to report:
    /// `None` when one is already scheduled.
    pub(crate) fn schedule_reconnect(
        &mut self,
        reason: String,
    ) -> Option<crate::event::AccountState> {
        if self.reconnect_at.is_some() {
            return None;
        }
        let (delay, attempt) = self.backoff.next_delay();
        self.reconnect_at = Some(tokio::time::Instant::now() + delay);
        Some(crate::event::AccountState::Reconnecting {
            attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason,
        })
    }

    /// A connection attempt failed: schedules the next one and says what to report, unless
    /// the failure is final (an untrusted certificate stays untrusted until the account's
    /// settings change, so retrying it would only repeat the refusal).
    pub(crate) fn attempt_failed(
        &mut self,
        error: EngineError,
    ) -> Option<crate::event::AccountState> {
        match error {
            EngineError::Untrusted(reason) => {
                self.reconnect_at = None;
                Some(crate::event::AccountState::Untrusted { reason })
            }
            other => self.schedule_reconnect(other.to_string()),
        }
    }

    /// The protocol is up on this flow: the next failure starts the backoff from the start.
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff.reset();
    }

    /// Stops everything: aborts an attempt under way, cancels a scheduled one, and closes the
    /// open connection.
    pub(crate) async fn close(&mut self) {
        if let Some(connecting) = self.connecting.take() {
            connecting.abort();
        }
        self.reconnect_at = None;
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }
}
