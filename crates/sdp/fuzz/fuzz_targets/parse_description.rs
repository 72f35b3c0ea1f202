//! Any input: the parser returns a description or an error, never panics; a description it
//! accepts writes back to text it reads as the same description, and the hold rewrite keeps
//! it readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lyrebird_sdp::{Direction, SessionDescription};

fuzz_target!(|data: &[u8]| {
    if let Ok(description) = SessionDescription::parse_bytes(data) {
        let again = SessionDescription::parse(&description.to_string())
            .expect("an accepted description re-parses");
        assert_eq!(again, description);
        for index in 0..description.media.len() {
            let _ = description.holds(index);
            let _ = description.ice_credentials(index);
        }
        let mut held = description;
        held.map_audio_video_direction(Direction::held);
        held.bump_version();
        SessionDescription::parse(&held.to_string()).expect("a held description re-parses");
    }
});
