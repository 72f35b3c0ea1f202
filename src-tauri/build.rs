//! Declares the app's commands so each gets an `allow-<command>` permission: the capability
//! file (capabilities/main.json) then grants the main window exactly the commands it uses.

const COMMANDS: &[&str] = include!("src/command_names.rs");

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .unwrap_or_else(|e| panic!("tauri-build: {e:#}"));
}
