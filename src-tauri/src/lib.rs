//! Lyrebird's desktop shell: a Tauri 2 window over [`lyrebird_engine`].
//!
//! The shell is thin. It starts the engine on Tauri's tokio runtime, forwards every
//! `EngineEvent` to the window as the Tauri event `"engine"`, answers the UI's commands
//! ([`commands`]) with one call into `EngineHandle` each, and does what a desktop app is
//! expected to do: a tray icon with status and unread count ([`tray`]), notifications
//! ([`notify`]), one instance per user, `sip:` / `tel:` / `xmpp:` links ([`links`]), start at
//! login (minimised) and the platform's folders ([`paths`]).
//!
//! ```text
//!  WebKit page (ui/) ──invoke──▶ commands ──▶ EngineHandle ──▶ engine tasks
//!        ▲                                                          │
//!        └──── "engine" events ◀── shell gate ◀── events::forward ◀─┘ (tray, notifications)
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod bindings;
pub mod commands;
#[cfg(test)]
mod config_check;
mod events;
pub mod links;
mod notify;
pub mod paths;
pub mod provision;
pub mod settings;
mod shell;
pub mod startup;
mod tray;
pub mod webview;

use anyhow::Context as _;
use lyrebird_engine::{Engine, EngineConfig, EngineHandle, Password};
use tauri::{App, AppHandle, Manager, RunEvent};
use tauri_plugin_deep_link::DeepLinkExt as _;
use tracing::{error, info, warn};

pub use bindings::Bootstrap;
pub use shell::{ENGINE_EVENT, OPEN_URI_EVENT};

use crate::paths::{DATA_DIR_ENV, DOWNLOADS_DIR_ENV, PROVISION_ENV, Paths, env_path};
use crate::settings::ShellSettings;
use crate::shell::Shell;
use crate::startup::StartClock;

/// The argument autostart passes: start with the window minimised.
pub const MINIMIZED_FLAG: &str = "--minimized";

/// Logs to stderr; `RUST_LOG` overrides the default (`info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the app until the person quits.
pub fn run(clock: StartClock) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let minimized = args.iter().any(|a| a == MINIMIZED_FLAG);
    let first_links = links::links_in_args(args.iter().skip(1));

    let app = tauri::Builder::default()
        // First, so a second launch hands over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            info!("second launch: bringing the window forward");
            shell::show_main_window(app);
            open_links(app, links::links_in_args(argv.iter().skip(1)));
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .args([MINIMIZED_FLAG])
                .build(),
        )
        .plugin(tauri_plugin_dialog::init())
        .plugin(
            tauri_plugin_opener::Builder::new()
                .open_js_links_on_click(false)
                .build(),
        )
        .invoke_handler(tauri::generate_handler![
            commands::bootstrap,
            commands::save_account,
            commands::check_account,
            commands::forget_account,
            commands::contacts,
            commands::conversations,
            commands::start_call,
            commands::answer_call,
            commands::reject_call,
            commands::hangup_call,
            commands::set_muted,
            commands::send_dtmf,
            commands::hold_call,
            commands::transfer_call,
            commands::attended_transfer,
            commands::merge_calls,
            commands::split_call,
            commands::leave_conference,
            commands::record_call,
            commands::watch_call,
            commands::send_sip_message,
            commands::xmpp,
            commands::conversation,
            commands::room_history,
            commands::search_messages,
            commands::recent_calls,
            commands::recent_transfers,
            commands::mark_read,
            commands::send_file,
            commands::pick_and_send_file,
            commands::accept_transfer,
            commands::decline_transfer,
            commands::cancel_transfer,
            commands::open_downloads,
            commands::open_recordings,
            commands::audio_devices,
            commands::set_audio_devices,
            commands::set_music_on_hold,
            commands::audio_test,
            commands::set_autostart,
            commands::autostart_enabled,
            commands::ui_ready,
        ])
        .setup(move |app| {
            setup(app, clock, minimized, first_links)
                .map_err(|e| Box::<dyn std::error::Error>::from(format!("{e:#}")))
        })
        .build(tauri::generate_context!())
        .context("cannot start the window")?;
    app.run(on_run_event);
    Ok(())
}

