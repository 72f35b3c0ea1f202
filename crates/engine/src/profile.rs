//! Saved accounts: what a person set up in the desktop app, kept across runs.
//!
//! An account's settings live in the history database's `accounts` row (under the key
//! `"profile"` of its settings JSON), never its password: that goes to the OS keyring when the
//! person asks to remember it, and otherwise lives in memory for this run only. A saved
//! account runs under an [`AccountId`] equal to its row id, so ids stay the same across runs
//! and the front end can use one id for the row and the live account.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{DtmfMethod, FileTransferConfig, SipAccountConfig};
use crate::event::{AccountState, EngineEvent};
use crate::ground::{AccountId, EngineError};
use crate::secret::Password;
use crate::xmpp::XmppAccountConfig;
use lyrebird_media::IceServer;

pub(crate) use crate::history::PROFILE_KEY;

/// One account as a person configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountSettings {
    /// Calls, SIP messages and MSRP file transfer over SIP-over-WebSocket.
    Sip(SipSettings),
    /// Chat, presence, rooms and HTTP upload over XMPP-over-WebSocket.
    Xmpp(XmppSettings),
}

/// A SIP account's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SipSettings {
    /// `wss://` (or `ws://` on a trusted network) URL of the SIP WebSocket server.
    pub ws_url: String,
    /// Address of record; `alice@example.com` is read as `sip:alice@example.com`.
    pub aor: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Digest user name when it differs from the address's user part.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// A SIP URI every request is routed through.
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// A TURN server for calls behind restrictive NATs.
    #[serde(default)]
    pub turn: Option<TurnSettings>,
    /// WebSocket URL of the MSRP relay; file transfer is off without it.
    #[serde(default)]
    pub msrp_relay_ws_url: Option<String>,
    /// The relay's MSRP URI; derived from the WebSocket URL when absent.
    #[serde(default)]
    pub msrp_relay_uri: Option<String>,
    /// A PEM file with a certificate the person trusts for this server (self-signed servers).
    #[serde(default)]
    pub trusted_certificate: Option<String>,
    /// How key presses are sent in calls.
    #[serde(default)]
    pub dtmf: DtmfMethod,
    /// A second call rings while one is going on (call waiting); off, callers hear busy (486).
    /// On when absent, as in settings saved before it existed.
    #[serde(default = "call_waiting_default")]
    pub call_waiting: bool,
}

fn call_waiting_default() -> bool {
    true
}

/// A TURN server (RFC 8656) and its long-term credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TurnSettings {
    /// `turn:host:port`, with `?transport=tcp` for TURN over TCP.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    /// `credential` is a secret shared with the TURN server, from which each call derives
    /// time-limited credentials (the TURN REST API, coturn's `use-auth-secret`), rather than
    /// a password.
    #[serde(default)]
    pub shared_secret: bool,
}

/// An XMPP account's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct XmppSettings {
    /// `wss://` URL of the server's RFC 7395 endpoint.
    pub ws_url: String,
    /// Bare JID, `alice@example.com`.
    pub jid: String,
    #[serde(default)]
    pub resource: Option<String>,
    /// Allow SASL PLAIN (sensible only over `wss://`).
    #[serde(default)]
    pub allow_plain: bool,
    #[serde(default)]
    pub trusted_certificate: Option<String>,
}

/// A saved account as the front end lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavedAccount {
    /// The account's id, in history and while it runs.
    pub id: AccountId,
    pub settings: AccountSettings,
    /// The keyring holds its password, so it starts by itself next time.
    pub password_saved: bool,
}

/// What a connection check found, in words for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AccountCheck {
    pub ok: bool,
    /// How far it got: `settings`, `connect`, `tls`, `authenticate`, `register` or `done`.
    pub stage: String,
    pub detail: String,
    pub elapsed_ms: u64,
}

