//! Saved accounts, connection checks and the history-first contact list, against the real
//! Kamailio and Prosody: what the desktop app's first run and every later start rely on.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lyrebird_engine::{
    AccountId, AccountSettings, AccountState, Engine, EngineConfig, EngineEvent, EngineHandle,
    Password, SipSettings, XmppAction, XmppSettings,
};
use testkit::stack::{Stack, StackOptions};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(20);

async fn start_stack() -> Result<Stack> {
    let options = StackOptions {
        coturn: false,
        ..StackOptions::default()
    };
    tokio::task::spawn_blocking(move || Stack::start(options)).await?
}

fn start_engine(dir: &Path) -> Result<(EngineHandle, UnboundedReceiver<EngineEvent>)> {
    Ok(Engine::start(EngineConfig {
        database: Some(dir.join("history.sqlite3")),
        downloads: dir.join("downloads"),
        ..EngineConfig::default()
    })?)
}

fn sip(stack: &Stack, user: &str) -> AccountSettings {
    let kamailio = stack.kamailio();
    AccountSettings::Sip(SipSettings {
        ws_url: kamailio.ws_url(),
        aor: format!("{user}@{}", kamailio.domain()),
        display_name: Some(format!("{user} (desktop)")),
        auth_username: None,
        outbound_proxy: None,
        turn: None,
        msrp_relay_ws_url: Some(kamailio.msrp_ws_url()),
        msrp_relay_uri: None,
        trusted_certificate: None,
        dtmf: Default::default(),
        call_waiting: true,
    })
}

fn xmpp(stack: &Stack, user: &str) -> AccountSettings {
    let prosody = stack.prosody();
    AccountSettings::Xmpp(XmppSettings {
        ws_url: prosody.ws_url(),
        jid: format!("{user}@{}", prosody.domain()),
        resource: None,
        // The loopback test bed has no TLS on Prosody's WebSocket.
        allow_plain: true,
        trusted_certificate: None,
    })
}

