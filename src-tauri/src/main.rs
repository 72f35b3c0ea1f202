// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    let clock = lyrebird_desktop::startup::StartClock::now();
    lyrebird_desktop::webview::prepare_environment();
    lyrebird_desktop::init_logging();
    match lyrebird_desktop::run(clock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