/// One entry of the merged contact list: an XMPP roster contact, or a SIP peer from history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ContactEntry {
    pub account: AccountId,
    pub kind: lyrebird_store::AccountKind,
    /// SIP URI or bare JID.
    pub address: String,
    pub display_name: Option<String>,
    /// XMPP subscription (`none`, `to`, `from`, `both`); `None` for SIP peers.
    pub subscription: Option<String>,
    pub groups: Vec<String>,
}

/// One conversation for the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConversationSummary {
    pub account: AccountId,
    pub peer: String,
    pub room: bool,
    pub title: Option<String>,
    pub last_activity_ms: Option<i64>,
    pub unread: u32,
    /// The newest message's text, for a one-line preview.
    pub last_body: Option<String>,
}

/// A live account's configuration, ready for the supervisor.
pub(crate) enum AccountConfig {
    Sip(Box<SipAccountConfig>),
    Xmpp(Box<XmppAccountConfig>),
}

impl AccountSettings {
    pub fn kind(&self) -> lyrebird_store::AccountKind {
        match self {
            AccountSettings::Sip(_) => lyrebird_store::AccountKind::Sip,
            AccountSettings::Xmpp(_) => lyrebird_store::AccountKind::Xmpp,
        }
    }

    /// The address the account is filed under: a `sip:` URI or a bare JID.
    pub fn address(&self) -> String {
        match self {
            AccountSettings::Sip(sip) => sip_address(&sip.aor),
            AccountSettings::Xmpp(xmpp) => xmpp.jid.trim().to_owned(),
        }
    }

    pub fn server_url(&self) -> &str {
        match self {
            AccountSettings::Sip(sip) => sip.ws_url.trim(),
            AccountSettings::Xmpp(xmpp) => xmpp.ws_url.trim(),
        }
    }

    pub fn display_name(&self) -> Option<&str> {
        match self {
            AccountSettings::Sip(sip) => sip.display_name.as_deref(),
            AccountSettings::Xmpp(_) => None,
        }
    }

    /// The keyring entry name of this account's password.
    pub fn keyring_entry(&self) -> String {
        match self {
            AccountSettings::Sip(_) => self.address(),
            AccountSettings::Xmpp(_) => format!("xmpp:{}", self.address()),
        }
    }

