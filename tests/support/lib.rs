//! The test kit: real servers on loopback (`stack`), `lyrebird-cli` and reference clients
//! driven as JSON-lines processes (`json_lines`, `lyrebird`, `xmpp`), Chromium and WebDriver
//! (`browser`, `webdriver`, `desktop`), accessibility audits of the window (`axe`), audio
//! that can be scored (`audio`, `speech`), and leak and soak runs (`reliability`).
pub mod audio;
pub mod axe;
pub mod browser;
pub mod desktop;
pub mod jingle_browser;
pub mod json_lines;
pub mod lyrebird;
pub mod procfs;
pub mod rawsip;
pub mod reliability;
pub mod speech;
pub mod stack;
pub mod webdriver;
pub mod xmpp;

/// A test's own files under a fresh temporary folder named `<prefix>…`; kept (and named on
/// stderr) when `LYREBIRD_KEEP_TEST_DIRS` is set, to read the logs of a failure.
pub fn test_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let mut dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    if std::env::var_os("LYREBIRD_KEEP_TEST_DIRS").is_some() {
        eprintln!("test files kept in {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    Ok(dir)
}
