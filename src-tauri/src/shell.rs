//! The shell's own state: the engine handle, the folders, the chosen audio devices, what the
//! tray shows, and the gate that holds events until the UI listens.
//!
//! Events emitted to a webview before its page has called `listen` are lost, and accounts on
//! loopback register within milliseconds of start, often before the UI has loaded. So engine
//! events and opened links are queued until the UI says `ui_ready` (it listens first, then
//! loads the bootstrap snapshot, paints, and calls `ui_ready`), then replayed in order. A page
//! that never says it is ready still gets them after [`GATE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lyrebird_engine::{
    AccountId, AccountState, AudioSink, AudioSource, CallAudio, EngineEvent, EngineHandle,
};
use tauri::{AppHandle, Emitter, Manager};
use tracing::{info, warn};

use crate::paths::Paths;
use crate::settings::ShellSettings;
use crate::startup::StartClock;

/// The Tauri event carrying every [`EngineEvent`] to the main window.
pub const ENGINE_EVENT: &str = "engine";
/// The Tauri event carrying a `sip:` / `tel:` / `xmpp:` link to the main window.
pub const OPEN_URI_EVENT: &str = "open-uri";
/// The window everything is sent to.
pub const MAIN_WINDOW: &str = "main";
/// Most events held for a UI that is not listening yet; beyond it the oldest are dropped.
const GATE_CAPACITY: usize = 20_000;
/// The UI gets held events after this even if it never says it is ready.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(20);

enum Held {
    Engine(EngineEvent),
    Link(String),
}

/// Holds items until opened, then passes them (and everything after) through in order.
struct Gate<T> {
    open: bool,
    capacity: usize,
    held: std::collections::VecDeque<T>,
}

impl<T> Gate<T> {
    fn new(capacity: usize) -> Self {
        Self {
            open: false,
            capacity,
            held: std::collections::VecDeque::new(),
        }
    }

    /// Passes `item` on now if open; otherwise holds it, dropping the oldest when full.
    fn pass(&mut self, item: T, mut send: impl FnMut(T)) {
        if self.open {
            send(item);
            return;
        }
        if self.held.len() >= self.capacity {
            self.held.pop_front();
        }
        self.held.push_back(item);
    }

    /// Opens the gate, sending what was held in order; `true` only the first time.
    fn open(&mut self, send: impl FnMut(T)) -> bool {
        let first = !self.open;
        self.open = true;
        std::mem::take(&mut self.held).into_iter().for_each(send);
        first
    }
}

/// What the tray shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    /// Each account's last known reachability.
    pub online: HashMap<AccountId, bool>,
    /// Unread messages over all conversations.
    pub unread: u32,
}

impl Status {
    /// Folds an engine event into the status; `true` when something shown changed.
    pub fn observe(&mut self, event: &EngineEvent) -> bool {
        let (account, online) = match event {
            EngineEvent::AccountState { account, state } => match state {
                AccountState::Registered { .. } => (*account, Some(true)),
                // XMPP says `Connected` before it has logged in; `XmppOnline` is the real
                // sign. For SIP, a connection without registration is not reachable either.
                AccountState::Connected => return false,
                AccountState::Stopped => return self.online.remove(account).is_some(),
                _ => (*account, Some(false)),
            },
            EngineEvent::XmppOnline { account, .. } => (*account, Some(true)),
            _ => return false,
        };
        match online {
            Some(now) => self.online.insert(account, now) != Some(now),
            None => false,
        }
    }

    /// One line for the tray's tooltip and menu.
    pub fn describe(&self) -> String {
        let total = self.online.len();
        let up = self.online.values().filter(|&&v| v).count();
        let accounts = match (total, up) {
            (0, _) => "no accounts".to_owned(),
            (1, 1) => "online".to_owned(),
            (1, _) => "offline".to_owned(),
            (t, u) if t == u => format!("all {t} accounts online"),
            (t, u) => format!("{u} of {t} accounts online"),
        };
        match self.unread {
            0 => format!("Lyrebird: {accounts}"),
            1 => format!("Lyrebird: {accounts}, 1 unread message"),
            n => format!("Lyrebird: {accounts}, {n} unread messages"),
        }
    }
}

