//! Street addresses: "221B Baker Street, London NW1 6XE", "1600 Pennsylvania Avenue NW, Washington, DC 20500",
//! "Hauptstraße 5, 10115 Berlin", "12 rue de la Paix". A house number, a capitalised street name and a street type,
//! optionally followed by a unit, a city, a US state and a postcode.
//!
//! False positives matter more than exotic formats here: street types that are also everyday words (Way, Place,
//! Drive, Court...) count only with a state, a postcode or a unit after them, or a word such as "live" or "ship"
//! before them, and names made of function words ("5 Miles Down The Road") are rejected.

use regex::Regex;

use super::pii::{Claims, Context, PiiKind, Step, context_before, scan_unclaimed};
use super::{LazyRegex, compile};

/// Street types that are rarely anything else after a house number and a capitalised name.
const STRONG_SUFFIXES: &[&str] = &[
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Lane",
    "Ln",
    "Parkway",
    "Pkwy",
    "Highway",
    "Hwy",
    "Terrace",
    "Expressway",
    "Expy",
    "Crescent",
    "Turnpike",
];

/// Street types that are also common words: they need more evidence.
const WEAK_SUFFIXES: &[&str] = &[
    "Drive", "Dr", "Court", "Ct", "Way", "Place", "Pl", "Circle", "Cir", "Square", "Sq", "Trail", "Trl", "Close",
    "Row", "Walk", "Alley", "Plaza", "Grove", "Gardens", "Mews", "Ter", "Cres",
];

/// The US states and DC, as postal codes.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME",
    "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC",
];

/// Words a street name is never made of; they mean a capitalised phrase, not a street.
const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "at", "by", "for", "from", "with", "my", "your", "our",
    "his", "her", "their", "its", "this", "that", "these", "those", "is", "are", "was", "were", "i", "we", "you",
];

/// German articles and pronouns: "Der Ring 5" is a sentence, not a street.
const GERMAN_ARTICLES: &[&str] = &[
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "mein", "dein", "sein", "ihr",
    "unser",
];

/// Words that announce an address whose street type is a common word.
const ADDRESS_WORDS: &[&str] = &[
    "address",
    "addr",
    "live",
    "lives",
    "living",
    "located",
    "location",
    "ship",
    "shipping",
    "shipped",
    "deliver",
    "delivered",
    "delivery",
    "send",
    "sent",
    "mail",
    "post",
    "visit",
    "reside",
    "resides",
    "residence",
    "home",
    "office",
    "headquarters",
    "hq",
    "moved",
    "stay",
    "staying",
    "at",
];

/// How far back an announcing word may be: "ship it to 42 Wallaby Way".
const CONTEXT_WORDS: usize = 3;

/// Number, one to four name words (capitalised, or ordinals such as 5th), street type, optional directional.
/// No capture groups: the fast engine finds it, and the parts are read back from the matched text.
static ENGLISH: LazyRegex = LazyRegex::new(|| {
    let suffixes = alternation(STRONG_SUFFIXES.iter().chain(WEAK_SUFFIXES));
    let word = r"[A-Z][A-Za-z'’\-]*";
    let pattern = format!(
        r"\b[0-9]{{1,6}}[A-Za-z]?(?:[-/][0-9]{{1,5}}[A-Za-z]?)?[ \t]+(?:(?:{word}|[0-9]{{1,3}}(?:st|nd|rd|th))\.?[ \t]+){{1,4}}(?:{suffixes})\b\.?(?:[ \t]+(?:NE|NW|SE|SW|N|S|E|W)\b\.?)?"
    );
    compile("address", &pattern)
});

/// What may follow an English street, anchored where it ends: a unit, then a city, a state and a postcode. Each
/// part ends on a word boundary, so a greedy optional part can't stop half-way into the next token; the state is
/// any two capitals here and checked against the list in code, which keeps this pattern small.
static ENGLISH_TAIL: LazyRegex = LazyRegex::new(|| {
    let city_word = r"[A-Z][A-Za-z'’\-]+\b";
    compile(
        "address_tail",
        &format!(
            r"^(?P<unit>,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Room|Rm|#)\.?[ \t]*#?[A-Za-z0-9\-]{{1,6}}\b)?(?:(?:,[ \t]*|[ \t]*\r?\n[ \t]*){city_word}(?:[ \t]{city_word}){{0,2}}(?:,?[ \t]+(?P<state>[A-Z]{{2}})\b)?(?:,?[ \t]+(?P<zip>[0-9]{{5}}(?:-[0-9]{{4}})?|[A-Z]{{1,2}}[0-9][A-Z0-9]?[ ][0-9][A-Z]{{2}})\b)?)?"
        ),
    )
});

