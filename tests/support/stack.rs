//! The real-server test bed: Kamailio (SIP over WebSocket registrar/proxy and MSRP relay),
//! Prosody (XMPP over WebSocket) and coturn (STUN/TURN), each a plain foreground child
//! process on 127.0.0.1, configured from the templates in `tests/stack/` into a throwaway
//! directory.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use testkit::stack::{Stack, StackOptions};
//! let stack = Stack::start(StackOptions::default())?;
//! let ws = stack.kamailio().ws_url(); // ws://127.0.0.1:PORT, sub-protocol "sip"
//! # let _ = ws; Ok(()) }
//! ```
//!
//! Ports: every listening port is found by binding port 0 and then *leased* through an
//! exclusive lock on `$TMPDIR/lyrebird-ports/<port>.lock`, held for the life of the server
//! object (so `Kamailio::restart` gets its port back, and parallel test binaries never hand
//! out the same port twice). The kernel drops the lock if the process dies. coturn's relay
//! range is a random 100-port window above the Linux ephemeral range (61000-65535), leased
//! the same way, so relayed ports never collide with outgoing sockets.
//!
//! Readiness: `start` returns only when each server really answers (Kamailio: a WebSocket
//! handshake on both sub-protocol ports; Prosody: an HTTP response on `/xmpp-websocket`;
//! coturn: a STUN Binding success, RFC 8489 section 6). On failure the error carries the
//! tail of that server's log.
//!
//! Teardown: `Drop` sends SIGTERM to each server's process group, SIGKILL after
//! [`STOP_GRACE`], and removes the directory unless `LYREBIRD_KEEP_STACK` is set (then it
//! prints where the directory is). Set `LYREBIRD_STACK_DEBUG=1` for verbose server logs.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

mod ejabberd;
pub use ejabberd::Ejabberd;

/// How long `start` waits for a server to answer before giving up.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

const KAMAILIO_TEMPLATE: &str = include_str!("../stack/kamailio.cfg");
const PROSODY_TEMPLATE: &str = include_str!("../stack/prosody.cfg.lua");
const COTURN_TEMPLATE: &str = include_str!("../stack/turnserver.conf");

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
const DOMAIN: &str = "localhost";
const TURN_USER: &str = "lyrebird";
const TURN_PASSWORD: &str = "lyrebird-turn-secret";
/// The secret shared with coturn in [`TurnAuth::SharedSecret`] mode.
const TURN_SHARED_SECRET: &str = "lyrebird-turn-shared-secret";
/// Relay windows live above the Linux ephemeral port range (32768-60999).
const RELAY_WINDOW_BASE: u16 = 61_000;
const RELAY_WINDOW_SIZE: u16 = 100;
const RELAY_WINDOWS: u16 = 45;

/// The digest algorithm Kamailio challenges with (RFC 3261 22.4; RFC 8760 for SHA-256).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestAlgorithm {
    #[default]
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in the `algorithm=` challenge parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

/// Fixed ports, for the demo stack (`lyrebird-stack`); tests leave this `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedPorts {
    pub kamailio_ws: u16,
    pub kamailio_wss: u16,
    pub kamailio_msrp_ws: u16,
    pub kamailio_sip: u16,
    pub prosody_http: u16,
    pub prosody_c2s: u16,
    pub coturn: u16,
    /// First port of coturn's relay range; the range is [`RELAY_WINDOW_SIZE`] ports.
    pub coturn_relay_min: u16,
}

impl FixedPorts {
    /// The documented demo ports: Kamailio WS 8080 (+ WSS 8443, MSRP WS 8081, SIP 5060 UDP/TCP),
    /// Prosody HTTP 5280 (+ c2s 5222), coturn 3478 with relays 49160-49259.
    pub fn demo() -> FixedPorts {
        FixedPorts {
            kamailio_ws: 8080,
            kamailio_wss: 8443,
            kamailio_msrp_ws: 8081,
            kamailio_sip: 5060,
            prosody_http: 5280,
            prosody_c2s: 5222,
            coturn: 3478,
            coturn_relay_min: 49160,
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub kamailio: bool,
    pub prosody: bool,
    pub coturn: bool,
    /// ejabberd, the second XMPP server (the XMPP tests run against both).
    pub ejabberd: bool,
    pub digest_algorithm: DigestAlgorithm,
    /// (user, password) pairs, provisioned in Kamailio and registered in Prosody.
    pub users: Vec<(String, String)>,
    /// `None`: free ports chosen per instance (tests). `Some`: exactly these (demo).
    pub ports: Option<FixedPorts>,
    /// How coturn authenticates (it takes one scheme or the other, not both).
    pub turn_auth: TurnAuth,
}

/// coturn's authentication scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TurnAuth {
    /// The long-term credential mechanism (RFC 8489 §9.2) with one static user.
    #[default]
    LongTerm,
    /// Time-limited credentials from a shared secret (the TURN REST API, `use-auth-secret`).
    SharedSecret,
}

impl StackOptions {
    /// Kamailio alone (SIP over WebSocket and the MSRP relay), default users.
    pub fn kamailio_only() -> StackOptions {
        StackOptions {
            prosody: false,
            coturn: false,
            ..StackOptions::default()
        }
    }

    /// Prosody alone (XMPP over WebSocket), default users.
    pub fn prosody_only() -> StackOptions {
        StackOptions {
            kamailio: false,
            coturn: false,
            ..StackOptions::default()
        }
    }

    /// ejabberd alone (XMPP over secure WebSocket), default users.
    pub fn ejabberd_only() -> StackOptions {
        StackOptions {
            kamailio: false,
            prosody: false,
            coturn: false,
            ejabberd: true,
            ..StackOptions::default()
        }
    }
}

impl Default for StackOptions {
    /// All three servers, MD5, users alice/bob/carol/dave/erin with passwords `<user>-secret`.
    fn default() -> StackOptions {
        StackOptions {
            kamailio: true,
            prosody: true,
            coturn: true,
            ejabberd: false,
            digest_algorithm: DigestAlgorithm::Md5,
            users: ["alice", "bob", "carol", "dave", "erin"]
                .iter()
                .map(|user| ((*user).to_owned(), format!("{user}-secret")))
                .collect(),
            ports: None,
            turn_auth: TurnAuth::LongTerm,
        }
    }
}

/// Checks that the server binaries are installed, with a hint on how to get them.
pub fn require_tools() -> Result<()> {
    let missing: Vec<&str> = [
        "kamailio",
        "prosody",
        "prosodyctl",
        "turnserver",
        "erl",
        "ejabberdctl",
    ]
    .into_iter()
    .filter(|tool| find_tool(tool).is_none())
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "missing test servers: {} (run ./task test, which installs them)",
            missing.join(", ")
        )
    }
}