    /// Checks what can be checked without a network, so a typo is named before connecting.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: &str| Err(EngineError::InvalidConfig(what.to_owned()));
        if !is_ws_url(self.server_url()) {
            return bad("the server address must start with wss:// or ws://");
        }
        match self {
            AccountSettings::Sip(sip) => {
                let address = sip_address(&sip.aor);
                let Some((user, host)) = address
                    .strip_prefix("sip:")
                    .and_then(|rest| rest.split_once('@'))
                else {
                    return bad("the SIP address must look like alice@example.com");
                };
                if user.is_empty() || host.is_empty() || address.contains(char::is_whitespace) {
                    return bad("the SIP address must look like alice@example.com");
                }
                if let Some(proxy) = sip.outbound_proxy.as_deref().filter(|p| !p.is_empty())
                    && !proxy.starts_with("sip:")
                    && !proxy.starts_with("sips:")
                {
                    return bad("the outbound proxy must be a sip: URI");
                }
                if let Some(turn) = &sip.turn
                    && let Some(problem) = lyrebird_media::turn_url_problem(&turn.url)
                {
                    return bad(problem);
                }
                if let Some(relay) = sip.msrp_relay_ws_url.as_deref().filter(|r| !r.is_empty())
                    && !is_ws_url(relay)
                {
                    return bad("the MSRP relay must start with wss:// or ws://");
                }
            }
            AccountSettings::Xmpp(xmpp) => {
                let jid = xmpp.jid.trim();
                let valid = match jid.split_once('@') {
                    Some((local, domain)) => {
                        !local.is_empty() && !domain.is_empty() && !domain.contains('/')
                    }
                    None => false,
                };
                if !valid || jid.contains(char::is_whitespace) {
                    return bad("the XMPP address must look like alice@example.com");
                }
            }
        }
        Ok(())
    }

    /// The configuration of the live account. `probe` is a connection check: no presence,
    /// no archive fetch, nothing answered.
    pub(crate) fn to_config(
        &self,
        password: Password,
        downloads: &Path,
        probe: bool,
    ) -> AccountConfig {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        match self {
            AccountSettings::Sip(sip) => {
                let mut config =
                    SipAccountConfig::new(sip.ws_url.trim(), sip_address(&sip.aor), password);
                config.display_name = non_empty(&sip.display_name);
                config.auth_username = non_empty(&sip.auth_username);
                config.outbound_proxy = non_empty(&sip.outbound_proxy);
                config.trusted_certificate = non_empty(&sip.trusted_certificate).map(PathBuf::from);
                config.dtmf = sip.dtmf;
                config.call_waiting = sip.call_waiting;
                config.ice_servers = sip.turn.as_ref().map(|turn| {
                    vec![IceServer {
                        urls: vec![turn.url.clone()],
                        username: non_empty(&turn.username),
                        credential: non_empty(&turn.credential).filter(|_| !turn.shared_secret),
                        shared_secret: non_empty(&turn.credential).filter(|_| turn.shared_secret),
                    }]
                });
                if probe {
                    config.register_expires = 60;
                } else if let Some(relay) = non_empty(&sip.msrp_relay_ws_url) {
                    let relay_uri = non_empty(&sip.msrp_relay_uri)
                        .unwrap_or_else(|| relay_uri_for(relay.trim()));
                    let mut files = FileTransferConfig::new(relay.trim(), relay_uri, downloads);
                    files.trusted_certificate = config.trusted_certificate.clone();
                    config.file_transfer = Some(files);
                }
                AccountConfig::Sip(Box::new(config))
            }
            AccountSettings::Xmpp(xmpp) => {
                let mut config =
                    XmppAccountConfig::new(xmpp.ws_url.trim(), xmpp.jid.trim(), password);
                config.resource = non_empty(&xmpp.resource);
                config.allow_plain = xmpp.allow_plain;
                config.trusted_certificate =
                    non_empty(&xmpp.trusted_certificate).map(PathBuf::from);
                config.download_dir = downloads.to_owned();
                if probe {
                    config.initial_presence = false;
                    config.archive_catch_up = false;
                }
                AccountConfig::Xmpp(Box::new(config))
            }
        }
    }
}

/// Reads and writes saved accounts and the contact/conversation lists in history.
impl crate::history::History {
    /// Saved accounts (rows with a profile), oldest first.
    pub(crate) async fn saved_accounts(
        &self,
    ) -> Result<Vec<(AccountId, AccountSettings)>, EngineError> {
        self.query_writer(|w| saved_rows(&w.store)).await
    }

    /// Files `settings` under their (kind, address) row and returns the row's id.
    pub(crate) async fn save_profile(
        &self,
        settings: AccountSettings,
        at_ms: i64,
    ) -> Result<AccountId, EngineError> {
        self.query_writer(move |w| {
            let profile = serde_json::to_value(&settings)
                .map_err(|e| EngineError::InvalidConfig(e.to_string()))?;
            let change = lyrebird_store::Change::UpsertAccount(lyrebird_store::NewAccount {
                kind: settings.kind(),
                address: settings.address(),
                display_name: settings.display_name().map(str::to_owned),
                server_url: settings.server_url().to_owned(),
                settings: serde_json::json!({ PROFILE_KEY: profile }),
                created_at_ms: at_ms,
            });
            let outcome = w.store.apply(std::slice::from_ref(&change))?;
            match outcome.outcomes.first() {
                Some(lyrebird_store::ChangeOutcome::Account(row)) => row_to_account(*row),
                other => Err(EngineError::History(format!(
                    "saving the account gave {other:?}"
                ))),
            }
        })
        .await
    }

