//! placeholder
pub mod audio;
pub mod browser;
pub mod desktop;
pub mod lyrebird;
pub mod rawsip;
pub mod speech;
pub mod stack;
pub mod webdriver;
pub mod xmpp;
