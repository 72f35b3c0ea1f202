//! The JSON-line commands, each with an example, as `--help` shows them.
//!
//! These lists are the only description of the commands: the long help is built from them, the
//! dispatcher uses them to tell which account kinds take a command (so a SIP command sent to an
//! XMPP account is told apart from an unknown one), and the tests below check them against the
//! enums that parse the commands (`service::CommonCommand`, `sip::SipCommand`, and the engine's
//! `XmppAction` with `xmpp::XmppCliCommand`), so a command cannot be added without being
//! documented, nor documented without being carried out.

/// One JSON-line command.
pub(crate) struct CommandDoc {
    /// The `cmd` tag.
    pub(crate) cmd: &'static str,
    /// A complete command line as a person would type it.
    pub(crate) example: &'static str,
    /// What it does, in a few words.
    pub(crate) what: &'static str,
}

const fn doc(cmd: &'static str, example: &'static str, what: &'static str) -> CommandDoc {
    CommandDoc { cmd, example, what }
}

/// Commands every account kind takes (`search`, `ping` and `quit` need no account).
pub(crate) const COMMON_COMMANDS: &[CommandDoc] = &[
    doc(
        "history",
        r#"{"cmd":"history","peer":"bob@example.com","limit":50}"#,
        "the stored conversation with a peer (a SIP URI or a bare JID), oldest first",
    ),
    doc(
        "search",
        r#"{"cmd":"search","query":"lunch friday","limit":50}"#,
        "stored messages of every account matching every word (full-text), best first",
    ),
    doc(
        "ping",
        r#"{"cmd":"ping"}"#,
        "answered by the engine after every command before it, with the running accounts' ids: \
         a liveness check for scripts and monitors",
    ),
    doc(
        "quit",
        r#"{"cmd":"quit"}"#,
        "log out of every account and exit",
    ),
];

