//! `lyrebird-cli xmpp`: an XMPP account online, events as JSON lines on stdout, commands as
//! JSON lines on stdin — the same shape as the SIP `run` mode.
//!
//! Commands (`{"cmd": ...}`, an optional `"id"` is echoed back in the result):
//!   {"cmd":"roster"}  {"cmd":"presence","show":"away","status":"lunch"}
//!   {"cmd":"add_contact","jid":"bob@example.com","name":"Bob"}  {"cmd":"approve","jid":"..."}
//!   {"cmd":"deny","jid":"..."}  {"cmd":"unsubscribe","jid":"..."}  {"cmd":"remove_contact","jid":"..."}
//!   {"cmd":"message","to":"bob@example.com","body":"hi"}  {"cmd":"correct","to":"...","message":"<id>","body":"..."}
//!   {"cmd":"chat_state","to":"...","state":"composing"}
//!   {"cmd":"join","room":"room@conference.example.com","nick":"alice"}  {"cmd":"leave","room":"..."}
//!   {"cmd":"room_message","room":"...","body":"hello all"}  (corrections in a room: "correct" with "room":true)
//!   {"cmd":"share_file","to":"bob@example.com","path":"photo.jpg"}  {"cmd":"download","url":"https://..."}
//!   {"cmd":"search","query":"words"}  {"cmd":"history","peer":"bob@example.com","limit":50}
//!   {"cmd":"room_history","room":"...","limit":50}  {"cmd":"quit"}

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use lyrebird_engine::{
    AccountId, AccountState, ChatOrigin, EngineEvent, EngineHandle, PasswordSource,
    XmppAccountConfig, XmppAction,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{bot_reply, print_event, print_line, print_result};

#[derive(Args, Debug, Clone)]
pub(crate) struct XmppArgs {
    /// XMPP-over-WebSocket endpoint (RFC 7395), e.g. wss://example.com/xmpp-websocket
    #[arg(long, value_name = "URL")]
    ws: String,
    /// Your bare JID, e.g. alice@example.com
    #[arg(long)]
    jid: String,
    /// Resource to ask for (the server picks one otherwise).
    #[arg(long)]
    resource: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", group = "password")]
    password_env: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE", group = "password")]
    password_file: Option<PathBuf>,
    /// Read the password from the OS keyring (entry "lyrebird" / the JID).
    #[arg(long, group = "password")]
    password_keyring: bool,
    /// Allow SASL PLAIN (only over wss:// or on a loopback test server).
    #[arg(long)]
    allow_plain: bool,
    /// Trust this PEM certificate for the server, besides the system roots.
    #[arg(long, value_name = "PEM")]
    trust_cert: Option<PathBuf>,
    /// Downloaded files land in this folder.
    #[arg(long, value_name = "DIR", default_value = "Downloads")]
    downloads: PathBuf,
    /// Approve every subscription request at once (and ask back).
    #[arg(long)]
    auto_approve: bool,
    /// Do not fetch the message archive on login.
    #[arg(long)]
    no_archive: bool,
    /// Archive page size (XEP-0059 max).
    #[arg(long, default_value_t = 500)]
    archive_page: u32,
    /// Do not send available presence on login.
    #[arg(long)]
    invisible: bool,
    /// Answer each incoming 1:1 chat message with "You said: <body>" (a demo contact).
    #[arg(long)]
    reply_chats: bool,
}

pub(crate) fn account_config(args: &XmppArgs) -> Result<XmppAccountConfig> {
    let source = if let Some(var) = &args.password_env {
        PasswordSource::Env { var: var.clone() }
    } else if let Some(path) = &args.password_file {
        PasswordSource::File { path: path.clone() }
    } else if args.password_keyring {
        PasswordSource::Keyring {
            account: args.jid.clone(),
        }
    } else {
        bail!("no password: use --password-env VAR, --password-file FILE or --password-keyring");
    };
    let mut config = XmppAccountConfig::new(&args.ws, &args.jid, source.resolve()?);
    config.resource = args.resource.clone();
    config.allow_plain = args.allow_plain;
    config.trusted_certificate = args.trust_cert.clone();
    config.download_dir = args.downloads.clone();
    config.auto_approve = args.auto_approve;
    config.archive_catch_up = !args.no_archive;
    config.archive_page_size = args.archive_page;
    config.initial_presence = !args.invisible;
    Ok(config)
}

pub(crate) async fn run(
    engine: &EngineHandle,
    events: &mut UnboundedReceiver<EngineEvent>,
    args: &XmppArgs,
) -> Result<ExitCode> {
    let account = engine.add_xmpp_account(account_config(args)?).await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(ExitCode::FAILURE) };
                print_event(&event);
                if let EngineEvent::AccountState { state: AccountState::AuthenticationFailed { .. }, .. } = &event {
                    return Ok(ExitCode::FAILURE);
                }
                if args.reply_chats {
                    reply_to_chat(engine, account, &event).await;
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => {
                    if handle_line(engine, account, &line).await {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Ok(None) => stdin_open = false,
                Err(e) => {
                    print_line(json!({"event": "error", "detail": format!("stdin: {e}")}));
                    stdin_open = false;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// With `--reply-chats`: answers a live 1:1 message from someone else (not archive or carbon
/// copies, not rooms, not corrections) with "You said: <body>".
async fn reply_to_chat(engine: &EngineHandle, account: AccountId, event: &EngineEvent) {
    let EngineEvent::ChatMessage {
        account: to,
        peer,
        room: false,
        outgoing: false,
        body,
        replaces: None,
        origin: ChatOrigin::Live,
        ..
    } = event
    else {
        return;
    };
    if *to != account {
        return;
    }
    let Some(reply) = bot_reply(body) else { return };
    let action = XmppAction::Message {
        to: peer.clone(),
        body: reply,
    };
    print_line(match engine.xmpp(account, action).await {
        Ok(reply) => json!({"event": "bot_reply", "ok": true, "to": peer, "reply": reply}),
        Err(e) => json!({"event": "bot_reply", "ok": false, "to": peer, "detail": e.to_string()}),
    });
}

/// Carries out one stdin command and prints its result. Returns true for `quit`.
async fn handle_line(engine: &EngineHandle, account: AccountId, line: &str) -> bool {
    let request: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            print_line(json!({"event": "result", "ok": false, "error": format!("not JSON: {e}")}));
            return false;
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let name = request.get("cmd").cloned().unwrap_or(Value::Null);
    let text = |key: &str| {
        request
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let limit = request
        .get("limit")
        .and_then(Value::as_u64)
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(50);
    let result: Result<Value, lyrebird_engine::EngineError> = match name.as_str() {
        Some("quit") => {
            print_line(json!({"event": "result", "id": id, "cmd": name, "ok": true}));
            return true;
        }
        Some("search") => engine
            .search_messages(&text("query"), limit)
            .await
            .map(|hits| json!({"hits": hits})),
        Some("history") => engine
            .conversation(account, &text("peer"), limit)
            .await
            .map(|messages| json!({"messages": messages})),
        Some("room_history") => engine
            .room_history(account, &text("room"), limit)
            .await
            .map(|messages| json!({"messages": messages})),
        _ => match serde_json::from_value::<XmppAction>(request.clone()) {
            Ok(action) => engine
                .xmpp(account, action)
                .await
                .map(|reply| serde_json::to_value(reply).unwrap_or(Value::Null)),
            Err(e) => {
                print_line(
                    json!({"event": "result", "id": id, "cmd": name, "ok": false, "error": e.to_string()}),
                );
                return false;
            }
        },
    };
    print_result(id, name, result);
    false
}
