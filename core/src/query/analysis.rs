//! How message text is split into searchable terms.
//!
//! The indexer registers a tantivy analyzer built the same way (split on anything that is
//! not alphanumeric, drop terms of 40 bytes or more, lower-case), and the live-tail filter
//! uses this module, so a query matches the same events in search and in tail.

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

/// Splits text into lower-cased alphanumeric terms.
pub fn analyze(text: &str) -> Vec<Term> {
    let mut out = Vec::new();
    for (position, word) in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if word.len() >= MAX_TERM_BYTES {
            continue;
        }
        let text = if word.is_ascii() {
            word.to_ascii_lowercase()
        } else {
            word.chars().flat_map(char::to_lowercase).collect()
        };
        out.push(Term { text, position });
    }
    out
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
}