/// Commands for calls, which SIP and XMPP accounts both take (`calls::CallCommand`).
pub(crate) const CALL_COMMANDS: &[CommandDoc] = &[
    doc(
        "call",
        r#"{"cmd":"call","target":"sip:bob@example.com","play":"in.wav","loop":true,"record":"out.wav"}"#,
        "place a call: a SIP URI from a SIP account, a JID (xmpp:bob@example.com) from an XMPP \
         account (Jingle); play/loop/record/echo override the command line's audio; the result \
         has its id",
    ),
    doc(
        "answer",
        r#"{"cmd":"answer","call":1,"echo":false}"#,
        "answer an incoming call (takes play/loop/record/echo as call does)",
    ),
    doc(
        "reject",
        r#"{"cmd":"reject","call":1}"#,
        "refuse an incoming call",
    ),
    doc("hangup", r#"{"cmd":"hangup","call":1}"#, "end a call"),
    doc(
        "mute",
        r#"{"cmd":"mute","call":1,"muted":true}"#,
        "stop (or resume) sending our audio",
    ),
    doc(
        "dtmf",
        r#"{"cmd":"dtmf","call":1,"digit":"5"}"#,
        "press a key (0-9, *, #, A-D), sent as --dtmf says",
    ),
    doc(
        "stats",
        r#"{"cmd":"stats","call":1}"#,
        "the call's media statistics",
    ),
    doc(
        "hold",
        r#"{"cmd":"hold","call":1}"#,
        "put a call on hold (RFC 6337); call_hold events say who holds",
    ),
    doc(
        "resume",
        r#"{"cmd":"resume","call":1}"#,
        "take a call off hold",
    ),
    doc(
        "merge",
        r#"{"cmd":"merge","calls":[1,2,3]}"#,
        "mix calls into the local conference; conference events follow it",
    ),
    doc(
        "split",
        r#"{"cmd":"split","call":2}"#,
        "take a call out of the conference",
    ),
    doc(
        "leave_conference",
        r#"{"cmd":"leave_conference"}"#,
        "leave the conference: the other two are connected to each other (one account, two \
         others), any other conference ends for everyone",
    ),
    doc(
        "record",
        r#"{"cmd":"record","call":1,"on":true}"#,
        "start or stop recording a call into --recordings; call_recording events say the file",
    ),
];

/// Commands of a SIP account of its own: messages, transfers, files and MSRP chat.
pub(crate) const SIP_COMMANDS: &[CommandDoc] = &[
    doc(
        "transfer",
        r#"{"cmd":"transfer","call":1,"target":"sip:carol@example.com"}"#,
        "blind transfer (REFER); call_transfer events follow it",
    ),
    doc(
        "attended_transfer",
        r#"{"cmd":"attended_transfer","call":1,"to":2}"#,
        "connect call 1's party with call 2's (REFER with Replaces)",
    ),
    doc(
        "message",
        r#"{"cmd":"message","target":"sip:bob@example.com","body":"hello"}"#,
        "a SIP MESSAGE, or a message in the open MSRP chat session with that peer",
    ),
    doc(
        "open_chat",
        r#"{"cmd":"open_chat","target":"sip:bob@example.com"}"#,
        "open an MSRP chat session (RFC 4975); later messages to that peer go through it",
    ),
    doc(
        "send_file",
        r#"{"cmd":"send_file","target":"sip:bob@example.com","path":"photo.jpg"}"#,
        "offer a file over MSRP (needs msrp_relay_ws/msrp_relay_uri); the result has its transfer id",
    ),
    doc(
        "accept_file",
        r#"{"cmd":"accept_file","transfer":2,"folder":"in"}"#,
        "accept an offered file (into folder, else the downloads folder)",
    ),
    doc(
        "decline_file",
        r#"{"cmd":"decline_file","transfer":2}"#,
        "refuse an offered file",
    ),
    doc(
        "cancel_file",
        r#"{"cmd":"cancel_file","transfer":2}"#,
        "stop a file transfer either way",
    ),
];

pub(crate) const XMPP_COMMANDS: &[CommandDoc] = &[
    doc(
        "presence",
        r#"{"cmd":"presence","show":"away","status":"lunch","priority":5}"#,
        "our presence; show is chat, away, xa, dnd or absent (available)",
    ),
    doc(
        "directed_presence",
        r#"{"cmd":"directed_presence","to":"bob@example.com","show":"dnd","status":"busy"}"#,
        "presence to one JID only",
    ),
    doc(
        "roster",
        r#"{"cmd":"roster"}"#,
        "the contact list with everyone's presence",
    ),
    doc(
        "add_contact",
        r#"{"cmd":"add_contact","jid":"bob@example.com","name":"Bob","groups":["Friends"]}"#,
        "add a contact and ask to see their presence",
    ),
    doc(
        "rename_contact",
        r#"{"cmd":"rename_contact","jid":"bob@example.com","name":"Robert","groups":[]}"#,
        "rename a contact or change its groups",
    ),
    doc(
        "remove_contact",
        r#"{"cmd":"remove_contact","jid":"bob@example.com"}"#,
        "remove a contact and both subscriptions",
    ),
    doc(
        "approve",
        r#"{"cmd":"approve","jid":"bob@example.com"}"#,
        "let someone see our presence",
    ),
    doc(
        "deny",
        r#"{"cmd":"deny","jid":"bob@example.com"}"#,
        "refuse a subscription request, or revoke one",
    ),
    doc(
        "unsubscribe",
        r#"{"cmd":"unsubscribe","jid":"bob@example.com"}"#,
        "stop watching a contact's presence",
    ),
    doc(
        "message",
        r#"{"cmd":"message","to":"bob@example.com","body":"hi"}"#,
        "a 1:1 chat message; the result has its id",
    ),
    doc(
        "correct",
        r#"{"cmd":"correct","to":"bob@example.com","message":"<id>","body":"hi!","room":false}"#,
        "correct our earlier message (XEP-0308); room:true when to is a room",
    ),
    doc(
        "chat_state",
        r#"{"cmd":"chat_state","to":"bob@example.com","state":"composing"}"#,
        "active, composing, paused, inactive or gone (XEP-0085)",
    ),
    doc(
        "join",
        r#"{"cmd":"join","room":"team@conference.example.com","nick":"alice","history":20}"#,
        "join a group chat (XEP-0045) with up to history old messages",
    ),
    doc(
        "leave",
        r#"{"cmd":"leave","room":"team@conference.example.com"}"#,
        "leave a group chat",
    ),
    doc(
        "nick",
        r#"{"cmd":"nick","room":"team@conference.example.com","nick":"ally"}"#,
        "change our nickname in a room",
    ),
    doc(
        "room_message",
        r#"{"cmd":"room_message","room":"team@conference.example.com","body":"hello all"}"#,
        "a message to a room",
    ),
    doc(
        "room_history",
        r#"{"cmd":"room_history","room":"team@conference.example.com","limit":50}"#,
        "a room's stored messages, oldest first",
    ),
    doc(
        "share_file",
        r#"{"cmd":"share_file","to":"bob@example.com","path":"photo.jpg","room":false,"content_type":"image/jpeg"}"#,
        "upload a file (XEP-0363) and send its link; file_* events follow it",
    ),
    doc(
        "download",
        r#"{"cmd":"download","url":"https://example.com/upload/photo.jpg","dir":"in"}"#,
        "download a shared link (into dir, else the downloads folder)",
    ),
];

/// Whether `cmd` is one of `commands`.
pub(crate) fn lists(commands: &[CommandDoc], cmd: &str) -> bool {
    commands.iter().any(|doc| doc.cmd == cmd)
}

fn section(out: &mut String, title: &str, commands: &[CommandDoc]) {
    out.push_str(title);
    out.push('\n');
    for doc in commands {
        out.push_str(&format!("  {}\n      {}\n", doc.example, doc.what));
    }
}

const ANSWERS: &str = "Each command is answered with {\"event\":\"result\",\"cmd\":...,\"ok\":true|false,...}: \
the result's fields, or \"error\" (and \"detail\" when the engine refused it). An optional \"id\" field \
is echoed back. Call and transfer ids are the engine's, one series for every account.";

const ACCOUNT_FIELD: &str = "A command may name its account with \"account\": the account's id (the \
\"accounts\" event at start lists them) or its address (a SIP AoR with its sip: scheme, or a bare JID). \
It must when more than one configured account takes the command, e.g. message with a SIP and an XMPP \
account, or call with two accounts (a command on a call made already, like hold or hangup, needs none: \
call ids are the engine's):\n  \
{\"cmd\":\"message\",\"account\":\"alice@example.com\",\"to\":\"bob@example.com\",\"body\":\"hi\"}\n  \
{\"cmd\":\"message\",\"account\":\"sip:alice@example.com\",\"target\":\"sip:bob@example.com\",\"body\":\"hi\"}\n  \
{\"cmd\":\"call\",\"account\":\"alice@example.com\",\"target\":\"xmpp:bob@example.com\"}";

/// An accounts file, as `accounts --help` shows it (a test reads it as `accounts` does).
pub(crate) const ACCOUNTS_FILE_EXAMPLE: &str = r#"[
  {"kind": "sip", "ws": "wss://sip.example.com/ws", "aor": "sip:alice@example.com",
   "password_env": "SIP_PASSWORD", "auto_answer": true,
   "msrp_relay_ws": "wss://relay.example.com:443", "msrp_relay_uri": "msrp://relay.example.com:443;ws"},
  {"kind": "xmpp", "ws": "wss://example.com/xmpp-websocket", "jid": "alice@example.com",
   "password_env": "XMPP_PASSWORD", "resource": "bot", "reply_chats": true}
]"#;

