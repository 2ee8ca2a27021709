//! Typo tolerance: a query word the catalog never uses is replaced by the catalog word closest to it in edit
//! distance (the most frequent among equals), or split into two catalog words when it is two run together
//! ("roomtables"). Words the catalog knows are never touched, and neither are short words or numbers, where a
//! single edit turns one real word into another ("year" into "gear").

use std::collections::HashMap;

use serde::Serialize;

/// Words shorter than this are never corrected.
const ONE_TYPO_MIN_CHARS: usize = 5;
/// Words of at least this many characters may be two edits away from the catalog word meant.
const TWO_TYPOS_MIN_CHARS: usize = 9;
/// A word is split into two only when each part appears at least this often in the catalog, so that rare
/// fragments ("ro" + "omtables") do not count as words.
const MIN_SPLIT_PART_FREQUENCY: u32 = 2;
/// The shortest part of a split word.
const MIN_SPLIT_PART_CHARS: usize = 2;

/// One word of the query that was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correction {
    /// The word as typed, lowercased.
    pub from: String,
    /// What it was replaced with: one catalog word, or two separated by a space.
    pub to: String,
}

/// The catalog's vocabulary, for correcting query words.
#[derive(Debug, Clone, Default)]
pub struct Speller {
    frequency: HashMap<String, u32>,
    /// Every vocabulary word, grouped by length in characters, so a lookup only scans lengths within reach.
    words_by_length: Vec<Vec<String>>,
}

impl Speller {
    /// A speller knowing every word of `texts`.
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Speller {
        let mut frequency: HashMap<String, u32> = HashMap::new();
        for text in texts {
            for word in words(text) {
                *frequency.entry(word).or_default() += 1;
            }
        }
        let mut words_by_length: Vec<Vec<String>> = Vec::new();
        for word in frequency.keys() {
            let length = word.chars().count();
            if words_by_length.len() <= length {
                words_by_length.resize_with(length + 1, Vec::new);
            }
            words_by_length[length].push(word.clone());
        }
        // Sorted so that ties between equally close, equally frequent words resolve the same way every run.
        for group in &mut words_by_length {
            group.sort_unstable();
        }
        Speller {
            frequency,
            words_by_length,
        }
    }

    /// How many words the vocabulary holds.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// The query with its unknown words corrected, lowercased and with words separated by single spaces, and
    /// the corrections made. A query with nothing to correct comes back as typed.
    pub fn correct(&self, query: &str) -> (String, Vec<Correction>) {
        let mut corrections = Vec::new();
        let mut corrected = Vec::new();
        for word in words(query) {
            match self.correct_word(&word) {
                Some(replacement) => {
                    corrected.push(replacement.clone());
                    corrections.push(Correction {
                        from: word,
                        to: replacement,
                    });
                }
                None => corrected.push(word),
            }
        }
        if corrections.is_empty() {
            (query.to_owned(), corrections)
        } else {
            (corrected.join(" "), corrections)
        }
    }

    fn correct_word(&self, word: &str) -> Option<String> {
        let length = word.chars().count();
        if length < ONE_TYPO_MIN_CHARS || self.frequency.contains_key(word) || word.chars().any(|c| c.is_ascii_digit())
        {
            return None;
        }
        let max_edits = if length >= TWO_TYPOS_MIN_CHARS { 2 } else { 1 };
        let word_chars: Vec<char> = word.chars().collect();
        let mut best: Option<(usize, u32, &str)> = None;
        let lengths = length.saturating_sub(max_edits)..=length + max_edits;
        for group in lengths.filter_map(|length| self.words_by_length.get(length)) {
            for candidate in group {
                let Some(edits) = bounded_edit_distance(&word_chars, candidate, max_edits) else {
                    continue;
                };
                let frequency = self.frequency.get(candidate).copied().unwrap_or(0);
                let better = match best {
                    None => true,
                    Some((best_edits, best_frequency, best_word)) => {
                        (edits, std::cmp::Reverse(frequency), candidate.as_str())
                            < (best_edits, std::cmp::Reverse(best_frequency), best_word)
                    }
                };
                if better {
                    best = Some((edits, frequency, candidate));
                }
            }
        }
        // One edit away is a typo; a split is preferred to a word two edits away ("roomtables").
        match best {
            Some((1, _, candidate)) => Some(candidate.to_owned()),
            _ => self
                .split(word)
                .or_else(|| best.map(|(_, _, candidate)| candidate.to_owned())),
        }
    }

