//! The JSON-line commands of an XMPP account (RFC 7395 WebSocket): presence, roster, chat,
//! rooms, shared files and the archive. `help::XMPP_COMMANDS` documents each; most are the
//! engine's own `XmppAction`s, the rest (`XmppCliCommand`) read history.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use lyrebird_engine::{
    AccountId, CallAudio, ChatOrigin, EngineEvent, EngineHandle, PasswordSource, XmppAccountConfig,
    XmppAction,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AudioArgs;
use crate::calls;
use crate::service::{Refusal, default_limit};
use crate::{bot_reply, print_line};

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
    pub(crate) reply_chats: bool,
    /// Answer every call from a roster contact at once (a stranger's call still waits for a
    /// command), with the audio options.
    #[arg(long)]
    auto_answer: bool,
    /// With --auto-answer: send back what the caller says (an echo test service).
    #[arg(long, requires = "auto_answer")]
    echo: bool,
    /// Neither take nor place calls, and do not offer them to contacts.
    #[arg(long, conflicts_with = "auto_answer")]
    no_calls: bool,
}

pub(crate) fn account_config(args: &XmppArgs, audio: &AudioArgs) -> Result<XmppAccountConfig> {
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
    config.calls = !args.no_calls;
    config.auto_answer = args.auto_answer.then(|| {
        if args.echo {
            CallAudio::echo()
        } else {
            audio.to_audio()
        }
    });
    Ok(config)
}

/// With `--reply-chats`: answers a live 1:1 message from someone else (not archive or carbon
/// copies, not rooms, not corrections) with "You said: <body>".
pub(crate) async fn reply_to_chat(engine: &EngineHandle, account: AccountId, event: &EngineEvent) {
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
        Ok(reply) => {
            json!({"event": "bot_reply", "ok": true, "account": account, "to": peer, "reply": reply})
        }
        Err(e) => {
            json!({"event": "bot_reply", "ok": false, "account": account, "to": peer, "detail": e.to_string()})
        }
    });
}

/// The tags of `XmppCliCommand` (a test checks they are the same), which tell a command for it
/// from an `XmppAction` before either is parsed, so each gets its own parse error.
pub(crate) const CLI_COMMANDS: &[&str] = &["room_history"];

/// XMPP commands the CLI carries out itself rather than the account: reading history.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum XmppCliCommand {
    /// A room's stored messages, oldest first.
    RoomHistory {
        room: String,
        #[serde(default = "default_limit")]
        limit: u32,
    },
}

/// Carries out one command for the XMPP account `account`; `request` is the whole JSON line.
pub(crate) async fn handle(
    engine: &EngineHandle,
    account: AccountId,
    audio: &AudioArgs,
    request: Value,
) -> Result<Value, Refusal> {
    if calls::takes(&request) {
        return calls::handle(engine, account, audio, request).await;
    }
    let cmd = request
        .get("cmd")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if CLI_COMMANDS.contains(&cmd) {
        let command = serde_json::from_value::<XmppCliCommand>(request)
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        return match command {
            XmppCliCommand::RoomHistory { room, limit } => Ok(engine
                .room_history(account, &room, limit)
                .await
                .map(|messages| json!({"messages": messages}))?),
        };
    }
    let action = serde_json::from_value::<XmppAction>(request)
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    let reply = engine.xmpp(account, action).await?;
    serde_json::to_value(reply).map_err(|e| Refusal::Invalid(format!("unprintable reply: {e}")))
}
