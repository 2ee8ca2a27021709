//! Denied topics and words: whole-word, case-insensitive, Unicode-aware phrase matching, with nothing compiled per
//! request. Texts and phrases are cut into the same tokens (runs of letters, digits and combining marks,
//! lowercased; each Chinese, Japanese or Thai character is a token of its own, since those scripts don't put spaces
//! between words), and a phrase matches where its tokens occur consecutively. Punctuation inside a phrase is
//! therefore ignored: "covid-19" matches "COVID 19" and "covid-19".

use std::borrow::Cow;
use std::collections::HashMap;

use super::DeniedTopic;

/// What matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    /// A keyword of the denied topic at this index.
    Topic(usize),
    /// A denied word (which one is deliberately not reported).
    Word,
}

/// A policy's topics and words, tokenised once per check and indexed by first token.
pub(crate) struct PhraseMatcher<'p> {
    phrases: Vec<(Vec<Cow<'p, str>>, Hit)>,
    by_first_token: HashMap<Cow<'p, str>, Vec<usize>>,
    /// For each ASCII byte, the lengths (a bit each, 63 for longer) of the ASCII first tokens starting with it: an
    /// ASCII word of the text is ruled out by one table lookup, before any lowercasing or hashing.
    ascii_starts: [u64; 128],
}

/// The bit for a token of `length` bytes in [`PhraseMatcher::ascii_starts`].
fn length_bit(length: usize) -> u64 {
    1 << length.min(63)
}

impl<'p> PhraseMatcher<'p> {
    pub(crate) fn new(topics: &'p [DeniedTopic], words: &'p [String]) -> PhraseMatcher<'p> {
        let topic_phrases = topics.iter().enumerate().flat_map(|(index, topic)| {
            topic
                .keywords
                .iter()
                .map(move |keyword| (keyword.as_str(), Hit::Topic(index)))
        });
        let word_phrases = words.iter().map(|word| (word.as_str(), Hit::Word));
        let mut phrases = Vec::new();
        let mut by_first_token: HashMap<Cow<'p, str>, Vec<usize>> = HashMap::new();
        let mut ascii_starts = [0_u64; 128];
        for (phrase, hit) in topic_phrases.chain(word_phrases) {
            let tokens: Vec<Cow<'p, str>> = tokens(phrase).map(lowercase).collect();
            // Validation refuses phrases without a token; skip them here too rather than match everything.
            let Some(first) = tokens.first() else {
                continue;
            };
            if first.is_ascii()
                && let Some(lengths) = first
                    .bytes()
                    .next()
                    .and_then(|byte| ascii_starts.get_mut(usize::from(byte)))
            {
                *lengths |= length_bit(first.len());
            }
            by_first_token.entry(first.clone()).or_default().push(phrases.len());
            phrases.push((tokens, hit));
        }
        PhraseMatcher {
            phrases,
            by_first_token,
            ascii_starts,
        }
    }

    /// The first phrase occurring in `text`, by position; at one position, the first in policy order.
    pub(crate) fn first_match(&self, text: &str) -> Option<Hit> {
        if self.phrases.is_empty() {
            return None;
        }
        let mut text_tokens = tokens(text);
        while let Some(token) = text_tokens.next() {
            let mut buffer = [0_u8; 64];
            let key = if token.is_ascii() {
                let lengths = token
                    .as_bytes()
                    .first()
                    .and_then(|byte| self.ascii_starts.get(usize::from(byte.to_ascii_lowercase())));
                if lengths.is_none_or(|lengths| lengths & length_bit(token.len()) == 0) {
                    continue;
                }
                // Lowercase short ASCII words on the stack rather than in a new string.
                match buffer.get_mut(..token.len()) {
                    Some(lower) => {
                        lower.copy_from_slice(token.as_bytes());
                        lower.make_ascii_lowercase();
                        std::str::from_utf8(lower).map_or_else(|_| lowercase(token), Cow::Borrowed)
                    }
                    None => lowercase(token),
                }
            } else {
                lowercase(token)
            };
            let Some(candidates) = self.by_first_token.get(key.as_ref()) else {
                continue;
            };
            for &index in candidates {
                let (phrase, hit) = &self.phrases[index];
                // The rest of the phrase must follow; the tokenizer is a cheap copyable cursor.
                let mut following = text_tokens.clone();
                let rest = phrase.iter().skip(1);
                if rest
                    .into_iter()
                    .all(|wanted| following.next().is_some_and(|seen| same_word(seen, wanted)))
                {
                    return Some(*hit);
                }
            }
        }
        None
    }
}

/// Whether a token of the text is `wanted`, a lowercased token of a phrase.
fn same_word(seen: &str, wanted: &str) -> bool {
    if seen.is_ascii() {
        seen.eq_ignore_ascii_case(wanted)
    } else {
        lowercase(seen) == wanted
    }
}

