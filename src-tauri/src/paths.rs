//! Where the desktop app keeps things: the platform's standard folders, unless the environment
//! says otherwise (`LYREBIRD_DATA_DIR` for tests and the demo, `LYREBIRD_DOWNLOADS_DIR` for
//! received files).

use std::path::{Path, PathBuf};

/// Overrides the platform data folder (history database, shell settings).
pub const DATA_DIR_ENV: &str = "LYREBIRD_DATA_DIR";
/// Overrides where received files go.
pub const DOWNLOADS_DIR_ENV: &str = "LYREBIRD_DOWNLOADS_DIR";
/// A JSON file of accounts to save at start (demo only); see [`crate::provision`].
pub const PROVISION_ENV: &str = "LYREBIRD_PROVISION";

/// The history database's file name inside the data folder.
pub const DATABASE_FILE: &str = "history.sqlite3";
/// The folder of call recordings inside the data folder, beside the history they belong to.
pub const RECORDINGS_DIR: &str = "recordings";
/// The hold music's file name inside the data folder.
pub const HOLD_MUSIC_FILE: &str = "hold-music.wav";
/// The shell's own settings file name.
pub const SETTINGS_FILE: &str = "settings.json";

/// The folders the app uses, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// History database lives here.
    pub data_dir: PathBuf,
    /// Shell settings (chosen audio devices) live here.
    pub config_dir: PathBuf,
    /// Received files go here.
    pub downloads_dir: PathBuf,
}

impl Paths {
    /// Resolves the folders from the environment overrides and the platform folders.
    ///
    /// With a data-folder override everything stays inside it (config too), so a test or the
    /// demo never touches the person's real settings.
    pub fn resolve(
        data_override: Option<PathBuf>,
        downloads_override: Option<PathBuf>,
        platform_data: Option<PathBuf>,
        platform_config: Option<PathBuf>,
        platform_downloads: Option<PathBuf>,
    ) -> Result<Self, String> {
        let non_empty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        let (data_dir, config_dir) = match non_empty(data_override) {
            Some(dir) => (dir.clone(), dir),
            None => {
                let data = non_empty(platform_data)
                    .ok_or("the platform has no data folder; set LYREBIRD_DATA_DIR")?;
                let config = non_empty(platform_config).unwrap_or_else(|| data.clone());
                (data, config)
            }
        };
        let downloads_dir = match non_empty(downloads_override) {
            Some(dir) => dir,
            None => match non_empty(platform_downloads) {
                Some(dir) => dir.join("Lyrebird"),
                None => data_dir.join("Downloads"),
            },
        };
        Ok(Self {
            data_dir,
            config_dir,
            downloads_dir,
        })
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// The hold music played to a held peer, copied here from the app on first use.
    pub fn hold_music(&self) -> PathBuf {
        self.data_dir.join(HOLD_MUSIC_FILE)
    }

    pub fn recordings(&self) -> PathBuf {
        self.data_dir.join(RECORDINGS_DIR)
    }

    pub fn settings(&self) -> PathBuf {
        self.config_dir.join(SETTINGS_FILE)
    }
}

/// Reads a path from the environment; unset or empty is `None`.
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
}

/// Creates `dir` (and its parents) if it does not exist.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn data_override_holds_data_and_config() {
        let paths = Paths::resolve(p("/tmp/x"), None, p("/d"), p("/c"), p("/dl")).unwrap();
        assert_eq!(paths.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(paths.config_dir, PathBuf::from("/tmp/x"));
        assert_eq!(paths.database(), PathBuf::from("/tmp/x/history.sqlite3"));
        assert_eq!(paths.settings(), PathBuf::from("/tmp/x/settings.json"));
        assert_eq!(paths.recordings(), PathBuf::from("/tmp/x/recordings"));
        assert_eq!(paths.hold_music(), PathBuf::from("/tmp/x/hold-music.wav"));
        assert_eq!(paths.downloads_dir, PathBuf::from("/dl/Lyrebird"));
    }

    #[test]
    fn platform_folders_and_downloads_override() {
        let paths = Paths::resolve(None, p("/got"), p("/d"), p("/c"), p("/dl")).unwrap();
        assert_eq!(paths.data_dir, PathBuf::from("/d"));
        assert_eq!(paths.config_dir, PathBuf::from("/c"));
        assert_eq!(paths.downloads_dir, PathBuf::from("/got"));
    }

    #[test]
    fn empty_override_is_ignored_and_missing_platform_is_an_error() {
        let paths = Paths::resolve(p(""), p(""), p("/d"), None, None).unwrap();
        assert_eq!(paths.data_dir, PathBuf::from("/d"));
        assert_eq!(paths.config_dir, PathBuf::from("/d"));
        assert_eq!(paths.downloads_dir, PathBuf::from("/d/Downloads"));
        assert!(Paths::resolve(None, None, None, None, None).is_err());
    }
}
