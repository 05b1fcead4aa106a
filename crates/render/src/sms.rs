//! SMS encoding and segment counting (GSM 03.38 / UCS-2), as carriers bill them.
//!
//! A text made only of characters in the GSM 03.38 basic set and its extension table is sent as
//! GSM-7: 160 septets in a single message, 153 per part of a concatenated one (the user data
//! header takes the rest). Extension-table characters (`€`, `[`, `{`, `~`, ...) take two septets
//! (escape + character) and are never split across parts. Any other character switches the whole
//! message to UCS-2: 70 UTF-16 code units in one message, 67 per part, and a surrogate pair (an
//! emoji, say) is never split either.

use serde::Serialize;

/// GSM 03.38 basic character set (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38 extension table (escape + character: two septets each).
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// How an SMS text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum SmsEncoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// The encoding of an SMS text, its length in that encoding and the number of parts it is sent
/// (and billed) as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SmsSegments {
    pub encoding: SmsEncoding,
    /// Septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2.
    pub characters: usize,
    /// Message parts; 0 for an empty text.
    pub segments: usize,
}

/// Counts the encoding, length and segments of an SMS body.
pub fn sms_segments(text: &str) -> SmsSegments {
    let gsm_widths: Option<Vec<usize>> = text
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    let (encoding, widths, single, part) = match gsm_widths {
        Some(w) => (SmsEncoding::Gsm7, w, 160, 153),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
            70,
            67,
        ),
    };
    let characters = widths.iter().sum();
    SmsSegments {
        encoding,
        characters,
        segments: count_parts(&widths, characters, single, part),
    }
}

/// Parts needed when units of the given widths may not be split across parts.
fn count_parts(widths: &[usize], total: usize, single: usize, part: usize) -> usize {
    if total == 0 {
        return 0;
    }
    if total <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for &w in widths {
        if used + w > part {
            parts += 1;
            used = 0;
        }
        used += w;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, encoding: SmsEncoding, characters: usize, segments: usize) {
        assert_eq!(
            sms_segments(text),
            SmsSegments {
                encoding,
                characters,
                segments
            },
            "{text:?}"
        );
    }

    #[test]
    fn gsm7_lengths() {
        use SmsEncoding::Gsm7;
        check("", Gsm7, 0, 0);
        check("Hi Ann, your order shipped!", Gsm7, 27, 1);
        check(&"a".repeat(160), Gsm7, 160, 1);
        check(&"a".repeat(161), Gsm7, 161, 2);
        check(&"a".repeat(306), Gsm7, 306, 2);
        check(&"a".repeat(307), Gsm7, 307, 3);
        // Accented letters in the basic set stay GSM-7.
        check("Café à Zürich, ¿Qué? £5 @ §1", Gsm7, 28, 1);
    }

    #[test]
    fn gsm7_extension_characters_count_double() {
        use SmsEncoding::Gsm7;
        check("€", Gsm7, 2, 1);
        check("{[~]}|^\\", Gsm7, 16, 1);
        check(&format!("{}€", "a".repeat(158)), Gsm7, 160, 1);
        check(&format!("{}€", "a".repeat(159)), Gsm7, 161, 2);
        // An escape sequence is not split: 152 septets + `€` does not fit in a 153-septet part.
        check(
            &format!("{}€{}", "a".repeat(152), "a".repeat(10)),
            Gsm7,
            164,
            2,
        );
        check(
            &format!("{}€{}", "a".repeat(152), "a".repeat(152)),
            Gsm7,
            306,
            3,
        );
    }

    #[test]
    fn ucs2_lengths() {
        use SmsEncoding::Ucs2;
        check("Привет", Ucs2, 6, 1);
        check(&"ж".repeat(70), Ucs2, 70, 1);
        check(&"ж".repeat(71), Ucs2, 71, 2);
        check(&"ж".repeat(134), Ucs2, 134, 2);
        check(&"ж".repeat(135), Ucs2, 135, 3);
        // One emoji switches the whole text to UCS-2 and takes two code units.
        check("Thanks 🎉", Ucs2, 9, 1);
        check(&format!("{}🎉", "a".repeat(68)), Ucs2, 70, 1);
        check(&format!("{}🎉", "a".repeat(69)), Ucs2, 71, 2);
        // A surrogate pair is not split across parts.
        check(
            &format!("{}🎉{}", "a".repeat(66), "a".repeat(10)),
            Ucs2,
            78,
            2,
        );
        // `€` is in the GSM extension table but counts one code unit in UCS-2.
        check("€ ж", Ucs2, 3, 1);
        // Characters GSM-7 lacks (e.g. `ç` lowercase, curly quotes) force UCS-2.
        check("ça", Ucs2, 2, 1);
        check("“hi”", Ucs2, 4, 1);
    }
}
