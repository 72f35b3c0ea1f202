//! SDP as both users read it: the call's media view and the MSRP session's view.

use lyrebird_msrp::{MsrpMedia, offers_msrp};
use lyrebird_sdp::{Direction, FileSelector, SessionDescription, parse_file_range};

/// A description from a peer's offer or answer. What the parser accepts it writes back to
/// text it reads as the same description (the crate promises a round trip), and the hold
/// rewrite keeps it readable.
pub fn description(data: &[u8]) {
    let Ok(description) = SessionDescription::parse_bytes(data) else {
        return;
    };
    let written = description.to_string();
    let Ok(again) = SessionDescription::parse(&written) else {
        panic!("an accepted description does not read back: {written:?}");
    };
    assert_eq!(again, description, "a description changed on the way back");
    let _ = description.session_direction();
    let _ = description.bundle();
    let _ = description.holds_audio_video();
    for index in 0..description.media.len() {
        let _ = description.direction(index);
        let _ = description.holds(index);
        let _ = description.ice_credentials(index);
        let _ = description.fingerprint(index);
        let _ = description.setup(index);
        let _ = description.connection_of(index);
    }
    let mut held = description;
    held.map_audio_video_direction(Direction::held);
    held.bump_version();
    let written = held.to_string();
    assert!(
        SessionDescription::parse(&written).is_ok(),
        "a held description does not read back: {written:?}"
    );
}

/// The MSRP view of a peer's SDP (RFC 4975 §8, RFC 5547): the `m=message` section, its path,
/// accept-types and file selector.
pub fn msrp_media(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = offers_msrp(&text);
    if let Ok(media) = MsrpMedia::parse(&text) {
        let _ = media.to_sdp(1, 2);
    }
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("a=file-selector:")
            && let Ok(selector) = FileSelector::parse(value)
        {
            let _ = selector.to_attribute();
        }
        if let Some(value) = line.strip_prefix("a=file-range:") {
            let _ = parse_file_range(value);
        }
    }
}
