//! Nothing leaks and nothing stalls: calls placed and hung up one after another leave the
//! caller with no more open files or threads than after the first, and one engine holding
//! eight calls, four file transfers and a chat flood at once keeps every call, file and
//! message and keeps answering. Short forms of the `bench-leaks` and `bench-soak` programs
//! (BENCHMARKS.md, RELIABILITY.md); memory is printed, not judged, beyond a generous bound.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use testkit::reliability::{SoakOptions, calls_in_a_row, mib, soak};
use testkit::stack::{Stack, StackOptions};

/// Calls in the test; `bench-leaks` places 100.
const CALLS: u32 = 10;
/// The soak in the test; `./task soak SECONDS` runs it for longer.
const SOAK: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_one_after_another_leak_no_files_or_threads() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-leaks-")?;
    let run = calls_in_a_row(&stack, dir.path(), CALLS).await?;
    let first = run.first().context("no call")?;
    let last = run.last().context("no call")?;
    println!(
        "after call 1: {first}\nafter call {CALLS}: {last}\nRSS growth {:+.1} %",
        run.rss_growth_percent().unwrap_or_default()
    );
    // The baseline is the most seen after any of the first calls: the runtime's blocking pool
    // starts a thread when it is needed and retires it after 10 s idle, on its own schedule,
    // so one thread more or less is not a leak; a call that leaks leaves one per call.
    let warm = &run.after[..run.after.len().min(3)];
    let most_fds = warm.iter().map(|f| f.fds).max().unwrap_or(first.fds);
    let most_threads = warm
        .iter()
        .map(|f| f.threads)
        .max()
        .unwrap_or(first.threads);
    ensure!(
        last.fds <= most_fds,
        "open files grew from {most_fds} after the first calls to {} after call {CALLS}",
        last.fds
    );
    ensure!(
        last.threads <= most_threads + 1,
        "threads grew from {most_threads} after the first calls to {} after call {CALLS}",
        last.threads
    );
    // Generous: a leak of a call's media state (buffers, a peer connection) per call shows
    // here even over ten calls; allocator noise does not reach it.
    ensure!(
        mib(last.rss_kib) <= mib(first.rss_kib) * 1.5,
        "resident memory grew from {first} to {last}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_holds_calls_transfers_and_a_chat_flood_at_once() -> Result<()> {
    let stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-soak-")?;
    let options = SoakOptions::for_duration(SOAK);
    let figures = soak(&stack, dir.path(), &options).await?;
    println!("soak: {figures}");
    ensure!(figures.calls == options.calls, "{figures}");
    ensure!(figures.files >= options.transfers, "{figures}");
    ensure!(figures.pings > 0, "{figures}");
    Ok(())
}
