//! International bank account numbers (ISO 13616): two letters of country, two check digits, then the country's
//! basic account number, written compact or in blocks of four. A candidate must have its country's exact length,
//! digits only where that country uses only digits, and pass the mod-97 check, which one random string in 97
//! passes; together they make false positives rare even in long texts.

use super::pii::{Claims, PiiKind, Step, scan_unclaimed};

/// Country, IBAN length, and whether the account part is digits only (from the SWIFT IBAN registry).
const COUNTRIES: &[(&str, usize, bool)] = &[
    ("AD", 24, false),
    ("AE", 23, true),
    ("AL", 28, false),
    ("AT", 20, true),
    ("AZ", 28, false),
    ("BA", 20, true),
    ("BE", 16, true),
    ("BG", 22, false),
    ("BH", 22, false),
    ("BR", 29, false),
    ("BY", 28, false),
    ("CH", 21, false),
    ("CR", 22, true),
    ("CY", 28, false),
    ("CZ", 24, true),
    ("DE", 22, true),
    ("DK", 18, true),
    ("DO", 28, false),
    ("EE", 20, true),
    ("EG", 29, true),
    ("ES", 24, true),
    ("FI", 18, true),
    ("FO", 18, true),
    ("FR", 27, false),
    ("GB", 22, false),
    ("GE", 22, false),
    ("GI", 23, false),
    ("GL", 18, true),
    ("GR", 27, false),
    ("GT", 28, false),
    ("HR", 21, true),
    ("HU", 28, true),
    ("IE", 22, false),
    ("IL", 23, true),
    ("IQ", 23, false),
    ("IS", 26, true),
    ("IT", 27, false),
    ("JO", 30, false),
    ("KW", 30, false),
    ("KZ", 20, false),
    ("LB", 28, false),
    ("LC", 32, false),
    ("LI", 21, false),
    ("LT", 20, true),
    ("LU", 20, false),
    ("LV", 21, false),
    ("MC", 27, false),
    ("MD", 24, false),
    ("ME", 22, true),
    ("MK", 19, false),
    ("MR", 27, true),
    ("MT", 31, false),
    ("MU", 30, false),
    ("NL", 18, false),
    ("NO", 15, true),
    ("PK", 24, false),
    ("PL", 28, true),
    ("PS", 29, false),
    ("PT", 25, true),
    ("QA", 29, false),
    ("RO", 24, false),
    ("RS", 22, true),
    ("SA", 24, false),
    ("SC", 31, false),
    ("SE", 24, true),
    ("SI", 19, true),
    ("SK", 24, true),
    ("SM", 27, false),
    ("ST", 25, true),
    ("SV", 28, false),
    ("TL", 23, true),
    ("TN", 24, true),
    ("TR", 26, false),
    ("UA", 29, false),
    ("VA", 22, true),
    ("VG", 24, false),
    ("XK", 20, true),
];

/// The IBAN length and digits-only flag of a country code (any case).
fn country(code: &[u8]) -> Option<(usize, bool)> {
    COUNTRIES
        .iter()
        .find(|(known, _, _)| known.as_bytes().eq_ignore_ascii_case(code))
        .map(|&(_, length, numeric)| (length, numeric))
}

