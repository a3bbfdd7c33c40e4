//! Measuring and cutting text by terminal columns, and making untrusted text safe to print.

use ratatui::text::Span;

/// Columns a character takes on screen (0 for combining marks, 2 for wide characters).
pub fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// Columns a string takes on screen.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// The character to print for `c`: itself, or a harmless stand-in for control characters.
pub fn visible(c: char) -> char {
    match c {
        '\t' => ' ',
        '\n' => '↵',
        c if c.is_control() => '\u{fffd}',
        c => c,
    }
}

/// Replaces characters a terminal would interpret (escapes, newlines, tabs) with visible,
/// harmless ones, keeping at most `max_cols` columns.
pub fn sanitize(s: &str, max_cols: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_cols.saturating_mul(4)));
    let mut cols = 0;
    for c in s.chars() {
        let c = visible(c);
        let w = char_width(c);
        if cols + w > max_cols {
            break;
        }
        cols += w;
        out.push(c);
    }
    out
}

/// Exactly `cols` columns: cut with `…` when too long, padded with spaces when short.
pub fn fit(s: &str, cols: usize) -> String {
    let clean = sanitize(s, usize::MAX);
    let full = width(&clean);
    if full <= cols {
        return format!("{clean}{}", " ".repeat(cols - full));
    }
    if cols == 0 {
        return String::new();
    }
    let mut out = sanitize(&clean, cols - 1);
    out.push('…');
    let used = width(&out);
    out.push_str(&" ".repeat(cols.saturating_sub(used)));
    out
}

/// The text cut into pieces of at most `cols` columns each (for wrapping), made safe to print.
pub fn chunks(s: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut out = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in s.chars() {
        let c = visible(c);
        let w = char_width(c);
        if used + w > cols && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += w;
        current.push(c);
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_control_characters() {
        assert_eq!(sanitize("a\tb\nc\x1b[31m", 100), "a b↵c\u{fffd}[31m");
        assert_eq!(sanitize("abcdef", 3), "abc");
        assert_eq!(sanitize("日本語", 5), "日本");
    }

    #[test]
    fn fits_to_a_column_width() {
        assert_eq!(fit("web", 5), "web  ");
        assert_eq!(fit("inference-server", 8), "inferen…");
        assert_eq!(fit("日本語", 5), "日本…");
        assert_eq!(fit("日本語", 4), "日… ");
        assert_eq!(fit("x", 0), "");
    }

    #[test]
    fn cuts_into_chunks() {
        assert_eq!(chunks("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(chunks("", 3), [""]);
        assert_eq!(chunks("日本語", 4), ["日本", "語"]);
    }
}
