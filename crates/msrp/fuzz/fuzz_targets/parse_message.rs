//! Any input: the parser returns a message or an error, never panics; a message it accepts
//! re-encodes to something it accepts again, with the same meaning; the typed views of the
//! headers (paths, Byte-Range, Status) and the SDP parser never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lyrebird_msrp::{Message, MsrpMedia};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data) {
        let _ = message.to_path();
        let _ = message.from_path();
        let _ = message.byte_range();
        let _ = message.status_header();
        let again = Message::parse(&message.encode()).expect("an accepted message re-parses");
        assert_eq!(again, message);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = MsrpMedia::parse(text);
    }
});