/// Waits for the first event `pick` accepts; every event seen is kept in `seen`.
async fn wait_for<T>(
    events: &mut UnboundedReceiver<EngineEvent>,
    seen: &mut Vec<EngineEvent>,
    what: &str,
    mut pick: impl FnMut(&EngineEvent) -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("timed out waiting for {what}; saw {seen:#?}"))?
            .context("engine stopped")?;
        let found = pick(&event);
        seen.push(event);
        if let Some(found) = found {
            return Ok(found);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_checks_say_what_failed_and_leave_nothing_behind() -> Result<()> {
    let stack = start_stack().await?;
    let dir = tempfile::tempdir()?;
    let (engine, mut events) = start_engine(dir.path())?;

    let good = engine
        .check_account(sip(&stack, "alice"), Password::new("alice-secret"))
        .await?;
    ensure!(
        good.ok && good.stage == "done",
        "right SIP password: {good:?}"
    );

    let wrong = engine
        .check_account(sip(&stack, "alice"), Password::new("not-her-password"))
        .await?;
    ensure!(
        !wrong.ok && wrong.stage == "authenticate" && wrong.detail.contains("password"),
        "wrong SIP password: {wrong:?}"
    );

    let mut dead = sip(&stack, "alice");
    if let AccountSettings::Sip(settings) = &mut dead {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        settings.ws_url = format!("ws://{}", listener.local_addr()?);
        drop(listener);
    }
    let unreachable = engine
        .check_account(dead, Password::new("alice-secret"))
        .await?;
    ensure!(
        !unreachable.ok && unreachable.stage == "connect",
        "dead server: {unreachable:?}"
    );

    let mut typo = sip(&stack, "alice");
    if let AccountSettings::Sip(settings) = &mut typo {
        settings.ws_url = "https://not-a-websocket".into();
    }
    let typo = engine.check_account(typo, Password::new("x")).await?;
    ensure!(!typo.ok && typo.stage == "settings", "bad URL: {typo:?}");

    let xmpp_good = engine
        .check_account(xmpp(&stack, "bob"), Password::new("bob-secret"))
        .await?;
    ensure!(xmpp_good.ok, "right XMPP password: {xmpp_good:?}");
    let xmpp_wrong = engine
        .check_account(xmpp(&stack, "bob"), Password::new("nope"))
        .await?;
    ensure!(
        !xmpp_wrong.ok && xmpp_wrong.stage == "authenticate",
        "wrong XMPP password: {xmpp_wrong:?}"
    );

    // Checks are not accounts: nothing saved, and the front end saw none of their events.
    ensure!(
        engine.saved_accounts().await?.is_empty(),
        "a check saved an account"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = events.try_recv() {
        if let Some(account) = event.account() {
            bail!("a connection check leaked an event for {account}: {event:?}");
        }
    }
    engine.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_accounts_come_back_with_their_contacts_before_the_network() -> Result<()> {
    let stack = start_stack().await?;
    let dir = tempfile::tempdir()?;
    let bob = format!("bob@{}", stack.prosody().domain());
    let (sip_id, xmpp_id) = {
        let (engine, mut events) = start_engine(dir.path())?;
        let mut seen = Vec::new();
        let sip_account = engine
            .save_account(sip(&stack, "alice"), Password::new("alice-secret"), false)
            .await?;
        let xmpp_account = engine
            .save_account(xmpp(&stack, "alice"), Password::new("alice-secret"), false)
            .await?;
        ensure!(sip_account.id != xmpp_account.id, "two accounts, one id");
        wait_for(&mut events, &mut seen, "SIP registration", |e| match e {
            EngineEvent::AccountState {
                account,
                state: AccountState::Registered { .. },
            } if *account == sip_account.id => Some(()),
            _ => None,
        })
        .await?;
        wait_for(&mut events, &mut seen, "XMPP login", |e| match e {
            EngineEvent::XmppOnline { account, .. } if *account == xmpp_account.id => Some(()),
            _ => None,
        })
        .await?;
        engine
            .xmpp(
                xmpp_account.id,
                XmppAction::AddContact {
                    jid: bob.clone(),
                    name: Some("Bob".into()),
                    groups: vec!["Friends".into()],
                },
            )
            .await?;
        wait_for(&mut events, &mut seen, "bob in the roster", |e| match e {
            EngineEvent::Contact { jid, .. } if *jid == bob => Some(()),
            _ => None,
        })
        .await?;
        // Saving again with the same address keeps the id and applies the new settings.
        let mut renamed = sip(&stack, "alice");
        if let AccountSettings::Sip(settings) = &mut renamed {
            settings.display_name = Some("Alice at home".into());
        }
        let again = engine
            .save_account(renamed, Password::new("alice-secret"), false)
            .await?;
        ensure!(again.id == sip_account.id, "re-saving changed the id");
        engine.shutdown().await;
        (sip_account.id, xmpp_account.id)
    };

    // A new run over the same database: everything is there before any server is asked.
    let (engine, mut events) = start_engine(dir.path())?;
    let saved = engine.saved_accounts().await?;
    ensure!(saved.len() == 2, "saved accounts after restart: {saved:?}");
    let sip_saved = saved
        .iter()
        .find(|a| a.id == sip_id)
        .context("SIP account missing")?;
    match &sip_saved.settings {
        AccountSettings::Sip(settings) => ensure!(
            settings.display_name.as_deref() == Some("Alice at home"),
            "settings not updated: {settings:?}"
        ),
        other => bail!("SIP account came back as {other:?}"),
    }
    ensure!(
        saved.iter().all(|a| !a.password_saved),
        "no password was remembered, yet one is said to be saved"
    );
    let contacts = engine.contacts().await?;
    let bob_entry = contacts
        .iter()
        .find(|c| c.address == bob)
        .with_context(|| format!("bob not in the contact list from history: {contacts:?}"))?;
    ensure!(bob_entry.account == xmpp_id);
    ensure!(bob_entry.display_name.as_deref() == Some("Bob"));
    ensure!(bob_entry.groups == ["Friends"]);

    // No password was remembered, so the accounts wait for one instead of failing to log in.
    let started = engine.start_saved_accounts().await?;
    ensure!(
        started.is_empty(),
        "started without a password: {started:?}"
    );
    let mut seen = Vec::new();
    let mut waiting: Vec<AccountId> = Vec::new();
    while waiting.len() < 2 {
        let account = wait_for(&mut events, &mut seen, "password needed", |e| match e {
            EngineEvent::AccountState {
                account,
                state: AccountState::AuthenticationFailed { reason },
            } if reason == "password needed" => Some(*account),
            _ => None,
        })
        .await?;
        waiting.push(account);
    }
    waiting.sort();
    let mut expected = vec![sip_id, xmpp_id];
    expected.sort();
    ensure!(waiting == expected, "password asked for {waiting:?}");

    // Forgetting an account removes it from the list; its history stays readable.
    engine.forget_account(xmpp_id).await?;
    let saved = engine.saved_accounts().await?;
    ensure!(
        saved.len() == 1 && saved[0].id == sip_id,
        "after forgetting: {saved:?}"
    );
    engine.shutdown().await;
    Ok(())
}
