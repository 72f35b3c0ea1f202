//! `lyrebird-cli`: the Lyrebird engine without a window.
//!
//! Every engine event is printed on stdout as one JSON object per line, with `t_ms` (wall-clock
//! milliseconds since the UNIX epoch) added. Logs go to stderr. In the service modes (`run` for
//! one SIP account, `xmpp` for one XMPP account, `accounts` for any set of both), commands are
//! read from stdin as JSON lines, so scripts, bots and tests can drive live accounts; `help.rs`
//! documents them and `service.rs` carries them out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use lyrebird_engine::{
    AccountId, AccountState, AudioSink, AudioSource, CallAudio, CallId, CallState, Engine,
    EngineConfig, EngineEvent, EngineHandle, IceServer, MediaConfig, PasswordSource,
    SipAccountConfig, VideoConfig, VideoSourceKind,
};
use lyrebird_engine::{DtmfMethod, FileTransferConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

mod accounts;
mod calls;
mod help;
mod service;
mod sip;
mod xmpp;

#[derive(Parser, Debug)]
#[command(
    name = "lyrebird-cli",
    version,
    about = "Lyrebird headless: SIP and XMPP accounts, calls, chat and files from the command line",
    long_about = "Lyrebird headless: SIP accounts over WebSocket (RFC 7118) for WebRTC audio calls, \
SIP MESSAGEs, MSRP chat and files; XMPP accounts over WebSocket (RFC 7395) for presence, chat, rooms \
and shared files. Play a WAV into a call and record what arrives.\n\n\
Events are printed on stdout as JSON lines ({\"event\": ..., \"t_ms\": ...}); logs go to stderr \
(set the level with --log or RUST_LOG). In the run, xmpp and accounts modes, commands are JSON lines \
on stdin; they are listed below.\n\n\
Passwords are never taken on the command line: use --password-env, --password-file or --password-keyring.",
    after_help = "lyrebird-cli --help also lists the JSON-line commands of every account kind.",
    after_long_help = help::all_commands()
)]
struct Cli {
    /// History database file (SQLite). Without it, history is kept in memory for this run.
    #[arg(long, global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Call recordings go into this folder.
    #[arg(long, global = true, value_name = "DIR")]
    recordings: Option<PathBuf>,
    /// Log filter for stderr, e.g. `info`, `lyrebird_engine=debug,lyrebird_sip=trace`.
    #[arg(long, global = true, default_value = "warn", env = "RUST_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register one SIP account and stay online: print events, take commands on stdin,
    /// optionally answer calls.
    #[command(after_long_help = help::sip_commands())]
    Run {
        #[command(flatten)]
        sip: SipServiceArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        audio: AudioArgs,
        /// Exit after the first call has ended.
        #[arg(long)]
        exit_after_call: bool,
    },
    /// Log in to one XMPP account (RFC 7395 WebSocket) and stay online: chat, presence, rooms,
    /// files and calls (Jingle); events on stdout, commands on stdin.
    #[command(after_long_help = help::xmpp_commands())]
    Xmpp {
        #[command(flatten)]
        account: xmpp::XmppArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        audio: AudioArgs,
        /// Exit after the first call has ended.
        #[arg(long)]
        exit_after_call: bool,
    },
    /// Put any set of SIP and XMPP accounts online in one process, as the desktop app does:
    /// events on stdout, commands on stdin, each naming its account.
    #[command(after_long_help = help::accounts_mode())]
    Accounts {
        /// The accounts file (JSON): a list of accounts, each {"kind": "sip" | "xmpp", ...} with
        /// the long options of `run` or `xmpp` as fields (see below).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        audio: AudioArgs,
        /// Exit after the first call has ended.
        #[arg(long)]
        exit_after_call: bool,
    },
    /// Register, call a SIP URI, and hang up after --duration or when the other side does.
    Call {
        /// Who to call, e.g. sip:bob@example.com
        target: String,
        #[command(flatten)]
        account: AccountArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        audio: AudioArgs,
        /// Hang up after this many seconds of conversation.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Give up if the call is not answered within this many seconds.
        #[arg(long, default_value_t = 30.0)]
        answer_timeout: f64,
    },
    /// Send one SIP MESSAGE and wait for the server's verdict.
    Message {
        /// Recipient, e.g. sip:bob@example.com
        target: String,
        /// The text.
        text: String,
        #[command(flatten)]
        account: AccountArgs,
    },
    /// List the sound card's input and output devices (names usable with --input / --output).
    Devices,
    /// Read the history database (--db) and print it as JSON lines.
    History {
        #[command(subcommand)]
        what: HistoryCommand,
    },
}

