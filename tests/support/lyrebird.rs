//! Driving real `lyrebird-cli` processes: the headless Lyrebird a bot or a script would run.
//!
//! Each `Lyrebird` is one process registered as one user. Commands go in on stdin as JSON lines;
//! events come back on stdout as JSON lines, each with `t_ms` (wall clock), which is what tests
//! assert on and what the benchmark times.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where the `lyrebird-cli` binary is: `$LYREBIRD_CLI`, or next to the test binary's
/// `deps/` folder in the same Cargo target directory.
pub fn cli_path() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("LYREBIRD_CLI") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))?;
    let path = profile_dir.join("lyrebird-cli");
    if !path.exists() {
        bail!(
            "{} does not exist: build it first (`cargo build -p lyrebird-cli`; ./task test does)",
            path.display()
        );
    }
    Ok(path)
}

/// How to start one headless Lyrebird.
#[derive(Debug, Clone)]
pub struct LyrebirdOptions {
    pub ws_url: String,
    pub aor: String,
    pub password: String,
    /// History database; each instance should have its own.
    pub db: PathBuf,
    /// Extra `run` arguments, e.g. `--auto-answer`, `--play f.wav`, `--record r.wav`.
    pub args: Vec<String>,
    /// Where the process's stderr log goes.
    pub log: PathBuf,
    /// Extra environment variables (secrets for `--*-env` options).
    pub env: Vec<(String, String)>,
}

impl LyrebirdOptions {
    /// Options for `user` on a Kamailio from the test stack, with files under `dir`.
    pub fn for_user(ws_url: &str, domain: &str, user: &str, password: &str, dir: &Path) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            aor: format!("sip:{user}@{domain}"),
            password: password.to_owned(),
            db: dir.join(format!("{user}.sqlite3")),
            args: Vec::new(),
            log: dir.join(format!("{user}.log")),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// A running `lyrebird-cli run` process.
pub struct Lyrebird {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Events read while waiting for something else, in arrival order.
    seen: VecDeque<Value>,
    /// Every event ever read, for assertions about what did (not) happen.
    pub history: Vec<Value>,
    log: PathBuf,
    next_id: u64,
}

impl Lyrebird {
    pub async fn start(options: LyrebirdOptions) -> Result<Self> {
        let log = std::fs::File::create(&options.log)
            .with_context(|| format!("creating {}", options.log.display()))?;
        let mut command = Command::new(cli_path()?);
        command
            .arg("--db")
            .arg(&options.db)
            .arg("--log")
            .arg(
                std::env::var("LYREBIRD_TEST_LOG")
                    .unwrap_or_else(|_| "info,lyrebird_sip=debug".into()),
            )
            .arg("run")
            .arg("--ws")
            .arg(&options.ws_url)
            .arg("--aor")
            .arg(&options.aor)
            .arg("--password-env")
            .arg("LYREBIRD_TEST_PASSWORD")
            .arg("--bind")
            .arg("127.0.0.1")
            .args(&options.args)
            .env("LYREBIRD_TEST_PASSWORD", &options.password)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting lyrebird-cli")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            seen: VecDeque::new(),
            history: Vec::new(),
            log: options.log,
            next_id: 0,
        })
    }

    /// The process id, for CPU and memory figures.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The tail of the process's log, for failure messages.
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
            .ok_or_else(|| anyhow!("lyrebird-cli exited; log:\n{}", self.log_tail()))?;
        let event: Value = serde_json::from_str(&line)
            .map_err(|_| anyhow!("lyrebird-cli printed a non-JSON line: {line}"))?;
        self.history.push(event.clone());
        Ok(event)
    }

    /// Waits for the first event matching `want`; other events are kept for later waits.
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
                        "waiting for {what}: {e}\nevents seen meanwhile: {skipped:?}\nlog tail:\n{}",
                        self.log_tail()
                    ));
                }
            }
        };
        // Unmatched events stay available, in order, ahead of anything newer.
        while let Some(event) = skipped.pop_back() {
            self.seen.push_front(event);
        }
        result
    }

    /// Forgets the events that arrived before the last match, so the next wait sees only
    /// what happens from now on.
    pub fn discard_pending(&mut self) {
        self.seen.clear();
    }

    /// Sends a command and waits for its result line; fails if the engine refused it.
    pub async fn command(&mut self, mut command: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let result = self
            .wait_for("a command result", Duration::from_secs(20), |e| {
                e["event"] == "result" && e["id"] == json!(id)
            })
            .await?;
        if result["ok"] != json!(true) {
            bail!("command {command} refused: {result}");
        }
        Ok(result)
    }

    /// Waits until the account is registered.
    pub async fn registered(&mut self, timeout: Duration) -> Result<Value> {
        let event = self
            .wait_for("registration", timeout, |e| {
                e["event"] == "account_state"
                    && matches!(
                        e["state"]["state"].as_str(),
                        Some("registered" | "registration_failed")
                    )
            })
            .await?;
        if event["state"]["state"] != "registered" {
            bail!("registration failed: {event}");
        }
        Ok(event)
    }

    /// Waits for a call state (`answered`, `audio_flowing`, `ended`, ...) of `call`.
    pub async fn call_state(&mut self, call: u64, state: &str, timeout: Duration) -> Result<Value> {
        let what = format!("call {call} state {state}");
        self.wait_for(&what, timeout, |e| {
            e["event"] == "call_state" && e["call"] == json!(call) && e["state"]["state"] == state
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

    /// Stops the process politely (quit, which unregisters), then forcibly after a bound.
    pub async fn quit(mut self) -> Result<Vec<Value>> {
        let _ = self.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
        let _ = self.stdin.flush().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while let Ok(event) = self.read_event(deadline).await {
            let _ = event;
        }
        match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "lyrebird-cli exited with {status}; log:\n{}",
                        self.log_tail()
                    );
                }
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("lyrebird-cli did not exit within 8 s of quit");
            }
        }
        Ok(self.history)
    }
}

/// Runs `lyrebird-cli` with `args` to completion (history queries, one-shot commands) and
/// returns its stdout as JSON lines.
pub async fn run_cli(args: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    let output = tokio::time::timeout(
        timeout,
        Command::new(cli_path()?)
            .args(args)
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow!("lyrebird-cli {args:?} did not finish in {timeout:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("lyrebird-cli printed non-JSON: {stdout}"))?;
    if !output.status.success() {
        bail!(
            "lyrebird-cli {args:?} failed ({}): {}\n{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(lines)
}
