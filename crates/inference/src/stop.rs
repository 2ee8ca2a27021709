//! Stop strings over streamed text.
//!
//! [`StopFilter`] sits between the detokenizer and the client. It guarantees that neither a stop string nor any
//! text after it is ever emitted, while holding back only the shortest tail that could still grow into a stop
//! string, so the stream stays as incremental as the stop strings allow. It is pure: no model, no I/O.

/// What one [`StopFilter::push`] lets through.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Filtered {
    /// Text that is safe to emit now.
    pub(crate) text: String,
    /// A stop string was found: `text` ends right before it and generation must end.
    pub(crate) stopped: bool,
}

/// Cuts a text stream at the first occurrence of any stop string.
#[derive(Debug)]
pub(crate) struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    /// A filter for `stops`; empty stop strings are ignored because they would match before any text.
    pub(crate) fn new(stops: &[String]) -> StopFilter {
        StopFilter {
            stops: stops.iter().filter(|stop| !stop.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds the next piece of text and returns what can be emitted.
    pub(crate) fn push(&mut self, text: &str) -> Filtered {
        self.held.push_str(text);
        let first_match = self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min();
        if let Some(start) = first_match {
            self.held.truncate(start);
            return Filtered {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep = self.longest_partial_match();
        let tail = self.held.split_off(self.held.len() - keep);
        Filtered {
            text: std::mem::replace(&mut self.held, tail),
            stopped: false,
        }
    }

    /// Ends the stream: the held-back tail turned out not to be a stop string, so it is emitted.
    pub(crate) fn finish(self) -> String {
        self.held
    }

    /// Length of the longest suffix of the held text that is a proper prefix of some stop string.
    fn longest_partial_match(&self) -> usize {
        self.stops
            .iter()
            .filter_map(|stop| {
                (1..stop.len().min(self.held.len() + 1))
                    .rev()
                    .find(|&len| stop.is_char_boundary(len) && self.held.ends_with(&stop[..len]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `chunks` through a filter for `stops`; returns what each push emitted, then what `finish` emitted
    /// (only if no stop string was hit), and whether a stop string was hit.
    fn run(stops: &[&str], chunks: &[&str]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|stop| (*stop).to_owned()).collect();
        let mut filter = StopFilter::new(&stops);
        let mut emitted = Vec::new();
        for chunk in chunks {
            let filtered = filter.push(chunk);
            emitted.push(filtered.text);
            if filtered.stopped {
                return (emitted, true);
            }
        }
        emitted.push(filter.finish());
        (emitted, false)
    }

    /// Stop strings, chunks pushed, what each push emits followed by what finish emits (unless stopped), stopped.
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        bool,
    );

    #[test]
    fn table_of_cases() {
        let cases: &[Case] = &[
            (&[], &["hello", " world"], &["hello", " world", ""], false),
            (&["STOP"], &["hello STOP world"], &["hello "], true),
            (&["STOP"], &["STOP"], &[""], true),
            (&["STOP"], &["hel", "lo S", "TO", "P x"], &["hel", "lo ", "", ""], true),
            // A partial match that diverges is released, and only then.
            (&["STOP"], &["ab S", "Tx"], &["ab ", "STx", ""], false),
            // Held text that never completes is flushed by finish.
            (&["END"], &["the E", "N"], &["the ", "", "EN"], false),
            // The earliest occurrence wins, whichever stop string it is.
            (&["world", "lo"], &["hello world"], &["hel"], true),
            (&["ab", "abc"], &["xab"], &["x"], true),
            // The match can start inside the held tail and end in the new text.
            (&["aab"], &["aa", "aab"], &["", "aa"], true),
            // Only the longest suffix that is a prefix is held, not everything after the first candidate.
            (&["abcd"], &["xabcab"], &["xabc", "ab"], false),
            (&["abcd"], &["xabcab", "cd!"], &["xabc", ""], true),
            // Several stop strings: hold enough for the longest possible partial match.
            (&["xyz", "yq"], &["axy"], &["a", "xy"], false),
            (&["xyz", "yq"], &["axy", "q"], &["a", "x"], true),
            // Multi-byte text never splits a character.
            (&["é!"], &["café", "?"], &["caf", "é?", ""], false),
            (&["é!"], &["café", "!"], &["caf", ""], true),
            (&["→"], &["a → b"], &["a "], true),
            // Empty stop strings are ignored.
            (&[""], &["abc"], &["abc", ""], false),
            // A newline as a stop string, a common case.
            (&["\n"], &["line one", "\nline two"], &["line one", ""], true),
        ];
        for (stops, chunks, expected, expected_stopped) in cases {
            let (emitted, stopped) = run(stops, chunks);
            assert_eq!(emitted, *expected, "stops {stops:?}, chunks {chunks:?}");
            assert_eq!(stopped, *expected_stopped, "stops {stops:?}, chunks {chunks:?}");
        }
    }

    /// The text before the first stop string, and whether there was one: what the filter must emit in total.
    fn reference(stops: &[&str], text: &str) -> (String, bool) {
        match stops
            .iter()
            .filter(|stop| !stop.is_empty())
            .filter_map(|stop| text.find(stop))
            .min()
        {
            Some(start) => (text[..start].to_owned(), true),
            None => (text.to_owned(), false),
        }
    }

    #[test]
    fn every_three_way_split_matches_the_reference() {
        let texts = [
            "The answer is 42.\n\nUser: thanks",
            "aaab aab ab",
            "no stop in here",
            "ünïcödé → stöp",
        ];
        let stops: &[&str] = &["\n\nUser:", "aab", "stöp", "→ x"];
        for text in texts {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            for &first in &boundaries {
                for &second in boundaries.iter().filter(|&&second| second >= first) {
                    let chunks = [&text[..first], &text[first..second], &text[second..]];
                    let (emitted, stopped) = run(stops, &chunks);
                    assert_eq!((emitted.concat(), stopped), reference(stops, text), "chunks {chunks:?}");
                }
            }
        }
    }

    #[test]
    fn holds_back_exactly_the_longest_possible_start_of_a_stop_string() {
        let stops: &[&str] = &["<|end|>", "###"];
        let text = "a <|en b ## c <| d #";
        let mut filter = StopFilter::new(&stops.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let mut emitted = String::new();
        for (index, ch) in text.char_indices() {
            emitted.push_str(&filter.push(&ch.to_string()).text);
            let seen = &text[..index + ch.len_utf8()];
            let held = &seen[emitted.len()..];
            let longest = stops
                .iter()
                .flat_map(|stop| (1..stop.len()).filter(|&len| seen.ends_with(&stop[..len])))
                .max()
                .unwrap_or(0);
            assert_eq!(held.len(), longest, "after {seen:?}");
        }
    }
}
