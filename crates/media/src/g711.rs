//! G.711 (ITU-T G.711, 1988) µ-law and A-law companding.
//!
//! Each 8-bit code is a sign, a 3-bit segment (exponent) and a 4-bit step within the segment,
//! giving roughly constant relative precision. Decoding goes through 256-entry tables built at
//! compile time; encoding is a handful of integer operations. Samples are 16-bit linear PCM.
//! RTP payload formats PCMU (PT 0) and PCMA (PT 8) are defined in RFC 3551 §4.5.14.

/// µ-law bias: added before finding the segment so that segment 0 starts at 0 (G.711 §3.2).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top µ-law segment after biasing.
const ULAW_CLIP: i32 = 32_635;

/// Encodes one 16-bit linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = index of the highest set bit above bit 7 (the bias guarantees bit 7 is the floor).
    let highest_bit = 31 - (magnitude as u32).leading_zeros() as i32;
    let segment = highest_bit - 7;
    let step = (magnitude >> (segment + 3)) & 0x0F;
    // Codes are transmitted inverted (G.711 §3.2) so that silence is not a run of zeros.
    !((sign | (segment << 4) | step) as u8)
}

const fn ulaw_to_linear_const(code: u8) -> i16 {
    let code = !code;
    let segment = ((code >> 4) & 0x07) as i32;
    let step = (code & 0x0F) as i32;
    let magnitude = (((step << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law segment upper bounds on the 13-bit magnitude scale (G.711 table 1a).
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Encodes one 16-bit linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let sample = i32::from(sample);
    // A-law is sign-magnitude with the sign bit set for positive values; the even bits are
    // inverted on the wire (XOR 0x55, G.711 §3.1) to keep enough transitions on PCM links.
    let (mask, magnitude) = if sample >= 0 {
        (0xD5, sample)
    } else {
        (0x55, -sample - 1)
    };
    let magnitude = magnitude >> 3; // 16-bit to the 13-bit A-law scale
    let mut segment = 0;
    while segment < ALAW_SEGMENT_END.len() && magnitude > ALAW_SEGMENT_END[segment] {
        segment += 1;
    }
    let code = if segment >= ALAW_SEGMENT_END.len() {
        0x7F // clip to the largest code
    } else if segment < 2 {
        ((segment as i32) << 4) | ((magnitude >> 1) & 0x0F)
    } else {
        ((segment as i32) << 4) | ((magnitude >> segment) & 0x0F)
    };
    (code ^ mask) as u8
}

const fn alaw_to_linear_const(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = ((code & 0x70) >> 4) as i32;
    // Reconstruct at the middle of the quantisation step.
    let mut value = ((code & 0x0F) as i32) << 4;
    value = match segment {
        0 => value + 8,
        1 => value + 0x108,
        _ => (value + 0x108) << (segment - 1),
    };
    if code & 0x80 != 0 {
        value as i16
    } else {
        -value as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = if alaw {
            alaw_to_linear_const(code as u8)
        } else {
            ulaw_to_linear_const(code as u8)
        };
        code += 1;
    }
    table
}

static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// Decodes one µ-law code.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decodes one A-law code.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ulaw_code_round_trips() {
        for code in 0..=255u8 {
            let linear = ulaw_to_linear(code);
            let again = linear_to_ulaw(linear);
            // 0x7F and 0xFF both mean zero (µ-law has a negative zero); all others are exact.
            assert_eq!(ulaw_to_linear(again), linear, "code {code:#04x}");
            if linear != 0 {
                assert_eq!(again, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn every_alaw_code_round_trips() {
        for code in 0..=255u8 {
            let linear = alaw_to_linear(code);
            assert_eq!(linear_to_alaw(linear), code, "code {code:#04x}");
        }
    }

    #[test]
    fn known_values() {
        // Silence and full scale per G.711: µ-law 0xFF is +0, 0x80 is the largest positive.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
    }

    #[test]
    fn quantisation_error_is_small_relative_to_the_signal() {
        for sample in (-32_000i32..32_000).step_by(7) {
            let sample = sample as i16;
            for (decoded, name) in [
                (ulaw_to_linear(linear_to_ulaw(sample)), "ulaw"),
                (alaw_to_linear(linear_to_alaw(sample)), "alaw"),
            ] {
                let error = (i32::from(decoded) - i32::from(sample)).abs();
                let bound = (i32::from(sample).abs() / 16).max(16);
                assert!(error <= bound, "{name}: {sample} -> {decoded}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(sample));
            let a = alaw_to_linear(linear_to_alaw(sample));
            assert!(u >= last_u && a >= last_a, "at {sample}");
            last_u = u;
            last_a = a;
        }
    }
}
