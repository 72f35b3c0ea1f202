//! The commands the UI invokes. Each is a thin call into [`EngineHandle`] (or the shell's own
//! settings); errors reach the UI as [`EngineError`], a tagged union
//! `{ kind: "transport", detail: "..." }` the UI turns into words.
//!
//! Argument names follow Tauri's convention: JavaScript passes them in camelCase
//! (`invoke("watch_call", { call, onStats })`, `invoke("ui_ready", { paintedMs })`).

use std::path::PathBuf;
use std::time::Duration;

use lyrebird_engine::{
    AccountCheck, AccountId, AccountSettings, AudioDevices, CallId, CallRecord, ContactEntry,
    ConversationSummary, EngineError, MediaStats, MessageId, MessageRecord, Password, SavedAccount,
    SearchHit, TransferId, TransferRecord, XmppAction, XmppReply,
};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_dialog::DialogExt as _;
use tauri_plugin_opener::OpenerExt as _;
use tracing::{debug, info};

use crate::bindings::Bootstrap;
use crate::events::refresh_unread;
use crate::shell::Shell;

type Reply<T> = Result<T, EngineError>;

/// How often `watch_call` sends statistics.
const STATS_INTERVAL: Duration = Duration::from_millis(200);
/// How often `audio_test` sends the input level, and for how long.
const LEVEL_INTERVAL: Duration = Duration::from_millis(50);
const AUDIO_TEST_LENGTH: Duration = Duration::from_secs(5);
/// The output half of `audio_test`: a soft A4 for one second.
const TEST_TONE_HZ: f32 = 440.0;
const TEST_TONE: Duration = Duration::from_secs(1);

/// An OS facility (autostart, file dialog, file manager) failed; said in words.
fn desktop_error(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidState(format!("{what}: {e}"))
}

/// Everything the first screen needs, from the local history (no network wait).
#[tauri::command]
pub async fn bootstrap(shell: State<'_, Shell>) -> Reply<Bootstrap> {
    let engine = &shell.engine;
    let (accounts, contacts, conversations, calls, transfers) = tokio::try_join!(
        engine.saved_accounts(),
        engine.contacts(),
        engine.conversations(),
        engine.recent_calls(50),
        engine.recent_transfers(50),
    )?;
    Ok(Bootstrap {
        accounts,
        contacts,
        conversations,
        calls,
        transfers,
        downloads_dir: shell.paths.downloads_dir.display().to_string(),
        recordings_dir: shell.paths.recordings().display().to_string(),
        keyring_available: shell.keyring_available().await,
        audio: shell.settings(),
    })
}

#[tauri::command]
pub async fn save_account(
    shell: State<'_, Shell>,
    settings: AccountSettings,
    password: String,
    remember: bool,
) -> Reply<SavedAccount> {
    let remember = remember && shell.keyring_available().await;
    shell
        .engine
        .save_account(settings, Password::new(password), remember)
        .await
}

#[tauri::command]
pub async fn check_account(
    shell: State<'_, Shell>,
    settings: AccountSettings,
    password: String,
) -> Reply<AccountCheck> {
    shell
        .engine
        .check_account(settings, Password::new(password))
        .await
}

#[tauri::command]
pub async fn forget_account(shell: State<'_, Shell>, account: AccountId) -> Reply<()> {
    shell.engine.forget_account(account).await
}

#[tauri::command]
pub async fn contacts(shell: State<'_, Shell>) -> Reply<Vec<ContactEntry>> {
    shell.engine.contacts().await
}

#[tauri::command]
pub async fn conversations(shell: State<'_, Shell>) -> Reply<Vec<ConversationSummary>> {
    shell.engine.conversations().await
}

/// Calls `target` with the audio devices chosen in the settings.
#[tauri::command]
pub async fn start_call(
    shell: State<'_, Shell>,
    account: AccountId,
    target: String,
) -> Reply<CallId> {
    let audio = shell.call_audio().await;
    shell.engine.call(account, &target, audio).await
}