/// German: the street type is glued to the name ("Hauptstraße") or follows it ("Berliner Straße"), the number
/// comes after, then optionally a five-digit postcode and the town.
static GERMAN: LazyRegex = LazyRegex::new(|| {
    compile(
        "address_de",
        r"(?P<first>[A-ZÄÖÜ][a-zäöüß]+)(?:(?:straße|strasse|str\.|weg|allee|gasse)|[ \t\-](?:Straße|Strasse|Str\.|Allee|Gasse|Platz|Ring|Damm|Ufer|Chaussee))[ \t]+[0-9]{1,4}[a-z]?\b(?:,?[ \t]*(?:\r?\n[ \t]*)?[0-9]{5}[ \t]+[A-ZÄÖÜ][a-zäöüß]+(?:[ \t\-][A-ZÄÖÜ][a-zäöüß]+)?\b)?",
    )
});

/// Words one of which every German address contains: a cheap literal search that spares the full pattern most
/// texts (the regex crate finds a set of plain words with a vectorised scan).
static GERMAN_HINT: LazyRegex = LazyRegex::new(|| {
    compile(
        "address_de_hint",
        r"straße|strasse|str\.|weg|allee|gasse|Straße|Strasse|Str\.|Allee|Gasse|Platz|Ring|Damm|Ufer|Chaussee",
    )
});

/// French street types as written: lowercase, title case or capitals.
const FRENCH_TYPES: &[&str] = &[
    "rue",
    "avenue",
    "av.",
    "boulevard",
    "bd",
    "allée",
    "allee",
    "chemin",
    "impasse",
    "quai",
];

/// Every French address has a street type right after a space or a tab: as plain words, a vectorised scan.
static FRENCH_HINT: LazyRegex = LazyRegex::new(|| {
    let words: Vec<String> = french_types()
        .iter()
        .flat_map(|word| [format!(" {word}"), format!("\t{word}")])
        .map(|word| regex::escape(&word))
        .collect();
    compile("address_fr_hint", &words.join("|"))
});

/// [`FRENCH_TYPES`] in each way it may be written.
fn french_types() -> Vec<String> {
    FRENCH_TYPES
        .iter()
        .flat_map(|word| {
            let mut title = word.chars();
            let title: String = title
                .next()
                .map(|first| first.to_uppercase().chain(title).collect())
                .unwrap_or_default();
            [(*word).to_owned(), title, word.to_uppercase()]
        })
        .collect()
}

/// French: number, street type, particles, a capitalised name, optionally postcode and town.
static FRENCH: LazyRegex = LazyRegex::new(|| {
    let particles = r"(?:(?:de|du|des|la|le|les|sur|en|l'|d'|l’|d’)[ \t]*)*";
    let types: Vec<String> = french_types().iter().map(|word| regex::escape(word)).collect();
    let types = types.join("|");
    // A name ends with a letter, so a hyphen before a number stays outside the address.
    let name = r"\p{Lu}[\p{L}'’\-]*\p{L}";
    compile(
        "address_fr",
        &format!(
            r"\b[0-9]{{1,4}}(?:[ \t]?(?:bis|ter)\b|[A-Za-z]\b)?,?[ \t]+(?:{types})[ \t]+{particles}{name}(?:[ \t]+{particles}{name}){{0,3}}(?:,?[ \t]+[0-9]{{5}}[ \t]+{name})?"
        ),
    )
});

/// `Street|STREET|St|ST|...`: street types as written, in title case or capitals, never lowercase ("5 miles down
/// the road" is not an address).
fn alternation<'a>(words: impl Iterator<Item = &'a &'a str>) -> String {
    words
        .flat_map(|word| [(*word).to_owned(), word.to_uppercase()])
        .collect::<Vec<_>>()
        .join("|")
}

/// Claims every street address in `text`.
pub(crate) fn find(text: &str, claims: &mut Claims) {
    if let Some(regex) = ENGLISH.as_ref() {
        scan_unclaimed(text, claims, |stretch, from, claims, offset| {
            english_step(regex, text, stretch, from, claims, offset)
        });
    }
    let hinted = |hint: &LazyRegex| hint.as_ref().is_none_or(|hint| hint.is_match(text));
    if let Some(regex) = GERMAN.as_ref()
        && hinted(&GERMAN_HINT)
    {
        scan_unclaimed(text, claims, |stretch, from, _, _| {
            simple_step(regex, stretch, from, |candidate| {
                let first = candidate.split(|c: char| !c.is_alphabetic()).next().unwrap_or_default();
                !GERMAN_ARTICLES.contains(&first.to_lowercase().as_str())
            })
        });
    }
    if let Some(regex) = FRENCH.as_ref()
        && hinted(&FRENCH_HINT)
    {
        scan_unclaimed(text, claims, |stretch, from, _, _| {
            simple_step(regex, stretch, from, |_| true)
        });
    }
}