const ACCOUNTS_FILE: &str = "The accounts file is a JSON list. Each account has \"kind\" (\"sip\" or \
\"xmpp\") and, as fields, the long options of `lyrebird-cli run` (the SIP account's options and \
--auto-answer, --echo, --reply-messages) or of `lyrebird-cli xmpp`, without the leading dashes (- or _ \
alike): true for a flag, a string or a number for a value, a list for a repeated option. Passwords stay \
out of it too: password_env, password_file or password_keyring. Account ids follow the file's order, \
from 1. --ice-server, --bind and the audio options apply to every SIP account. For example:";

/// Every command, for the top-level help.
pub(crate) fn all_commands() -> String {
    let mut out = String::from(
        "Commands are JSON lines on stdin: run (one SIP account), xmpp (one XMPP account) and \
         accounts (any set of both) take them.\n",
    );
    out.push_str(ACCOUNT_FIELD);
    out.push_str("\n\n");
    section(&mut out, "Any account:", COMMON_COMMANDS);
    section(&mut out, "\nCalls (SIP and XMPP accounts):", CALL_COMMANDS);
    section(
        &mut out,
        "\nSIP accounts (messages, transfers, files, MSRP chat):",
        SIP_COMMANDS,
    );
    section(
        &mut out,
        "\nXMPP accounts (presence, roster, chat, rooms, upload, archive):",
        XMPP_COMMANDS,
    );
    out.push('\n');
    out.push_str(ANSWERS);
    out
}