#[tauri::command]
pub async fn answer_call(shell: State<'_, Shell>, call: CallId) -> Reply<()> {
    let audio = shell.call_audio().await;
    shell.engine.answer(call, Some(audio)).await
}

#[tauri::command]
pub async fn reject_call(shell: State<'_, Shell>, call: CallId) -> Reply<()> {
    shell.engine.reject(call).await
}

#[tauri::command]
pub async fn hangup_call(shell: State<'_, Shell>, call: CallId) -> Reply<()> {
    shell.engine.hangup(call).await
}

#[tauri::command]
pub async fn set_muted(shell: State<'_, Shell>, call: CallId, muted: bool) -> Reply<()> {
    shell.engine.set_muted(call, muted).await
}

/// Puts a call on hold (`hold`) or resumes it; `call_hold` events tell who holds.
#[tauri::command]
pub async fn hold_call(shell: State<'_, Shell>, call: CallId, hold: bool) -> Reply<()> {
    match hold {
        true => shell.engine.hold(call).await,
        false => shell.engine.resume(call).await,
    }
}

/// Asks the other side of `call` to call `target` instead (blind transfer).
#[tauri::command]
pub async fn transfer_call(shell: State<'_, Shell>, call: CallId, target: String) -> Reply<()> {
    shell.engine.transfer(call, &target).await
}

/// Connects the other side of `call` with the other side of `to` (attended transfer).
#[tauri::command]
pub async fn attended_transfer(shell: State<'_, Shell>, call: CallId, to: CallId) -> Reply<()> {
    shell.engine.attended_transfer(call, to).await
}

/// Mixes `calls` (and any already in it) into the local conference; `conference` events say
/// which calls it holds.
#[tauri::command]
pub async fn merge_calls(shell: State<'_, Shell>, calls: Vec<CallId>) -> Reply<()> {
    shell.engine.merge(calls).await
}

/// Takes a call out of the conference; it stays connected on its own.
#[tauri::command]
pub async fn split_call(shell: State<'_, Shell>, call: CallId) -> Reply<()> {
    shell.engine.split(call).await
}

/// Leaves the conference: the other two are connected to each other where one account holds
/// both calls, else it ends for everyone.
#[tauri::command]
pub async fn leave_conference(shell: State<'_, Shell>) -> Reply<()> {
    shell.engine.leave_conference().await
}

/// Starts (`on`) or stops recording a call into the recordings folder; `call_recording` events
/// say which file.
#[tauri::command]
pub async fn record_call(shell: State<'_, Shell>, call: CallId, on: bool) -> Reply<()> {
    shell.engine.record(call, on).await
}

#[tauri::command]
pub async fn send_dtmf(shell: State<'_, Shell>, call: CallId, digit: char) -> Reply<()> {
    shell.engine.send_dtmf(call, digit).await
}

/// Streams the call's statistics (levels, packets, jitter, codec) every 200 ms until the call
/// ends or the page stops listening. Fails at once if there is no such call.
#[tauri::command]
pub async fn watch_call(
    shell: State<'_, Shell>,
    call: CallId,
    on_stats: Channel<MediaStats>,
) -> Reply<()> {
    let first = shell.engine.call_stats(call).await?;
    let _ = on_stats.send(first);
    let engine = shell.engine.clone();
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Ok(stats) = engine.call_stats(call).await else {
                break; // the call has ended
            };
            if on_stats.send(stats).is_err() {
                break; // the page is gone
            }
        }
        debug!(call = call.0, "stopped watching call statistics");
    });
    Ok(())
}

#[tauri::command]
pub async fn send_sip_message(
    shell: State<'_, Shell>,
    account: AccountId,
    to: String,
    body: String,
) -> Reply<MessageId> {
    shell.engine.send_message(account, &to, &body).await
}

#[tauri::command]
pub async fn xmpp(
    shell: State<'_, Shell>,
    account: AccountId,
    action: XmppAction,
) -> Reply<XmppReply> {
    shell.engine.xmpp(account, action).await
}

