//! The SIP account task's life with its server: losing the flow and getting it back, keeping
//! the binding alive, and noticing a server that has gone silent.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use lyrebird_engine::{AccountState, EngineEvent};
use lyrebird_sip::message::Method;
use tokio::time::Instant;

use crate::support::{Client, Peer, Saw, assert_close, gap};

const MINUTE: Duration = Duration::from_secs(60);

/// What `backoff.rs` promises for the n-th reconnect (from 1): 200 ms doubled for each earlier
/// attempt, at most 30 s, then ±25 % jitter, and still never more than 30 s.
fn backoff_bounds(attempt: u32) -> (Duration, Duration) {
    let base = Duration::from_millis(200)
        .saturating_mul(1 << (attempt - 1))
        .min(Duration::from_secs(30));
    (
        base.mul_f64(0.75),
        base.mul_f64(1.25).min(Duration::from_secs(30)),
    )
}

/// The next `Reconnecting` the account reports: when, the attempt, its delay and reason.
async fn reconnecting(client: &mut Client) -> Result<(Instant, u32, Duration, String)> {
    let account = client.account;
    let (at, (attempt, delay_ms, reason)) = client
        .wait_for(MINUTE, "Reconnecting", |e| match e {
            EngineEvent::AccountState {
                account: a,
                state:
                    AccountState::Reconnecting {
                        attempt,
                        delay_ms,
                        reason,
                    },
            } if *a == account => Some((*attempt, *delay_ms, reason.clone())),
            _ => None,
        })
        .await?;
    Ok((at, attempt, Duration::from_millis(delay_ms), reason))
}

#[tokio::test(start_paused = true)]
async fn a_dropped_flow_is_retried_with_growing_jittered_backoff_then_registered_again()
-> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;
    let (_, first_flow, _) = peer.request(Method::Register, MINUTE).await?;

    // The server drops the WebSocket and turns the next four connection attempts away.
    const TURNED_AWAY: u32 = 4;
    peer.refuse_next(TURNED_AWAY);
    let mut failed_at = Instant::now();
    peer.drop_connection(first_flow)?;

    let mut previous_delay = Duration::ZERO;
    for expected_attempt in 1..=TURNED_AWAY + 1 {
        let (reported_at, attempt, delay, reason) = reconnecting(&mut client).await?;
        ensure!(attempt == expected_attempt, "attempt {attempt} reported");
        ensure!(!reason.is_empty(), "Reconnecting without a reason");
        assert_close(
            gap(failed_at, reported_at)?,
            Duration::ZERO,
            "Reconnecting reported at the failure",
        )?;
        let (low, high) = backoff_bounds(attempt);
        ensure!(
            (low..=high).contains(&delay),
            "attempt {attempt}: delay {delay:?} outside {low:?}..={high:?}"
        );
        ensure!(
            delay > previous_delay,
            "attempt {attempt}: delay {delay:?} did not grow from {previous_delay:?}"
        );
        previous_delay = delay;

        let (tried_at, turned_away) = peer
            .wait_for(MINUTE, "connection attempt", |s| match s.what {
                Saw::Refused => Some((s.at, true)),
                Saw::Opened => Some((s.at, false)),
                _ => None,
            })
            .await?;
        assert_close(
            gap(reported_at, tried_at)?,
            delay,
            &format!("attempt {attempt} made after its announced delay"),
        )?;
        ensure!(
            turned_away == (attempt <= TURNED_AWAY),
            "attempt {attempt}: turned away {turned_away}"
        );
        failed_at = tried_at;
    }

    // The new flow needs a new REGISTER (RFC 5626 §4.4.1), and the account says so.
    let new_flow = peer
        .wait_for(MINUTE, "REGISTER on the new flow", |s| {
            s.request(&Method::Register).map(|_| s.conn)
        })
        .await?;
    ensure!(new_flow != first_flow, "REGISTER came on the old flow");
    client.registered(MINUTE).await?;

    // Registered again, the schedule starts over: the next loss waits about 200 ms.
    peer.drop_connection(new_flow)?;
    let (_, attempt, delay, _) = reconnecting(&mut client).await?;
    let (low, high) = backoff_bounds(1);
    ensure!(
        attempt == 1 && (low..=high).contains(&delay),
        "after registering again: attempt {attempt}, delay {delay:?}"
    );
    Ok(())
}