/// The next English address in `stretch` (which starts at `offset` in `text`).
/// A word without its abbreviation dot.
fn bare(word: &str) -> &str {
    word.trim_end_matches('.')
}

fn english_step(regex: &Regex, text: &str, stretch: &str, from: usize, claims: &Claims, offset: usize) -> Step {
    let Some(street) = regex.find_at(stretch, from) else {
        return Step::Done;
    };
    // Matches start with an ASCII digit, so one byte on is a character boundary.
    let retry = Step::Retry(street.start() + 1);
    // Read the parts back: number, name words, street type, and maybe a directional ("... St NW").
    let words: Vec<&str> = street.as_str().split_whitespace().collect();
    let is_street_type = |word: &str| {
        STRONG_SUFFIXES
            .iter()
            .chain(WEAK_SUFFIXES)
            .any(|known| known.eq_ignore_ascii_case(bare(word)))
    };
    let directional = |word: &str| matches!(bare(word), "N" | "S" | "E" | "W" | "NE" | "NW" | "SE" | "SW");
    let last = words.len().saturating_sub(1);
    let suffix_at = if last >= 3 && directional(words[last]) && is_street_type(words[last - 1]) {
        last - 1
    } else {
        last
    };
    let name = words.get(1..suffix_at).unwrap_or_default();
    if name.iter().any(|word| {
        FUNCTION_WORDS
            .iter()
            .any(|function| function.eq_ignore_ascii_case(bare(word)))
    }) {
        return retry;
    }
    let suffix = words.get(suffix_at).map_or("", |word| bare(word));
    // The optional parts are ASCII-only and end on ASCII word boundaries, so a city can stop half-way into a word
    // with accents ("Hauptstra|ße"): then fall back to a shorter reading, down to number, name and street type.
    let tail = ENGLISH_TAIL
        .as_ref()
        .and_then(|tail| tail.captures(&stretch[street.end()..]));
    let part_end = |part: &str| {
        tail.as_ref()
            .and_then(|tail| tail.name(part))
            .map(|found| street.end() + found.end())
    };
    let whole = tail
        .as_ref()
        .and_then(|tail| tail.get(0))
        .map(|found| street.end() + found.end());
    let readings = [whole, part_end("unit"), Some(street.end())];
    let Some(end) = readings
        .into_iter()
        .flatten()
        .map(|end| trim_full_stop(stretch, street.start(), end))
        .find(|&end| !is_glued(stretch, street.start(), end))
    else {
        return retry;
    };
    let strong = STRONG_SUFFIXES.iter().any(|known| known.eq_ignore_ascii_case(suffix));
    let state = tail
        .as_ref()
        .and_then(|tail| tail.name("state"))
        .filter(|state| US_STATES.contains(&state.as_str()));
    let located = [
        part_end("zip"),
        part_end("unit"),
        state.map(|state| street.end() + state.end()),
    ]
    .into_iter()
    .flatten()
    .any(|part| part <= end);
    let announced = || {
        context_before(text, offset + street.start(), claims, CONTEXT_WORDS, ADDRESS_WORDS, &[]) == Context::Announced
    };
    if strong || located || announced() {
        Step::Claim(PiiKind::Address, street.start(), end)
    } else {
        retry
    }
}

/// "Rd." keeps its dot inside an address; at the very end it is more often the sentence's full stop.
fn trim_full_stop(stretch: &str, start: usize, end: usize) -> usize {
    if stretch[start..end].ends_with('.') {
        end - 1
    } else {
        end
    }
}

/// The next German or French address in `stretch`: the match, subject to `accept` and to clean edges.
fn simple_step(regex: &Regex, stretch: &str, from: usize, accept: impl Fn(&str) -> bool) -> Step {
    let Some(found) = regex.find_at(stretch, from) else {
        return Step::Done;
    };
    if !is_glued(stretch, found.start(), found.end()) && accept(found.as_str()) {
        return Step::Claim(PiiKind::Address, found.start(), found.end());
    }
    let first_char = stretch[found.start()..].chars().next().map_or(1, char::len_utf8);
    Step::Retry(found.start() + first_char)
}

