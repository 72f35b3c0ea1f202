//! Native notifications: incoming calls (with Answer and Decline buttons where the desktop's
//! notification server offers actions), messages and file offers while the window is not in
//! front. A desktop without a notification server only loses the notification: every failure
//! is logged and nothing else happens.

use lyrebird_engine::{CallId, EngineEvent};
use tauri::{AppHandle, Manager};
use tauri_plugin_notification::{Action, ActionPerformed, ActionType, NotificationExt};
use tracing::{info, warn};

use crate::shell::{MAIN_WINDOW, Shell, show_main_window};

const INCOMING_CALL_ACTIONS: &str = "incoming-call";
const ANSWER: &str = "answer";
const DECLINE: &str = "decline";
/// `extra` key holding the call a notification is about.
const CALL_KEY: &str = "call";
/// Longest message preview in a notification.
const PREVIEW_CHARS: usize = 140;

/// Registers the Answer / Decline buttons and what they do.
pub fn register(app: &AppHandle) {
    let notifications = app.notification();
    let actions = ActionType::builder(INCOMING_CALL_ACTIONS)
        .actions(vec![
            Action::builder(ANSWER, "Answer").build(),
            Action::builder(DECLINE, "Decline").build(),
        ])
        .build();
    if let Err(e) = notifications.register_action_types(vec![actions]) {
        warn!(error = %e, "notification actions unavailable");
    }
    let handle = app.clone();
    if let Err(e) = notifications.on_action(move |performed| on_action(&handle, performed)) {
        warn!(error = %e, "notification actions unavailable");
    }
}

fn on_action(app: &AppHandle, performed: &ActionPerformed) {
    let call = performed
        .notification()
        .and_then(|n| n.extra().get(CALL_KEY))
        .and_then(serde_json::Value::as_u64)
        .map(CallId);
    match (performed.action_id(), call) {
        (ANSWER, Some(call)) => {
            info!(call = call.0, "answered from a notification");
            show_main_window(app);
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let shell = app.state::<Shell>();
                let audio = shell.call_audio().await;
                if let Err(e) = shell.engine.answer(call, Some(audio)).await {
                    warn!(call = call.0, error = %e, "cannot answer from the notification");
                }
            });
        }
        (DECLINE, Some(call)) => {
            info!(call = call.0, "declined from a notification");
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = app.state::<Shell>().engine.reject(call).await {
                    warn!(call = call.0, error = %e, "cannot decline from the notification");
                }
            });
        }
        _ => show_main_window(app),
    }
}

/// Shows what a person should notice about `event`, if anything.
pub fn on_event(app: &AppHandle, event: &EngineEvent) {
    match event {
        EngineEvent::IncomingCall {
            call,
            from,
            display_name,
            ..
        } => {
            // A ringing phone comes forward (without taking the keyboard away).
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.request_user_attention(Some(tauri::UserAttentionType::Critical));
            }
            let who = display_name.as_deref().unwrap_or(from);
            show(
                app,
                "Incoming call",
                who,
                Some((notification_id(call.0), call.0)),
            );
        }
        EngineEvent::CallState {
            call,
            state: lyrebird_engine::CallState::Answered | lyrebird_engine::CallState::Ended { .. },
            ..
        } => {
            // Answered, declined or ended elsewhere: the buttons would do nothing now.
            let _ = app
                .notification()
                .remove_active(vec![notification_id(call.0)]);
        }
        EngineEvent::MessageReceived { from, body, .. } if !window_in_front(app) => {
            show(app, from, &preview(body), None);
        }
        EngineEvent::ChatMessage {
            peer,
            nick,
            room,
            outgoing: false,
            body,
            origin: lyrebird_engine::ChatOrigin::Live,
            ..
        } if !window_in_front(app) => {
            let title = match (room, nick) {
                (true, Some(nick)) => format!("{nick} in {peer}"),
                _ => peer.clone(),
            };
            show(app, &title, &preview(body), None);
        }
        EngineEvent::TransferOffered { offer, .. } if !window_in_front(app) => {
            show(
                app,
                "File offered",
                &format!("{} offers {}", offer.from, offer.file_name),
                None,
            );
        }
        _ => {}
    }
}

fn window_in_front(app: &AppHandle) -> bool {
    app.get_webview_window(MAIN_WINDOW)
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false)
}

/// Notification ids are `i32`; a call id's low bits are unique enough among ringing calls.
fn notification_id(call: u64) -> i32 {
    (call & 0x7fff_ffff) as i32
}

fn show(app: &AppHandle, title: &str, body: &str, call: Option<(i32, u64)>) {
    let mut builder = app
        .notification()
        .builder()
        .title(as_plain_text(title))
        .body(as_plain_text(body));
    if let Some((id, call)) = call {
        builder = builder
            .id(id)
            .action_type_id(INCOMING_CALL_ACTIONS)
            .extra(CALL_KEY, call);
    }
    if let Err(e) = builder.show() {
        warn!(error = %e, "cannot show a notification");
    }
}

/// The first [`PREVIEW_CHARS`] characters of a message on one line.
pub fn preview(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Freedesktop notification servers may read a body as markup (`<b>`, `<a href>`, `<img>`;
/// Desktop Notifications Specification, "Markup"), so what a remote party wrote is escaped to
/// stay text. Other platforms show text as is.
pub fn as_plain_text(text: &str) -> String {
    if cfg!(all(unix, not(target_os = "macos"))) {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_is_one_short_line() {
        assert_eq!(preview("hello\n  there"), "hello there");
        let long = "é".repeat(300);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn remote_markup_stays_text() {
        let shown = as_plain_text("<img src=x onerror=alert(1)> & <b>hi</b>");
        if cfg!(all(unix, not(target_os = "macos"))) {
            assert_eq!(
                shown,
                "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;hi&lt;/b&gt;"
            );
        }
        assert!(!shown.contains("<img"));
    }

    #[test]
    fn notification_ids_are_positive() {
        assert_eq!(notification_id(7), 7);
        assert!(notification_id(u64::MAX) >= 0);
    }
}