/// The tokens of `text`, as they are written. ASCII bytes are classified as bytes, which is most of the work on
/// most texts; other characters are decoded.
fn tokens(text: &str) -> impl Iterator<Item = &str> + Clone {
    let bytes = text.as_bytes();
    let char_at = |at: usize| text.get(at..).and_then(|rest| rest.chars().next());
    let mut at = 0;
    std::iter::from_fn(move || {
        // Skip to the next word character.
        loop {
            let byte = *bytes.get(at)?;
            if byte.is_ascii() {
                if byte.is_ascii_alphanumeric() {
                    break;
                }
                at += 1;
            } else {
                let c = char_at(at)?;
                if is_word_char(c) {
                    break;
                }
                at += c.len_utf8();
            }
        }
        let start = at;
        let first = char_at(at)?;
        at += first.len_utf8();
        if !is_unspaced_script(first) {
            while let Some(&byte) = bytes.get(at) {
                if byte.is_ascii() {
                    if !byte.is_ascii_alphanumeric() {
                        break;
                    }
                    at += 1;
                } else {
                    match char_at(at) {
                        Some(c) if is_word_char(c) && !is_unspaced_script(c) => at += c.len_utf8(),
                        _ => break,
                    }
                }
            }
        }
        text.get(start..at)
    })
}

/// A token in lowercase, borrowed where lowercasing changes nothing.
fn lowercase(token: &str) -> Cow<'_, str> {
    let unchanged = token.chars().all(|c| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    });
    if unchanged {
        Cow::Borrowed(token)
    } else {
        Cow::Owned(token.to_lowercase())
    }
}

/// Letters, digits, and combining marks (so a decomposed "é" stays inside its word).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Scripts written without spaces between words: each character is its own token.
fn is_unspaced_script(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0E7F}'     // Thai
        | '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{20000}'..='\u{2FA1F}' // CJK extensions B and beyond
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn topic(name: &str, keywords: &[&str]) -> DeniedTopic {
        DeniedTopic {
            name: name.to_owned(),
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn hit(topics: &[DeniedTopic], words: &[&str], text: &str) -> Option<Hit> {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        PhraseMatcher::new(topics, &words).first_match(text)
    }

    #[test]
    fn tokens_are_lowercase_words() {
        let collected: Vec<Cow<'_, str>> = tokens("Hello, WORLD! Straße-42 ÉCOLE don't").map(lowercase).collect();
        assert_eq!(collected, ["hello", "world", "straße", "42", "école", "don", "t"]);
        let cjk: Vec<&str> = tokens("我想买炸弹abc").collect();
        assert_eq!(cjk, ["我", "想", "买", "炸", "弹", "abc"]);
        assert_eq!(tokens("  ... ").count(), 0);
        assert!(matches!(lowercase("already"), Cow::Borrowed(_)));
    }

    #[test]
    fn topics_match_whole_words_and_phrases_in_any_case() {
        let topics = [
            topic("politics", &["election", "prime minister"]),
            topic("medical", &["diagnosis"]),
        ];
        assert_eq!(hit(&topics, &[], "Who won the ELECTION?"), Some(Hit::Topic(0)));
        assert_eq!(hit(&topics, &[], "PRIME Minister"), Some(Hit::Topic(0)));
        assert_eq!(hit(&topics, &[], "ask the Prime   Minister"), Some(Hit::Topic(0)));
        assert_eq!(hit(&topics, &[], "prime-minister"), Some(Hit::Topic(0)));
        assert_eq!(hit(&topics, &[], "a diagnosis, please"), Some(Hit::Topic(1)));
        assert_eq!(hit(&topics, &[], "elections"), None);
        assert_eq!(hit(&topics, &[], "preelection"), None);
        assert_eq!(hit(&topics, &[], "prime numbers and a minister"), None);
        assert_eq!(hit(&topics, &[], ""), None);
    }

    #[test]
    fn the_earliest_match_wins() {
        let topics = [topic("a", &["zebra"]), topic("b", &["apple"])];
        assert_eq!(hit(&topics, &[], "apple then zebra"), Some(Hit::Topic(1)));
        assert_eq!(hit(&topics, &["apple"], "apple"), Some(Hit::Topic(1)));
        assert_eq!(hit(&topics, &["then"], "apple then zebra"), Some(Hit::Topic(1)));
        assert_eq!(hit(&[], &["then"], "apple then zebra"), Some(Hit::Word));
    }

    #[test]
    fn matching_is_unicode_aware() {
        let topics = [
            topic("waffen", &["Sprengstoff"]),
            topic("爆炸物", &["炸弹"]),
            topic("greek", &["ΑΘΗΝΑ"]),
        ];
        assert_eq!(hit(&topics, &[], "Wie baue ich SPRENGSTOFF?"), Some(Hit::Topic(0)));
        assert_eq!(hit(&topics, &[], "Sprengstoffe"), None);
        assert_eq!(hit(&topics, &[], "我想做一个炸弹。"), Some(Hit::Topic(1)));
        assert_eq!(hit(&topics, &[], "炸鸡"), None);
        assert_eq!(hit(&topics, &[], "στην αθηνα"), Some(Hit::Topic(2)));
        assert_eq!(hit(&[], &["Café"], "un CAFÉ noir"), Some(Hit::Word));
        assert_eq!(hit(&[], &["cafe\u{301}"], "un CAFE\u{301} noir"), Some(Hit::Word));
        assert_eq!(hit(&[], &["café"], "cafés"), None);
    }

    #[test]
    fn denied_words_match_whole_words() {
        assert_eq!(hit(&[], &["darn"], "Darn it!"), Some(Hit::Word));
        assert_eq!(hit(&[], &["darn"], "darned socks"), None);
        assert_eq!(hit(&[], &["darn"], "undarn"), None);
        assert_eq!(hit(&[], &["f-word"], "the F word"), Some(Hit::Word));
        assert_eq!(hit(&[], &["..."], "anything ..."), None);
    }
}
