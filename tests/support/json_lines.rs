//! A child process that speaks JSON lines: commands in on stdin (`{"cmd": ..., "id": N}`),
//! events out on stdout (`{"event": ...}`), its log on stderr into a file. `lyrebird-cli` in
//! every mode and the third-party reference client are driven through this one type.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

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
    /// Starts `command` with piped stdin/stdout and stderr into `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
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

    /// A Lyrebird process: waits for a call state (`answered`, `audio_flowing`, `ended`, ...) of `call`.
    pub async fn call_state(&mut self, call: u64, state: &str, timeout: Duration) -> Result<Value> {
        let what = format!("call {call} state {state}");
        self.wait_for(&what, timeout, |e| {
            e["event"] == "call_state" && e["call"] == json!(call) && e["state"]["state"] == state
        })
        .await
    }

    /// Waits for a `call_hold` event of `call` saying who holds it (`local`: we do; `remote`:
    /// the peer does).
    pub async fn hold_state(
        &mut self,
        call: u64,
        local: bool,
        remote: bool,
        timeout: Duration,
    ) -> Result<Value> {
        let what = format!("call {call} hold local={local} remote={remote}");
        self.wait_for(&what, timeout, |e| {
            e["event"] == "call_hold"
                && e["call"] == json!(call)
                && e["local"] == local
                && e["remote"] == remote
        })
        .await
    }

    /// Waits for an incoming call and returns its id.
    pub async fn incoming_call(&mut self, timeout: Duration) -> Result<u64> {
        let event = self
            .wait_for("an incoming call", timeout, |e| {
                e["event"] == "incoming_call"
            })
            .await?;
        event["call"]
            .as_u64()
            .ok_or_else(|| anyhow!("incoming_call without an id: {event}"))
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

    /// Sends a command without waiting for its result, which arrives later as an event;
    /// returns the id it was sent with.
    pub async fn send(&mut self, mut command: Value) -> Result<u64> {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(self.next_id)
    }

    /// Waits until an event matching `want` has been read, now or before (by an earlier
    /// wait or [`JsonLines::drain`]): the first such event in `history`.
    pub async fn seen_or_wait(
        &mut self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.history.iter().find(|e| want(e)) {
                return Ok(event.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{}: waiting for {what}: not seen within {timeout:?}\nlog tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.drain(Duration::from_millis(200)).await.is_empty() {
                // Nothing more to read (the process may have exited): do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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

    /// Asks the process to quit and waits (bounded) for it to exit cleanly; a non-zero exit or
    /// no exit within 8 s is an error (the process is killed then).
    pub async fn quit(mut self) -> Result<Vec<Value>> {
        let _ = self.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
        let _ = self.stdin.flush().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while self.read_event(deadline).await.is_ok() {}
        match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "{} exited with {status}; log:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("{} did not exit within 8 s of quit", self.name);
            }
        }
        Ok(self.history)
    }

    /// Forgets the events not yet waited for, so the next wait sees only what happens from
    /// now on.
    pub fn discard_pending(&mut self) {
        self.seen.clear();
    }

    /// Kills the process at once (a crash, a pulled plug).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// When a Lyrebird event happened: its `t_ms` (wall-clock ms since the epoch, as the engine
/// stamps every event).
pub fn event_ms(event: &Value) -> Result<f64> {
    event["t_ms"]
        .as_f64()
        .ok_or_else(|| anyhow!("event without t_ms: {event}"))
}