    /// Removes the profile of a saved account; its history stays.
    pub(crate) async fn forget_profile(
        &self,
        account: AccountId,
    ) -> Result<AccountSettings, EngineError> {
        self.query_writer(move |w| {
            let (_, settings) = saved_rows(&w.store)?
                .into_iter()
                .find(|(id, _)| *id == account)
                .ok_or(EngineError::UnknownAccount(account.0))?;
            let change = lyrebird_store::Change::UpsertAccount(lyrebird_store::NewAccount {
                kind: settings.kind(),
                address: settings.address(),
                display_name: settings.display_name().map(str::to_owned),
                server_url: settings.server_url().to_owned(),
                settings: serde_json::json!({ PROFILE_KEY: null }),
                created_at_ms: 0,
            });
            w.store.apply(std::slice::from_ref(&change))?;
            Ok(settings)
        })
        .await
    }

    /// The merged contact list of the saved accounts: XMPP rosters and the SIP peers of
    /// calls and conversations, each once, by address.
    pub(crate) async fn contacts(&self) -> Result<Vec<ContactEntry>, EngineError> {
        self.query_writer(|w| {
            let mut entries: Vec<ContactEntry> = Vec::new();
            let saved = saved_rows(&w.store)?;
            let calls = w.store.calls(500)?;
            for (account, settings) in &saved {
                let row = lyrebird_store::AccountId(i64::from(account.0));
                match settings {
                    AccountSettings::Xmpp(_) => {
                        for contact in w.store.contacts(row)? {
                            entries.push(ContactEntry {
                                account: *account,
                                kind: lyrebird_store::AccountKind::Xmpp,
                                address: contact.address,
                                display_name: contact.display_name,
                                subscription: Some(contact.subscription.as_str().to_owned()),
                                groups: contact.groups,
                            });
                        }
                    }
                    AccountSettings::Sip(_) => {
                        let own = settings.address();
                        let peers = w
                            .store
                            .conversations(row)?
                            .into_iter()
                            .map(|c| c.peer_address)
                            .chain(
                                calls
                                    .iter()
                                    .filter(|c| c.account == row)
                                    .map(|c| c.peer_address.clone()),
                            );
                        for peer in peers {
                            let known = entries
                                .iter()
                                .any(|e| e.account == *account && e.address == peer);
                            if !known && peer != own {
                                entries.push(ContactEntry {
                                    account: *account,
                                    kind: lyrebird_store::AccountKind::Sip,
                                    address: peer,
                                    display_name: None,
                                    subscription: None,
                                    groups: Vec::new(),
                                });
                            }
                        }
                    }
                }
            }
            Ok(entries)
        })
        .await
    }

    /// The conversations of the saved accounts, most recently active first.
    pub(crate) async fn conversations(&self) -> Result<Vec<ConversationSummary>, EngineError> {
        self.query_writer(|w| {
            let mut out = Vec::new();
            for (account, _) in saved_rows(&w.store)? {
                let row = lyrebird_store::AccountId(i64::from(account.0));
                for conversation in w.store.conversations(row)? {
                    let last_body = w
                        .store
                        .messages(conversation.id, None, 1)?
                        .pop()
                        .map(|m| m.body);
                    out.push(ConversationSummary {
                        account,
                        peer: conversation.peer_address,
                        room: conversation.kind == lyrebird_store::ConversationKind::Room,
                        title: conversation.title,
                        last_activity_ms: conversation.last_activity_at_ms,
                        unread: conversation.unread_count,
                        last_body,
                    });
                }
            }
            out.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
            Ok(out)
        })
        .await
    }

    /// Marks every message of a conversation read.
    pub(crate) async fn mark_read(
        &self,
        account: AccountId,
        peer: String,
        room: bool,
    ) -> Result<(), EngineError> {
        self.query_writer(move |w| {
            let row = w.store_account(account)?;
            let kind = if room {
                lyrebird_store::ConversationKind::Room
            } else {
                lyrebird_store::ConversationKind::Direct
            };
            let conversation = w.store.find_or_create_conversation(row, &peer, kind)?;
            w.store
                .apply(&[lyrebird_store::Change::MarkConversationRead(
                    conversation.id,
                )])?;
            Ok(())
        })
        .await
    }
}