/// Everything the commands and the event loop share. Managed as Tauri state.
pub struct Shell {
    pub engine: EngineHandle,
    pub paths: Paths,
    pub clock: StartClock,
    /// Whether an OS keyring answers. Asking costs D-Bus round trips (and may start a
    /// keyring daemon), so it is asked once, off the start-up path; see `keyring_available`.
    keyring: tokio::sync::OnceCell<bool>,
    settings: Mutex<ShellSettings>,
    gate: Mutex<Gate<Held>>,
    status: Mutex<Status>,
    exiting: AtomicBool,
}

/// Locks a mutex even if a panicking thread poisoned it: every critical section here leaves
/// the data consistent, so the value is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shell {
    /// Whether "remember password" can work, probed on first use.
    pub async fn keyring_available(&self) -> bool {
        *self
            .keyring
            .get_or_init(|| async {
                tauri::async_runtime::spawn_blocking(lyrebird_engine::secret::keyring_available)
                    .await
                    .unwrap_or(false)
            })
            .await
    }

    pub fn new(
        engine: EngineHandle,
        paths: Paths,
        clock: StartClock,
        settings: ShellSettings,
    ) -> Self {
        Self {
            engine,
            paths,
            clock,
            keyring: tokio::sync::OnceCell::new(),
            settings: Mutex::new(settings),
            gate: Mutex::new(Gate::new(GATE_CAPACITY)),
            status: Mutex::new(Status::default()),
            exiting: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> ShellSettings {
        lock(&self.settings).clone()
    }

    /// Changes the settings and writes them to disk.
    pub fn update_settings(&self, change: impl FnOnce(&mut ShellSettings)) -> Result<(), String> {
        let mut settings = lock(&self.settings);
        let mut next = settings.clone();
        change(&mut next);
        next.save(&self.paths.settings())?;
        *settings = next;
        Ok(())
    }

    /// The audio a call uses: the chosen devices, or the system defaults for a chosen device
    /// that has gone away since (a headset unplugged), so a call never fails for it.
    pub async fn call_audio(&self) -> CallAudio {
        let chosen = self.settings();
        let music_on_hold = if chosen.music_on_hold {
            self.hold_music()
        } else {
            None
        };
        if chosen.input_device.is_none() && chosen.output_device.is_none() {
            return CallAudio {
                music_on_hold,
                ..CallAudio::devices()
            };
        }
        let present = tauri::async_runtime::spawn_blocking(lyrebird_engine::list_audio_devices)
            .await
            .ok()
            .and_then(Result::ok);
        let keep = |name: Option<String>, list: Option<&Vec<String>>| match (name, list) {
            (Some(name), Some(list)) if list.contains(&name) => Some(name),
            (Some(name), _) => {
                warn!(device = %name, "chosen audio device is gone; using the default");
                None
            }
            (None, _) => None,
        };
        CallAudio {
            source: AudioSource::Device {
                name: keep(chosen.input_device, present.as_ref().map(|d| &d.inputs)),
            },
            sink: AudioSink::Device {
                name: keep(chosen.output_device, present.as_ref().map(|d| &d.outputs)),
            },
            music_on_hold,
        }
    }

    /// The shipped hold music as a file the engine can read, written into the data folder on
    /// first use; `None` (the held peer hears silence) if it cannot be written.
    fn hold_music(&self) -> Option<std::path::PathBuf> {
        const HOLD_MUSIC: &[u8] = include_bytes!("../../assets/sounds/hold-music.wav");
        let path = self.paths.hold_music();
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == HOLD_MUSIC.len() as u64);
        if present {
            return Some(path);
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, HOLD_MUSIC));
        match written {
            Ok(()) => Some(path),
            Err(err) => {
                warn!(%err, path = %path.display(), "cannot write the hold music; holding in silence");
                None
            }
        }
    }

    /// Sends an engine event to the UI now, or holds it until the UI listens.
    pub fn deliver_event(&self, app: &AppHandle, event: EngineEvent) {
        self.deliver(app, Held::Engine(event));
    }

    /// Sends an opened link to the UI now, or holds it until the UI listens.
    pub fn deliver_link(&self, app: &AppHandle, uri: String) {
        info!("opening a link");
        self.deliver(app, Held::Link(uri));
    }

    fn deliver(&self, app: &AppHandle, item: Held) {
        lock(&self.gate).pass(item, |item| emit(app, item));
    }

    /// The UI listens: replays what was held, in order, and lets everything through from now.
    /// Returns whether this was the first call.
    pub fn open_gate(&self, app: &AppHandle) -> bool {
        lock(&self.gate).open(|item| emit(app, item))
    }

    /// Folds an event into the tray status; `Some(text)` when the tray should change.
    pub fn observe_status(&self, event: &EngineEvent) -> Option<String> {
        let mut status = lock(&self.status);
        status.observe(event).then(|| status.describe())
    }

    /// Sets the unread count; `Some(text)` when the tray should change.
    pub fn set_unread(&self, unread: u32) -> Option<String> {
        let mut status = lock(&self.status);
        (status.unread != unread).then(|| {
            status.unread = unread;
            status.describe()
        })
    }

    pub fn describe_status(&self) -> String {
        lock(&self.status).describe()
    }

    /// Marks the app as shutting down; `true` only the first time.
    pub fn begin_exit(&self) -> bool {
        !self.exiting.swap(true, Ordering::SeqCst)
    }
}