    /// `word` as two catalog words run together, the split whose rarer part is most frequent.
    fn split(&self, word: &str) -> Option<String> {
        let boundaries = word.char_indices().map(|(index, _)| index).skip(MIN_SPLIT_PART_CHARS);
        let mut best: Option<(u32, &str, &str)> = None;
        for boundary in boundaries {
            let (left, right) = word.split_at(boundary);
            if right.chars().count() < MIN_SPLIT_PART_CHARS {
                break;
            }
            let frequency = |part: &str| self.frequency.get(part).copied().unwrap_or(0);
            let weakest = frequency(left).min(frequency(right));
            if weakest >= MIN_SPLIT_PART_FREQUENCY && best.is_none_or(|(best_weakest, _, _)| weakest > best_weakest) {
                best = Some((weakest, left, right));
            }
        }
        best.map(|(_, left, right)| format!("{left} {right}"))
    }
}

/// The lowercased alphanumeric words of `text`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The Levenshtein distance between `word` and `candidate` if it is at most `max_edits`, found with one row of
/// the dynamic programme and an early exit once every cell of a row exceeds the bound.
fn bounded_edit_distance(word: &[char], candidate: &str, max_edits: usize) -> Option<usize> {
    let candidate: Vec<char> = candidate.chars().collect();
    if word.len().abs_diff(candidate.len()) > max_edits {
        return None;
    }
    let mut previous: Vec<usize> = (0..=candidate.len()).collect();
    let mut current = vec![0; candidate.len() + 1];
    for (i, &a) in word.iter().enumerate() {
        current[0] = i + 1;
        let mut row_minimum = current[0];
        for (j, &b) in candidate.iter().enumerate() {
            let substitution = previous[j] + usize::from(a != b);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            row_minimum = row_minimum.min(current[j + 1]);
        }
        if row_minimum > max_edits {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[candidate.len()];
    (distance <= max_edits).then_some(distance)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn speller() -> Speller {
        Speller::new([
            "living room table",
            "living room chair",
            "coffee table",
            "side tables",
            "nesting tables",
            "wall fountains",
            "stone fountains",
            "outdoor gear",
            "sconce",
        ])
    }

    #[test]
    fn one_typo_is_fixed_and_known_words_are_kept() {
        let (text, corrections) = speller().correct("Foutains for the Living room");
        assert_eq!(text, "fountains for the living room");
        assert_eq!(
            corrections,
            vec![Correction {
                from: "foutains".to_owned(),
                to: "fountains".to_owned()
            }]
        );
    }

    #[test]
    fn short_words_and_numbers_are_left_alone() {
        let (text, corrections) = speller().correct("10 year old tabel2");
        assert_eq!(text, "10 year old tabel2");
        assert!(corrections.is_empty());
    }

    #[test]
    fn run_together_words_are_split() {
        assert_eq!(speller().correct("small roomtables").0, "small room tables");
        assert_eq!(speller().correct("livingroom").0, "living room");
    }

    #[test]
    fn long_words_may_be_two_edits_away() {
        assert_eq!(speller().correct("fauntainss").0, "fountains");
        // Two edits on a short word are too far to guess.
        assert_eq!(speller().correct("sconse").0, "sconce");
        assert_eq!(speller().correct("scnse").0, "scnse");
    }

    #[test]
    fn a_query_without_corrections_comes_back_as_typed() {
        assert_eq!(speller().correct("  Coffee   TABLE ").0, "  Coffee   TABLE ");
        assert_eq!(Speller::default().correct("anything at all").0, "anything at all");
    }

    fn reference_distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
        for (i, row) in table.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in table[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                table[i][j] = (table[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]))
                    .min(table[i - 1][j] + 1)
                    .min(table[i][j - 1] + 1);
            }
        }
        table[a.len()][b.len()]
    }

    proptest! {
        #[test]
        fn bounded_distance_agrees_with_the_full_table(a in "[a-dé]{0,10}", b in "[a-dé]{0,10}", bound in 0usize..4) {
            let word: Vec<char> = a.chars().collect();
            let full = reference_distance(&a, &b);
            let expected = (full <= bound).then_some(full);
            prop_assert_eq!(bounded_edit_distance(&word, &b, bound), expected);
        }

        #[test]
        fn any_text_is_corrected_into_known_words_or_left_as_is(query in "\\PC{0,60}") {
            let speller = speller();
            let (text, corrections) = speller.correct(&query);
            for correction in &corrections {
                prop_assert!(!speller.frequency.contains_key(&correction.from));
                for word in correction.to.split(' ') {
                    prop_assert!(speller.frequency.contains_key(word), "{word}");
                }
            }
            if corrections.is_empty() {
                prop_assert_eq!(text, query);
            }
        }
    }
}
