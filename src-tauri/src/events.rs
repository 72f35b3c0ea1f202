//! The engine's event stream, read for the life of the app: each event updates the tray and
//! notifications, then goes to the UI (see [`crate::shell`] for why it may be held first).

use lyrebird_engine::EngineEvent;
use tauri::{AppHandle, Manager};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use crate::shell::Shell;
use crate::{notify, tray};

pub async fn forward(app: AppHandle, mut events: UnboundedReceiver<EngineEvent>) {
    while let Some(event) = events.recv().await {
        let shell = app.state::<Shell>();
        if let Some(text) = shell.observe_status(&event) {
            tray::update(&app, &text);
        }
        if changes_unread(&event) {
            refresh_unread(&app);
        }
        notify::on_event(&app, &event);
        shell.deliver_event(&app, event);
    }
    debug!("the engine's event stream ended");
}

fn changes_unread(event: &EngineEvent) -> bool {
    matches!(
        event,
        EngineEvent::MessageReceived { .. }
            | EngineEvent::ChatMessage {
                outgoing: false,
                ..
            }
    )
}

/// Recounts unread messages from the history (the engine's count is the truth) and shows it.
pub fn refresh_unread(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        match shell.engine.conversations().await {
            Ok(conversations) => {
                let unread = conversations.iter().map(|c| c.unread).sum();
                if let Some(text) = shell.set_unread(unread) {
                    tray::update(&app, &text);
                }
            }
            Err(e) => warn!(error = %e, "cannot count unread messages"),
        }
    });
}
