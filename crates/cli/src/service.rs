//! The one loop behind `run`, `xmpp` and `accounts`: any set of SIP and XMPP accounts online in
//! one engine, as the desktop holds them; every engine event printed as a JSON line, and each
//! JSON-line command on stdin carried out by the account it names.

use std::process::ExitCode;

use anyhow::Result;
use lyrebird_engine::{
    AccountId, AccountState, CallState, EngineError, EngineEvent, EngineHandle, SipAccountConfig,
    XmppAccountConfig,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::help::{self, CALL_COMMANDS, COMMON_COMMANDS, SIP_COMMANDS, XMPP_COMMANDS};
use crate::{AudioArgs, bot_reply, print_event, print_line, sip, xmpp};

/// What protocol an account speaks, which decides the commands it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    Sip,
    Xmpp,
}

impl AccountKind {
    fn name(self) -> &'static str {
        match self {
            AccountKind::Sip => "SIP",
            AccountKind::Xmpp => "XMPP",
        }
    }

    /// Whether an account of this kind carries out `cmd`.
    fn takes(self, cmd: &str) -> bool {
        let own = match self {
            AccountKind::Sip => SIP_COMMANDS,
            AccountKind::Xmpp => XMPP_COMMANDS,
        };
        help::lists(own, cmd)
            || help::lists(CALL_COMMANDS, cmd)
            || help::lists(COMMON_COMMANDS, cmd)
    }
}

/// An account to put online: its engine configuration (password already read) and whether it
/// answers messages by itself.
pub(crate) enum AccountSetup {
    Sip {
        config: Box<SipAccountConfig>,
        /// Answer each incoming SIP MESSAGE with "You said: <text>".
        bot: bool,
    },
    Xmpp {
        config: Box<XmppAccountConfig>,
        /// Answer each live 1:1 chat message with "You said: <text>".
        bot: bool,
    },
}

/// An account this process put online.
#[derive(Debug, Clone)]
pub(crate) struct LiveAccount {
    pub(crate) id: AccountId,
    pub(crate) kind: AccountKind,
    /// The SIP AoR or the bare JID, as configured: what commands may name it by.
    pub(crate) address: String,
    /// Answer each incoming SIP MESSAGE or live 1:1 chat with "You said: <text>" (a demo
    /// contact).
    pub(crate) bot: bool,
}

/// Adds every account to the engine, in order (so their ids follow the order given).
pub(crate) async fn start_accounts(
    engine: &EngineHandle,
    setups: Vec<AccountSetup>,
) -> Result<Vec<LiveAccount>> {
    let mut accounts = Vec::with_capacity(setups.len());
    for setup in setups {
        let account = match setup {
            AccountSetup::Sip { config, bot } => {
                let address = config.aor.clone();
                LiveAccount {
                    id: engine.add_sip_account(*config).await?,
                    kind: AccountKind::Sip,
                    address,
                    bot,
                }
            }
            AccountSetup::Xmpp { config, bot } => {
                let address = config.jid.clone();
                LiveAccount {
                    id: engine.add_xmpp_account(*config).await?,
                    kind: AccountKind::Xmpp,
                    address,
                    bot,
                }
            }
        };
        accounts.push(account);
    }
    Ok(accounts)
}

/// What the loop does besides serving the accounts.
#[derive(Debug, Clone)]
pub(crate) struct ServiceOptions {
    /// The audio of calls placed or answered without their own choice.
    pub(crate) audio: AudioArgs,
    /// Exit once the first call has ended.
    pub(crate) exit_after_call: bool,
    /// Stop the process (exit 1) when a server refuses an account's password or is not
    /// trusted: the `xmpp` mode has always done so, and with its one account there is nothing
    /// left to serve.
    pub(crate) exit_on_login_refused: bool,
}

/// Why a command was not carried out.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The command itself is wrong: not one we know, bad fields, no such account.
    Invalid(String),
    /// The engine refused it.
    Engine(EngineError),
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        Refusal::Engine(e)
    }
}

/// Commands any account kind takes (`help::COMMON_COMMANDS` documents each).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum CommonCommand {
    /// The stored conversation with `peer` on the named account.
    History {
        peer: String,
        #[serde(default = "default_limit")]
        limit: u32,
    },
    /// Full-text search over the messages of every account.
    Search {
        query: String,
        #[serde(default = "default_limit")]
        limit: u32,
    },
    /// A round trip through the engine's task: it answers only if it is not stuck.
    Ping,
    Quit,
}

pub(crate) fn default_limit() -> u32 {
    50
}

/// Prints which accounts are configured, so a script learns their ids before sending commands.
fn print_accounts(accounts: &[LiveAccount]) {
    let list: Vec<Value> = accounts
        .iter()
        .map(|a| json!({"account": a.id, "kind": a.kind.name().to_lowercase(), "address": a.address}))
        .collect();
    print_line(json!({"event": "accounts", "accounts": list}));
}

