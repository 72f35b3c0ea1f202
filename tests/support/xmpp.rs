//! Drivers for XMPP tests: `lyrebird-cli xmpp` processes, the third-party reference client
//! (`tests/browser/xmpp-peer.mjs`, xmpp.js in Node), and a TCP relay that can cut every
//! connection through it (a dropped WebSocket, as a flaky network would drop it).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::browser::browser_package_dir;
use crate::json_lines::JsonLines;
use crate::lyrebird::cli_path;

/// Starts `lyrebird-cli --db DB xmpp ...` for `user@domain` with password `password`.
pub fn start_lyrebird(
    ws_url: &str,
    jid: &str,
    password: &str,
    db: &Path,
    log: &Path,
    extra: &[&str],
) -> Result<JsonLines> {
    let mut command = Command::new(cli_path()?);
    command
        .arg("--db")
        .arg(db)
        .arg("--log")
        .arg(std::env::var("LYREBIRD_TEST_LOG").unwrap_or_else(|_| "info".into()))
        .arg("xmpp")
        .args([
            "--ws",
            ws_url,
            "--jid",
            jid,
            "--password-env",
            "LYREBIRD_TEST_PASSWORD",
        ])
        .arg("--allow-plain")
        .args(extra)
        .env("LYREBIRD_TEST_PASSWORD", password)
        .env_remove("RUST_LOG");
    JsonLines::spawn(&format!("lyrebird {jid}"), command, log)
}

/// Starts the reference client (`xmpp-peer.mjs`, @xmpp/client) for `jid`; a `wss://` server
/// with a self-signed certificate needs that certificate in `trusted_certificate`.
pub fn start_reference(
    ws_url: &str,
    jid: &str,
    password: &str,
    resource: &str,
    log: &Path,
    extra: &[&str],
    trusted_certificate: Option<&Path>,
) -> Result<JsonLines> {
    let dir = browser_package_dir();
    if !dir.join("node_modules/@xmpp/client").exists() {
        bail!(
            "npm packages missing in {} (run ./task test)",
            dir.display()
        );
    }
    let mut command = Command::new("node");
    command
        .current_dir(&dir)
        .arg("--experimental-websocket")
        .arg("--no-warnings")
        .arg(dir.join("xmpp-peer.mjs"))
        .args([
            "--ws",
            ws_url,
            "--jid",
            jid,
            "--password",
            password,
            "--resource",
            resource,
        ])
        .args(extra);
    if let Some(certificate) = trusted_certificate {
        // Node adds it to the roots its TLS (and so its WebSocket) trusts.
        command.env("NODE_EXTRA_CA_CERTS", certificate);
    }
    JsonLines::spawn(&format!("xmpp.js {jid}"), command, log)
}

/// Waits until a Lyrebird XMPP account is online; returns the event.
pub async fn online(peer: &mut JsonLines, timeout: Duration) -> Result<Value> {
    let event = peer
        .wait_for("xmpp_online", timeout, |e| {
            e["event"] == "xmpp_online"
                || (e["event"] == "account_state" && e["state"]["state"] == "authentication_failed")
        })
        .await?;
    if event["event"] != "xmpp_online" {
        bail!("login failed: {event}");
    }
    Ok(event)
}

/// Makes `a` and `b` (both Lyrebird) mutual contacts through the real subscription handshake.
pub async fn befriend(
    a: &mut JsonLines,
    a_jid: &str,
    b: &mut JsonLines,
    b_jid: &str,
    timeout: Duration,
) -> Result<()> {
    a.command(json!({"cmd": "add_contact", "jid": b_jid, "name": "Friend"}))
        .await?;
    b.wait_for("subscription request", timeout, |e| {
        e["event"] == "subscription_request" && e["from"] == a_jid
    })
    .await?;
    b.command(json!({"cmd": "approve", "jid": a_jid})).await?;
    b.command(json!({"cmd": "add_contact", "jid": a_jid}))
        .await?;
    a.wait_for("subscription request back", timeout, |e| {
        e["event"] == "subscription_request" && e["from"] == b_jid
    })
    .await?;
    a.command(json!({"cmd": "approve", "jid": b_jid})).await?;
    for (me, them) in [(&mut *a, b_jid), (&mut *b, a_jid)] {
        me.wait_for("contact with mutual subscription", timeout, |e| {
            e["event"] == "contact" && e["jid"] == them && e["subscription"] == "both"
        })
        .await?;
    }
    Ok(())
}

/// A TCP relay in front of a server: every accepted connection is piped to `upstream`, and
/// [`CuttingRelay::cut`] drops all of them at once (the client sees its WebSocket die).
pub struct CuttingRelay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttingRelay {
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut list) = list.lock() {
                    list.push(pipe);
                }
            }
        });
        Ok(Self {
            addr,
            connections,
            accept,
        })
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection through the relay (new ones are still accepted).
    pub fn cut(&self) -> usize {
        let Ok(mut list) = self.connections.lock() else {
            return 0;
        };
        let n = list.len();
        for pipe in list.drain(..) {
            pipe.abort();
        }
        n
    }
}

impl Drop for CuttingRelay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ----- A scripted XMPP server: a test plays the server's side frame by frame. -----

/// Accepts the WebSocket upgrade with sub-protocol `xmpp` (RFC 7395 §3.1).
#[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
pub fn agree_to_xmpp(
    _: &tokio_tungstenite::tungstenite::handshake::server::Request,
    mut response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("xmpp"),
    );
    Ok(response)
}

pub type ServerSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A text WebSocket message.
pub fn text(s: &str) -> Message {
    Message::Text(s.to_owned().into())
}

/// A scripted server's side of an RFC 7395 login (PLAIN) up to the bound resource
/// `alice@localhost/lyre`; `stream_management` offers XEP-0198 with the bind feature.
pub async fn scripted_login(
    socket: tokio::net::TcpStream,
    stream_management: bool,
) -> Result<ServerSocket> {
    let mut ws = tokio_tungstenite::accept_hdr_async(socket, agree_to_xmpp).await?;
    let open =
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s' version='1.0'/>";
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(frame) = frame else {
            continue;
        };
        let frame = frame.to_string();
        if frame.starts_with("<open") && !restarted {
            ws.send(text(open)).await?;
            ws.send(text("<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")).await?;
        } else if frame.starts_with("<auth") {
            ws.send(text("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
                .await?;
            restarted = true;
        } else if frame.starts_with("<open") {
            ws.send(text(open)).await?;
            let sm = if stream_management {
                "<sm xmlns='urn:xmpp:sm:3'/>"
            } else {
                ""
            };
            ws.send(text(&format!("<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>{sm}</stream:features>"))).await?;
        } else if frame.contains("xmpp-bind") {
            let id = xml_attr(&frame, "id").unwrap_or_default();
            ws.send(text(&format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/lyre</jid></bind></iq>"))).await?;
            return Ok(ws);
        }
    }
    anyhow::bail!("the client did not log in")
}

/// The value of attribute `name` in one serialised element (either quote style).
pub fn xml_attr(xml: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let start = format!(" {name}={quote}");
        if let Some(at) = xml.find(&start) {
            let rest = &xml[at + start.len()..];
            return rest.find(quote).map(|end| rest[..end].to_owned());
        }
    }
    None
}
