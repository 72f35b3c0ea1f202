//! The test kit: real servers on loopback (`stack`), `lyrebird-cli` and reference clients
//! driven as JSON-lines processes (`json_lines`, `lyrebird`, `xmpp`), Chromium and WebDriver
//! (`browser`, `webdriver`, `desktop`), and audio that can be scored (`audio`, `speech`).
pub mod audio;
pub mod browser;
pub mod desktop;
pub mod json_lines;
pub mod lyrebird;
pub mod procfs;
pub mod rawsip;
pub mod speech;
pub mod stack;
pub mod webdriver;
pub mod xmpp;