#[tauri::command]
pub async fn conversation(
    shell: State<'_, Shell>,
    account: AccountId,
    peer: String,
    limit: u32,
) -> Reply<Vec<MessageRecord>> {
    shell.engine.conversation(account, &peer, limit).await
}

#[tauri::command]
pub async fn room_history(
    shell: State<'_, Shell>,
    account: AccountId,
    room: String,
    limit: u32,
) -> Reply<Vec<MessageRecord>> {
    shell.engine.room_history(account, &room, limit).await
}

#[tauri::command]
pub async fn search_messages(
    shell: State<'_, Shell>,
    query: String,
    limit: u32,
) -> Reply<Vec<SearchHit>> {
    shell.engine.search_messages(&query, limit).await
}

#[tauri::command]
pub async fn recent_calls(shell: State<'_, Shell>, limit: u32) -> Reply<Vec<CallRecord>> {
    shell.engine.recent_calls(limit).await
}

#[tauri::command]
pub async fn recent_transfers(shell: State<'_, Shell>, limit: u32) -> Reply<Vec<TransferRecord>> {
    shell.engine.recent_transfers(limit).await
}

#[tauri::command]
pub async fn mark_read(
    app: AppHandle,
    shell: State<'_, Shell>,
    account: AccountId,
    peer: String,
    room: Option<bool>,
) -> Reply<()> {
    shell
        .engine
        .mark_read(account, &peer, room.unwrap_or(false))
        .await?;
    refresh_unread(&app);
    Ok(())
}

#[tauri::command]
pub async fn send_file(
    shell: State<'_, Shell>,
    account: AccountId,
    to: String,
    path: PathBuf,
) -> Reply<TransferId> {
    shell.engine.send_file(account, &to, path).await
}

/// Lets the person pick a file, then sends it: over MSRP from a SIP account, by HTTP upload
/// (XEP-0363) from an XMPP account (`room` for a room JID). Gives the transfer's id, or `null`
/// when they cancel the dialog; progress arrives as events.
#[tauri::command]
pub async fn pick_and_send_file(
    app: AppHandle,
    shell: State<'_, Shell>,
    account: AccountId,
    to: String,
    room: Option<bool>,
) -> Reply<Option<u64>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title(format!("Send a file to {to}"))
        .pick_file(move |picked| drop(tx.send(picked)));
    let Some(picked) = rx.await.ok().flatten() else {
        return Ok(None);
    };
    let path = picked
        .into_path()
        .map_err(|e| desktop_error("the chosen file", e))?;
    let is_xmpp = shell
        .engine
        .saved_accounts()
        .await?
        .iter()
        .any(|a| a.id == account && matches!(a.settings, AccountSettings::Xmpp(_)));
    if !is_xmpp {
        return shell
            .engine
            .send_file(account, &to, path)
            .await
            .map(|t| Some(t.0));
    }
    let share = XmppAction::ShareFile {
        to,
        path,
        room: room.unwrap_or(false),
        content_type: None,
    };
    match shell.engine.xmpp(account, share).await? {
        XmppReply::Transfer { transfer } => Ok(Some(transfer)),
        _ => Ok(None),
    }
}

/// Accepts an offered file into the downloads folder.
#[tauri::command]
pub async fn accept_transfer(shell: State<'_, Shell>, transfer: TransferId) -> Reply<()> {
    let folder = shell.paths.downloads_dir.clone();
    crate::paths::ensure_dir(&folder).map_err(|e| desktop_error("the downloads folder", e))?;
    shell.engine.accept_transfer(transfer, Some(folder)).await
}

#[tauri::command]
pub async fn decline_transfer(shell: State<'_, Shell>, transfer: TransferId) -> Reply<()> {
    shell.engine.decline_transfer(transfer).await
}

#[tauri::command]
pub async fn cancel_transfer(shell: State<'_, Shell>, transfer: TransferId) -> Reply<()> {
    shell.engine.cancel_transfer(transfer).await
}

