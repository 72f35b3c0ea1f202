//! Drivers for XMPP tests: `lyrebird-cli xmpp` processes, the third-party reference client
//! (`tests/browser/xmpp-peer.mjs`, xmpp.js in Node), and a TCP relay that can cut every
//! connection through it (a dropped WebSocket, as a flaky network would drop it).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;

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