fn saved_rows(
    store: &lyrebird_store::Store,
) -> Result<Vec<(AccountId, AccountSettings)>, EngineError> {
    let mut out = Vec::new();
    for account in store.accounts()? {
        let Some(profile) = account.settings.get(PROFILE_KEY) else {
            continue;
        };
        match serde_json::from_value::<AccountSettings>(profile.clone()) {
            Ok(settings) => out.push((row_to_account(account.id)?, settings)),
            // A profile this version cannot read is skipped, not fatal: the rest still start.
            Err(e) => tracing::warn!(row = account.id.0, error = %e, "unreadable saved account"),
        }
    }
    Ok(out)
}

fn row_to_account(row: lyrebird_store::AccountId) -> Result<AccountId, EngineError> {
    u32::try_from(row.0)
        .map(AccountId)
        .map_err(|_| EngineError::History(format!("account row {} out of range", row.0)))
}

/// `alice@example.com` → `sip:alice@example.com`; a `sip:`/`sips:` URI stays as it is.
fn sip_address(aor: &str) -> String {
    let aor = aor.trim();
    if aor.starts_with("sip:") || aor.starts_with("sips:") {
        aor.to_owned()
    } else {
        format!("sip:{aor}")
    }
}

fn is_ws_url(url: &str) -> bool {
    let url = url.trim();
    ["ws://", "wss://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme))
}

/// The relay URI a WebSocket relay is addressed by (RFC 7977 §4: the `ws`/`wss` transport
/// parameter; `msrps` over TLS).
fn relay_uri_for(ws_url: &str) -> String {
    let (scheme, rest) = match ws_url.strip_prefix("wss://") {
        Some(rest) => ("msrps", rest),
        None => ("msrp", ws_url.strip_prefix("ws://").unwrap_or(ws_url)),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let transport = if scheme == "msrps" { "wss" } else { "ws" };
    format!("{scheme}://{authority};{transport}")
}

/// Says, in words, what a failed account state means for a connection check.
pub(crate) fn check_verdict(event: &EngineEvent) -> Option<(bool, &'static str, String)> {
    match event {
        EngineEvent::AccountState { state, .. } => match state {
            AccountState::Registered { .. } => Some((
                true,
                "done",
                "connected, signed in and registered".to_owned(),
            )),
            AccountState::RegistrationFailed { status, reason } => Some(match status {
                401 | 403 | 407 => (
                    false,
                    "authenticate",
                    format!("the server refused the user name or password ({status} {reason})"),
                ),
                404 => (
                    false,
                    "register",
                    format!("the server does not know this address ({status} {reason})"),
                ),
                _ => (
                    false,
                    "register",
                    format!("the server refused the registration ({status} {reason})"),
                ),
            }),
            AccountState::AuthenticationFailed { reason } => Some((
                false,
                "authenticate",
                format!("the server refused the user name or password ({reason})"),
            )),
            AccountState::Untrusted { reason } => Some((false, "tls", reason.clone())),
            AccountState::Reconnecting { reason, .. } => {
                let lower = reason.to_ascii_lowercase();
                let stage = if lower.contains("certificate") || lower.contains("tls") {
                    "tls"
                } else {
                    "connect"
                };
                Some((
                    false,
                    stage,
                    format!("could not reach the server: {reason}"),
                ))
            }
            _ => None,
        },
        EngineEvent::XmppOnline { .. } => {
            Some((true, "done", "connected and signed in".to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(aor: &str, ws: &str) -> AccountSettings {
        AccountSettings::Sip(SipSettings {
            ws_url: ws.into(),
            aor: aor.into(),
            display_name: None,
            auth_username: None,
            outbound_proxy: None,
            turn: None,
            msrp_relay_ws_url: None,
            msrp_relay_uri: None,
            trusted_certificate: None,
            dtmf: Default::default(),
            call_waiting: true,
        })
    }

    #[test]
    fn sip_addresses_are_normalised_and_validated() {
        let account = sip(" alice@example.com ", "wss://sip.example.com/ws");
        assert_eq!(account.address(), "sip:alice@example.com");
        assert!(account.validate().is_ok());
        for (aor, ws) in [
            ("alice", "wss://x"),
            ("@example.com", "wss://x"),
            ("alice@example.com", "https://x"),
            ("alice@example.com", "wss://"),
            ("al ice@example.com", "wss://x"),
        ] {
            let err = sip(aor, ws).validate().unwrap_err();
            assert!(matches!(err, EngineError::InvalidConfig(_)), "{aor} {ws}");
        }
    }

    #[test]
    fn xmpp_jids_are_validated() {
        let xmpp = |jid: &str| {
            AccountSettings::Xmpp(XmppSettings {
                ws_url: "wss://chat.example.com/xmpp-websocket".into(),
                jid: jid.into(),
                resource: None,
                allow_plain: false,
                trusted_certificate: None,
            })
        };
        assert!(xmpp("bob@example.com").validate().is_ok());
        assert!(xmpp("bob").validate().is_err());
        assert!(xmpp("bob@example.com/phone").validate().is_err());
        assert_eq!(
            xmpp("bob@example.com").keyring_entry(),
            "xmpp:bob@example.com"
        );
    }

    #[test]
    fn a_turn_secret_becomes_time_limited_credentials_not_a_password() {
        let with_turn = |shared_secret: bool| {
            let AccountSettings::Sip(mut settings) = sip("alice@example.com", "wss://x/ws") else {
                unreachable!("sip() builds SIP settings");
            };
            settings.turn = Some(TurnSettings {
                url: "turn:turn.example.com:3478".into(),
                username: Some("alice".into()),
                credential: Some("s3cret".into()),
                shared_secret,
            });
            match AccountSettings::Sip(settings).to_config(
                Password::new("p"),
                Path::new("/tmp"),
                false,
            ) {
                AccountConfig::Sip(config) => config.ice_servers.unwrap_or_default(),
                AccountConfig::Xmpp(_) => Vec::new(),
            }
        };
        let secret = with_turn(true);
        assert_eq!(secret[0].shared_secret.as_deref(), Some("s3cret"));
        assert_eq!(secret[0].credential, None);
        let password = with_turn(false);
        assert_eq!(password[0].credential.as_deref(), Some("s3cret"));
        assert_eq!(password[0].shared_secret, None);
    }

    #[test]
    fn a_turn_server_the_call_could_not_use_is_refused_with_what_to_use_instead() {
        let with_turn = |url: &str| {
            let AccountSettings::Sip(mut settings) = sip("alice@example.com", "wss://x/ws") else {
                unreachable!("sip() builds SIP settings");
            };
            settings.turn = Some(TurnSettings {
                url: url.into(),
                username: None,
                credential: None,
                shared_secret: false,
            });
            AccountSettings::Sip(settings).validate()
        };
        assert!(with_turn("turn:turn.example.com:3478").is_ok());
        assert!(with_turn("turn:turn.example.com:443?transport=tcp").is_ok());
        let Err(EngineError::InvalidConfig(words)) = with_turn("turns:turn.example.com:443") else {
            panic!("turns: accepted");
        };
        assert!(words.contains("transport=tcp"), "{words}");
        assert!(with_turn("stun:turn.example.com").is_err());
    }

    #[test]
    fn relay_uri_follows_the_websocket_url() {
        assert_eq!(
            relay_uri_for("ws://127.0.0.1:8081"),
            "msrp://127.0.0.1:8081;ws"
        );
        assert_eq!(
            relay_uri_for("wss://relay.example.com/msrp"),
            "msrps://relay.example.com;wss"
        );
    }

    #[test]
    fn settings_round_trip_as_tagged_json() {
        let account = sip("alice@example.com", "ws://127.0.0.1:8080");
        let json = serde_json::to_value(&account).unwrap();
        assert_eq!(json["kind"], "sip");
        let back: AccountSettings = serde_json::from_value(json).unwrap();
        assert_eq!(back, account);
    }
}
