//! `lyrebird-stack`: the test bed's servers on fixed, documented loopback ports, for the
//! demo and for trying clients by hand. Prints every endpoint as one JSON line on stdout,
//! then runs until SIGINT/SIGTERM (or until a server dies) and stops everything.
//!
//! Default ports (`./task demo`, `./task stack`): Kamailio SIP over WebSocket 8080, MSRP
//! over WebSocket 8081, plain SIP 5060 (UDP/TCP); Prosody HTTP/WebSocket 5280, c2s 5222;
//! coturn 3478 with relays 49160-49259. All on 127.0.0.1.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use testkit::stack::{DigestAlgorithm, FixedPorts, Stack, StackOptions};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "lyrebird-stack",
    about = "Kamailio + Prosody + coturn on 127.0.0.1 for Lyrebird"
)]
struct Args {
    /// Kamailio SIP over WebSocket port (sub-protocol "sip").
    #[arg(long, default_value_t = FixedPorts::demo().kamailio_ws)]
    kamailio_ws_port: u16,
    /// Kamailio SIP over secure WebSocket port (self-signed certificate, see the endpoints JSON).
    #[arg(long, default_value_t = FixedPorts::demo().kamailio_wss)]
    kamailio_wss_port: u16,
    /// Kamailio MSRP over WebSocket port (sub-protocol "msrp", RFC 4976 relay).
    #[arg(long, default_value_t = FixedPorts::demo().kamailio_msrp_ws)]
    kamailio_msrp_port: u16,
    /// Kamailio plain SIP port (UDP and TCP).
    #[arg(long, default_value_t = FixedPorts::demo().kamailio_sip)]
    kamailio_sip_port: u16,
    /// Prosody HTTP port (WebSocket at /xmpp-websocket, BOSH, uploads).
    #[arg(long, default_value_t = FixedPorts::demo().prosody_http)]
    prosody_http_port: u16,
    /// Prosody c2s port.
    #[arg(long, default_value_t = FixedPorts::demo().prosody_c2s)]
    prosody_c2s_port: u16,
    /// coturn STUN/TURN port (UDP and TCP).
    #[arg(long, default_value_t = FixedPorts::demo().coturn)]
    coturn_port: u16,
    /// First port of coturn's 100-port relay range.
    #[arg(long, default_value_t = FixedPorts::demo().coturn_relay_min)]
    coturn_relay_min: u16,
    /// Users as user:password, comma separated (default: alice..erin with "<user>-secret").
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Challenge with SHA-256 digests (RFC 8760) instead of MD5.
    #[arg(long)]
    sha256: bool,
    #[arg(long)]
    no_kamailio: bool,
    #[arg(long)]
    no_prosody: bool,
    #[arg(long)]
    no_coturn: bool,
}

fn parse_users(specs: &[String]) -> Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some((user, password)) => Ok((user.to_owned(), password.to_owned())),
            None => bail!("--users entry {spec:?} is not user:password"),
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    testkit::stack::require_tools()?;
    let mut options = StackOptions {
        kamailio: !args.no_kamailio,
        prosody: !args.no_prosody,
        coturn: !args.no_coturn,
        digest_algorithm: if args.sha256 {
            DigestAlgorithm::Sha256
        } else {
            DigestAlgorithm::Md5
        },
        ports: Some(FixedPorts {
            kamailio_ws: args.kamailio_ws_port,
            kamailio_wss: args.kamailio_wss_port,
            kamailio_msrp_ws: args.kamailio_msrp_port,
            kamailio_sip: args.kamailio_sip_port,
            prosody_http: args.prosody_http_port,
            prosody_c2s: args.prosody_c2s_port,
            coturn: args.coturn_port,
            coturn_relay_min: args.coturn_relay_min,
        }),
        ..StackOptions::default()
    };
    if !args.users.is_empty() {
        options.users = parse_users(&args.users)?;
    }

    let mut stack = tokio::task::spawn_blocking(move || Stack::start(options))
        .await
        .context("the start-up task failed")??;
    println!("{}", stack.endpoints());

    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = health.tick() => {
                if let Err(error) = stack.check_alive() {
                    break Err(error);
                }
            }
        }
    };
    eprintln!("lyrebird-stack: stopping");
    tokio::task::spawn_blocking(move || drop(stack))
        .await
        .context("the stop task failed")?;
    outcome
}
