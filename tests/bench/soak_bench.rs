//! Benchmark: the soak of `leaks_and_soak` for longer: one headless engine (`lyrebird-cli
//! accounts`, a SIP and an XMPP account) holding 8 calls, 4 file transfers at a time (a new
//! round as soon as one has arrived) and a chat flood of 100 messages a second; prints its memory against one call and the slowest `ping`
//! (RELIABILITY.md). Fails like the test if a call drops or a message or file is lost.
//! Run (inside the loopback namespace): `bench-soak [SECONDS]` (default 180); `./task soak`.

use std::time::Duration;

use anyhow::{Context, Result};
use testkit::reliability::{SoakOptions, mib, soak};
use testkit::stack::{Stack, StackOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("SECONDS is a number")?,
        None => 180,
    };
    let stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-bench-soak-")?;
    let options = SoakOptions {
        repeat_transfers: true,
        ..SoakOptions::for_duration(Duration::from_secs(seconds))
    };
    let figures = soak(&stack, dir.path(), &options).await?;
    println!();
    println!("{figures}");
    println!();
    println!("| engine (lyrebird-cli accounts) | RSS MiB | open fds | threads |");
    println!("|---|---|---|---|");
    println!(
        "| one call | {:.1} | {} | {} |",
        mib(figures.one_call.rss_kib),
        figures.one_call.fds,
        figures.one_call.threads
    );
    println!(
        "| {} calls, {} files, {} messages in {:.0} s (peak {:.1}) | {:.1} | {} | {} |",
        figures.calls,
        figures.files,
        figures.messages,
        figures.elapsed.as_secs_f64(),
        mib(figures.loaded.peak_rss_kib),
        mib(figures.loaded.rss_kib),
        figures.loaded.fds,
        figures.loaded.threads
    );
    println!(
        "slowest ping {} ms over {} pings; engine CPU {:.0} % of a core; last message shown \
         {:.1} s after the flood",
        figures.slowest_ping.as_millis(),
        figures.pings,
        figures.cpu_percent,
        figures.last_message_after.as_secs_f64()
    );
    Ok(())
}
