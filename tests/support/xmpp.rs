//! Drivers for XMPP tests: `lyrebird-cli xmpp` processes, the third-party reference client
//! (`tests/browser/xmpp-peer.mjs`, xmpp.js in Node), and a TCP relay that can cut every
//! connection through it (a dropped WebSocket, as a flaky network would drop it).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::browser::browser_package_dir;
use crate::lyrebird::cli_path;

/// A JSON-lines child process (Lyrebird or the reference client) with buffered event waits.
pub struct JsonLines {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    seen: VecDeque<Value>,
    /// Every event ever read.
    pub history: Vec<Value>,
    log: PathBuf,
    next_id: u64,
}

impl JsonLines {
    fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            seen: VecDeque::new(),
            history: Vec::new(),
            log: log.to_owned(),
            next_id: 0,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The tail of the process's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn read_event(&mut self, deadline: tokio::time::Instant) -> Result<Value> {
        if let Some(event) = self.seen.pop_front() {
            return Ok(event);
        }
        let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
            .await
            .map_err(|_| anyhow!("timed out"))??
            .ok_or_else(|| anyhow!("{} exited; log:\n{}", self.name, self.log_tail()))?;
        let event: Value = serde_json::from_str(&line)
            .map_err(|_| anyhow!("{} printed a non-JSON line: {line}", self.name))?;
        self.history.push(event.clone());
        Ok(event)
    }

    /// Waits for the first event matching `want`; others are kept for later waits.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut skipped = VecDeque::new();
        let result = loop {
            match self.read_event(deadline).await {
                Ok(event) if want(&event) => break Ok(event),
                Ok(event) => skipped.push_back(event),
                Err(e) => {
                    break Err(anyhow!(
                        "{}: waiting for {what}: {e}\nevents seen meanwhile: {skipped:?}\nlog tail:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
            }
        };
        while let Some(event) = skipped.pop_back() {
            self.seen.push_front(event);
        }
        result
    }

    /// Reads whatever arrives within `window` (to check what did not happen).
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out: Vec<Value> = self.seen.drain(..).collect();
        while let Ok(event) = self.read_event(deadline).await {
            out.push(event);
        }
        out
    }

    /// Sends a command and waits for its result; fails if it was refused.
    pub async fn command(&mut self, mut command: Value) -> Result<Value> {
        self.command_within(command.take(), Duration::from_secs(20))
            .await
    }

    /// [`JsonLines::command`] with a custom bound.
    pub async fn command_within(&mut self, mut command: Value, timeout: Duration) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let cmd = command["cmd"].clone();
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let result = self
            .wait_for("a command result", timeout, |e| {
                e["event"] == "result"
                    && (e["id"] == json!(id) || (e["id"].is_null() && e["cmd"] == cmd))
            })
            .await?;
        if result["ok"] != json!(true) {
            bail!("{}: command {command} refused: {result}", self.name);
        }
        Ok(result)
    }

    /// Asks the process to quit, then waits (bounded) and kills it if needed.
    pub async fn quit(mut self) -> Result<Vec<Value>> {
        let _ = self.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
        let _ = self.stdin.flush().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while self.read_event(deadline).await.is_ok() {}
        if tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        Ok(self.history)
    }

    /// Kills the process at once (a crash, a pulled plug).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

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

/// Starts the reference client (`xmpp-peer.mjs`, @xmpp/client) for `jid`.
pub fn start_reference(
    ws_url: &str,
    jid: &str,
    password: &str,
    resource: &str,
    log: &Path,
    extra: &[&str],
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
