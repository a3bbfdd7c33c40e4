//! How message text is split into searchable terms.
//!
//! The indexer registers a tantivy analyzer built the same way (split on anything that is
//! not alphanumeric, drop terms of 40 bytes or more, lower-case), and the live-tail filter
//! uses this module, so a query matches the same events in search and in tail.

use std::cell::OnceCell;

/// Terms of this many bytes or more are not indexed (tantivy's default limit).
pub const MAX_TERM_BYTES: usize = 40;

/// One term of analysed text with its position (positions count dropped terms too, as
/// tantivy's do, so phrases never match across a dropped term).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The lower-cased term.
    pub text: String,
    /// Position of the term among all terms of the text.
    pub position: usize,
}

/// A text's terms, analysed once and then asked about by many queries (the alert engine,
/// live tail filters), without one allocation per term.
///
/// ASCII text (most log lines) is only lower-cased up front: one term is then looked up by
/// searching that copy for the term standing between non-alphanumeric bytes, and the
/// split into terms with positions, which phrases need, happens on first use. Other text is
/// split at once, every term copied lower-cased into one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analyzed {
    /// The lower-cased terms (non-ASCII text) or the whole text lower-cased (ASCII).
    text: String,
    /// Whether `text` is the whole ASCII text rather than the terms one after another.
    ascii: bool,
    /// Start and end in `text`, and the term's position, of every kept term.
    spans: OnceCell<Vec<(usize, usize, usize)>>,
}

impl Default for Analyzed {
    fn default() -> Self {
        Analyzed::new("")
    }
}

impl Analyzed {
    /// Analyses `text`: split on anything not alphanumeric, terms of [`MAX_TERM_BYTES`] or
    /// more dropped, the rest lower-cased.
    pub fn new(text: &str) -> Self {
        if text.is_ascii() {
            let mut lower = text.to_string();
            lower.make_ascii_lowercase();
            return Analyzed {
                text: lower,
                ascii: true,
                spans: OnceCell::new(),
            };
        }
        let mut out = Analyzed {
            text: String::with_capacity(text.len()),
            ascii: false,
            spans: OnceCell::new(),
        };
        let spans = out.split_chars(text);
        out.spans = OnceCell::from(spans);
        out
    }

    fn split_chars(&mut self, text: &str) -> Vec<(usize, usize, usize)> {
        let mut spans = Vec::new();
        for (position, word) in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .enumerate()
        {
            if word.len() >= MAX_TERM_BYTES {
                continue;
            }
            let start = self.text.len();
            self.text.extend(word.chars().flat_map(char::to_lowercase));
            spans.push((start, self.text.len(), position));
        }
        spans
    }

    /// The same split for ASCII text, byte by byte: for ASCII, `char::is_alphanumeric` and
    /// lower-casing reduce to their ASCII forms, and each term is a slice of the text.
    fn split_ascii(text: &str) -> Vec<(usize, usize, usize)> {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        let mut position = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i - start < MAX_TERM_BYTES {
                spans.push((start, i, position));
            }
            position += 1;
        }
        spans
    }

    fn spans(&self) -> &[(usize, usize, usize)] {
        self.spans.get_or_init(|| Analyzed::split_ascii(&self.text))
    }

    /// Whether one analysed term (lower-case, alphanumeric) is among the terms.
    pub fn contains_term(&self, term: &str) -> bool {
        if !self.ascii {
            return self.iter().any(|(t, _)| t == term);
        }
        if term.is_empty() || term.len() >= MAX_TERM_BYTES {
            return false;
        }
        let hay = self.text.as_bytes();
        let needle = term.as_bytes();
        // Candidates are the places of the term's first byte (a vectorised scan, with no
        // searcher to build per call, which would cost more than the scan on a log line);
        // one counts when the term is whole there: no alphanumeric byte either side.
        memchr::memchr_iter(needle[0], hay).any(|at| {
            let end = at + needle.len();
            hay.get(at..end) == Some(needle)
                && (at == 0 || !hay[at - 1].is_ascii_alphanumeric())
                && (end == hay.len() || !hay[end].is_ascii_alphanumeric())
        })
    }

    /// How many terms were kept.
    pub fn len(&self) -> usize {
        self.spans().len()
    }

    /// Whether no term was kept.
    pub fn is_empty(&self) -> bool {
        self.spans().is_empty()
    }

    /// The `i`-th kept term and its position.
    pub fn get(&self, i: usize) -> Option<(&str, usize)> {
        self.spans()
            .get(i)
            .map(|&(start, end, position)| (&self.text[start..end], position))
    }

    /// The kept terms in order, with their positions.
    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.spans()
            .iter()
            .map(|&(start, end, position)| (&self.text[start..end], position))
    }
}

/// Splits text into lower-cased alphanumeric terms.
pub fn analyze(text: &str) -> Vec<Term> {
    Analyzed::new(text)
        .iter()
        .map(|(text, position)| Term {
            text: text.to_string(),
            position,
        })
        .collect()
}

/// The terms alone, for building queries.
pub fn terms(text: &str) -> Vec<String> {
    analyze(text).into_iter().map(|t| t.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowercases_and_drops_long_terms() {
        let long = "x".repeat(40);
        let got = analyze(&format!(
            "Receiving blk_-1608999687919862906 src: /10.250.19.102 {long} ÉTÉ"
        ));
        let texts: Vec<_> = got.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "receiving",
                "blk",
                "1608999687919862906",
                "src",
                "10",
                "250",
                "19",
                "102",
                "été"
            ]
        );
        assert_eq!(got.last().unwrap().position, 9);
    }

    #[test]
    fn the_ascii_split_agrees_with_the_general_one() {
        let long = "Y".repeat(45);
        let mut inputs = vec![
            String::new(),
            "   ".into(),
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating".into(),
            format!("a{long} b {} c", "z".repeat(39)),
            "ERROR:timeout--retry#3 (x=1,y=2)".into(),
        ];
        // Pseudo-random ASCII lines over letters, digits, punctuation and long runs.
        let alphabet = b"aZ09 _-./:()[]{}\t\nQq";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let mut line = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 120) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let c = char::from(alphabet[(seed % alphabet.len() as u64) as usize]);
                let run = if seed.is_multiple_of(50) { 41 } else { 1 };
                line.extend(std::iter::repeat_n(c, run));
            }
            inputs.push(line);
        }
        for text in inputs {
            let mut general = Analyzed {
                text: String::new(),
                ascii: false,
                spans: OnceCell::new(),
            };
            let spans = general.split_chars(&text);
            let want: Vec<(&str, usize)> = spans
                .iter()
                .map(|&(s, e, p)| (&general.text[s..e], p))
                .collect();
            let ascii = Analyzed::new(&text);
            assert!(ascii.ascii);
            let got: Vec<(&str, usize)> = ascii.iter().collect();
            assert_eq!(got, want, "{text:?}");
            // Looking one term up agrees with the split, for every term and some others.
            let fresh = Analyzed::new(&text);
            for probe in want
                .iter()
                .map(|w| w.0)
                .chain(["a", "z", "q", "09", "yyy", ""])
            {
                let expected = want.iter().any(|w| w.0 == probe);
                assert_eq!(
                    fresh.contains_term(probe),
                    expected,
                    "{probe:?} in {text:?}"
                );
            }
        }
    }
}
