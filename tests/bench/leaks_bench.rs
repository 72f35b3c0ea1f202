//! Benchmark: calls placed and hung up one after another between two headless Lyrebirds
//! through Kamailio; prints the caller's resident memory, open fds and threads after the
//! first call and after the last (RELIABILITY.md). The test `leaks_and_soak` runs 10.
//! Run (inside the loopback namespace, like the tests): `bench-leaks [CALLS]` (default 100).
//! `bench-leaks --sipp [CALLS]` (default 1000): the same caller against sipp (Debian package
//! `sip-tester`) answering without media, read after call 1 and every 100 calls.

use anyhow::{Context, Result};
use testkit::reliability::{calls_in_a_row, calls_to_sipp, mib};
use testkit::stack::{Stack, StackOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sipp = args.first().is_some_and(|a| a == "--sipp");
    if sipp {
        args.remove(0);
    }
    let calls: u32 = match args.first() {
        Some(n) => n.parse().context("CALLS is a number")?,
        None if sipp => 1000,
        None => 100,
    };
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-bench-leaks-")?;
    if sipp {
        let after = calls_to_sipp(&stack, dir.path(), calls, 100).await?;
        println!();
        println!("| caller (lyrebird-cli run) against sipp | RSS MiB | open fds | threads |");
        println!("|---|---|---|---|");
        for (n, figures) in &after {
            let when = if *n > calls {
                format!("34 s after call {calls}")
            } else {
                format!("after call {n}")
            };
            println!(
                "| {when} | {:.1} | {} | {} |",
                mib(figures.rss_kib),
                figures.fds,
                figures.threads
            );
        }
        let at = |n: u32| after.iter().find(|(m, _)| *m == n).map(|(_, f)| f.rss_kib);
        if let (Some(hundred), Some(last)) = (at(100), at(calls)) {
            println!(
                "RSS growth from call 100 to call {calls}: {:+.1} %",
                (last as f64 / hundred.max(1) as f64 - 1.0) * 100.0
            );
        }
        return Ok(());
    }
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