/// A running test bed. Dropping it stops every server and removes its directory.
pub struct Stack {
    dir: Option<tempfile::TempDir>,
    kamailio: Option<Kamailio>,
    prosody: Option<Prosody>,
    coturn: Option<Coturn>,
    ejabberd: Option<Ejabberd>,
}

/// What an XMPP test needs of its server, whichever it is: the XMPP tests take one and run
/// the same body against Prosody and against ejabberd.
pub trait XmppServer {
    /// "prosody" or "ejabberd", for messages.
    fn name(&self) -> &'static str;
    /// The RFC 7395 endpoint (`ws://` or `wss://`).
    fn ws_url(&self) -> String;
    /// The same endpoint reached through a relay listening on `relay`.
    fn ws_url_through(&self, relay: SocketAddr) -> String;
    /// The TCP port behind [`XmppServer::ws_url`] on 127.0.0.1 (what a relay forwards to).
    fn ws_port(&self) -> u16;
    fn domain(&self) -> &str;
    fn muc_domain(&self) -> String;
    /// The certificate a client must trust to reach a `wss://` endpoint, if it has one.
    fn trusted_certificate(&self) -> Option<PathBuf>;
}

impl Stack {
    /// Starts the servers selected in `options` and waits until each one answers.
    pub fn start(options: StackOptions) -> Result<Stack> {
        validate_users(&options.users)?;
        let dir = tempfile::Builder::new()
            .prefix("lyrebird-stack-")
            .tempdir()
            .context("creating the stack directory")?;
        let root = dir.path().to_owned();
        let mut stack = Stack {
            dir: Some(dir),
            kamailio: None,
            prosody: None,
            coturn: None,
            ejabberd: None,
        };
        let fixed = options.ports.as_ref();

        // Spawn the quick ones first, then do Prosody's slower account set-up while they
        // boot, then wait for all of them.
        if options.kamailio {
            let kamailio = stack.kamailio.insert(Kamailio::new(
                &root,
                fixed,
                options.digest_algorithm,
                options.users.clone(),
            )?);
            kamailio.spawn()?;
        }
        if options.coturn {
            stack
                .coturn
                .insert(Coturn::new(&root, fixed, options.turn_auth)?)
                .spawn()?;
        }
        if options.prosody {
            // With a coturn that takes time-limited credentials, Prosody offers it (XEP-0215).
            let turn = stack.coturn.as_ref().and_then(|c| {
                c.shared_secret()
                    .map(|secret| (c.port(), secret.to_owned()))
            });
            let prosody = stack.prosody.insert(Prosody::new(&root, fixed, turn)?);
            for (user, password) in &options.users {
                prosody.register(user, password)?;
            }
            prosody.spawn()?;
        }
        if options.ejabberd {
            stack
                .ejabberd
                .insert(Ejabberd::new(&root, options.users.clone())?)
                .spawn()?;
        }
        if let Some(kamailio) = stack.kamailio.as_mut() {
            kamailio.wait_ready()?;
        }
        if let Some(coturn) = stack.coturn.as_mut() {
            coturn.wait_ready()?;
        }
        if let Some(prosody) = stack.prosody.as_mut() {
            prosody.wait_ready()?;
        }
        if let Some(ejabberd) = stack.ejabberd.as_mut() {
            ejabberd.wait_ready()?;
        }
        tracing::debug!(dir = %root.display(), "test stack ready");
        Ok(stack)
    }

