//! ejabberd 23.01 (Debian's `ejabberd`), the test bed's second XMPP server: the same XMPP
//! tests run against it and against Prosody, because the two servers differ where it matters
//! for "nothing lost" (offline storage beside the archive, how long a dropped session is held
//! for resumption, when a room reflects a message).
//!
//! Debian's `ejabberdctl` switches to the `ejabberd` system user when run as root and keeps
//! its state in `/var/lib/ejabberd`, so the test kit starts the Erlang release itself, as
//! `ejabberdctl foreground` would, with everything in the instance directory: config, Mnesia
//! spool, logs, uploads, the certificate. Nothing listens beyond 127.0.0.1 and no epmd runs:
//! the node's distribution port is fixed (`-erl_epmd_port`, `-start_epmd false`), bound to
//! loopback, and leased like every other port.

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{
    DOMAIN, PortLease, ServerProcess, XmppServer, connect, debug_logs, fill, find_tool,
    lease_free_port, log_tail, make_self_signed_certificate, random_token, validate_users,
};

pub(super) const EJABBERD_TEMPLATE: &str = include_str!("../../stack/ejabberd.yml");

/// The Erlang VM boots ejabberd and its Mnesia database in 2-3 s when the machine is idle;
/// with builds beside it, several times that.
const EJABBERD_START_TIMEOUT: Duration = Duration::from_secs(45);
/// How long an API call (a registration) may take to answer.
const API_ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// ejabberd 23.01: XMPP over WebSocket (RFC 7395) over TLS for domain `localhost`, with MAM,
/// offline storage, carbons, stream management, MUC `conference.localhost` and HTTP upload
/// `upload.localhost` (XEP-0363, URLs on `https://127.0.0.1:PORT/upload/`), SCRAM-SHA-256.
pub struct Ejabberd {
    dir: PathBuf,
    https_port: PortLease,
    c2s_port: PortLease,
    api_port: PortLease,
    /// The Erlang distribution port, leased so that no other test's server takes it.
    _dist_port: PortLease,
    users: Vec<(String, String)>,
    process: ServerProcess,
}

impl Ejabberd {
    pub(super) fn new(root: &Path, users: Vec<(String, String)>) -> Result<Ejabberd> {
        validate_users(&users)?;
        let dir = root.join("ejabberd");
        for sub in ["spool", "upload", "home"] {
            fs::create_dir_all(dir.join(sub)).context("creating the ejabberd directories")?;
        }
        let (https_port, c2s_port) = (lease_free_port()?, lease_free_port()?);
        let (api_port, dist_port) = (lease_free_port()?, lease_free_port()?);

        // ejabberd reads one PEM with the certificate and its key.
        let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
        make_self_signed_certificate(&cert, &key)?;
        let certfile = dir.join("tls.pem");
        let mut both = fs::read(&cert).context("reading the test certificate")?;
        both.extend(fs::read(&key).context("reading the test key")?);
        fs::write(&certfile, both).context("writing ejabberd's certificate file")?;

        let config = fill(
            EJABBERD_TEMPLATE,
            &[
                ("@HTTPS_PORT@", &https_port.port.to_string()),
                ("@C2S_PORT@", &c2s_port.port.to_string()),
                ("@API_PORT@", &api_port.port.to_string()),
                ("@DOMAIN@", DOMAIN),
                ("@CERTFILE@", &certfile.display().to_string()),
                ("@UPLOAD_DIR@", &dir.join("upload").display().to_string()),
                ("@LOG_LEVEL@", if debug_logs() { "debug" } else { "info" }),
            ],
        )?;
        let config_path = dir.join("ejabberd.yml");
        fs::write(&config_path, config).context("writing ejabberd.yml")?;
        // Erlang's resolver: `localhost` (the node's host part) is 127.0.0.1, nothing else.
        let inetrc = dir.join("inetrc");
        fs::write(&inetrc, "{host, {127,0,0,1}, [\"localhost\"]}.\n").context("writing inetrc")?;

        let erl = find_tool("erl").context("erl is not installed (run ./task test)")?;
        let spool = dir.join("spool");
        let mut command = Command::new(erl);
        command
            // A node name of its own: parallel test binaries each start an ejabberd.
            .arg("-sname")
            .arg(format!("lyrebird-{}@localhost", &random_token()[..12]))
            .args(["-setcookie", &random_token()])
            .args(["+K", "true", "+P", "250000"])
            .args(["-env", "ERL_CRASH_DUMP_BYTES", "0"])
            .args(["-erl_epmd_port", &dist_port.port.to_string()])
            .args(["-start_epmd", "false"])
            .args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"])
            .args(["-mnesia", "dir", &format!("\"{}\"", spool.display())])
            .args(["-s", "ejabberd", "-noinput"])
            .env("EJABBERD_CONFIG_PATH", &config_path)
            .env("EJABBERD_LOG_PATH", dir.join("ejabberd.log"))
            .env("ERL_CRASH_DUMP", dir.join("erl_crash.dump"))
            .env("ERL_INETRC", &inetrc)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_LIBS", ejabberd_libs()?)
            // Erlang writes a cookie file into $HOME when it has none; keep it in here.
            .env("HOME", dir.join("home"))
            .current_dir(&spool);
        // ejabberd's own log goes to ejabberd.log; the VM's output (start-up failures) here.
        let process = ServerProcess::new("ejabberd", command, dir.join("ejabberd.out"));
        Ok(Ejabberd {
            dir,
            https_port,
            c2s_port,
            api_port,
            _dist_port: dist_port,
            users,
            process,
        })
    }