/// Whether `start..end` touches a letter or digit on either side within its stretch. The patterns can't say so
/// without Unicode word boundaries, which cost the fast engine; and the stretch's ends are claims, which will be
/// placeholders, so they count as separators.
fn is_glued(stretch: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    stretch[..start].chars().next_back().is_some_and(word) || stretch[end..].chars().next().is_some_and(word)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::pii::detect_pii;
    use super::*;

    fn addresses(text: &str) -> Vec<&str> {
        detect_pii(text, &[PiiKind::Address])
            .iter()
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    #[test]
    fn patterns_compile() {
        assert!(ENGLISH.is_some());
        assert!(ENGLISH_TAIL.is_some());
        assert!(GERMAN.is_some());
        assert!(FRENCH.is_some());
        assert!(GERMAN_HINT.is_some());
        assert!(FRENCH_HINT.is_some());
    }

    #[test]
    fn addresses_are_found() {
        for (text, expected) in [
            ("I live at 123 Main Street.", "123 Main Street"),
            ("Send it to 42 Elm St, thanks", "42 Elm St"),
            (
                "1600 Pennsylvania Avenue NW, Washington, DC 20500",
                "1600 Pennsylvania Avenue NW, Washington, DC 20500",
            ),
            ("221B Baker Street, London NW1 6XE", "221B Baker Street, London NW1 6XE"),
            ("10 Downing Street", "10 Downing Street"),
            ("350 5th Ave, New York, NY 10118", "350 5th Ave, New York, NY 10118"),
            (
                "742 Evergreen Terrace, Springfield",
                "742 Evergreen Terrace, Springfield",
            ),
            ("Office: 1 Infinite Loop Rd. Cupertino", "1 Infinite Loop Rd"),
            (
                "123 Main St, Apt 4B, Springfield, IL 62704-1234",
                "123 Main St, Apt 4B, Springfield, IL 62704-1234",
            ),
            (
                "4059 Mt Lee Dr, Hollywood, CA 90068",
                "4059 Mt Lee Dr, Hollywood, CA 90068",
            ),
            ("ship to 42 Wallaby Way please", "42 Wallaby Way"),
            (
                "Sirius lives at 12 Grimmauld Place, London",
                "12 Grimmauld Place, London",
            ),
            ("8 Oak Ct, Austin, TX 78701", "8 Oak Ct, Austin, TX 78701"),
            ("1200 Martin Luther King Jr Blvd", "1200 Martin Luther King Jr Blvd"),
            ("31 SPOONER STREET", "31 SPOONER STREET"),
            (
                "123 Main Street\nSpringfield, IL 62704",
                "123 Main Street\nSpringfield, IL 62704",
            ),
            (
                "Wir wohnen in der Hauptstraße 5, 10115 Berlin.",
                "Hauptstraße 5, 10115 Berlin",
            ),
            ("Lindenweg 12a", "Lindenweg 12a"),
            ("Goethestr. 10", "Goethestr. 10"),
            ("Berliner Straße 17", "Berliner Straße 17"),
            (
                "Envoyez-le au 12 rue de la Paix, 75002 Paris.",
                "12 rue de la Paix, 75002 Paris",
            ),
            ("15 avenue des Champs-Élysées", "15 avenue des Champs-Élysées"),
            ("3 bis boulevard Saint-Germain", "3 bis boulevard Saint-Germain"),
            ("7 RUE DE RIVOLI", "7 RUE DE RIVOLI"),
            ("8\tAvenue Foch", "8\tAvenue Foch"),
        ] {
            assert_eq!(addresses(text), vec![expected], "{text}");
        }
    }

    #[test]
    fn non_addresses_are_left_alone() {
        for text in [
            "I ran 5 miles down the road",
            "5 Miles Down The Road",
            "Top 10 Best Place to eat",
            "The 3 Musketeers Drive sales",
            "We need 2 Court orders",
            "He scored 3 Way back",
            "Chapter 12 Main Ideas",
            "In 2019 we moved",
            "Der Ring 5 ist schön",
            "Platz 3 in der Tabelle",
            "Parkplatz 5",
            "I have 2 Avenue Q tickets",
            "5 cours de Python",
            "123 main street",
            "version 2 St",
        ] {
            assert!(addresses(text).is_empty(), "{text}: {:?}", addresses(text));
        }
    }

    #[test]
    fn weak_street_types_need_evidence() {
        assert!(addresses("We met at 42 Wallaby Way").len() == 1);
        assert!(addresses("Price 42 Wallaby Way").is_empty());
        assert!(addresses("Price 42 Wallaby Way, Sydney").is_empty());
        assert_eq!(addresses("42 Wallaby Way, Unit 5").len(), 1);
        assert_eq!(addresses("8 Oak Ct, Austin, TX").len(), 1);
    }
}