    /// The throwaway directory holding configs, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |dir| dir.path())
    }

    /// Kamailio. Panics if this stack was started without it (a mistake in the test).
    #[track_caller]
    pub fn kamailio(&self) -> &Kamailio {
        match &self.kamailio {
            Some(kamailio) => kamailio,
            None => panic!("this Stack was started with StackOptions::kamailio = false"),
        }
    }

    /// Kamailio, mutable (for `stop`, `start`, `restart`). Panics like [`Stack::kamailio`].
    #[track_caller]
    pub fn kamailio_mut(&mut self) -> &mut Kamailio {
        match &mut self.kamailio {
            Some(kamailio) => kamailio,
            None => panic!("this Stack was started with StackOptions::kamailio = false"),
        }
    }

    /// Prosody. Panics if this stack was started without it (a mistake in the test).
    #[track_caller]
    pub fn prosody(&self) -> &Prosody {
        match &self.prosody {
            Some(prosody) => prosody,
            None => panic!("this Stack was started with StackOptions::prosody = false"),
        }
    }

    /// Prosody, mutable (for `kill`, `start`). Panics like [`Stack::prosody`].
    #[track_caller]
    pub fn prosody_mut(&mut self) -> &mut Prosody {
        match &mut self.prosody {
            Some(prosody) => prosody,
            None => panic!("this Stack was started with StackOptions::prosody = false"),
        }
    }

    /// coturn. Panics if this stack was started without it (a mistake in the test).
    #[track_caller]
    pub fn coturn(&self) -> &Coturn {
        match &self.coturn {
            Some(coturn) => coturn,
            None => panic!("this Stack was started with StackOptions::coturn = false"),
        }
    }

    /// ejabberd. Panics if this stack was started without it (a mistake in the test).
    #[track_caller]
    pub fn ejabberd(&self) -> &Ejabberd {
        match &self.ejabberd {
            Some(ejabberd) => ejabberd,
            None => panic!("this Stack was started with StackOptions::ejabberd = false"),
        }
    }

    /// The stack's XMPP server: Prosody, or ejabberd when Prosody was not started. Panics
    /// if neither was (a mistake in the test).
    #[track_caller]
    pub fn xmpp(&self) -> &dyn XmppServer {
        match (&self.prosody, &self.ejabberd) {
            (Some(prosody), _) => prosody,
            (None, Some(ejabberd)) => ejabberd,
            (None, None) => panic!("this Stack was started without an XMPP server"),
        }
    }

    pub fn try_kamailio(&self) -> Option<&Kamailio> {
        self.kamailio.as_ref()
    }

    pub fn try_prosody(&self) -> Option<&Prosody> {
        self.prosody.as_ref()
    }

    pub fn try_coturn(&self) -> Option<&Coturn> {
        self.coturn.as_ref()
    }

    /// Fails with the log tail of the first server whose process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(kamailio) = self.kamailio.as_mut() {
            kamailio.process.check_alive()?;
        }
        if let Some(prosody) = self.prosody.as_mut() {
            prosody.process.check_alive()?;
        }
        if let Some(coturn) = self.coturn.as_mut() {
            coturn.process.check_alive()?;
        }
        if let Some(ejabberd) = self.ejabberd.as_mut() {
            ejabberd.check_alive()?;
        }
        Ok(())
    }

    /// Every endpoint, as JSON (what `lyrebird-stack` prints).
    pub fn endpoints(&self) -> serde_json::Value {
        let mut endpoints = serde_json::Map::new();
        endpoints.insert("dir".into(), self.dir().display().to_string().into());
        if let Some(k) = &self.kamailio {
            endpoints.insert(
                "kamailio".into(),
                serde_json::json!({
                    "ws_url": k.ws_url(),
                    "wss_url": k.wss_url(),
                    "wss_certificate": k.certificate_path(),
                    "msrp_ws_url": k.msrp_ws_url(),
                    "msrp_relay_uri": k.msrp_relay_uri(),
                    "sip_udp": format!("sip:127.0.0.1:{}", k.sip_port()),
                    "domain": k.domain(),
                    "digest_algorithm": k.digest_algorithm().as_str(),
                    "users": k.users().iter().map(|(u, p)| serde_json::json!({"user": u, "password": p})).collect::<Vec<_>>(),
                    "log": k.log_path().display().to_string(),
                }),
            );
        }
        if let Some(p) = &self.prosody {
            endpoints.insert(
                "prosody".into(),
                serde_json::json!({
                    "ws_url": p.ws_url(),
                    "bosh_url": p.bosh_url(),
                    "c2s": format!("127.0.0.1:{}", p.c2s_port()),
                    "domain": p.domain(),
                    "muc_domain": p.muc_domain(),
                    "upload_domain": p.upload_domain(),
                    "log": p.log_path().display().to_string(),
                }),
            );
        }
        if let Some(e) = &self.ejabberd {
            endpoints.insert(
                "ejabberd".into(),
                serde_json::json!({
                    "ws_url": e.ws_url(),
                    "certificate": e.certificate_path(),
                    "c2s": format!("127.0.0.1:{}", e.c2s_port()),
                    "domain": e.domain(),
                    "muc_domain": e.muc_domain(),
                    "upload_domain": e.upload_domain(),
                    "log": e.log_path().display().to_string(),
                }),
            );
        }
        if let Some(c) = &self.coturn {
            endpoints.insert(
                "coturn".into(),
                serde_json::json!({
                    "turn_url": c.turn_url(),
                    "turn_tcp_url": c.turn_tcp_url(),
                    "stun_url": c.stun_url(),
                    "username": c.username(),
                    "password": c.password(),
                    "realm": c.realm(),
                    "log": c.log_path().display().to_string(),
                }),
            );
        }
        serde_json::Value::Object(endpoints)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Servers first (they hold files in the directory), then the directory.
        if let Some(kamailio) = self.kamailio.as_mut() {
            kamailio.stop();
        }
        if let Some(prosody) = self.prosody.as_mut() {
            prosody.process.stop();
        }
        if let Some(coturn) = self.coturn.as_mut() {
            coturn.process.stop();
        }
        if let Some(ejabberd) = self.ejabberd.as_mut() {
            ejabberd.stop();
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var_os("LYREBIRD_KEEP_STACK").is_some() {
                let kept = dir.keep();
                eprintln!(
                    "LYREBIRD_KEEP_STACK: stack directory kept at {}",
                    kept.display()
                );
            } else if let Err(error) = dir.close() {
                eprintln!("warning: could not remove the stack directory: {error}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kamailio

/// Makes a self-signed certificate for `localhost` and 127.0.0.1 and its key, with the openssl
/// command (a Debian base package) so the test bed needs no crypto crate.
pub fn make_self_signed_certificate(cert: &Path, key: &Path) -> Result<()> {
    run_openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert),
    )
}

/// A private certificate authority (an `openssl ca` directory) that issues server certificates
/// which are wrong in one chosen way, for testing how a refused certificate is worded.
pub struct PrivateAuthority {
    dir: PathBuf,
}

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From now for two days.
    Current,
    /// January 2025 only: long expired.
    Expired,
}

impl PrivateAuthority {
    /// Creates the authority's self-signed root and its `openssl ca` database in `dir`.
    pub fn create(dir: &Path) -> Result<PrivateAuthority> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let authority = PrivateAuthority {
            dir: dir.to_path_buf(),
        };
        run_openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
                .args(["-subj", "/CN=Lyrebird test authority"])
                .arg("-keyout")
                .arg(dir.join("authority-key.pem"))
                .arg("-out")
                .arg(authority.certificate_path()),
        )?;
        fs::write(dir.join("index.txt"), "").context("writing the authority's index")?;
        let config = format!(
            "[ca]\ndefault_ca = test\n\n[test]\ndatabase = {dir}/index.txt\n\
             new_certs_dir = {dir}\nrand_serial = yes\ndefault_md = sha256\n\
             policy = any_name\ncopy_extensions = copy\nunique_subject = no\n\n\
             [any_name]\ncommonName = supplied\n",
            dir = dir.display()
        );
        fs::write(dir.join("authority.cnf"), config).context("writing authority.cnf")?;
        Ok(authority)
    }

    /// The authority's root certificate (what a person would add as trusted).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("authority-cert.pem")
    }

    /// Issues a certificate for `name` (also its only subject alternative name, a DNS name or
    /// an IP address) into `<dir>/<file_stem>-cert.pem` and `-key.pem`; returns both paths.
    pub fn issue(
        &self,
        file_stem: &str,
        name: &str,
        validity: Validity,
    ) -> Result<(PathBuf, PathBuf)> {
        let (cert, key, request) = (
            self.dir.join(format!("{file_stem}-cert.pem")),
            self.dir.join(format!("{file_stem}-key.pem")),
            self.dir.join(format!("{file_stem}.csr")),
        );
        let alt_name = if name.parse::<std::net::IpAddr>().is_ok() {
            format!("subjectAltName=IP:{name}")
        } else {
            format!("subjectAltName=DNS:{name}")
        };
        run_openssl(
            Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                ])
                .args([
                    "-nodes",
                    "-subj",
                    &format!("/CN={name}"),
                    "-addext",
                    &alt_name,
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&request),
        )?;
        let mut sign = Command::new("openssl");
        sign.args(["ca", "-batch", "-notext", "-config"])
            .arg(self.dir.join("authority.cnf"))
            .arg("-cert")
            .arg(self.certificate_path())
            .arg("-keyfile")
            .arg(self.dir.join("authority-key.pem"))
            .arg("-in")
            .arg(&request)
            .arg("-out")
            .arg(&cert);
        match validity {
            Validity::Current => sign.args(["-days", "2"]),
            Validity::Expired => sign
                .args(["-startdate", "20250101000000Z"])
                .args(["-enddate", "20250201000000Z"]),
        };
        run_openssl(&mut sign)?;
        Ok((cert, key))
    }
}