    pub(super) fn spawn(&mut self) -> Result<()> {
        self.process.spawn()
    }

    pub(super) fn stop(&mut self) {
        self.process.stop();
    }

    pub(super) fn check_alive(&mut self) -> Result<()> {
        self.process.check_alive()
    }

    /// Waits until ejabberd answers its HTTP API, then registers the stack's users (only a
    /// started ejabberd can: accounts live in its Mnesia database).
    pub(super) fn wait_ready(&mut self) -> Result<()> {
        let port = self.api_port.port;
        let (out, log) = (self.process.log_path.clone(), self.log_path());
        let tails = || {
            format!(
                "ejabberd output:\n{}\nejabberd log tail:\n{}",
                log_tail(&out),
                log_tail(&log)
            )
        };
        self.process
            .wait_until(EJABBERD_START_TIMEOUT, || {
                match http_post_json(port, "/api/status", "{}")? {
                    (200, _) => Ok(()),
                    (status, body) => bail!("/api/status: HTTP {status} {body}"),
                }
            })
            .with_context(tails)?;
        for (user, password) in self.users.clone() {
            self.register(&user, &password).with_context(tails)?;
        }
        Ok(())
    }

    /// Creates an account through the HTTP API (`register`, as `ejabberdctl register` does).
    pub fn register(&self, user: &str, password: &str) -> Result<()> {
        validate_users(&[(user.to_owned(), password.to_owned())])?;
        let body = serde_json::json!({"user": user, "host": DOMAIN, "password": password});
        match http_post_json(self.api_port.port, "/api/register", &body.to_string())? {
            (200, _) => Ok(()),
            (status, answer) => bail!("registering {user}: HTTP {status} {answer}"),
        }
    }

    /// The HTTPS port: WebSocket at `/xmpp-websocket`, uploads at `/upload`.
    pub fn https_port(&self) -> u16 {
        self.https_port.port
    }

    /// Plain c2s TCP (RFC 6120) on 127.0.0.1; no STARTTLS is offered.
    pub fn c2s_port(&self) -> u16 {
        self.c2s_port.port
    }

    /// The self-signed certificate of the HTTPS listener (for `localhost` and 127.0.0.1).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("tls-cert.pem")
    }

    pub fn upload_domain(&self) -> String {
        format!("upload.{DOMAIN}")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// ejabberd's own log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ejabberd.log")
    }
}

impl XmppServer for Ejabberd {
    fn name(&self) -> &'static str {
        "ejabberd"
    }

    fn ws_url(&self) -> String {
        format!("wss://127.0.0.1:{}/xmpp-websocket", self.https_port.port)
    }

    fn ws_url_through(&self, relay: SocketAddr) -> String {
        format!("wss://{relay}/xmpp-websocket")
    }

    fn ws_port(&self) -> u16 {
        self.https_port.port
    }

    fn domain(&self) -> &str {
        DOMAIN
    }

    fn muc_domain(&self) -> String {
        format!("conference.{DOMAIN}")
    }

    fn trusted_certificate(&self) -> Option<PathBuf> {
        Some(self.certificate_path())
    }
}

/// Where Debian keeps ejabberd's Erlang applications: `ejabberdctl` sets `ERL_LIBS` to it
/// (`/usr/lib/<triplet>`), so it is read from there rather than guessed per architecture.
fn ejabberd_libs() -> Result<String> {
    let ctl = find_tool("ejabberdctl").context("ejabberd is not installed (run ./task test)")?;
    let script = fs::read_to_string(&ctl).with_context(|| format!("reading {}", ctl.display()))?;
    script
        .lines()
        .find_map(|line| line.trim().strip_prefix("ERL_LIBS="))
        .map(|value| value.trim_matches(['\'', '"']).to_owned())
        .filter(|value| !value.is_empty())
        .with_context(|| format!("no ERL_LIBS= line in {}", ctl.display()))
}

/// A bounded HTTP/1.1 POST of a JSON body; returns the status and the body.
fn http_post_json(port: u16, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = connect(port)?;
    // Registering writes to Mnesia, which takes seconds when several ejabberds start at once
    // on a busy machine; the connect stays bounded by the probe's timeout.
    stream.set_read_timeout(Some(API_ANSWER_TIMEOUT))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .context("sending the HTTP request")?;
    let mut response = String::new();
    // Bounded by the read timeout; the server closes after its answer.
    let _ = stream.read_to_string(&mut response);
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP response: {head:?}"))?;
    Ok((status, answer.to_owned()))
}
