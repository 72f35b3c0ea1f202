//! The few settings the shell itself keeps (the engine keeps accounts and history): which audio
//! devices calls use. A small JSON file in the config folder, replaced atomically on save.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The shell's settings file. Unknown fields are ignored and missing ones take their default,
/// so older and newer versions of the app read each other's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default)]
pub struct ShellSettings {
    /// The chosen capture device by name; `None` follows the system default.
    pub input_device: Option<String>,
    /// The chosen playback device by name; `None` follows the system default.
    pub output_device: Option<String>,
    /// A peer we hold hears the shipped hold music (on), or silence.
    pub music_on_hold: bool,
}

impl Default for ShellSettings {
    fn default() -> Self {
        Self {
            input_device: None,
            output_device: None,
            music_on_hold: true,
        }
    }
}

impl ShellSettings {
    /// Reads the file; a missing file is the defaults. A damaged file is reported so the caller
    /// can log it and carry on with the defaults (a settings file must never stop the app).
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid settings: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes the file next to its final place and renames it over, so a crash mid-write
    /// leaves either the old or the new settings, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&json).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_defaults_and_round_trip_keeps_choices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/settings.json");
        assert_eq!(
            ShellSettings::load(&path).unwrap(),
            ShellSettings::default()
        );
        let chosen = ShellSettings {
            input_device: Some("USB Headset Mic".into()),
            output_device: None,
            music_on_hold: false,
        };
        chosen.save(&path).unwrap();
        assert_eq!(ShellSettings::load(&path).unwrap(), chosen);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, r#"{"output_device":"Speakers","future":1}"#).unwrap();
        let loaded = ShellSettings::load(&path).unwrap();
        assert_eq!(loaded.output_device.as_deref(), Some("Speakers"));
        assert_eq!(loaded.input_device, None);
        // Settings saved before music on hold existed get it on.
        assert!(loaded.music_on_hold);
    }

    #[test]
    fn damaged_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = ShellSettings::load(&path).unwrap_err();
        assert!(err.contains("settings.json"), "{err}");
    }
}