fn run_openssl(command: &mut Command) -> Result<()> {
    let output = command.output().context("running openssl")?;
    if !output.status.success() {
        bail!(
            "openssl failed ({:?}): {}",
            command.get_args().next(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A bare TLS server on 127.0.0.1 (OpenSSL's `s_server`) presenting a given certificate: the
/// TLS handshake is all a client meets before it refuses a certificate, so this stands for any
/// real server whose certificate is wrong.
pub struct TlsServer {
    /// Stopped when the server is dropped.
    _process: ServerProcess,
    port: PortLease,
}

impl TlsServer {
    pub fn start(dir: &Path, cert: &Path, key: &Path) -> Result<TlsServer> {
        let port = lease(None)?;
        let mut command = Command::new("openssl");
        command
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{}", port.port))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key);
        let log = dir.join(format!("tls-server-{}.log", port.port));
        let mut process = ServerProcess::new("openssl s_server", command, log);
        process.spawn()?;
        let address = SocketAddr::from((LOOPBACK, port.port));
        process.wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&address, Duration::from_millis(200))
                .map(drop)
                .context("connecting to s_server")
        })?;
        Ok(TlsServer {
            _process: process,
            port,
        })
    }

    /// `wss://127.0.0.1:PORT`.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.port.port)
    }
}

/// A self-signed certificate and key for the WSS listener, and Kamailio's tls.cfg.
fn write_self_signed_certificate(dir: &Path) -> Result<()> {
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    make_self_signed_certificate(&cert, &key)?;
    let tls_cfg = format!(
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
         private_key = {}\ncertificate = {}\n\n[client:default]\nverify_certificate = no\n\
         require_certificate = no\n",
        key.display(),
        cert.display()
    );
    fs::write(dir.join("tls.cfg"), tls_cfg).context("writing tls.cfg")
}

/// Kamailio 5.6: SIP over WebSocket (RFC 7118) registrar/proxy for domain `localhost`,
/// plain SIP on UDP/TCP, and an MSRP relay (RFC 4976) over WebSocket (RFC 7977).
pub struct Kamailio {
    dir: PathBuf,
    ws_port: PortLease,
    wss_port: PortLease,
    msrp_port: PortLease,
    sip_port: PortLease,
    digest_algorithm: DigestAlgorithm,
    users: Vec<(String, String)>,
    process: ServerProcess,
}

impl Kamailio {
    fn new(
        root: &Path,
        fixed: Option<&FixedPorts>,
        digest_algorithm: DigestAlgorithm,
        users: Vec<(String, String)>,
    ) -> Result<Kamailio> {
        let dir = root.join("kamailio");
        fs::create_dir_all(&dir).context("creating the Kamailio directory")?;
        let ws_port = lease(fixed.map(|f| f.kamailio_ws))?;
        let wss_port = lease(fixed.map(|f| f.kamailio_wss))?;
        write_self_signed_certificate(&dir)?;
        let msrp_port = lease(fixed.map(|f| f.kamailio_msrp_ws))?;
        let sip_port = lease(fixed.map(|f| f.kamailio_sip))?;

        let users_file = dir.join("users.cfg");
        let mut users_cfg = String::from("# generated by tests/support/stack.rs\n");
        for (user, password) in &users {
            let _ = writeln!(users_cfg, "$sht(users=>{user}) = \"{password}\";");
        }
        fs::write(&users_file, users_cfg).context("writing the Kamailio users file")?;

        let debug_level = if debug_logs() { "3" } else { "2" };
        let config = fill(
            KAMAILIO_TEMPLATE,
            &[
                ("@DIR@", &root.display().to_string()),
                ("@WS_PORT@", &ws_port.port.to_string()),
                ("@WSS_PORT@", &wss_port.port.to_string()),
                ("@MSRP_PORT@", &msrp_port.port.to_string()),
                ("@SIP_PORT@", &sip_port.port.to_string()),
                ("@DOMAIN@", DOMAIN),
                ("@DIGEST_ALGORITHM@", digest_algorithm.as_str()),
                // Kept across restart(): nonces issued before a restart stay valid.
                ("@AUTH_SECRET@", &random_token()),
                ("@USERS_FILE@", &users_file.display().to_string()),
                ("@DEBUG_LEVEL@", debug_level),
            ],
        )?;
        let config_path = dir.join("kamailio.cfg");
        fs::write(&config_path, config).context("writing kamailio.cfg")?;

        let binary =
            find_tool("kamailio").context("kamailio is not installed (run ./task test)")?;
        let mut command = Command::new(binary);
        command
            .arg("-DD") // stay in the foreground: we are the supervisor
            .arg("-E") // log to stderr, which goes to kamailio.log
            .arg("-f")
            .arg(&config_path)
            .arg("-Y") // runtime dir (pid, ctl socket) inside the instance dir
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            // Shared memory holds the relay's write queues (tcp_wq_max in kamailio.cfg) and
            // every transaction in flight: 96 MB ran out after six floods of 1 000 MESSAGEs to
            // receivers killed mid-flood ("cannot allocate shmem buffer", requests dropped
            // silently). It is mapped as used, so a larger bound costs nothing until then.
            .args(["-m", "256", "-M", "4", "-a", "no"])
            .current_dir(&dir);
        let process = ServerProcess::new("kamailio", command, dir.join("kamailio.log"));
        Ok(Kamailio {
            dir,
            ws_port,
            wss_port,
            msrp_port,
            sip_port,
            digest_algorithm,
            users,
            process,
        })
    }

    fn spawn(&mut self) -> Result<()> {
        self.process.spawn()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let (ws, wss, msrp) = (self.ws_port.port, self.wss_port.port, self.msrp_port.port);
        self.process.wait_until(START_TIMEOUT, || {
            websocket_handshake(ws, "/", "sip")?;
            // The TLS listener: accepting a connection is enough here; the handshake itself is
            // what the engine's TLS test checks.
            TcpStream::connect((Ipv4Addr::LOCALHOST, wss)).context("WSS port not accepting")?;
            websocket_handshake(msrp, "/", "msrp")
        })
    }

    /// `ws://127.0.0.1:PORT` for SIP over WebSocket (sub-protocol `sip`).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port.port)
    }

    /// `wss://127.0.0.1:PORT`: SIP over secure WebSocket, with the instance's self-signed
    /// certificate ([`Kamailio::certificate_path`]), which no system trusts.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.wss_port.port)
    }

    /// The PEM certificate the WSS listener presents (names `localhost` and `127.0.0.1`).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("tls-cert.pem")
    }

    /// `ws://127.0.0.1:PORT` for MSRP over WebSocket (sub-protocol `msrp`).
    pub fn msrp_ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.msrp_port.port)
    }

    /// The relay's own URI, the `To-Path` of an MSRP AUTH (RFC 4976 5.1).
    pub fn msrp_relay_uri(&self) -> String {
        format!("msrp://127.0.0.1:{};ws", self.msrp_port.port)
    }

    pub fn ws_port(&self) -> u16 {
        self.ws_port.port
    }

    pub fn msrp_ws_port(&self) -> u16 {
        self.msrp_port.port
    }

    /// Plain SIP over UDP and TCP on 127.0.0.1 (for native SIP peers).
    pub fn sip_port(&self) -> u16 {
        self.sip_port.port
    }

    /// The SIP domain and digest realm.
    pub fn domain(&self) -> &str {
        DOMAIN
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    /// The provisioned password of `user`, if that user exists.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, password)| password.as_str())
    }

    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.process.log_path
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops Kamailio (SIGTERM, SIGKILL after [`STOP_GRACE`]); every WebSocket drops and
    /// the in-memory location table is lost. Ports stay leased.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts Kamailio again on the same ports with the same users; no-op if running.
    pub fn start(&mut self) -> Result<()> {
        if self.process.is_running() {
            return Ok(());
        }
        self.process.spawn()?;
        self.wait_ready()
    }

    /// `stop` then `start`.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start()
    }

    /// Kills Kamailio at once (SIGKILL, a crash or a pulled plug: no socket is closed
    /// politely) and reaps it. Ports stay leased; [`Kamailio::start`] brings it back.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