/// Opens the downloads folder in the file manager.
#[tauri::command]
pub async fn open_downloads(app: AppHandle, shell: State<'_, Shell>) -> Reply<()> {
    let folder = &shell.paths.downloads_dir;
    crate::paths::ensure_dir(folder).map_err(|e| desktop_error("the downloads folder", e))?;
    app.opener()
        .open_path(folder.display().to_string(), None::<&str>)
        .map_err(|e| desktop_error("the file manager", e))
}

/// Opens the recordings folder in the file manager.
#[tauri::command]
pub async fn open_recordings(app: AppHandle, shell: State<'_, Shell>) -> Reply<()> {
    let folder = shell.paths.recordings();
    crate::paths::ensure_dir(&folder).map_err(|e| desktop_error("the recordings folder", e))?;
    app.opener()
        .open_path(folder.display().to_string(), None::<&str>)
        .map_err(|e| desktop_error("the file manager", e))
}

/// The sound devices present now (they come and go; the UI asks again when it shows them).
#[tauri::command]
pub async fn audio_devices() -> Reply<AudioDevices> {
    tauri::async_runtime::spawn_blocking(lyrebird_engine::list_audio_devices)
        .await
        .map_err(|e| EngineError::Media(e.to_string()))?
        .map_err(EngineError::from)
}

/// Chooses the devices calls use; `null` follows the system default.
#[tauri::command]
pub async fn set_audio_devices(
    shell: State<'_, Shell>,
    input: Option<String>,
    output: Option<String>,
) -> Reply<()> {
    shell
        .update_settings(|s| {
            s.input_device = input;
            s.output_device = output;
        })
        .map_err(|e| desktop_error("settings", e))
}

/// Turns music on hold on or off for calls held from now on.
#[tauri::command]
pub async fn set_music_on_hold(shell: State<'_, Shell>, on: bool) -> Reply<()> {
    shell
        .update_settings(|s| s.music_on_hold = on)
        .map_err(|e| desktop_error("settings", e))
}

/// Tests the chosen devices: plays a one-second tone on the output and streams the input's
/// level (0..1) every 50 ms for five seconds (then a final 0) for the settings' meter.
#[tauri::command]
pub async fn audio_test(shell: State<'_, Shell>, on_level: Channel<f32>) -> Reply<()> {
    let chosen = shell.settings();
    let mut meter = lyrebird_engine::InputMeter::open(chosen.input_device).await?;
    tauri::async_runtime::spawn(async move {
        let tone = lyrebird_engine::play_test_tone(chosen.output_device, TEST_TONE_HZ, TEST_TONE);
        if let Err(e) = tone.await {
            info!(error = %e, "cannot play the test tone");
        }
    });
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(LEVEL_INTERVAL);
        let end = tokio::time::Instant::now() + AUDIO_TEST_LENGTH;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            if on_level.send(meter.level()).is_err() {
                break;
            }
        }
        let _ = on_level.send(0.0);
    });
    Ok(())
}

/// Starts Lyrebird (minimised) at login, or stops doing so.
#[tauri::command]
pub async fn set_autostart(app: AppHandle, enabled: bool) -> Reply<()> {
    let launcher = app.autolaunch();
    if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    }
    .map_err(|e| desktop_error("start at login", e))
}

#[tauri::command]
pub async fn autostart_enabled(app: AppHandle) -> Reply<bool> {
    app.autolaunch()
        .is_enabled()
        .map_err(|e| desktop_error("start at login", e))
}

/// The UI has painted its first useful screen (contacts from history) and listens to events:
/// logs the time since the process started (the start-up benchmark reads this line) and
/// delivers events and links held until now.
#[tauri::command]
pub async fn ui_ready(app: AppHandle, shell: State<'_, Shell>, painted_ms: f64) -> Reply<()> {
    if shell.open_gate(&app) {
        let since_start = shell.clock.elapsed().as_millis();
        info!(
            "first useful paint after {since_start} ms (the page painted {painted_ms:.0} ms after it started)"
        );
    }
    Ok(())
}