/// The commands of one account kind, for `run --help` and `xmpp --help`.
fn one_kind(title: &str, commands: &[CommandDoc]) -> String {
    let mut out = String::from("Commands are JSON lines on stdin.\n\n");
    section(&mut out, title, commands);
    section(&mut out, "\nCalls:", CALL_COMMANDS);
    section(&mut out, "\nAnd:", COMMON_COMMANDS);
    out.push('\n');
    out.push_str(ANSWERS);
    out
}

/// `run --help`.
pub(crate) fn sip_commands() -> String {
    one_kind(
        "The SIP account's commands (messages, transfers, files, MSRP chat):",
        SIP_COMMANDS,
    )
}

/// `xmpp --help`.
pub(crate) fn xmpp_commands() -> String {
    one_kind(
        "The XMPP account's commands (presence, roster, chat, rooms, upload, archive):",
        XMPP_COMMANDS,
    )
}

/// `accounts --help`: the file, then every command.
pub(crate) fn accounts_mode() -> String {
    format!(
        "{ACCOUNTS_FILE}\n{ACCOUNTS_FILE_EXAMPLE}\n\n{}",
        all_commands()
    )
}

#[cfg(test)]
mod tests {
    use anyhow::{Context, Result, bail, ensure};
    use clap::CommandFactory;
    use serde_json::{Value, json};

    use super::*;
    use crate::calls::CallCommand;
    use crate::service::CommonCommand;
    use crate::sip::SipCommand;
    use crate::xmpp::{CLI_COMMANDS, XmppCliCommand};
    use lyrebird_engine::XmppAction;

    /// The tags serde accepts for an internally tagged enum `T`, read from the error it gives
    /// for an unknown one ("unknown variant `x`, expected one of `a`, `b`" or "expected `a`").
    fn tags_of<T: serde::de::DeserializeOwned>() -> Result<Vec<String>> {
        let Err(e) = serde_json::from_value::<T>(json!({"cmd": "no such command"})) else {
            bail!("an unknown tag was accepted");
        };
        let message = e.to_string();
        let expected = message
            .split_once("expected")
            .map(|(_, list)| list)
            .with_context(|| format!("unexpected serde message: {message}"))?;
        let tags: Vec<String> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        ensure!(!tags.is_empty(), "no tags in: {message}");
        Ok(tags)
    }

    fn example_of(doc: &CommandDoc) -> Result<Value> {
        let value: Value = serde_json::from_str(doc.example)
            .with_context(|| format!("the example of {} is not JSON", doc.cmd))?;
        ensure!(
            value["cmd"] == doc.cmd,
            "the example of {} is tagged {}",
            doc.cmd,
            value["cmd"]
        );
        Ok(value)
    }

    /// `docs` documents exactly the commands `parse` (one enum or a choice of two) reads from
    /// `tags`, each once, and each example parses.
    fn documents_exactly(
        list: &str,
        docs: &[CommandDoc],
        tags: &[String],
        parse: impl Fn(Value) -> Result<()>,
    ) -> Result<()> {
        for tag in tags {
            ensure!(lists(docs, tag), "`{tag}` is not documented in {list}");
        }
        for (i, doc) in docs.iter().enumerate() {
            ensure!(
                tags.iter().any(|t| t == doc.cmd),
                "{list} documents {}, which nothing parses",
                doc.cmd
            );
            ensure!(
                !lists(&docs[..i], doc.cmd),
                "{list} documents {} twice",
                doc.cmd
            );
            parse(example_of(doc)?)
                .with_context(|| format!("the example of {} does not parse", doc.cmd))?;
        }
        Ok(())
    }

    #[test]
    fn every_sip_command_is_documented_with_an_example_that_parses() -> Result<()> {
        documents_exactly(
            "SIP_COMMANDS",
            SIP_COMMANDS,
            &tags_of::<SipCommand>()?,
            |value| Ok(serde_json::from_value::<SipCommand>(value).map(drop)?),
        )
    }