// ---------------------------------------------------------------------------------------
// Prosody

/// Prosody 0.12: XMPP over WebSocket (RFC 7395) and BOSH for domain `localhost`, with MAM
/// (SQLite storage), carbons, stream management, MUC `conference.localhost` and HTTP file
/// upload `upload.localhost` (XEP-0363, URLs on `http://127.0.0.1:PORT/file_share/`).
pub struct Prosody {
    dir: PathBuf,
    config_path: PathBuf,
    http_port: PortLease,
    c2s_port: PortLease,
    process: ServerProcess,
    /// The folder of the SQLite database when it is not under `dir` (see [`database_dir`]).
    _database_dir: Option<tempfile::TempDir>,
}

impl Prosody {
    /// `turn`: a coturn's port and shared secret, offered to clients as STUN/TURN services.
    fn new(
        root: &Path,
        fixed: Option<&FixedPorts>,
        turn: Option<(u16, String)>,
    ) -> Result<Prosody> {
        let dir = root.join("prosody");
        for sub in ["data", "certs"] {
            fs::create_dir_all(dir.join(sub)).context("creating the Prosody directories")?;
        }
        let http_port = lease(fixed.map(|f| f.prosody_http))?;
        let c2s_port = lease(fixed.map(|f| f.prosody_c2s))?;
        let database_dir = database_dir()?;
        let database = database_dir
            .as_ref()
            .map_or_else(|| dir.join("data"), |d| d.path().to_owned())
            .join("prosody.sqlite");
        let turn_external = match &turn {
            Some((port, secret)) => format!(
                "turn_external_secret = \"{secret}\"\nturn_external_host = \"127.0.0.1\"\n\
                 turn_external_port = {port}\nturn_external_tcp = true"
            ),
            None => String::new(),
        };
        let config = fill(
            PROSODY_TEMPLATE,
            &[
                ("@DIR@", &root.display().to_string()),
                ("@HTTP_PORT@", &http_port.port.to_string()),
                ("@C2S_PORT@", &c2s_port.port.to_string()),
                ("@DOMAIN@", DOMAIN),
                ("@SQL_DATABASE@", &database.display().to_string()),
                ("@LOG_LEVEL@", if debug_logs() { "debug" } else { "info" }),
                (
                    "@TURN_MODULE@",
                    if turn.is_some() {
                        "\"turn_external\";"
                    } else {
                        ""
                    },
                ),
                ("@TURN_EXTERNAL@", &turn_external),
            ],
        )?;
        let config_path = dir.join("prosody.cfg.lua");
        fs::write(&config_path, config).context("writing prosody.cfg.lua")?;

        let binary = find_tool("prosody").context("prosody is not installed (run ./task test)")?;
        let mut command = Command::new(binary);
        // -F: foreground. Root is handled by run_as_root in the config (see the template).
        command
            .arg("-F")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir);
        // Prosody's own log goes to prosody.log; stdout/stderr (start-up notices) here.
        let process = ServerProcess::new("prosody", command, dir.join("prosody.out"));
        Ok(Prosody {
            dir,
            config_path,
            http_port,
            c2s_port,
            process,
            _database_dir: database_dir,
        })
    }

    fn spawn(&mut self) -> Result<()> {
        self.process.spawn()
    }

    /// Kills Prosody at once (SIGKILL: no stream is closed, no session kept for resumption)
    /// and reaps it. Its data (accounts, archives in SQLite) stays; ports stay leased.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts Prosody again on the same ports with the same data; no-op if running.
    pub fn start(&mut self) -> Result<()> {
        if self.process.is_running() {
            return Ok(());
        }
        self.process.spawn()?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let port = self.http_port.port;
        let log = self.log_path().to_owned();
        self.process
            .wait_until(START_TIMEOUT, || {
                http_get_status(port, "/xmpp-websocket").map(|_| ())
            })
            .with_context(|| format!("Prosody log tail:\n{}", log_tail(&log)))
    }

    /// `ws://127.0.0.1:PORT/xmpp-websocket` (RFC 7395, sub-protocol `xmpp`).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/xmpp-websocket", self.http_port.port)
    }

    /// `http://127.0.0.1:PORT/http-bind` (XEP-0124/0206).
    pub fn bosh_url(&self) -> String {
        format!("http://127.0.0.1:{}/http-bind", self.http_port.port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port.port
    }

    /// Plain c2s TCP (RFC 6120) on 127.0.0.1; no STARTTLS is offered.
    pub fn c2s_port(&self) -> u16 {
        self.c2s_port.port
    }

    pub fn domain(&self) -> &str {
        DOMAIN
    }

    pub fn muc_domain(&self) -> String {
        format!("conference.{DOMAIN}")
    }

    pub fn upload_domain(&self) -> String {
        format!("upload.{DOMAIN}")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Prosody's own log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("prosody.log")
    }

    /// Creates (or re-keys) an account with `prosodyctl register`; works while running.
    pub fn register(&self, user: &str, password: &str) -> Result<()> {
        validate_users(&[(user.to_owned(), password.to_owned())])?;
        let binary =
            find_tool("prosodyctl").context("prosodyctl is not installed (run ./task test)")?;
        let output = Command::new(binary)
            .arg("--config")
            .arg(&self.config_path)
            .args(["register", user, DOMAIN, password])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .context("running prosodyctl register")?;
        if !output.status.success() {
            bail!(
                "prosodyctl register {user} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl XmppServer for Prosody {
    fn name(&self) -> &'static str {
        "prosody"
    }

    fn ws_url(&self) -> String {
        Prosody::ws_url(self)
    }

    fn ws_url_through(&self, relay: SocketAddr) -> String {
        format!("ws://{relay}/xmpp-websocket")
    }

    fn ws_port(&self) -> u16 {
        self.http_port.port
    }

    fn domain(&self) -> &str {
        DOMAIN
    }

    fn muc_domain(&self) -> String {
        Prosody::muc_domain(self)
    }

    fn trusted_certificate(&self) -> Option<PathBuf> {
        None
    }
}

/// Whose archive [`Prosody::seed_archive`] fills.
#[derive(Debug, Clone, Copy)]
pub enum ArchiveOwner<'a> {
    /// A user's own archive (XEP-0313), by local part: chat messages from `from` to them.
    User(&'a str),
    /// A room's archive on the MUC service (XEP-0313 §6.1.2), by the room's local part:
    /// groupchat messages from `room@service/from`.
    Room(&'a str),
}

/// Old messages to put into an archive: `count` messages with bodies (and ids)
/// `"{prefix}{i:05}"` for i in 1..=count, archived one second apart from `first_at_unix`.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSeed<'a> {
    pub owner: ArchiveOwner<'a>,
    /// A user's local part for chats; a nickname for rooms.
    pub from: &'a str,
    pub count: u32,
    pub prefix: &'a str,
    pub first_at_unix: i64,
}

impl Prosody {
    /// Runs a line of Lua inside the running server (`prosodyctl shell`, mod_admin_shell),
    /// within `timeout`, and returns what it printed.
    pub fn shell_lua(&self, code: &str, timeout: Duration) -> Result<String> {
        let binary =
            find_tool("prosodyctl").context("prosodyctl is not installed (run ./task test)")?;
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&self.config_path)
            .arg("shell")
            .arg(format!(">{code}"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running prosodyctl shell")?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("prosodyctl shell did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        if let Some(mut stderr) = child.stderr.take() {
            stderr.read_to_string(&mut err)?;
        }
        if !status.success() || !err.trim().is_empty() {
            bail!("prosodyctl shell failed ({status}): {out}{err}");
        }
        Ok(out)
    }

    /// Puts old messages straight into an archive through Prosody's storage manager, as if
    /// they had been archived long ago (what a person's server holds after a holiday).
    pub fn seed_archive(&self, seed: &ArchiveSeed<'_>) -> Result<()> {
        let plain = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || " #-_.".contains(c))
        };
        if !plain(seed.prefix) || !plain(seed.from) {
            bail!("seed_archive takes plain ASCII prefixes and names");
        }
        let muc = self.muc_domain();
        let (host, store, owner, from, to, kind, with) = match seed.owner {
            ArchiveOwner::User(user) => (
                DOMAIN.to_owned(),
                "archive",
                user,
                format!("{}@{DOMAIN}/seed", seed.from),
                format!("{user}@{DOMAIN}"),
                "chat",
                format!("{}@{DOMAIN}", seed.from),
            ),
            ArchiveOwner::Room(room) => (
                muc.clone(),
                "muc_log",
                room,
                format!("{room}@{muc}/{}", seed.from),
                format!("{room}@{muc}"),
                "groupchat",
                "message<groupchat".to_owned(),
            ),
        };
        if !plain(owner) {
            bail!("seed_archive takes plain ASCII owners");
        }
        let code = format!(
            "local st = require 'util.stanza'; \
             local a = require 'core.storagemanager'.open('{host}', '{store}', 'archive'); \
             for i = 1, {count} do \
               local text = string.format('{prefix}%05d', i); \
               local m = st.message({{ from = '{from}', to = '{to}', type = '{kind}', id = text }}) \
                 :tag('body'):text(text):up(); \
               assert(a:append('{owner}', nil, m, {first} + i - 1, '{with}')); \
             end",
            count = seed.count,
            prefix = seed.prefix,
            first = seed.first_at_unix,
        );
        self.shell_lua(&code, Duration::from_secs(120))
            .map(|_| ())
            .context("seeding an archive")
    }
}

/// A folder on `/dev/shm` for Prosody's SQLite database, removed with the server; `None`
/// (the database stays in the stack directory) without a memory file system. Prosody commits
/// every archived message on its own; on a disk shared with builds those commits held a
/// chat flood back by minutes, which measured the disk rather than the client. A memory file
/// system outlives Prosody's restarts, which is all the tests need.
fn database_dir() -> Result<Option<tempfile::TempDir>> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() || std::env::var_os("LYREBIRD_KEEP_STACK").is_some() {
        return Ok(None);
    }
    tempfile::Builder::new()
        .prefix("lyrebird-prosody-")
        .tempdir_in(shm)
        .map(Some)
        .context("creating the Prosody database folder in /dev/shm")
}

