//! The main window and what keeps its web view small.
//!
//! WebKitGTK's defaults suit a browser: GPU compositing (a GL context and tile buffers per
//! layer), a page cache for back/forward navigation, and a web-browser-sized memory cache. A
//! single-page app navigates nowhere and loads everything from the app itself, so Lyrebird
//! turns those off. `LYREBIRD_WEBVIEW_DEFAULTS=1` keeps WebKit's defaults (to measure the
//! difference).

use tauri::{App, WebviewWindow, WebviewWindowBuilder};
use tracing::{debug, info};

use crate::shell::MAIN_WINDOW;

/// Set to keep WebKit's own defaults.
pub const DEFAULTS_ENV: &str = "LYREBIRD_WEBVIEW_DEFAULTS";

fn tuning_enabled() -> bool {
    std::env::var_os(DEFAULTS_ENV).is_none_or(|v| v.is_empty() || v == "0")
}

/// Environment for WebKit, set before any thread or GTK exists. Must be called first in `main`.
///
/// - `WEBKIT_DISABLE_COMPOSITING_MODE=1` makes WebKitGTK draw without accelerated compositing
///   from the first paint (the setting in [`tune`] only applies after the page started);
///   measured on Debian 12 under Xvfb it saves tens of MiB of the web process.
/// - `JSC_useJIT=0` runs the UI's script in JavaScriptCore's interpreter: a 50 kB app that
///   mostly waits for events gains nothing from compiled code, and the web process is 7–10 MiB
///   smaller without the JIT's code and compiler memory (start-to-paint unchanged within noise;
///   BENCHMARKS.md). It also leaves no writable-and-executable memory in the web process. The
///   web process inherits the variable.
///
/// A value the user set wins.
pub fn prepare_environment() {
    if !cfg!(target_os = "linux") || !tuning_enabled() {
        return;
    }
    for (name, value) in [
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
        ("JSC_useJIT", "0"),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: called at the top of `main`, before any other thread exists, so nothing
            // can read the environment concurrently (the reason `set_var` is unsafe).
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(name, value);
            }
        }
    }
}

/// Creates the main window from its configuration (`tauri.conf.json`, label `main`),
/// minimised when started at login.
pub fn create_main_window(app: &App, minimized: bool) -> tauri::Result<WebviewWindow> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN_WINDOW)
        .cloned()
        .ok_or_else(|| {
            tauri::Error::AssetNotFound(format!("window `{MAIN_WINDOW}` in tauri.conf.json"))
        })?;
    let window = WebviewWindowBuilder::from_config(app.handle(), &config)?.build()?;
    if minimized {
        window.minimize()?;
    }
    if tuning_enabled() {
        tune(&window);
    }
    Ok(window)
}

/// Lighter WebKit settings for a single-page app.
#[cfg(target_os = "linux")]
fn tune(window: &WebviewWindow) {
    let result = window.with_webview(|webview| {
        use webkit2gtk::{
            CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
        };
        let view = webview.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            // No back/forward navigation in a single-page app: nothing to keep cached.
            settings.set_enable_page_cache(false);
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            settings.set_enable_webgl(false);
            settings.set_enable_back_forward_navigation_gestures(false);
        }
        if let Some(context) = view.context() {
            // The smallest caches: everything is local and loaded once.
            context.set_cache_model(CacheModel::DocumentViewer);
        }
        debug!("web view tuned for memory");
    });
    if let Err(e) = result {
        info!(error = %e, "web view keeps WebKit's defaults");
    }
}

#[cfg(not(target_os = "linux"))]
fn tune(_window: &WebviewWindow) {}
