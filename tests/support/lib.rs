//! placeholder
pub mod audio;
pub mod browser;
pub mod lyrebird;
pub mod rawsip;
pub mod speech;
pub mod stack;
pub mod xmpp;