fn setup(
    app: &mut App,
    clock: StartClock,
    minimized: bool,
    first_links: Vec<String>,
) -> anyhow::Result<()> {
    let handle = app.handle().clone();
    let resolver = app.path();
    let paths = Paths::resolve(
        env_path(DATA_DIR_ENV),
        env_path(DOWNLOADS_DIR_ENV),
        resolver.app_data_dir().ok(),
        resolver.app_config_dir().ok(),
        resolver.download_dir().ok(),
    )
    .map_err(anyhow::Error::msg)?;
    paths::ensure_dir(&paths.data_dir)
        .with_context(|| format!("cannot create {}", paths.data_dir.display()))?;
    let settings = ShellSettings::load(&paths.settings()).unwrap_or_else(|e| {
        warn!("{e}; using default settings");
        ShellSettings::default()
    });

    let config = EngineConfig {
        database: Some(paths.database()),
        downloads: paths.downloads_dir.clone(),
        recordings: paths.recordings(),
        ..EngineConfig::default()
    };
    let (engine, events) = tauri::async_runtime::block_on(async move { Engine::start(config) })
        .context("cannot start the engine")?;
    info!("engine started");
    app.manage(engine.clone());
    app.manage(Shell::new(engine.clone(), paths, clock, settings));
    // Probe the keyring while the window is being created, not before it.
    let probe = handle.clone();
    tauri::async_runtime::spawn(async move {
        let available = probe.state::<Shell>().keyring_available().await;
        info!(keyring_available = available, "keyring probed");
    });

    webview::create_main_window(app, minimized).context("cannot create the window")?;
    let status = app.state::<Shell>().describe_status();
    if let Err(e) = tray::create(&handle, &status) {
        warn!(error = %e, "no tray icon");
    }
    notify::register(&handle);

    // macOS delivers links as events; Linux and Windows as arguments (handled above).
    let link_handle = handle.clone();
    app.deep_link().on_open_url(move |event| {
        open_links(
            &link_handle,
            event.urls().iter().map(|u| u.to_string()).collect(),
        );
    });
    open_links(&handle, first_links);

    tauri::async_runtime::spawn(events::forward(handle.clone(), events));
    tauri::async_runtime::spawn(start_accounts(engine));
    // A page that never reports ready still gets its events.
    let gate_handle = handle.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(shell::GATE_TIMEOUT).await;
        if gate_handle.state::<Shell>().open_gate(&gate_handle) {
            warn!("the UI did not report ready; sending held events anyway");
        }
    });
    events::refresh_unread(&handle);
    #[cfg(unix)]
    tauri::async_runtime::spawn(stop_on_signal(handle.clone()));
    Ok(())
}

/// SIGTERM (logout, `kill`) and SIGINT (Ctrl-C in a terminal) quit like the Quit menu, so
/// accounts unregister and the last history is written.
#[cfg(unix)]
async fn stop_on_signal(app: AppHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot watch for stop signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("asked to stop by a signal");
    app.exit(0);
}

fn open_links(app: &AppHandle, links: Vec<String>) {
    let shell = app.state::<Shell>();
    for link in links.into_iter().filter(|l| links::is_link(l)) {
        shell.deliver_link(app, link);
    }
}

/// Saves the demo accounts (if any), then starts every saved account.
async fn start_accounts(engine: EngineHandle) {
    if let Some(path) = env_path(PROVISION_ENV) {
        match provision::load(&path) {
            Ok(accounts) => {
                for account in accounts {
                    let password: Password = account.password();
                    if let Err(e) = engine.save_account(account.settings, password, false).await {
                        error!(error = %e, "cannot save a provisioned account");
                    }
                }
            }
            Err(e) => error!("{e}"),
        }
    }
    match engine.start_saved_accounts().await {
        Ok(started) => info!(count = started.len(), "saved accounts started"),
        Err(e) => error!(error = %e, "cannot start saved accounts"),
    }
}

fn on_run_event(app: &AppHandle, event: RunEvent) {
    if let RunEvent::ExitRequested { api, code, .. } = event {
        let shell = app.state::<Shell>();
        if shell.begin_exit() {
            // Unregister and write the last history before the process goes.
            api.prevent_exit();
            let engine = shell.engine.clone();
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                info!("shutting down");
                let _ = tokio::time::timeout(std::time::Duration::from_secs(6), engine.shutdown())
                    .await;
                app.exit(code.unwrap_or(0));
            });
        }
    }
}
