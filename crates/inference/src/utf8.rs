//! Incremental UTF-8 decoding of token bytes.
//!
//! A byte-level BPE token can end in the middle of a multi-byte character, so the bytes of one token are not
//! always valid UTF-8 on their own. [`Utf8Decoder`] emits every complete character as soon as it has its last
//! byte and holds back at most the three bytes of an unfinished one. It never fails: bytes that can never form a
//! character become U+FFFD, as in [`String::from_utf8_lossy`].

/// Turns a stream of byte chunks into a stream of complete UTF-8 text.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Adds `bytes` and returns all text that is now complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut consumed = 0;
        loop {
            let rest = &self.pending[consumed..];
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(error) => {
                    let valid_len = error.valid_up_to();
                    // Validated by from_utf8 just above, so the lossy conversion copies it unchanged.
                    text.push_str(&String::from_utf8_lossy(&rest[..valid_len]));
                    match error.error_len() {
                        Some(invalid_len) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            consumed += valid_len + invalid_len;
                        }
                        // The bytes left are the start of a character whose end is still to come.
                        None => {
                            consumed += valid_len;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        text
    }

    /// Ends the stream: returns whatever is still held back, an unfinished character becoming U+FFFD.
    pub(crate) fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(chunks: &[&[u8]]) -> (Vec<String>, String) {
        let mut decoder = Utf8Decoder::default();
        let pieces = chunks.iter().map(|chunk| decoder.push(chunk)).collect();
        (pieces, decoder.finish())
    }

    #[test]
    fn ascii_passes_straight_through() {
        let (pieces, rest) = decode_in_chunks(&[b"hello", b" world"]);
        assert_eq!(pieces, ["hello", " world"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn a_character_split_across_chunks_is_emitted_once_complete() {
        let smile = "😀".as_bytes();
        let (pieces, rest) = decode_in_chunks(&[b"a", &smile[..1], &smile[1..3], &smile[3..], b"b"]);
        assert_eq!(pieces, ["a", "", "", "😀", "b"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn every_split_point_reassembles_the_text() {
        let text = "naïve café: 😀 → 東京!";
        let bytes = text.as_bytes();
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                let (pieces, rest) = decode_in_chunks(&[&bytes[..first], &bytes[first..second], &bytes[second..]]);
                assert_eq!(pieces.concat() + &rest, text, "split at {first} and {second}");
                assert_eq!(rest, "");
            }
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_without_stalling() {
        let (pieces, rest) = decode_in_chunks(&[b"a\xffb", b"\xc3(", b"c"]);
        assert_eq!(pieces, ["a\u{fffd}b", "\u{fffd}(", "c"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn an_unfinished_character_at_the_end_is_flushed_as_a_replacement() {
        let (pieces, rest) = decode_in_chunks(&[b"ok\xe2\x82"]);
        assert_eq!(pieces, ["ok"]);
        assert_eq!(rest, "\u{fffd}");
    }
}
