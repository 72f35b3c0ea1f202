//! The tray icon: accounts' status and the unread count (tooltip and a disabled first menu
//! line, since some Linux trays show no tooltips), plus Show and Quit.
//!
//! A desktop without a tray (GNOME without an extension, Xvfb) simply shows nothing; closing
//! the window still quits, so the app never becomes unreachable.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};
use tracing::warn;

use crate::shell::show_main_window;

const TRAY_ID: &str = "lyrebird";
const STATUS_ITEM: &str = "status";
const SHOW_ITEM: &str = "show";
const QUIT_ITEM: &str = "quit";

/// The status line of the tray menu, kept to change its text.
pub struct TrayStatus(MenuItem<Wry>);

/// Creates the tray icon. Failing is not fatal: the window works without it.
pub fn create(app: &AppHandle, text: &str) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, STATUS_ITEM, text, false, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, SHOW_ITEM, "Show Lyrebird", true, None::<&str>)?,
            &MenuItem::with_id(app, QUIT_ITEM, "Quit", true, None::<&str>)?,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip(text)
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            SHOW_ITEM => show_main_window(app),
            QUIT_ITEM => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_main_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    app.manage(TrayStatus(status));
    Ok(())
}

/// Shows a new status line (accounts online, unread count).
pub fn update(app: &AppHandle, text: &str) {
    if let Some(tray) = app.tray_by_id(TRAY_ID)
        && let Err(e) = tray.set_tooltip(Some(text))
    {
        warn!(error = %e, "cannot update the tray tooltip");
    }
    if let Some(status) = app.try_state::<TrayStatus>()
        && let Err(e) = status.0.set_text(text)
    {
        warn!(error = %e, "cannot update the tray menu");
    }
}