#[derive(Subcommand, Debug)]
enum HistoryCommand {
    /// Recent calls, newest first (missed calls have "missed": true).
    Calls {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// File transfers, newest first (who, what, size, state, hash, path).
    Transfers {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Messages matching every word of QUERY.
    Search {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// SQLite's full consistency check of the file; exits 1 when it finds a problem.
    Check,
}

#[derive(Args, Debug, Clone)]
struct AccountArgs {
    /// SIP-over-WebSocket server, e.g. wss://sip.example.com/ws
    #[arg(long, value_name = "URL")]
    ws: String,
    /// Your address of record, e.g. sip:alice@example.com
    #[arg(long, value_name = "SIP-URI")]
    aor: String,
    /// Name shown to the people you call.
    #[arg(long)]
    display_name: Option<String>,
    /// Digest user name, when it differs from the user part of --aor.
    #[arg(long)]
    auth_user: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", group = "password")]
    password_env: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE", group = "password")]
    password_file: Option<PathBuf>,
    /// Read the password from the OS keyring (entry "lyrebird" / the AoR).
    #[arg(long, group = "password")]
    password_keyring: bool,
    /// Route every request through this SIP URI.
    #[arg(long, value_name = "SIP-URI")]
    outbound_proxy: Option<String>,
    /// Trust this PEM certificate for the server (a self-signed server), besides the system roots.
    #[arg(long, value_name = "PEM")]
    trust_cert: Option<PathBuf>,
    /// Registration lifetime to ask for, in seconds.
    #[arg(long, default_value_t = 600)]
    expires: u32,
    /// Refuse a second call with 486 Busy Here while one is answered (no call waiting).
    #[arg(long)]
    no_call_waiting: bool,
    /// How key presses are sent in calls: RFC 4733 telephone events, SIP INFO, or both.
    #[arg(long, value_enum, default_value_t = DtmfArg::Rfc4733)]
    dtmf: DtmfArg,
    /// A stable device UUID for SIP Outbound (+sip.instance).
    #[arg(long)]
    instance_id: Option<String>,
    /// MSRP relay WebSocket for file transfer (RFC 7977), e.g. wss://relay.example.com:443
    #[arg(long, value_name = "URL", requires = "msrp_relay_uri")]
    msrp_relay_ws: Option<String>,
    /// The relay's MSRP URI (the To-Path of AUTH), e.g. msrp://relay.example.com:443;ws
    #[arg(long, value_name = "MSRP-URI", requires = "msrp_relay_ws")]
    msrp_relay_uri: Option<String>,
    /// Received files land in this folder.
    #[arg(long, value_name = "DIR", default_value = "Downloads")]
    downloads: PathBuf,
    /// Accept every offered file at once, into --downloads.
    #[arg(long)]
    auto_accept_files: bool,
    /// MSRP relay user name, when it differs from the SIP account's.
    #[arg(long, value_name = "NAME")]
    msrp_relay_user: Option<String>,
    /// Environment variable holding the MSRP relay password (default: the SIP password).
    #[arg(long, value_name = "VAR")]
    msrp_relay_password_env: Option<String>,
    /// MSRP chunk body size in bytes (the relay bounds frame sizes).
    #[arg(long, value_name = "BYTES")]
    msrp_chunk_size: Option<usize>,
    /// What MSRP chat sessions accept, comma-separated in order of preference
    /// (default text/plain,message/cpim).
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    msrp_chat_accept: Vec<String>,
}

/// One SIP account as a service runs it: the account and what it does by itself.
#[derive(Args, Debug, Clone)]
struct SipServiceArgs {
    #[command(flatten)]
    account: AccountArgs,
    /// Answer every incoming call at once.
    #[arg(long)]
    auto_answer: bool,
    /// With --auto-answer: send back what the caller says (an echo test service).
    #[arg(long, requires = "auto_answer")]
    echo: bool,
    /// Answer every SIP MESSAGE with "You said: <text>" to its sender (a demo contact).
    #[arg(long)]
    reply_messages: bool,
}

#[derive(Args, Debug, Clone)]
struct MediaArgs {
    /// STUN or TURN server URL (repeatable), e.g. turn:turn.example.com:3478?transport=udp
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// TURN user name.
    #[arg(long)]
    turn_user: Option<String>,
    /// Environment variable holding the TURN password.
    #[arg(long, value_name = "VAR", conflicts_with = "turn_secret_env")]
    turn_password_env: Option<String>,
    /// Environment variable holding a secret shared with the TURN server (coturn
    /// `static-auth-secret`): each call derives time-limited credentials from it, with
    /// --turn-user as the user part.
    #[arg(long, value_name = "VAR")]
    turn_secret_env: Option<String>,
    /// Only use TURN relays for media (hides your addresses from the peer).
    #[arg(long)]
    relay_only: bool,
    /// Gather ICE candidates only on these local addresses (repeatable), e.g. 127.0.0.1
    #[arg(long = "bind", value_name = "IP")]
    bind: Vec<std::net::IpAddr>,
    /// Advertise host candidates as mDNS names (as browsers do) instead of IP addresses.
    #[arg(long)]
    mdns: bool,
    /// Play this WAV file, looped, to a peer you hold (instead of silence).
    #[arg(long, value_name = "WAV")]
    music_on_hold: Option<PathBuf>,
    /// Send video in calls: `test-pattern` (a moving picture with its frame counter stamped in)
    /// or `none` (default; a peer's video is still received).
    #[arg(long, value_name = "SOURCE", default_value = "none")]
    video: VideoChoice,
    /// Size of the video sent, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "640x360", value_parser = parse_video_size)]
    video_size: (u32, u32),
    /// Frames per second of the video sent.
    #[arg(long, value_name = "FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    video_fps: u32,
    /// Target bitrate of the video sent, kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 800, value_parser = clap::value_parser!(u32).range(30..=20_000))]
    video_bitrate: u32,
    /// Write the video received to this Y4M file.
    #[arg(long, value_name = "Y4M")]
    record_video: Option<PathBuf>,
    /// Keep every answered call talking: placing, answering or resuming a call does not put
    /// the others on hold (bots, load tests).
    #[arg(long)]
    no_hold_other_calls: bool,
}

/// What `--video` sends.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum VideoChoice {
    None,
    TestPattern,
}

/// `WIDTHxHEIGHT`, each even and within what VP8 and the test pattern take.
fn parse_video_size(text: &str) -> Result<(u32, u32), String> {
    let (width, height) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT"))?;
    let parse = |n: &str| n.trim().parse::<u32>().map_err(|e| format!("{n:?}: {e}"));
    let (width, height) = (parse(width)?, parse(height)?);
    if !(160..=3840).contains(&width) || !(90..=2160).contains(&height) {
        return Err(format!("{width}x{height} is outside 160x90 … 3840x2160"));
    }
    Ok((width, height))
}

#[derive(Args, Debug, Clone, Default)]
struct AudioArgs {
    /// Play this WAV file into calls instead of the microphone.
    #[arg(long, value_name = "WAV", group = "source")]
    play: Option<PathBuf>,
    /// With --play: start again at the end.
    #[arg(long, requires = "play")]
    loop_play: bool,
    /// Send a sine tone of this frequency (Hz) instead of the microphone.
    #[arg(long, value_name = "HZ", group = "source")]
    tone: Option<f32>,
    /// Send silence instead of the microphone.
    #[arg(long, group = "source")]
    silence: bool,
    /// Use this capture device (a name from `devices`) instead of the default microphone.
    #[arg(long, value_name = "NAME", group = "source")]
    microphone: Option<String>,
    /// Record what arrives to this WAV file (48 kHz mono) instead of the speakers.
    #[arg(long, value_name = "WAV", group = "sink")]
    record: Option<PathBuf>,
    /// Throw away what arrives.
    #[arg(long, group = "sink")]
    discard: bool,
    /// Use this playback device (a name from `devices`) instead of the default speaker.
    #[arg(long, value_name = "NAME", group = "sink")]
    speaker: Option<String>,
}

impl AudioArgs {
    fn to_audio(&self) -> CallAudio {
        let source = if let Some(path) = &self.play {
            AudioSource::Wav {
                path: path.clone(),
                looped: self.loop_play,
            }
        } else if let Some(frequency_hz) = self.tone {
            AudioSource::Tone {
                frequency_hz,
                amplitude: 0.3,
            }
        } else if self.silence {
            AudioSource::Silence
        } else {
            AudioSource::Device {
                name: self.microphone.clone(),
            }
        };
        let sink = if let Some(path) = &self.record {
            AudioSink::Wav { path: path.clone() }
        } else if self.discard {
            AudioSink::Discard
        } else {
            AudioSink::Device {
                name: self.speaker.clone(),
            }
        };
        CallAudio {
            source,
            sink,
            music_on_hold: None,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Prints one JSON line on stdout with the time added.
fn print_line(mut value: Value) {
    if let Value::Object(map) = &mut value {
        map.insert("t_ms".into(), json!(now_ms()));
    }
    println!("{value}");
}

fn print_event(event: &EngineEvent) {
    match serde_json::to_value(event) {
        Ok(value) => print_line(value),
        Err(e) => {
            print_line(json!({"event": "error", "detail": format!("unprintable event: {e}")}))
        }
    }
}

/// `--dtmf`: how key presses are sent.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DtmfArg {
    Rfc4733,
    Info,
    Both,
}

fn account_config(args: &AccountArgs) -> Result<SipAccountConfig> {
    let source = if let Some(var) = &args.password_env {
        PasswordSource::Env { var: var.clone() }
    } else if let Some(path) = &args.password_file {
        PasswordSource::File { path: path.clone() }
    } else if args.password_keyring {
        PasswordSource::Keyring {
            account: args.aor.clone(),
        }
    } else {
        bail!("no password: use --password-env VAR, --password-file FILE or --password-keyring");
    };
    let password = source.resolve()?;
    let mut config = SipAccountConfig::new(&args.ws, &args.aor, password);
    config.display_name = args.display_name.clone();
    config.auth_username = args.auth_user.clone();
    config.outbound_proxy = args.outbound_proxy.clone();
    config.trusted_certificate = args.trust_cert.clone();
    config.register_expires = args.expires;
    config.instance_id = args.instance_id.clone();
    config.call_waiting = !args.no_call_waiting;
    config.dtmf = match args.dtmf {
        DtmfArg::Rfc4733 => DtmfMethod::Rfc4733,
        DtmfArg::Info => DtmfMethod::Info,
        DtmfArg::Both => DtmfMethod::Both,
    };
    if let (Some(ws), Some(uri)) = (&args.msrp_relay_ws, &args.msrp_relay_uri) {
        let mut files = FileTransferConfig::new(ws, uri, &args.downloads);
        files.auto_accept = args.auto_accept_files;
        files.trusted_certificate = args.trust_cert.clone();
        files.relay_username = args.msrp_relay_user.clone();
        if let Some(var) = &args.msrp_relay_password_env {
            files.relay_password = Some(PasswordSource::Env { var: var.clone() }.resolve()?);
        }
        if let Some(size) = args.msrp_chunk_size {
            files.chunk_size = size.clamp(1, 64 * 1024);
        }
        if !args.msrp_chat_accept.is_empty() {
            files.chat_accept_types = args.msrp_chat_accept.clone();
        }
        config.file_transfer = Some(files);
    }
    Ok(config)
}

fn media_config(args: &MediaArgs) -> Result<MediaConfig> {
    let from_env = |var: &Option<String>| -> Result<Option<String>> {
        var.as_ref()
            .map(|var| {
                std::env::var(var).with_context(|| format!("environment variable {var} is not set"))
            })
            .transpose()
    };
    for url in args.ice_servers.iter().filter(|u| !u.starts_with("stun:")) {
        if let Some(problem) = lyrebird_engine::turn_url_problem(url) {
            anyhow::bail!("--ice-server {url}: {problem}");
        }
    }
    let credential = from_env(&args.turn_password_env)?;
    let shared_secret = from_env(&args.turn_secret_env)?;
    let ice_servers = args
        .ice_servers
        .iter()
        .map(|url| IceServer {
            urls: vec![url.clone()],
            username: args.turn_user.clone(),
            credential: credential.clone(),
            shared_secret: shared_secret.clone(),
        })
        .collect();
    let config = MediaConfig {
        ice_servers,
        relay_only: args.relay_only,
        bind_addrs: args.bind.clone(),
        mdns: args.mdns,
        music_on_hold: args.music_on_hold.clone(),
        video: VideoConfig {
            source: match args.video {
                VideoChoice::None => None,
                VideoChoice::TestPattern => Some(VideoSourceKind::TestPattern {
                    width: args.video_size.0,
                    height: args.video_size.1,
                    fps: args.video_fps,
                }),
            },
            bitrate_kbps: args.video_bitrate,
            record: args.record_video.clone(),
        },
        ..MediaConfig::default()
    };
    Ok(config)
}

fn start_engine(
    db: Option<PathBuf>,
    recordings: Option<PathBuf>,
    media: MediaConfig,
    hold_other_calls: bool,
) -> Result<(EngineHandle, UnboundedReceiver<EngineEvent>)> {
    let defaults = EngineConfig::default();
    let config = EngineConfig {
        database: db,
        media,
        recordings: recordings.unwrap_or(defaults.recordings.clone()),
        hold_other_calls,
        ..defaults
    };
    Ok(Engine::start(config)?)
}

/// Waits for the account's first registration outcome.
async fn await_registration(
    events: &mut UnboundedReceiver<EngineEvent>,
    account: AccountId,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("no registration answer within 20 s"))?
            .ok_or_else(|| anyhow!("the engine stopped"))?;
        print_event(&event);
        if let EngineEvent::AccountState { account: a, state } = &event {
            if *a != account {
                continue;
            }
            match state {
                AccountState::Registered { .. } => return Ok(()),
                AccountState::RegistrationFailed { status, reason } => {
                    bail!("registration failed: {status} {reason}")
                }
                AccountState::Untrusted { reason } => bail!("{reason}"),
                _ => {}
            }
        }
    }
}

/// The message of a command-line error without clap's "error: " prefix and usage lines, for
/// the JSON error line.
fn usage_error(e: &clap::Error) -> String {
    // For this kind clap renders the whole help, which is no error message.
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no command given (lyrebird-cli --help lists them)".into();
    }
    let text = e.render().to_string();
    let text = text.split("\n\nUsage:").next().unwrap_or_default();
    let text = text.trim();
    text.strip_prefix("error: ").unwrap_or(text).to_owned()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Scripts read stdout: a wrong command line is reported there as a JSON error too,
            // besides clap's own message (with its usage hint) on stderr. Help and version are
            // not errors and go to stdout as clap prints them.
            if e.use_stderr() {
                print_line(json!({"event": "error", "detail": usage_error(&e)}));
            }
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            print_line(json!({"event": "error", "detail": format!("{e:#}")}));
            eprintln!("lyrebird-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The engine configuration of a SIP account run as a service (`run`, or an accounts file).
fn sip_service(args: &SipServiceArgs, audio: &AudioArgs) -> Result<service::AccountSetup> {
    let mut config = account_config(&args.account)?;
    if args.auto_answer {
        config.auto_answer = Some(if args.echo {
            CallAudio::echo()
        } else {
            audio.to_audio()
        });
    }
    Ok(service::AccountSetup::Sip {
        config: Box::new(config),
        bot: args.reply_messages,
    })
}

/// Serves `setups` in one engine until the service ends, then stops the engine and prints what
/// stopping produced (hang-ups, unregistrations).
async fn serve_accounts(
    store: Store,
    media: MediaConfig,
    hold_other_calls: bool,
    setups: Vec<service::AccountSetup>,
    options: service::ServiceOptions,
) -> Result<ExitCode> {
    let (engine, mut events) = start_engine(store.db, store.recordings, media, hold_other_calls)?;
    let result = async {
        let accounts = service::start_accounts(&engine, setups).await?;
        service::serve(&engine, &mut events, &accounts, &options).await
    }
    .await;
    engine.shutdown().await;
    while let Ok(event) = events.try_recv() {
        print_event(&event);
    }
    result
}

/// Where an engine keeps what lasts: the history database and call recordings.
struct Store {
    db: Option<PathBuf>,
    recordings: Option<PathBuf>,
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let store = Store {
        db: cli.db,
        recordings: cli.recordings,
    };
    match cli.command {
        Command::Run {
            sip,
            media,
            audio,
            exit_after_call,
        } => {
            // Passwords are read before anything starts, so a missing one stops nothing.
            let setups = vec![sip_service(&sip, &audio)?];
            let hold_other_calls = !media.no_hold_other_calls;
            let media = media_config(&media)?;
            let options = service::ServiceOptions {
                audio,
                exit_after_call,
                exit_on_login_refused: false,
            };
            serve_accounts(store, media, hold_other_calls, setups, options).await
        }
        Command::Xmpp {
            account,
            media,
            audio,
            exit_after_call,
        } => {
            let setups = vec![service::AccountSetup::Xmpp {
                config: Box::new(xmpp::account_config(&account, &audio)?),
                bot: account.reply_chats,
            }];
            let hold_other_calls = !media.no_hold_other_calls;
            let media = media_config(&media)?;
            // With its one account refused there is nothing left to serve: the xmpp mode has
            // always exited then.
            let options = service::ServiceOptions {
                audio,
                exit_after_call,
                exit_on_login_refused: true,
            };
            serve_accounts(store, media, hold_other_calls, setups, options).await
        }
        Command::Accounts {
            file,
            media,
            audio,
            exit_after_call,
        } => {
            let setups = accounts::read_file(&file)?
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    match spec {
                        accounts::AccountSpec::Sip(args) => sip_service(args, &audio),
                        accounts::AccountSpec::Xmpp(args) => Ok(service::AccountSetup::Xmpp {
                            config: Box::new(xmpp::account_config(args, &audio)?),
                            bot: args.reply_chats,
                        }),
                    }
                    .with_context(|| format!("account {} of {}", i + 1, file.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let hold_other_calls = !media.no_hold_other_calls;
            let media = media_config(&media)?;
            let options = service::ServiceOptions {
                audio,
                exit_after_call,
                exit_on_login_refused: false,
            };
            serve_accounts(store, media, hold_other_calls, setups, options).await
        }
        Command::Call {
            target,
            account,
            media,
            audio,
            duration,
            answer_timeout,
        } => {
            let (engine, mut events) = start_engine(
                store.db,
                store.recordings,
                media_config(&media)?,
                !media.no_hold_other_calls,
            )?;
            let id = engine.add_sip_account(account_config(&account)?).await?;
            let result = async {
                await_registration(&mut events, id).await?;
                let call = engine.call(id, &target, audio.to_audio()).await?;
                follow_call(&engine, &mut events, call, answer_timeout, duration).await
            }
            .await;
            engine.shutdown().await;
            while let Ok(event) = events.try_recv() {
                print_event(&event);
            }
            result
        }
        Command::Message {
            target,
            text,
            account,
        } => {
            let (engine, mut events) =
                start_engine(store.db, store.recordings, MediaConfig::default(), true)?;
            let id = engine.add_sip_account(account_config(&account)?).await?;
            let result = async {
                await_registration(&mut events, id).await?;
                let message = engine.send_message(id, &target, &text).await?;
                loop {
                    let event = tokio::time::timeout(Duration::from_secs(40), events.recv())
                        .await
                        .map_err(|_| anyhow!("no answer for the message within 40 s"))?
                        .ok_or_else(|| anyhow!("the engine stopped"))?;
                    print_event(&event);
                    match event {
                        EngineEvent::MessageDelivered { message: m, .. } if m == message => {
                            return Ok(ExitCode::SUCCESS);
                        }
                        EngineEvent::MessageFailed {
                            message: m,
                            status,
                            reason,
                            ..
                        } if m == message => {
                            bail!("message not delivered: {status} {reason}")
                        }
                        _ => {}
                    }
                }
            }
            .await;
            engine.shutdown().await;
            result
        }
        Command::Devices => {
            let devices = lyrebird_engine::list_audio_devices()?;
            print_line(json!({"event": "audio_devices", "devices": devices}));
            Ok(ExitCode::SUCCESS)
        }
        Command::History { what } => {
            let db = store.db.ok_or_else(|| anyhow!("history needs --db FILE"))?;
            if !db.exists() {
                bail!("no history database at {}", db.display());
            }
            // Only reading: another Lyrebird may be writing this file right now, so what
            // looks unfinished may be under way.
            let (engine, _events) = Engine::start(EngineConfig {
                database: Some(db),
                settle_unfinished_transfers: false,
                ..EngineConfig::default()
            })?;
            match what {
                HistoryCommand::Calls { limit } => {
                    for call in engine.recent_calls(limit).await? {
                        print_line(json!({"event": "call_record", "call": call}));
                    }
                }
                HistoryCommand::Search { query, limit } => {
                    for hit in engine.search_messages(&query, limit).await? {
                        print_line(json!({"event": "search_hit", "hit": hit}));
                    }
                }
                HistoryCommand::Transfers { limit } => {
                    for transfer in engine.recent_transfers(limit).await? {
                        print_line(json!({"event": "transfer_record", "transfer": transfer}));
                    }
                }
                HistoryCommand::Check => {
                    let problems = engine.history_integrity_problems().await?;
                    let sound = problems.is_empty();
                    print_line(
                        json!({"event": "history_check", "sound": sound, "problems": problems}),
                    );
                    engine.shutdown().await;
                    return Ok(if sound {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    });
                }
            }
            engine.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Follows an outgoing call: waits for the answer, holds the call for `duration` seconds, hangs up.
async fn follow_call(
    engine: &EngineHandle,
    events: &mut UnboundedReceiver<EngineEvent>,
    call: CallId,
    answer_timeout: f64,
    duration: f64,
) -> Result<ExitCode> {
    let answer_deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(answer_timeout.max(0.0));
    let mut hangup_at: Option<tokio::time::Instant> = None;
    loop {
        let deadline = hangup_at.unwrap_or(answer_deadline);
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) if hangup_at.is_some() => {
                engine.hangup(call).await?;
                return wait_for_end(events, call).await;
            }
            Err(_) => {
                let _ = engine.hangup(call).await;
                let _ = wait_for_end(events, call).await;
                bail!("not answered within {answer_timeout} s");
            }
            Ok(None) => bail!("the engine stopped"),
            Ok(Some(event)) => {
                print_event(&event);
                if let EngineEvent::CallState { call: c, state, .. } = &event {
                    if *c != call {
                        continue;
                    }
                    match state {
                        CallState::Answered if hangup_at.is_none() => {
                            hangup_at = Some(
                                tokio::time::Instant::now()
                                    + Duration::from_secs_f64(duration.max(0.0)),
                            );
                        }
                        CallState::Ended { status, reason } => {
                            return if hangup_at.is_some() || status.is_none() {
                                Ok(ExitCode::SUCCESS)
                            } else {
                                Err(anyhow!("call failed: {reason}"))
                            };
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

async fn wait_for_end(
    events: &mut UnboundedReceiver<EngineEvent>,
    call: CallId,
) -> Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("the call did not end within 10 s of hanging up"))?
            .ok_or_else(|| anyhow!("the engine stopped"))?;
        print_event(&event);
        if matches!(&event, EngineEvent::CallState { call: c, state: CallState::Ended { .. }, .. } if *c == call)
        {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The prefix of a bot's replies. A message that already starts with it is not answered, so two
/// bots never reply to each other for ever.
pub(crate) const REPLY_PREFIX: &str = "You said: ";

/// The bot's answer to `body`, or `None` when it must stay silent (an empty text, or another
/// bot's reply).
pub(crate) fn bot_reply(body: &str) -> Option<String> {
    let text = body.trim();
    if text.is_empty() || body.starts_with(REPLY_PREFIX) {
        return None;
    }
    Some(format!("{REPLY_PREFIX}{body}"))
}