    #[test]
    fn every_call_command_is_documented_with_an_example_that_parses() -> Result<()> {
        documents_exactly(
            "CALL_COMMANDS",
            CALL_COMMANDS,
            &tags_of::<CallCommand>()?,
            |value| Ok(serde_json::from_value::<CallCommand>(value).map(drop)?),
        )?;
        for doc in CALL_COMMANDS {
            ensure!(
                !lists(SIP_COMMANDS, doc.cmd) && !lists(XMPP_COMMANDS, doc.cmd),
                "{} is both a call command and an account kind's own",
                doc.cmd
            );
        }
        Ok(())
    }

    #[test]
    fn every_xmpp_command_is_documented_with_an_example_that_parses() -> Result<()> {
        let actions = tags_of::<XmppAction>()?;
        let ours = tags_of::<XmppCliCommand>()?;
        ensure!(
            ours == CLI_COMMANDS,
            "xmpp::CLI_COMMANDS {CLI_COMMANDS:?} are not XmppCliCommand's tags {ours:?}"
        );
        ensure!(
            !ours.iter().any(|t| actions.contains(t)),
            "the CLI's own XMPP commands hide engine actions"
        );
        let both: Vec<String> = actions.iter().chain(&ours).cloned().collect();
        documents_exactly("XMPP_COMMANDS", XMPP_COMMANDS, &both, |value| {
            if CLI_COMMANDS.contains(&value["cmd"].as_str().unwrap_or_default()) {
                serde_json::from_value::<XmppCliCommand>(value)?;
            } else {
                serde_json::from_value::<XmppAction>(value)?;
            }
            Ok(())
        })
    }

    #[test]
    fn every_common_command_is_documented_and_no_account_kind_shadows_one() -> Result<()> {
        documents_exactly(
            "COMMON_COMMANDS",
            COMMON_COMMANDS,
            &tags_of::<CommonCommand>()?,
            |value| Ok(serde_json::from_value::<CommonCommand>(value).map(drop)?),
        )?;
        for doc in COMMON_COMMANDS {
            ensure!(
                !lists(SIP_COMMANDS, doc.cmd)
                    && !lists(XMPP_COMMANDS, doc.cmd)
                    && !lists(CALL_COMMANDS, doc.cmd),
                "{} is both common and an account kind's own",
                doc.cmd
            );
        }
        Ok(())
    }

    #[test]
    fn call_controls_are_documented() -> Result<()> {
        for cmd in [
            "hold",
            "resume",
            "transfer",
            "attended_transfer",
            "dtmf",
            "merge",
            "split",
            "leave_conference",
            "record",
        ] {
            ensure!(
                lists(SIP_COMMANDS, cmd) || lists(CALL_COMMANDS, cmd),
                "{cmd} is not in --help"
            );
        }
        Ok(())
    }

    #[test]
    fn long_help_shows_every_example() -> Result<()> {
        let mut cli = crate::Cli::command();
        let top = cli.render_long_help().to_string();
        for doc in COMMON_COMMANDS
            .iter()
            .chain(CALL_COMMANDS)
            .chain(SIP_COMMANDS)
            .chain(XMPP_COMMANDS)
        {
            ensure!(top.contains(doc.example), "--help lacks {}", doc.example);
        }
        let modes: [(&str, &[&[CommandDoc]]); 3] = [
            ("run", &[CALL_COMMANDS, SIP_COMMANDS, COMMON_COMMANDS]),
            ("xmpp", &[CALL_COMMANDS, XMPP_COMMANDS, COMMON_COMMANDS]),
            (
                "accounts",
                &[CALL_COMMANDS, SIP_COMMANDS, XMPP_COMMANDS, COMMON_COMMANDS],
            ),
        ];
        for (mode, lists) in modes {
            let sub = cli
                .find_subcommand_mut(mode)
                .with_context(|| format!("no {mode} mode"))?;
            let help = sub.render_long_help().to_string();
            for doc in lists.iter().copied().flatten() {
                ensure!(
                    help.contains(doc.example),
                    "{mode} --help lacks {}",
                    doc.example
                );
            }
            if mode == "accounts" {
                ensure!(
                    help.contains(ACCOUNTS_FILE_EXAMPLE),
                    "accounts --help lacks the file"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_command_line_is_well_formed() {
        // clap checks its own definition (conflicting names, `requires` of a missing argument)
        // only here, and would otherwise panic on the first command line that meets the fault.
        crate::Cli::command().debug_assert();
    }
}
