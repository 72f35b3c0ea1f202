//! The accounts file of the `accounts` mode: a JSON list of SIP and XMPP accounts.
//!
//! Each account's fields are the long options of `run` (SIP) or `xmpp`, so an account is read by
//! the same clap definitions as those modes' command lines: one set of options, defaults, checks
//! (`--echo` needs `--auto-answer`, one password source) and documentation for both.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::Value;

use crate::SipServiceArgs;
use crate::xmpp::XmppArgs;

/// One account of the file.
#[derive(Debug)]
pub(crate) enum AccountSpec {
    Sip(Box<SipServiceArgs>),
    Xmpp(XmppArgs),
}

/// A SIP account's fields, read as `run`'s options.
#[derive(Parser, Debug)]
#[command(name = "sip", no_binary_name = true, disable_help_flag = true)]
struct SipFields {
    #[command(flatten)]
    sip: SipServiceArgs,
}

/// An XMPP account's fields, read as `xmpp`'s options.
#[derive(Parser, Debug)]
#[command(name = "xmpp", no_binary_name = true, disable_help_flag = true)]
struct XmppFields {
    #[command(flatten)]
    xmpp: XmppArgs,
}

/// Reads the accounts file at `path`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<AccountSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the accounts file {}", path.display()))?;
    parse(&text).with_context(|| format!("accounts file {}", path.display()))
}

/// Reads an accounts file's text.
pub(crate) fn parse(text: &str) -> Result<Vec<AccountSpec>> {
    let value: Value = serde_json::from_str(text).context("not JSON")?;
    let Value::Array(entries) = value else {
        bail!("not a JSON list of accounts");
    };
    if entries.is_empty() {
        bail!("no accounts in it");
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| account(entry).with_context(|| format!("account {}", i + 1)))
        .collect()
}

fn account(entry: &Value) -> Result<AccountSpec> {
    let Value::Object(fields) = entry else {
        bail!("not a JSON object");
    };
    let kind = fields
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no \"kind\" (\"sip\" or \"xmpp\")"))?;
    let mut args = Vec::new();
    for (key, value) in fields.iter().filter(|(key, _)| *key != "kind") {
        push_option(&mut args, key, value)?;
    }
    let usage = |e: clap::Error| anyhow!("{}", crate::usage_error(&e));
    match kind {
        "sip" => Ok(AccountSpec::Sip(
            SipFields::try_parse_from(args).map_err(usage)?.sip.into(),
        )),
        "xmpp" => Ok(AccountSpec::Xmpp(
            XmppFields::try_parse_from(args).map_err(usage)?.xmpp,
        )),
        other => bail!("\"kind\" is \"sip\" or \"xmpp\", not \"{other}\""),
    }
}

/// Appends the command-line form of one field: `--name` for `true`, `--name=value` for a
/// value (the `=` keeps a value that starts with a dash a value), once per item of a list.
fn push_option(args: &mut Vec<String>, key: &str, value: &Value) -> Result<()> {
    let name = key.trim_start_matches('-').replace('_', "-");
    if name.is_empty() {
        bail!("a field has no name");
    }
    let scalar = |value: &Value| match value {
        Value::String(text) => Ok(format!("--{name}={text}")),
        Value::Number(number) => Ok(format!("--{name}={number}")),
        other => Err(anyhow!(
            "\"{key}\" is a string, a number, true, or a list of strings or numbers, not {other}"
        )),
    };
    match value {
        Value::Null | Value::Bool(false) => {}
        Value::Bool(true) => args.push(format!("--{name}")),
        Value::Array(items) => {
            for item in items {
                args.push(scalar(item)?);
            }
        }
        other => args.push(scalar(other)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use anyhow::{Result, bail, ensure};

    use super::*;

    fn refusal(text: &str) -> Result<String> {
        match parse(text) {
            Ok(specs) => bail!("accepted: {specs:?}"),
            Err(e) => Ok(format!("{e:#}")),
        }
    }

    #[test]
    fn the_example_of_the_help_is_read() -> Result<()> {
        let specs = parse(crate::help::ACCOUNTS_FILE_EXAMPLE)?;
        let [AccountSpec::Sip(sip), AccountSpec::Xmpp(xmpp)] = specs.as_slice() else {
            bail!("not a SIP then an XMPP account: {specs:?}");
        };
        ensure!(sip.auto_answer && !sip.echo && !sip.reply_messages);
        ensure!(sip.account.aor == "sip:alice@example.com");
        ensure!(sip.account.password_env.as_deref() == Some("SIP_PASSWORD"));
        ensure!(sip.account.msrp_relay_uri.as_deref() == Some("msrp://relay.example.com:443;ws"));
        // Defaults are the command line's.
        ensure!(sip.account.expires == 600);
        ensure!(xmpp.reply_chats);
        Ok(())
    }

    #[test]
    fn fields_take_either_spelling_lists_and_dashed_values() -> Result<()> {
        let specs = parse(
            r#"[{"kind": "sip", "ws": "ws://127.0.0.1:8080", "aor": "sip:a@b",
                 "password-file": "pw", "display_name": "-dash-", "msrp_chat_accept": ["text/plain", "message/cpim"],
                 "expires": 60, "echo": false, "outbound_proxy": null}]"#,
        )?;
        let [AccountSpec::Sip(sip)] = specs.as_slice() else {
            bail!("{specs:?}");
        };
        ensure!(sip.account.display_name.as_deref() == Some("-dash-"));
        ensure!(sip.account.msrp_chat_accept == ["text/plain", "message/cpim"]);
        ensure!(sip.account.expires == 60 && sip.account.password_file.is_some());
        Ok(())
    }

    #[test]
    fn a_wrong_file_is_refused_with_the_reason() -> Result<()> {
        for (text, why) in [
            ("{", "not JSON"),
            ("{}", "not a JSON list"),
            ("[]", "no accounts"),
            (r#"[{"ws": "x"}]"#, "account 1: no \"kind\""),
            (r#"[{"kind": "irc"}]"#, "not \"irc\""),
            (
                r#"[{"kind": "xmpp", "ws": "x", "jid": "a@b", "wss": "y"}]"#,
                "account 1: unexpected argument '--wss'",
            ),
            (r#"[{"kind": "sip", "ws": "x"}]"#, "--aor"),
            (
                r#"[{"kind": "sip", "ws": "x", "aor": "sip:a@b", "echo": true}]"#,
                "--auto-answer",
            ),
            (
                r#"[{"kind": "sip", "ws": "x", "aor": "sip:a@b", "bind": "127.0.0.1"}]"#,
                "--bind",
            ),
            (
                r#"[{"kind": "sip", "ws": {"url": "x"}}]"#,
                "\"ws\" is a string",
            ),
            (r#"[{"kind": "xmpp", "help": true}]"#, "--help"),
        ] {
            let refusal = refusal(text)?;
            ensure!(refusal.contains(why), "{text}: {refusal}");
        }
        Ok(())
    }
}
