//! Benchmark: a 100 MiB file from one headless Lyrebird to another through Kamailio's MSRP relay
//! over WebSocket, and, in the same run, raw WebSocket throughput on the same loopback (the same
//! bytes in the same frame size through a plain echo server). Also the peak memory of sender and
//! receiver during the transfer. Run: `cargo run -p lyrebird-tests --bin bench-msrp [-- MiB]`
//! (inside the loopback namespace, like the tests).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions};
use testkit::procfs::{cpu_seconds, cpu_seconds_of_all, memory_kib};
use testkit::stack::{Stack, StackOptions};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const FRAME: usize = 8 * 1024;

/// Sends `total` bytes in FRAME-sized binary messages to an echo server and waits for them all
/// to come back; returns the elapsed time.
async fn raw_websocket(total: usize) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await
            && let Ok(ws) = tokio_tungstenite::accept_async(tcp).await
        {
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(message)) = rx.next().await {
                if message.is_binary() && tx.send(message).await.is_err() {
                    break;
                }
            }
        }
    });
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await?;
    let (mut tx, mut rx) = ws.split();
    let payload = vec![0x5a_u8; FRAME];
    let started = Instant::now();
    let frames = total.div_ceil(FRAME);
    let writer = tokio::spawn(async move {
        for _ in 0..frames {
            tx.send(Message::Binary(payload.clone().into())).await?;
        }
        anyhow::Ok(tx)
    });
    let mut received = 0;
    while received < frames * FRAME {
        let message = rx.next().await.context("echo closed")??;
        received += message.len();
    }
    let elapsed = started.elapsed();
    drop(writer.await??);
    Ok(elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let total = mib << 20;
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = tempfile::tempdir()?;
    let k = stack.kamailio();
    let mut peers = Vec::new();
    for (user, extra) in [("alice", None), ("bob", Some("--auto-accept-files"))] {
        let mut options = LyrebirdOptions::for_user(
            &k.ws_url(),
            k.domain(),
            user,
            &format!("{user}-secret"),
            dir.path(),
        )
        .arg("--msrp-relay-ws")
        .arg(k.msrp_ws_url())
        .arg("--msrp-relay-uri")
        .arg(k.msrp_relay_uri())
        .arg("--downloads")
        .arg(
            dir.path()
                .join(format!("{user}-in"))
                .to_string_lossy()
                .into_owned(),
        );
        if let Some(extra) = extra {
            options = options.arg(extra);
        }
        let mut peer = Lyrebird::start(options).await?;
        peer.registered(Duration::from_secs(20)).await?;
        peers.push(peer);
    }
    let (mut alice, mut bob) = {
        let mut it = peers.into_iter();
        (it.next().context("alice")?, it.next().context("bob")?)
    };
    let file = dir.path().join("payload.bin");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(total + 8);
    while data.len() < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(total);
    std::fs::write(&file, &data)?;
    drop(data);

    let (alice_pid, bob_pid) = (alice.pid().context("pid")?, bob.pid().context("pid")?);
    let idle = (memory_kib(alice_pid), memory_kib(bob_pid));
    let cpu_before = (
        cpu_seconds(alice_pid).unwrap_or(0.0),
        cpu_seconds(bob_pid).unwrap_or(0.0),
        cpu_seconds_of_all("kamailio"),
    );
    let started = Instant::now();
    alice
        .command(
            json!({"cmd": "send_file", "target": format!("sip:bob@{}", k.domain()), "path": file}),
        )
        .await?;
    let sampler = tokio::spawn(async move {
        let mut peak = (0u64, 0u64);
        loop {
            let a = memory_kib(alice_pid).map_or(0, |m| m.0);
            let b = memory_kib(bob_pid).map_or(0, |m| m.0);
            peak = (peak.0.max(a), peak.1.max(b));
            tokio::time::sleep(Duration::from_millis(20)).await;
            if a == 0 && b == 0 {
                return peak;
            }
        }
    });
    let done = bob
        .wait_for("the file", Duration::from_secs(300), |e| {
            e["event"] == "transfer_state"
                && matches!(e["state"]["state"].as_str(), Some("completed" | "failed"))
        })
        .await?;
    let msrp_elapsed = started.elapsed();
    ensure!(
        done["state"]["state"] == "completed",
        "transfer failed: {done}"
    );
    let end = (memory_kib(alice_pid), memory_kib(bob_pid));
    let cpu = (
        cpu_seconds(alice_pid).unwrap_or(0.0) - cpu_before.0,
        cpu_seconds(bob_pid).unwrap_or(0.0) - cpu_before.1,
        cpu_seconds_of_all("kamailio") - cpu_before.2,
    );
    sampler.abort();
    let raw = raw_websocket(total).await?;
    let rate = |d: Duration| total as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "MSRP through Kamailio relay, {mib} MiB, {FRAME}-byte chunks: {:.2} s, {:.1} MiB/s",
        msrp_elapsed.as_secs_f64(),
        rate(msrp_elapsed)
    );
    println!(
        "raw WebSocket echo on loopback, same bytes and frame size: {:.2} s, {:.1} MiB/s (each byte crosses twice)",
        raw.as_secs_f64(),
        rate(raw)
    );
    println!(
        "MSRP / raw WebSocket: {:.2}",
        rate(msrp_elapsed) / rate(raw)
    );
    println!(
        "CPU during the transfer: sender {:.2} s, receiver {:.2} s, relay (all Kamailio processes) {:.2} s",
        cpu.0, cpu.1, cpu.2
    );
    println!(
        "sender RSS KiB (idle rss/hwm → end rss/hwm): {:?} → {:?}",
        idle.0, end.0
    );
    println!(
        "receiver RSS KiB (idle rss/hwm → end rss/hwm): {:?} → {:?}",
        idle.1, end.1
    );
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}