fn emit(app: &AppHandle, item: Held) {
    let result = match &item {
        Held::Engine(event) => app.emit_to(MAIN_WINDOW, ENGINE_EVENT, event),
        Held::Link(uri) => app.emit_to(MAIN_WINDOW, OPEN_URI_EVENT, uri),
    };
    if let Err(e) = result {
        warn!(error = %e, "cannot send an event to the window");
    }
}

/// Brings the main window to the front (tray "Show", a second launch, a notification click).
pub fn show_main_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(account: u32, state: AccountState) -> EngineEvent {
        EngineEvent::AccountState {
            account: AccountId(account),
            state,
        }
    }

    #[test]
    fn gate_holds_until_open_then_replays_in_order() {
        let mut gate = Gate::new(3);
        let mut sent = Vec::new();
        for n in 1..=4 {
            gate.pass(n, |n| sent.push(n));
        }
        assert!(sent.is_empty(), "nothing passes before the UI listens");
        assert!(gate.open(|n| sent.push(n)));
        assert_eq!(sent, vec![2, 3, 4], "the oldest is dropped when full");
        gate.pass(5, |n| sent.push(n));
        assert_eq!(sent, vec![2, 3, 4, 5]);
        assert!(!gate.open(|n| sent.push(n)), "only the first open counts");
        assert_eq!(sent, vec![2, 3, 4, 5]);
    }

    #[test]
    fn status_follows_registration_login_and_loss() {
        let mut status = Status::default();
        assert_eq!(status.describe(), "Lyrebird: no accounts");
        assert!(status.observe(&state(1, AccountState::Connecting)));
        assert!(!status.observe(&state(1, AccountState::Connected)));
        assert!(status.observe(&state(
            1,
            AccountState::Registered {
                expires_s: 600,
                outbound: true
            }
        )));
        assert_eq!(status.describe(), "Lyrebird: online");
        assert!(status.observe(&state(2, AccountState::Connecting)));
        assert_eq!(status.describe(), "Lyrebird: 1 of 2 accounts online");
        assert!(status.observe(&EngineEvent::XmppOnline {
            account: AccountId(2),
            jid: "a@b/c".into(),
            resumed: false
        }));
        status.unread = 3;
        assert_eq!(
            status.describe(),
            "Lyrebird: all 2 accounts online, 3 unread messages"
        );
        assert!(status.observe(&state(
            1,
            AccountState::Reconnecting {
                attempt: 1,
                delay_ms: 1000,
                reason: "gone".into()
            }
        )));
        assert!(status.observe(&state(2, AccountState::Stopped)));
        status.unread = 1;
        assert_eq!(status.describe(), "Lyrebird: offline, 1 unread message");
        assert!(!status.observe(&EngineEvent::Warning {
            account: None,
            detail: "x".into()
        }));
    }
}