/// Claims every IBAN in `text`. Candidates (two letters and two digits at the start of a word) are found with a
/// plain byte scan and walked in code: simpler than a pattern for "blocks of four up to the country's length", and
/// several times faster than a regex search for something this short.
pub(crate) fn find(text: &str, claims: &mut Claims) {
    scan_unclaimed(text, claims, |stretch, from, _, _| {
        let bytes = stretch.as_bytes();
        let starts_here = |at: usize| {
            bytes[at + 2].is_ascii_digit()
                && bytes[at + 3].is_ascii_digit()
                && bytes[at].is_ascii_alphabetic()
                && bytes[at + 1].is_ascii_alphabetic()
                && (at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_'))
        };
        let Some(start) = (from..bytes.len().saturating_sub(3)).find(|&at| starts_here(at)) else {
            return Step::Done;
        };
        match iban_end(stretch, start) {
            Some(end) => Step::Claim(PiiKind::Iban, start, end),
            None => Step::Retry(start + 1),
        }
    });
}

/// The end of a valid IBAN starting at `start`, if there is one.
fn iban_end(text: &str, start: usize) -> Option<usize> {
    // The scan's boundary is ASCII-only; an accented letter just before still makes this a word's tail.
    if text[..start].chars().next_back().is_some_and(char::is_alphanumeric) {
        return None;
    }
    let bytes = text.as_bytes();
    let (length, numeric) = country(bytes.get(start..start + 2)?)?;
    // Blocks of four are separated by single spaces all along, or not at all.
    let spaced = bytes.get(start + 4) == Some(&b' ');
    let mut chars = Vec::with_capacity(length);
    let mut at = start;
    while chars.len() < length {
        if spaced && !chars.is_empty() && chars.len() % 4 == 0 {
            if bytes.get(at) != Some(&b' ') {
                return None;
            }
            at += 1;
        }
        let byte = *bytes.get(at)?;
        if !byte.is_ascii_alphanumeric() {
            return None;
        }
        chars.push(byte.to_ascii_uppercase());
        at += 1;
    }
    // The account must end here, not run on into a longer token.
    if text[at..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    let account = &chars[4..];
    if numeric && !account.iter().all(u8::is_ascii_digit) {
        return None;
    }
    mod97_valid(&chars).then_some(at)
}

/// ISO 7064 mod 97-10 as ISO 13616 applies it: move the first four characters to the end, read letters as 10 to
/// 35, and the number must leave 1 when divided by 97. Computed digit by digit, so it never overflows.
pub(crate) fn mod97_valid(iban: &[u8]) -> bool {
    let (head, account) = iban.split_at(4.min(iban.len()));
    let remainder = account
        .iter()
        .chain(head)
        .try_fold(0_u32, |remainder, &byte| match byte {
            b'0'..=b'9' => Some((remainder * 10 + u32::from(byte - b'0')) % 97),
            b'A'..=b'Z' => Some((remainder * 100 + u32::from(byte - b'A') + 10) % 97),
            _ => None,
        });
    remainder == Some(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::super::pii::detect_pii;
    use super::*;

    fn ibans(text: &str) -> Vec<&str> {
        detect_pii(text, &[PiiKind::Iban])
            .iter()
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    /// Registry examples, spaced and compact.
    const EXAMPLES: &[&str] = &[
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
        "CH93 0076 2011 6238 5295 7",
        "BE68 5390 0754 7034",
        "AT61 1904 3002 3457 3201",
        "NO93 8601 1117 947",
        "PL61 1090 1014 0000 0712 1981 2874",
        "SE45 5000 0000 0583 9825 7466",
        "FI21 1234 5600 0007 85",
        "DK50 0040 0440 1162 43",
        "PT50 0002 0123 1234 5678 9015 4",
        "IE29 AIBK 9311 5212 3456 78",
        "LU28 0019 4006 4475 0000",
        "CZ65 0800 0000 1920 0014 5399",
        "HU42 1177 3016 1111 1018 0000 0000",
        "SA03 8000 0000 6080 1016 7519",
        "BR97 0036 0305 0000 1000 9795 493P 1",
        "GR16 0110 1250 0000 0001 2300 695",
        "TR33 0006 1005 1978 6457 8413 26",
    ];

    #[test]
    fn registry_examples_are_found_spaced_compact_and_lowercase() {
        for example in EXAMPLES {
            let text = format!("Please pay to {example}, thanks.");
            assert_eq!(ibans(&text), vec![*example], "{text}");
            let compact = example.replace(' ', "");
            let text = format!("IBAN: {compact}");
            assert_eq!(ibans(&text), vec![compact.as_str()], "{text}");
            let lower = example.to_lowercase();
            assert_eq!(ibans(&lower), vec![lower.as_str()], "{lower}");
        }
    }

    #[test]
    fn near_misses_are_left_alone() {
        for text in [
            "DE89 3704 0044 0532 0130 01",    // check fails
            "DE88 3704 0044 0532 0130 00",    // check digits wrong
            "DE89 3704 0044 0532 0130 0",     // too short
            "DE89 3704 0044 0532 0130 001",   // too long
            "DE89 3704 0044 0532 0130 00X",   // runs on
            "DE89 37040044 0532 0130 00",     // blocks inconsistent
            "XX89 3704 0044 0532 0130 00",    // no such country
            "ADE89 3704 0044 0532 0130 00",   // part of a word
            "DE89 3704 0044 0532 013A 00",    // letters where Germany has none
            "GB82-WEST-1234-5698-7654-32",    // dashes are not the print format
            "the AB12 form and the CD34 one", // codes, not accounts
        ] {
            assert!(ibans(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn mod97() {
        assert!(mod97_valid(b"GB82WEST12345698765432"));
        assert!(!mod97_valid(b"GB82WEST12345698765433"));
        assert!(!mod97_valid(b"GB"));
        assert!(!mod97_valid(b"GB82 WEST"));
    }

    #[test]
    fn every_country_code_is_listed_once() {
        let mut codes: Vec<&str> = COUNTRIES.iter().map(|(code, _, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), COUNTRIES.len());
        assert!(
            COUNTRIES
                .iter()
                .all(|(code, length, _)| code.len() == 2 && (15..=34).contains(length))
        );
    }

    /// A random IBAN with correct check digits: digits for the account (valid in every country's format).
    fn valid_iban() -> impl Strategy<Value = String> {
        (
            prop::sample::select(COUNTRIES.to_vec()),
            prop::collection::vec(0u8..10, 30),
        )
            .prop_map(|((code, length, _), random)| {
                let account: String = random.iter().take(length - 4).map(|d| char::from(b'0' + d)).collect();
                let rearranged = format!("{account}{code}00");
                let remainder = rearranged.bytes().fold(0_u32, |r, b| match b {
                    b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
                    _ => (r * 100 + u32::from(b - b'A') + 10) % 97,
                });
                format!("{code}{:02}{account}", 98 - remainder)
            })
    }

    proptest! {
        // Failures print their minimal input; persisting them would write outside this module's directory, so a
        // failure worth keeping becomes a plain test instead.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(1_000) })]
        /// (3) A valid IBAN among random words is found, spaced or compact.
        #[test]
        fn generated_ibans_are_found(
            iban in valid_iban(),
            spaced in any::<bool>(),
            before in prop::collection::vec("[a-z]{1,8}", 0..5),
            after in prop::collection::vec("[a-z]{1,8}", 0..5),
        ) {
            prop_assert!(mod97_valid(iban.as_bytes()));
            let shown = if spaced {
                iban.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
            } else {
                iban.clone()
            };
            let text = format!("{} {shown} {}", before.join(" "), after.join(" "));
            prop_assert_eq!(ibans(&text), vec![shown.as_str()]);
        }
    }
}