// ---------------------------------------------------------------------------------------
// coturn

/// coturn 4.6: STUN/TURN on 127.0.0.1 (UDP and TCP), long-term credentials, loopback
/// peers allowed.
pub struct Coturn {
    auth: TurnAuth,
    port: PortLease,
    relay_window: PortLease,
    relay_max: u16,
    process: ServerProcess,
}

impl Coturn {
    fn new(root: &Path, fixed: Option<&FixedPorts>, auth: TurnAuth) -> Result<Coturn> {
        let dir = root.join("coturn");
        fs::create_dir_all(&dir).context("creating the coturn directory")?;
        let port = lease(fixed.map(|f| f.coturn))?;
        let relay_window = match fixed {
            Some(f) => PortLease::fixed(f.coturn_relay_min),
            None => lease_relay_window()?,
        };
        let relay_max = relay_window.port.saturating_add(RELAY_WINDOW_SIZE - 1);
        let config = fill(
            COTURN_TEMPLATE,
            &[
                ("@DIR@", &root.display().to_string()),
                ("@TURN_PORT@", &port.port.to_string()),
                ("@RELAY_MIN@", &relay_window.port.to_string()),
                ("@RELAY_MAX@", &relay_max.to_string()),
                (
                    "@TURN_AUTH@",
                    &match auth {
                        TurnAuth::LongTerm => {
                            format!("lt-cred-mech\nuser={TURN_USER}:{TURN_PASSWORD}")
                        }
                        TurnAuth::SharedSecret => {
                            format!("use-auth-secret\nstatic-auth-secret={TURN_SHARED_SECRET}")
                        }
                    },
                ),
                ("@DOMAIN@", DOMAIN),
            ],
        )?;
        let config_path = dir.join("turnserver.conf");
        fs::write(&config_path, config).context("writing turnserver.conf")?;

        let binary =
            find_tool("turnserver").context("turnserver is not installed (run ./task test)")?;
        let mut command = Command::new(binary);
        command.arg("-c").arg(&config_path).current_dir(&dir);
        if debug_logs() {
            command.arg("--verbose");
        }
        // coturn writes its real log to turnserver.log; its stdout/stderr go here.
        let process = ServerProcess::new("coturn", command, dir.join("turnserver.out"));
        Ok(Coturn {
            auth,
            port,
            relay_window,
            relay_max,
            process,
        })
    }

