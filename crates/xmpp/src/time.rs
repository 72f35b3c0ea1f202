//! XEP-0082 date-times <-> milliseconds since the UNIX epoch. The core reads no clock: callers
//! pass wall-clock times in as numbers when the protocol needs them (MAM `start`).

/// Formats milliseconds since the epoch as `YYYY-MM-DDThh:mm:ss.sssZ` (XEP-0082 §3.2).
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses a XEP-0082 date-time (any offset) into milliseconds since the epoch.
pub fn parse_ms(text: &str) -> Option<i64> {
    let parsed: xmpp_parsers::date::DateTime = text.trim().parse().ok()?;
    Some(parsed.0.timestamp_millis())
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // H. Hinnant's days-to-civil algorithm: shift the epoch to 0000-03-01 so leap days fall
    // at the end of a 400-year era.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_xep_0082_examples() {
        // XEP-0082 §3.2 example: 1969-07-21T02:56:15Z
        assert_eq!(parse_ms("1969-07-21T02:56:15Z"), Some(-14_159_025_000));
        assert_eq!(format_ms(-14_159_025_000), "1969-07-21T02:56:15.000Z");
        assert_eq!(parse_ms("1969-07-20T21:56:15-05:00"), Some(-14_159_025_000));
        let t = 1_795_000_123_456;
        assert_eq!(parse_ms(&format_ms(t)), Some(t));
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_ms("not a date"), None);
    }
}
