//! RFC 5547 attribute values for file transfer over MSRP: `a=file-selector` (§5) and
//! `a=file-range` (§8.4), which say which file a session carries and, when resuming (§9),
//! which of its bytes are still to come.

use std::fmt::Write as _;

use crate::error::SdpError;

/// The file as described by `a=file-selector` (RFC 5547 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSelector {
    /// The file name as offered; untrusted, never a path.
    pub name: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// SHA-256 of the content.
    pub sha256: Option<[u8; 32]>,
}

/// Percent-encodes what RFC 5547 §5's `filename-string` cannot hold: `"`, `%` and controls.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '"' || c == '%' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn decode_name(encoded: &str) -> Result<String, SdpError> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| SdpError::value("file-selector", "bad %-escape in the file name"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SdpError::value("file-selector", "file name is not UTF-8"))
}

impl FileSelector {
    /// Writes the attribute value (without `a=file-selector:`).
    pub fn to_attribute(&self) -> String {
        let mut v = format!("name:\"{}\"", encode_name(&self.name));
        if let Some(t) = &self.mime_type {
            let _ = write!(v, " type:{t}");
        }
        if let Some(size) = self.size {
            let _ = write!(v, " size:{size}");
        }
        if let Some(hash) = &self.sha256 {
            // RFC 5547 §5 uses the RFC 8122 fingerprint form: upper-case hex pairs and colons.
            let hex: Vec<String> = hash.iter().map(|b| format!("{b:02X}")).collect();
            let _ = write!(v, " hash:sha-256:{}", hex.join(":"));
        }
        v
    }

    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let bad = |reason: String| SdpError::value("file-selector", reason);
        let mut selector = FileSelector {
            name: String::new(),
            mime_type: None,
            size: None,
            sha256: None,
        };
        let mut rest = value.trim();
        let mut has_name = false;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("name:\"") {
                let end = after
                    .find('"')
                    .ok_or_else(|| bad("unterminated file name".into()))?;
                selector.name = decode_name(&after[..end])?;
                has_name = true;
                rest = after[end + 1..].trim_start();
                continue;
            }
            let (item, after) = rest.split_once(' ').unwrap_or((rest, ""));
            rest = after.trim_start();
            if let Some(t) = item.strip_prefix("type:") {
                selector.mime_type = Some(t.to_owned());
            } else if let Some(s) = item.strip_prefix("size:") {
                selector.size = Some(s.parse().map_err(|_| bad(format!("bad file size {s:?}")))?);
            } else if let Some(h) = item.strip_prefix("hash:") {
                let Some((algorithm, hex)) = h.split_once(':') else {
                    return Err(bad("bad file hash".into()));
                };
                if algorithm.eq_ignore_ascii_case("sha-256") {
                    let digits: String = hex.split(':').collect();
                    let bytes = hex::decode(&digits).map_err(|_| bad("bad sha-256 hex".into()))?;
                    selector.sha256 = Some(
                        bytes
                            .try_into()
                            .map_err(|_| bad("sha-256 is not 32 bytes".into()))?,
                    );
                }
                // Other hash algorithms (sha-1) are legal but give us nothing to check with.
            }
        }
        if !has_name {
            return Err(bad("no name".into()));
        }
        Ok(selector)
    }
}

/// Parses an `a=file-range` value (RFC 5547 §8.4): the 1-based first byte and the last byte,
/// `None` for `*` (to the end of the file).
pub fn parse_file_range(value: &str) -> Result<(u64, Option<u64>), SdpError> {
    let bad = || SdpError::value("file-range", format!("{value:?}"));
    let (first, last) = value.trim().split_once('-').ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last = match last {
        "*" => None,
        n => Some(n.parse::<u64>().map_err(|_| bad())?),
    };
    // An empty range is `first = last + 1`; anything further back is nonsense.
    if first == 0 || last.is_some_and(|l| l.saturating_add(1) < first) {
        return Err(bad());
    }
    Ok((first, last))
}

/// Writes an `a=file-range` value.
pub fn format_file_range((first, last): (u64, Option<u64>)) -> String {
    match last {
        Some(last) => format!("{first}-{last}"),
        None => format!("{first}-*"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_name_and_a_hash_round_trip() {
        let selector = FileSelector {
            name: "../\"evil\"%\r\n.txt".into(),
            mime_type: Some("application/octet-stream".into()),
            size: Some(0),
            sha256: Some([0xab; 32]),
        };
        let text = selector.to_attribute();
        assert!(!text.contains("\"evil\"") && !text.contains('\r'), "{text}");
        assert_eq!(FileSelector::parse(&text).unwrap(), selector);
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for value in [
            "",
            "type:text/plain",
            "name:\"open",
            "name:\"%G1\"",
            "name:\"%FF\"",
            "name:\"a\" size:big",
            "name:\"a\" hash:sha-256:ZZ",
            "name:\"a\" hash:sha-256:AB",
        ] {
            assert!(FileSelector::parse(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn file_ranges() {
        assert_eq!(parse_file_range("1-32349"), Ok((1, Some(32349))));
        assert_eq!(parse_file_range("5-*"), Ok((5, None)));
        assert_eq!(parse_file_range("11-10"), Ok((11, Some(10))));
        for bad in ["", "0-5", "10-5", "a-b", "1", "1-", "-5"] {
            assert!(parse_file_range(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_file_range((5, None)), "5-*");
        assert_eq!(format_file_range((1, Some(9))), "1-9");
    }
}
