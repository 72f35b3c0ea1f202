//! One thread for the media of every call.
//!
//! Each 20 ms frame crosses several tasks: the media task encodes and hands the packet to the
//! peer connection's driver, which encrypts and sends it; a received packet goes from the
//! driver to the remote track's reader and on to the media task. webrtc-rs puts its driver on
//! a reactor thread of its own and the other two tasks ran on the engine's multi-threaded
//! runtime, so every hand-over woke another thread (a futex wake and a context switch).
//! Here they all run on one current-thread runtime, so a hand-over is a local wake and the
//! thread wakes only for the frame clock and for packets arriving. The peer connection's
//! sockets and timers belong to this thread's runtime too (webrtc-rs wraps them inside the
//! driver task it spawns through the answering runtime in `early_packets.rs`).
//!
//! If the thread cannot be started the work falls back to the caller's runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};
use tokio::task::JoinHandle;
use tracing::error;

static MEDIA: OnceLock<Option<Handle>> = OnceLock::new();

/// The media thread's runtime, started on first use.
fn handle() -> Option<&'static Handle> {
    MEDIA.get_or_init(start).as_ref()
}

fn start() -> Option<Handle> {
    let runtime = match Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(%err, "cannot build the media runtime; media runs on the engine's");
            return None;
        }
    };
    let handle = runtime.handle().clone();
    let started = std::thread::Builder::new()
        .name("lyrebird-media".into())
        // The runtime drives spawned tasks for as long as it blocks here: the process's life.
        .spawn(move || runtime.block_on(std::future::pending::<()>()));
    match started {
        Ok(_) => Some(handle),
        Err(err) => {
            error!(%err, "cannot start the media thread; media runs on the engine's");
            None
        }
    }
}

/// Runs `future` on the media thread (or, failing that, on the current runtime).
pub(crate) fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle() {
        Some(handle) => handle.spawn(future),
        None => tokio::spawn(future),
    }
}