    fn spawn(&mut self) -> Result<()> {
        self.process.spawn()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let port = self.port.port;
        let log = self.log_path();
        self.process
            .wait_until(START_TIMEOUT, || stun_binding(port).map(|_| ()))
            .with_context(|| format!("coturn log tail:\n{}", log_tail(&log)))
    }

    /// `turn:127.0.0.1:PORT?transport=udp`
    pub fn turn_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port.port)
    }

    /// `turn:127.0.0.1:PORT?transport=tcp`
    pub fn turn_tcp_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=tcp", self.port.port)
    }

    /// `stun:127.0.0.1:PORT`
    pub fn stun_url(&self) -> String {
        format!("stun:127.0.0.1:{}", self.port.port)
    }

    pub fn port(&self) -> u16 {
        self.port.port
    }

    /// Inclusive range of relayed transport addresses this instance allocates from.
    pub fn relay_ports(&self) -> std::ops::RangeInclusive<u16> {
        self.relay_window.port..=self.relay_max
    }

    pub fn username(&self) -> &str {
        TURN_USER
    }

    pub fn password(&self) -> &str {
        TURN_PASSWORD
    }

    /// The secret shared with this instance, when it runs [`TurnAuth::SharedSecret`].
    pub fn shared_secret(&self) -> Option<&str> {
        (self.auth == TurnAuth::SharedSecret).then_some(TURN_SHARED_SECRET)
    }

    pub fn realm(&self) -> &str {
        DOMAIN
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path.with_file_name("turnserver.log")
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// One supervised server: its own process group, output appended to `log_path`.
struct ServerProcess {
    name: &'static str,
    command: Command,
    log_path: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    fn new(name: &'static str, command: Command, log_path: PathBuf) -> ServerProcess {
        ServerProcess {
            name,
            command,
            log_path,
            child: None,
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let child = self
            .command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: stop() signals the server and every process it forked.
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {}", self.name))?;
        tracing::debug!(server = self.name, pid = child.id(), "spawned");
        self.child = Some(child);
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited ({status}); log tail ({}):\n{}",
                self.name,
                self.log_path.display(),
                log_tail(&self.log_path)
            ),
            Err(error) => Err(anyhow!(error).context(format!("waiting for {}", self.name))),
        }
    }

    /// Polls `probe` until it succeeds, the process dies, or `timeout` passes.
    fn wait_until(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let error = match probe() {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(error.context(format!(
                    "{} did not answer within {timeout:?}; log tail ({}):\n{}",
                    self.name,
                    self.log_path.display(),
                    log_tail(&self.log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL to the whole process group, then reap: the server gets no chance to close
    /// anything.
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pid) = i32::try_from(child.id()) else {
            return;
        };
        let group = Pid::from_raw(pid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break false,
            }
        };
        if !exited {
            eprintln!(
                "{} ignored SIGTERM for {STOP_GRACE:?}; killing it",
                self.name
            );
        }
        // Also reaps forked workers that outlived their parent (ESRCH when none did).
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Ports

/// A port reserved for this process: an exclusive lock on `$TMPDIR/lyrebird-ports/N.lock`.
struct PortLease {
    port: u16,
    _lock: Option<File>,
}

impl PortLease {
    fn fixed(port: u16) -> PortLease {
        PortLease { port, _lock: None }
    }
}

fn lease(fixed: Option<u16>) -> Result<PortLease> {
    match fixed {
        Some(port) => Ok(PortLease::fixed(port)),
        None => lease_free_port(),
    }
}

fn lock_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("lyrebird-ports");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Takes the lock for `name` in the lock directory, or `None` if another holder has it.
fn try_lock(name: &str) -> Result<Option<File>> {
    let path = lock_dir()?.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(anyhow!(error).context(format!("locking {}", path.display())))
        }
    }
}

/// A port free for both TCP and UDP on 127.0.0.1, found by binding port 0.
fn lease_free_port() -> Result<PortLease> {
    for _ in 0..100 {
        let listener = TcpListener::bind((LOOPBACK, 0)).context("binding 127.0.0.1:0")?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        // Kamailio's SIP port and coturn's port are UDP as well as TCP.
        if UdpSocket::bind((LOOPBACK, port)).is_err() {
            continue;
        }
        if let Some(lock) = try_lock(&format!("{port}.lock"))? {
            return Ok(PortLease {
                port,
                _lock: Some(lock),
            });
        }
    }
    bail!("no free port found on 127.0.0.1 after 100 attempts")
}

/// A window of [`RELAY_WINDOW_SIZE`] ports above the ephemeral range for coturn relays.
fn lease_relay_window() -> Result<PortLease> {
    let start = (random_u64() % u64::from(RELAY_WINDOWS)) as u16;
    for offset in 0..RELAY_WINDOWS {
        let window = (start + offset) % RELAY_WINDOWS;
        let base = RELAY_WINDOW_BASE + window * RELAY_WINDOW_SIZE;
        if let Some(lock) = try_lock(&format!("relay-{base}.lock"))? {
            return Ok(PortLease {
                port: base,
                _lock: Some(lock),
            });
        }
    }
    bail!("all {RELAY_WINDOWS} coturn relay windows are in use")
}

// ---------------------------------------------------------------------------------------
// Probes (synchronous, bounded)

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

fn connect(port: u16) -> Result<TcpStream> {
    let address = SocketAddr::from((LOOPBACK, port));
    let stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    Ok(stream)
}

/// Reads an HTTP response head; returns the status code and the header lines.
fn read_http_head(stream: TcpStream) -> Result<(u16, Vec<String>)> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .context("reading the HTTP status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP response: {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader
            .read_line(&mut line)
            .context("reading HTTP headers")?
            == 0
        {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        headers.push(line.to_owned());
    }
    Ok((status, headers))
}

/// An RFC 6455 opening handshake offering `protocol`; Ok if the server switched to it.
fn websocket_handshake(port: u16, path: &str, protocol: &str) -> Result<()> {
    let mut stream = connect(port)?;
    // Any 16-byte nonce, base64: the probe does not check Sec-WebSocket-Accept.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .context("sending the WebSocket handshake")?;
    let (status, headers) = read_http_head(stream)?;
    let agreed = headers.iter().any(|h| {
        h.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("sec-websocket-protocol") && value.trim() == protocol
        })
    });
    if status != 101 || !agreed {
        bail!("WebSocket handshake on port {port} for {protocol:?}: HTTP {status}, {headers:?}");
    }
    Ok(())
}

fn http_get_status(port: u16, path: &str) -> Result<u16> {
    let mut stream = connect(port)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .context("sending the HTTP request")?;
    Ok(read_http_head(stream)?.0)
}

/// Sends a STUN Binding request (RFC 8489 6, no attributes) and checks for a success
/// response with the same transaction id; returns the response.
fn stun_binding(port: u16) -> Result<Vec<u8>> {
    const MAGIC_COOKIE: u32 = 0x2112_A442;
    let socket = UdpSocket::bind((LOOPBACK, 0)).context("binding a UDP probe socket")?;
    socket.set_read_timeout(Some(Duration::from_millis(250)))?;
    socket
        .connect((LOOPBACK, port))
        .context("connecting the UDP probe")?;
    let mut request = Vec::with_capacity(20);
    request.extend_from_slice(&0x0001u16.to_be_bytes()); // Binding request
    request.extend_from_slice(&0u16.to_be_bytes()); // no attributes
    request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    let transaction = random_u64().to_be_bytes();
    request.extend_from_slice(&transaction);
    request.extend_from_slice(&[0x4c, 0x59, 0x52, 0x42]); // "LYRB", rest of the 96-bit id
    socket.send(&request).context("sending the STUN request")?;
    let mut response = vec![0u8; 1500];
    let len = socket
        .recv(&mut response)
        .context("waiting for the STUN response")?;
    response.truncate(len);
    if len < 20 || response[0..2] != [0x01, 0x01] || response[8..20] != request[8..20] {
        bail!(
            "unexpected STUN response: {:02x?}",
            &response[..len.min(20)]
        );
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Replaces every placeholder and fails if any `@NAME@` is left (a template/code mismatch).
fn fill(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut text = template.to_owned();
    for (key, value) in values {
        text = text.replace(key, value);
    }
    let leftover: Vec<&str> = text
        .match_indices('@')
        .filter_map(|(at, _)| {
            let rest = &text[at + 1..];
            let end = rest.find('@')?;
            let name = &rest[..end];
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .then_some(name)
        })
        .collect();
    if !leftover.is_empty() {
        bail!("unfilled placeholders in a server template: {leftover:?}");
    }
    Ok(text)
}

/// User names go into a Kamailio htable, XMPP JIDs and command lines; passwords into a
/// quoted Kamailio string. Reject anything that could break out of those.
fn validate_users(users: &[(String, String)]) -> Result<()> {
    for (user, password) in users {
        let user_ok = !user.is_empty()
            && user.len() <= 64
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !user.starts_with('-');
        if !user_ok {
            bail!("user name {user:?} must be 1-64 of [A-Za-z0-9._-], not starting with '-'");
        }
        let password_ok = !password.is_empty()
            && password
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '$');
        if !password_ok {
            bail!("the password of {user:?} must be printable ASCII without \" \\ $ or spaces");
        }
    }
    Ok(())
}

/// `$PATH`, then the sbin directories a non-root `$PATH` lacks (kamailio is in /usr/sbin).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn debug_logs() -> bool {
    std::env::var_os("LYREBIRD_STACK_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
}

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

fn random_token() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// The last 40 lines of a log file (for error messages).
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    if tail.is_empty() {
        format!("(empty: {})", path.display())
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_rejects_leftover_placeholders() {
        assert!(fill("a @X@ b", &[("@X@", "1")]).is_ok());
        let error = fill("a @X@ @Y_Z@", &[("@X@", "1")]).unwrap_err();
        assert!(error.to_string().contains("Y_Z"), "{error}");
        // Kamailio's $sht(users=>...) and e-mail-like text are not placeholders.
        assert!(fill("user@localhost and @lower@", &[]).is_ok());
    }

    #[test]
    fn every_template_placeholder_is_known() {
        for (template, known) in [
            (
                KAMAILIO_TEMPLATE,
                &[
                    "DIR",
                    "WS_PORT",
                    "WSS_PORT",
                    "MSRP_PORT",
                    "SIP_PORT",
                    "DOMAIN",
                    "DIGEST_ALGORITHM",
                    "AUTH_SECRET",
                    "USERS_FILE",
                    "DEBUG_LEVEL",
                ][..],
            ),
            (
                PROSODY_TEMPLATE,
                &[
                    "DIR",
                    "HTTP_PORT",
                    "C2S_PORT",
                    "DOMAIN",
                    "LOG_LEVEL",
                    "SQL_DATABASE",
                    "TURN_MODULE",
                    "TURN_EXTERNAL",
                ][..],
            ),
            (
                ejabberd::EJABBERD_TEMPLATE,
                &[
                    "HTTPS_PORT",
                    "C2S_PORT",
                    "API_PORT",
                    "DOMAIN",
                    "CERTFILE",
                    "UPLOAD_DIR",
                    "LOG_LEVEL",
                ][..],
            ),
            (
                COTURN_TEMPLATE,
                &[
                    "DIR",
                    "TURN_PORT",
                    "RELAY_MIN",
                    "RELAY_MAX",
                    "TURN_AUTH",
                    "DOMAIN",
                ][..],
            ),
        ] {
            let values: Vec<(String, &str)> = known
                .iter()
                .map(|name| (format!("@{name}@"), "x"))
                .collect();
            let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            fill(template, &pairs).unwrap();
        }
    }

    #[test]
    fn users_that_could_break_a_config_are_rejected() {
        let ok = |u: &str, p: &str| validate_users(&[(u.to_owned(), p.to_owned())]).is_ok();
        assert!(ok("alice", "alice-secret"));
        assert!(!ok("", "x"));
        assert!(!ok("al ice", "x"));
        assert!(!ok("-alice", "x"));
        assert!(!ok("alice", "se\"cret"));
        assert!(!ok("alice", "a$var(x)"));
        assert!(!ok("alice", ""));
    }

    #[test]
    fn leased_ports_are_distinct_and_locked() {
        let a = lease_free_port().unwrap();
        let b = lease_free_port().unwrap();
        assert_ne!(a.port, b.port);
        // Our own second attempt at the same lock fails while `a` holds it.
        assert!(try_lock(&format!("{}.lock", a.port)).unwrap().is_none());
        drop((a, b));
        // Dropping a lock releases it. Checked on a name of its own: a released port's lock
        // may be taken at once by another test leasing ports in parallel.
        let name = format!("release-check-{}.lock", std::process::id());
        let held = try_lock(&name).unwrap();
        assert!(held.is_some());
        assert!(try_lock(&name).unwrap().is_none());
        drop(held);
        assert!(try_lock(&name).unwrap().is_some());
        let _ = std::fs::remove_file(lock_dir().unwrap().join(&name));
    }
}
