//! Driving real `lyrebird-cli` processes: the headless Lyrebird a bot or a script would run.
//!
//! Each `Lyrebird` is one process registered as one user. Commands go in on stdin as JSON lines;
//! events come back on stdout as JSON lines, each with `t_ms` (wall clock), which is what tests
//! assert on and what the benchmark times.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tokio::process::Command;

use crate::json_lines::JsonLines;

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

    /// A user of the stack's Kamailio, with the stack's password for them (`<user>-secret`).
    pub fn on_kamailio(stack: &crate::stack::Stack, user: &str, dir: &Path) -> Self {
        let kamailio = stack.kamailio();
        Self::for_user(
            &kamailio.ws_url(),
            kamailio.domain(),
            user,
            &format!("{user}-secret"),
            dir,
        )
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

/// A running `lyrebird-cli run` process: a [`JsonLines`] process (waits, commands, history,
/// log) registered as one SIP user.
pub struct Lyrebird {
    process: JsonLines,
}

impl std::ops::Deref for Lyrebird {
    type Target = JsonLines;
    fn deref(&self) -> &JsonLines {
        &self.process
    }
}

impl std::ops::DerefMut for Lyrebird {
    fn deref_mut(&mut self) -> &mut JsonLines {
        &mut self.process
    }
}

impl Lyrebird {
    pub async fn start(options: LyrebirdOptions) -> Result<Self> {
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
            .env_remove("RUST_LOG");
        let name = format!("lyrebird {}", options.aor);
        Ok(Self {
            process: JsonLines::spawn(&name, command, &options.log)?,
        })
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

    /// Quits politely (which unregisters); see [`JsonLines::quit`].
    pub async fn quit(self) -> Result<Vec<Value>> {
        self.process.quit().await
    }

    /// Kills the process at once (SIGKILL) and reaps it; see [`JsonLines::kill`].
    pub async fn kill(self) {
        self.process.kill().await
    }
}

/// Starts `lyrebird-cli --db DB accounts FILE --bind 127.0.0.1 EXTRA...`: one process holding
/// every SIP and XMPP account of the accounts file `file`. The file names the environment
/// variables holding the passwords; `env` sets them.
pub fn start_accounts(
    file: &Path,
    db: &Path,
    log: &Path,
    env: &[(String, String)],
    extra: &[&str],
) -> Result<JsonLines> {
    let mut command = Command::new(cli_path()?);
    command
        .arg("--db")
        .arg(db)
        .arg("--log")
        .arg(
            std::env::var("LYREBIRD_TEST_LOG").unwrap_or_else(|_| "info,lyrebird_sip=debug".into()),
        )
        .arg("accounts")
        .arg(file)
        .args(["--bind", "127.0.0.1"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("RUST_LOG");
    JsonLines::spawn(
        &format!("lyrebird accounts {}", file.display()),
        command,
        log,
    )
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

/// The call id in a `call` command's result.
pub fn call_id(result: &Value) -> Result<u64> {
    result["call"]
        .as_u64()
        .with_context(|| format!("no call id in {result}"))
}

/// The calls kept in the history database `db`, newest first (`lyrebird-cli history calls`).
pub async fn history_calls(db: &Path) -> Result<Vec<Value>> {
    let db = db.to_string_lossy().into_owned();
    let lines = run_cli(&["--db", &db, "history", "calls"], Duration::from_secs(20)).await?;
    Ok(lines.into_iter().map(|l| l["call"].clone()).collect())
}