/// When `lyrebird_sip` refreshes a binding granted for `granted_s` (RFC 3261 §10.2.4 only asks
/// for "before it expires"): at the lesser of expires − 5 s and 90 % of expires, but not before
/// half of it.
fn refresh_after(granted_s: u32) -> Result<Duration> {
    let seconds = match granted_s {
        60 => 54,
        3600 => 3240,
        50 => 45,
        30 => 25,
        4 => 2,
        other => bail!("no expected refresh time for a grant of {other} s"),
    };
    Ok(Duration::from_secs(seconds))
}

#[tokio::test(start_paused = true)]
async fn the_binding_is_refreshed_before_it_expires_for_hours() -> Result<()> {
    // The registrar grants less than the 600 s asked for, and changes its mind as it goes;
    // about three and a half hours in all.
    let phases = [(60, 100), (3600, 2), (30, 20), (4, 20)];
    let mut peer = Peer::start(60).await?;
    let mut client = Client::start(&peer).await?;
    let (mut granted_at, mut granted_s) = client.registered(MINUTE).await?;
    ensure!(granted_s == 60, "first grant read as {granted_s} s");
    let started = granted_at;

    for (next_grant, refreshes) in phases {
        peer.grant(next_grant);
        for _ in 0..refreshes {
            let binding = Duration::from_secs(granted_s);
            let (at, state) = client.next_state(binding).await?;
            let AccountState::Registered { expires_s, .. } = state else {
                bail!("the binding's refresh reported {state:?}");
            };
            let waited = gap(granted_at, at)?;
            ensure!(waited < binding, "refreshed after the binding expired");
            let expected = refresh_after(u32::try_from(granted_s)?)?;
            assert_close(
                waited,
                expected,
                &format!("refresh of a {granted_s} s binding"),
            )?;
            ensure!(
                expires_s == u64::from(next_grant),
                "granted {next_grant} s, read {expires_s} s"
            );
            (granted_at, granted_s) = (at, expires_s);
        }
    }
    let lived = gap(started, granted_at)?;
    ensure!(
        lived > Duration::from_secs(3 * 3600),
        "only {lived:?} passed"
    );

    // All of it on the first flow: the keep-alives were answered and nothing reconnected.
    let log = peer.catch_up();
    let flows = log.iter().filter(|s| matches!(s.what, Saw::Opened)).count();
    ensure!(flows == 1, "{flows} flows opened");
    ensure!(
        log.iter()
            .filter(|s| s.request(&Method::Register).is_some())
            .all(|s| s.conn == 1),
        "a REGISTER came on another flow"
    );
    Ok(())
}

/// A refresh that falls due at the same instant as a keep-alive ping (a 50 s grant is
/// refreshed after 45 s, when the third ping goes out) must still complete at once.
#[tokio::test(start_paused = true)]
async fn a_refresh_due_with_a_keepalive_ping_completes_at_once() -> Result<()> {
    let peer = Peer::start(50).await?;
    let mut client = Client::start(&peer).await?;
    let (granted_at, _) = client.registered(MINUTE).await?;
    let (refreshed_at, state) = client.next_state(2 * MINUTE).await?;
    ensure!(
        matches!(state, AccountState::Registered { expires_s: 50, .. }),
        "the refresh reported {state:?}"
    );
    assert_close(
        gap(granted_at, refreshed_at)?,
        refresh_after(50)?,
        "refresh of a 50 s binding",
    )?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stops_answering_is_declared_dead_after_the_keepalive_bound() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    let (last_heard, _) = client.registered(MINUTE).await?;
    let (_, silent_flow, _) = peer.request(Method::Register, MINUTE).await?;

    // The server keeps the TCP connection but answers nothing, pings included.
    peer.stop_answering(silent_flow)?;
    let (lost_at, _, _, reason) = reconnecting(&mut client).await?;
    // transport.rs: a ping after 15 s without traffic, and the flow is dead when 10 s
    // more pass without an answer.
    assert_close(
        gap(last_heard, lost_at)?,
        Duration::from_secs(25),
        "silent flow declared dead",
    )?;
    ensure!(reason.contains("keep-alive"), "reason given: {reason}");

    // And the account comes back on a new flow.
    let new_flow = peer
        .wait_for(MINUTE, "REGISTER on a new flow", |s| {
            s.request(&Method::Register)
                .filter(|_| s.conn != silent_flow)
                .map(|_| s.conn)
        })
        .await?;
    ensure!(new_flow != silent_flow);
    client.registered(MINUTE).await?;
    Ok(())
}
