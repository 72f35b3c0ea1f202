//! Benchmark: calls placed and hung up one after another between two headless Lyrebirds
//! through Kamailio; prints the caller's resident memory, open fds and threads after the
//! first call and after the last (RELIABILITY.md). The test `leaks_and_soak` runs 10.
//! Run (inside the loopback namespace, like the tests): `bench-leaks [CALLS]` (default 100).

use anyhow::{Context, Result};
use testkit::reliability::{calls_in_a_row, mib};
use testkit::stack::{Stack, StackOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let calls: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("CALLS is a number")?,
        None => 100,
    };
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-bench-leaks-")?;
    let run = calls_in_a_row(&stack, dir.path(), calls).await?;
    let first = run.first().context("no call")?;
    let last = run.last().context("no call")?;
    println!();
    println!("| caller (lyrebird-cli run) | RSS MiB | open fds | threads |");
    println!("|---|---|---|---|");
    println!(
        "| after call 1 | {:.1} | {} | {} |",
        mib(first.rss_kib),
        first.fds,
        first.threads
    );
    println!(
        "| after call {calls} | {:.1} | {} | {} |",
        mib(last.rss_kib),
        last.fds,
        last.threads
    );
    println!(
        "RSS growth from call 1 to call {calls}: {:+.1} % (peak RSS {:.1} MiB)",
        run.rss_growth_percent().unwrap_or_default(),
        mib(last.peak_rss_kib)
    );
    Ok(())
}