/// Serves `accounts` until `quit`, Ctrl-C, or what `options` and the accounts say ends it.
pub(crate) async fn serve(
    engine: &EngineHandle,
    events: &mut UnboundedReceiver<EngineEvent>,
    accounts: &[LiveAccount],
    options: &ServiceOptions,
) -> Result<ExitCode> {
    print_accounts(accounts);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut had_call = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(ExitCode::FAILURE) };
                print_event(&event);
                match &event {
                    EngineEvent::AccountState {
                        state:
                            AccountState::AuthenticationFailed { .. } | AccountState::Untrusted { .. },
                        ..
                    } if options.exit_on_login_refused => return Ok(ExitCode::FAILURE),
                    EngineEvent::MessageReceived { account, from, body, .. }
                        if is_bot(accounts, *account, AccountKind::Sip) =>
                    {
                        reply_to_message(engine, *account, from, body).await;
                    }
                    EngineEvent::ChatMessage { account, .. }
                        if is_bot(accounts, *account, AccountKind::Xmpp) =>
                    {
                        xmpp::reply_to_chat(engine, *account, &event).await;
                    }
                    EngineEvent::CallState { state, .. } => match state {
                        CallState::Dialing { .. } => had_call = true,
                        CallState::Ended { .. } if options.exit_after_call && had_call => {
                            return Ok(ExitCode::SUCCESS);
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => {
                    if handle_line(engine, accounts, options, &line).await {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                // End of input does not stop a service (it may run with stdin closed).
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

/// Whether `id` is one of ours, of `kind`, and answers messages by itself.
fn is_bot(accounts: &[LiveAccount], id: AccountId, kind: AccountKind) -> bool {
    accounts
        .iter()
        .any(|a| a.id == id && a.kind == kind && a.bot)
}

/// A SIP bot's answer to a MESSAGE, reported like a stdin `message` command so scripts see the
/// reply's id.
async fn reply_to_message(engine: &EngineHandle, account: AccountId, from: &str, body: &str) {
    let Some(reply) = bot_reply(body) else { return };
    print_line(match engine.send_message(account, from, &reply).await {
        Ok(message) => {
            json!({"event": "bot_reply", "ok": true, "account": account, "to": from, "message": message})
        }
        Err(e) => {
            json!({"event": "bot_reply", "ok": false, "account": account, "to": from, "detail": e.to_string()})
        }
    });
}

/// What a stdin line asks for, once read.
enum Request {
    Quit,
    /// Carried out; prints its outcome.
    Done(Result<Value, Refusal>),
}

/// Carries out one stdin line and prints its result. Returns true for `quit`.
async fn handle_line(
    engine: &EngineHandle,
    accounts: &[LiveAccount],
    options: &ServiceOptions,
    line: &str,
) -> bool {
    let request: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            print_line(json!({"event": "result", "ok": false, "error": format!("not JSON: {e}")}));
            return false;
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let name = request.get("cmd").cloned().unwrap_or(Value::Null);
    match carry_out(engine, accounts, options, request).await {
        Request::Quit => {
            print_line(json!({"event": "result", "id": id, "cmd": name, "ok": true}));
            true
        }
        Request::Done(outcome) => {
            print_outcome(id, name, outcome);
            false
        }
    }
}

/// Prints the answer to a command: `ok`, and the result's fields or why it was refused.
fn print_outcome(id: Value, name: Value, outcome: Result<Value, Refusal>) {
    let mut line = json!({"event": "result", "id": id, "cmd": name});
    if let Value::Object(map) = &mut line {
        match outcome {
            Ok(Value::Object(fields)) => {
                map.insert("ok".into(), json!(true));
                map.extend(fields);
            }
            Ok(_) => {
                map.insert("ok".into(), json!(true));
            }
            Err(Refusal::Invalid(why)) => {
                map.insert("ok".into(), json!(false));
                map.insert("error".into(), json!(why));
            }
            Err(Refusal::Engine(e)) => {
                map.insert("ok".into(), json!(false));
                map.insert("error".into(), json!(e));
                map.insert("detail".into(), json!(e.to_string()));
            }
        }
    }
    print_line(line);
}

fn describe<'a>(accounts: impl IntoIterator<Item = &'a LiveAccount>) -> String {
    accounts
        .into_iter()
        .map(|a| format!("{} = {}", a.id.0, a.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For `call`, the kind of account its target's scheme is for, if it has one.
fn call_network(cmd: &str, request: &Value) -> Option<AccountKind> {
    if cmd != "call" {
        return None;
    }
    let target = request.get("target")?.as_str()?.trim().to_ascii_lowercase();
    if ["sip:", "sips:", "tel:"]
        .iter()
        .any(|s| target.starts_with(s))
    {
        Some(AccountKind::Sip)
    } else if target.starts_with("xmpp:") {
        Some(AccountKind::Xmpp)
    } else {
        None
    }
}

/// The account a command `cmd` is for. `named` is its `account` field: an account id or an
/// address. Left out, the command goes to the one configured account that takes it; when
/// several do, it must say which.
pub(crate) fn choose_account<'a>(
    accounts: &'a [LiveAccount],
    cmd: &str,
    named: Option<&Value>,
) -> Result<&'a LiveAccount, String> {
    match named {
        // A command on a call already made names the call, and call ids are the engine's, one
        // series for every account: whichever account takes it, the call's own gets it.
        None | Some(Value::Null) if cmd != "call" && help::lists(CALL_COMMANDS, cmd) => accounts
            .iter()
            .find(|a| a.kind.takes(cmd))
            .ok_or_else(|| format!("no configured account takes {cmd}")),
        None | Some(Value::Null) => {
            let mut takers = accounts.iter().filter(|a| a.kind.takes(cmd));
            match (takers.next(), takers.next()) {
                (Some(only), None) => Ok(only),
                (Some(_), Some(_)) => Err(format!(
                    "several accounts take {cmd}: say which with \"account\" (an id or an address: {})",
                    describe(accounts.iter().filter(|a| a.kind.takes(cmd)))
                )),
                (None, _) => Err(format!(
                    "no configured account takes {cmd} (configured: {})",
                    describe(accounts)
                )),
            }
        }
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|n| accounts.iter().find(|a| u64::from(a.id.0) == n))
            .ok_or_else(|| format!("no account {number} (configured: {})", describe(accounts))),
        Some(Value::String(address)) => {
            let address = address.trim();
            let mut matching = accounts
                .iter()
                .filter(|a| a.address.eq_ignore_ascii_case(address));
            match (matching.next(), matching.next()) {
                (Some(account), None) => Ok(account),
                (Some(_), Some(_)) => Err(format!(
                    "more than one account is {address}: name it by its id ({})",
                    describe(accounts)
                )),
                (None, _) => Err(format!(
                    "no account {address} (configured: {}); a SIP account is named by its AoR with \
                     the sip: scheme, an XMPP account by its bare JID",
                    describe(accounts)
                )),
            }
        }
        Some(other) => Err(format!(
            "\"account\" is an account id or an address, not {other}"
        )),
    }
}

/// Carries out one command line (already JSON).
async fn carry_out(
    engine: &EngineHandle,
    accounts: &[LiveAccount],
    options: &ServiceOptions,
    request: Value,
) -> Request {
    let refuse = |why: String| Request::Done(Err(Refusal::Invalid(why)));
    let Some(cmd) = request
        .get("cmd")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return refuse(
            "a command is a JSON object with a \"cmd\" field (lyrebird-cli --help lists them)"
                .into(),
        );
    };
    if help::lists(COMMON_COMMANDS, &cmd) {
        let command = match serde_json::from_value::<CommonCommand>(request.clone()) {
            Ok(command) => command,
            Err(e) => return refuse(e.to_string()),
        };
        match command {
            CommonCommand::Quit => return Request::Quit,
            // History is one database for every account: a search needs no account.
            CommonCommand::Search { query, limit } => {
                return Request::Done(
                    engine
                        .search_messages(&query, limit)
                        .await
                        .map(|hits| json!({"hits": hits}))
                        .map_err(Refusal::from),
                );
            }
            CommonCommand::Ping => {
                return Request::Done(
                    engine
                        .running_accounts()
                        .await
                        .map(|mut ids| {
                            ids.sort_unstable();
                            json!({"accounts": ids})
                        })
                        .map_err(Refusal::from),
                );
            }
            CommonCommand::History { .. } => {}
        }
    } else if !help::lists(SIP_COMMANDS, &cmd)
        && !help::lists(XMPP_COMMANDS, &cmd)
        && !help::lists(CALL_COMMANDS, &cmd)
    {
        return refuse(format!(
            "unknown command {cmd} (lyrebird-cli --help lists them)"
        ));
    }
    // A call's address says its network when it has a scheme: a SIP URI is for a SIP
    // account, an XMPP URI for an XMPP one, so `call` needs no account name for that.
    let scoped: Vec<LiveAccount>;
    let accounts = match call_network(&cmd, &request) {
        Some(kind) if request.get("account").is_none_or(Value::is_null) => {
            scoped = accounts
                .iter()
                .filter(|a| a.kind == kind)
                .cloned()
                .collect();
            &scoped[..]
        }
        _ => accounts,
    };
    let account = match choose_account(accounts, &cmd, request.get("account")) {
        Ok(account) => account,
        Err(why) => return refuse(why),
    };
    if !account.kind.takes(&cmd) {
        return refuse(format!(
            "{cmd} is not a command of {} accounts, and account {} ({}) is one",
            account.kind.name(),
            account.id.0,
            account.address
        ));
    }
    Request::Done(
        match serde_json::from_value::<CommonCommand>(request.clone()) {
            Ok(CommonCommand::History { peer, limit }) => engine
                .conversation(account.id, &peer, limit)
                .await
                .map(|messages| json!({"messages": messages}))
                .map_err(Refusal::from),
            _ => match account.kind {
                AccountKind::Sip => sip::handle(engine, account.id, &options.audio, request).await,
                AccountKind::Xmpp => {
                    xmpp::handle(engine, account.id, &options.audio, request).await
                }
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use anyhow::{Result, bail, ensure};
    use serde_json::json;

    use super::*;

    fn account(id: u32, kind: AccountKind, address: &str) -> LiveAccount {
        LiveAccount {
            id: AccountId(id),
            kind,
            address: address.to_owned(),
            bot: false,
        }
    }

    fn two_accounts() -> Vec<LiveAccount> {
        vec![
            account(1, AccountKind::Sip, "sip:alice@example.com"),
            account(2, AccountKind::Xmpp, "alice@example.com"),
        ]
    }

    #[test]
    fn a_command_names_its_account_by_id_or_address() -> Result<()> {
        let accounts = two_accounts();
        let id_of = |named| choose_account(&accounts, "message", Some(&named)).map(|a| a.id.0);
        ensure!(id_of(json!(2)) == Ok(2));
        ensure!(id_of(json!("sip:alice@example.com")) == Ok(1));
        ensure!(id_of(json!("Alice@Example.com")) == Ok(2));
        Ok(())
    }

    #[test]
    fn a_missing_or_unknown_account_is_refused_with_the_list() -> Result<()> {
        let accounts = two_accounts();
        for named in [
            None,
            Some(json!(7)),
            Some(json!("bob@example.com")),
            Some(json!(true)),
        ] {
            let Err(why) = choose_account(&accounts, "message", named.as_ref()) else {
                bail!("{named:?} was accepted");
            };
            ensure!(why.contains("account"), "{why}");
        }
        let Err(why) = choose_account(&accounts, "history", None) else {
            bail!("no account named was accepted for a command both accounts take");
        };
        ensure!(
            why.contains("1 = sip:alice@example.com, 2 = alice@example.com"),
            "{why}"
        );
        Ok(())
    }

    #[test]
    fn a_command_only_one_account_takes_needs_no_name() -> Result<()> {
        let mut accounts = two_accounts();
        let id_of =
            |accounts: &[LiveAccount], cmd| choose_account(accounts, cmd, None).map(|a| a.id.0);
        ensure!(id_of(&accounts, "open_chat") == Ok(1));
        ensure!(id_of(&accounts, "join") == Ok(2));
        ensure!(id_of(&accounts[..1], "message") == Ok(1));
        // A second SIP account makes SIP commands ambiguous again.
        accounts.push(account(3, AccountKind::Sip, "sip:carol@example.com"));
        let Err(why) = choose_account(&accounts, "open_chat", None) else {
            bail!("open_chat went to one of two SIP accounts unnamed");
        };
        ensure!(
            why.contains("1 = sip:alice@example.com, 3 = sip:carol@example.com"),
            "{why}"
        );
        ensure!(id_of(&accounts, "join") == Ok(2));
        // A command on a call names the call, which the engine routes: no account needed.
        ensure!(id_of(&accounts, "hold").is_ok() && id_of(&accounts, "hangup").is_ok());
        // Placing one needs the account that is to call, unless the address's scheme says.
        ensure!(choose_account(&accounts, "call", None).is_err());
        let sip = json!({"cmd": "call", "target": "sip:bob@example.com"});
        let xmpp = json!({"cmd": "call", "target": "xmpp:bob@example.com"});
        ensure!(call_network("call", &sip) == Some(AccountKind::Sip));
        ensure!(call_network("call", &xmpp) == Some(AccountKind::Xmpp));
        ensure!(
            call_network("call", &json!({"cmd": "call", "target": "bob@example.com"})).is_none()
        );
        Ok(())
    }

    #[test]
    fn a_command_of_the_other_kind_is_not_taken() {
        assert!(AccountKind::Sip.takes("hold") && AccountKind::Xmpp.takes("hold"));
        assert!(AccountKind::Sip.takes("transfer") && !AccountKind::Xmpp.takes("transfer"));
        assert!(AccountKind::Xmpp.takes("room_history"));
        assert!(!AccountKind::Sip.takes("join"));
        assert!(AccountKind::Sip.takes("history") && AccountKind::Xmpp.takes("history"));
    }
}
