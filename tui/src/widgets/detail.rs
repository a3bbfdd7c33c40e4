//! The detail overlay: a record's every field as pretty JSON, scrollable. A string that
//! holds line breaks (a Python traceback, a Java stack) goes on over several rows, and
//! rows longer than the box wrap under themselves, so nothing is cut at the box's edge.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::app::Detail;
use crate::theme::Theme;
use crate::widgets::text;

/// Columns a tab inside a string stands for.
const TAB_COLS: usize = 4;

/// Where the box goes over `area` (the view's body): all of it, or on wide terminals the
/// right two thirds so the user keeps their bearings.
pub fn popup(area: Rect) -> Rect {
    if area.width >= 120 {
        Rect {
            x: area.x + area.width / 3,
            width: area.width - area.width / 3,
            ..area
        }
    } else {
        area
    }
}

/// The box's inside, where the rows go.
pub fn inner(area: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(popup(area))
}

/// The rows the pretty JSON `lines` take in `width` columns: each string's `\n` starts a
/// new row (indented under its key), `\t` becomes spaces, and a row too long for the width
/// continues on the next rows, indented a little deeper than it starts.
pub fn rows(lines: &[String], width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for line in lines {
        for row in break_strings(line) {
            wrap(&row, width, &mut out);
        }
    }
    out
}

/// One pretty JSON line cut at the line breaks inside its strings; the rows after the first
/// start two columns deeper than the line.
fn break_strings(line: &str) -> Vec<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let mut rows = vec![String::new()];
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let row = rows.last_mut().expect("never empty");
        if !in_string {
            in_string = c == '"';
            row.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                row.push(c);
            }
            '\\' => match chars.next() {
                Some('n') => rows.push(" ".repeat(indent + 2)),
                // A Windows line end: the `\n` that follows breaks the row.
                Some('r') if chars.clone().take(2).eq(['\\', 'n']) => {}
                Some('t') => row.push_str(&" ".repeat(TAB_COLS)),
                Some(other) => {
                    row.push('\\');
                    row.push(other);
                }
                None => row.push('\\'),
            },
            c => row.push(c),
        }
    }
    rows
}

/// Adds `row` to `out` cut to `width` columns, at a space when the piece has one, the
/// pieces after the first indented two columns deeper than the row starts (while that
/// leaves half the width for text).
fn wrap(row: &str, width: usize, out: &mut Vec<String>) {
    let row = text::sanitize(row, usize::MAX);
    let lead = row.len() - row.trim_start_matches(' ').len();
    let hang = if lead + 2 <= width / 2 { lead + 2 } else { 0 };
    let mut rest = row.as_str();
    // Spaces at the start of the first piece are its indentation, not a place to cut.
    let mut keep = lead;
    let mut indent = "";
    let hanging = " ".repeat(hang);
    loop {
        let avail = width - indent.len();
        if text::width(rest) <= avail {
            out.push(format!("{indent}{rest}"));
            return;
        }
        let mut fits = 0;
        let mut used = 0;
        for (i, c) in rest.char_indices() {
            used += text::char_width(c);
            if used > avail {
                break;
            }
            fits = i + c.len_utf8();
        }
        // A character wider than the whole row still goes somewhere.
        let fits = fits.max(rest.chars().next().map_or(0, char::len_utf8));
        let cut = if rest[fits..].starts_with(' ') {
            fits
        } else {
            match rest[..fits].rfind(' ') {
                Some(space) if space >= keep => space + 1,
                _ => fits,
            }
        };
        out.push(format!("{indent}{}", rest[..cut].trim_end_matches(' ')));
        rest = rest[cut..].trim_start_matches(' ');
        if rest.is_empty() {
            return;
        }
        keep = 0;
        indent = &hanging;
    }
}

/// Draws the detail over `area` (the view's body), from row `detail.scroll`.
pub fn render(frame: &mut Frame<'_>, area: Rect, detail: &Detail, theme: Theme) {
    let popup = popup(area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(
            " {} · j/k scroll · y copy · Esc close ",
            text::sanitize(&detail.title, 60)
        ));
    let inner = block.inner(popup);
    let all = rows(&detail.lines, usize::from(inner.width));
    let scroll = detail.scroll.min(all.len().saturating_sub(1));
    let lines: Vec<Line<'static>> = all
        .into_iter()
        .skip(scroll)
        .take(usize::from(inner.height))
        .map(Line::raw)
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::app::tests::key;
    use crate::views::tests::{render, screen};
    use ratatui::crossterm::event::KeyCode;
    use serde_json::json;

    const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/app/main.py\", line 3, in <module>\n    raise ValueError(\"boom\")\nValueError: boom";

    #[test]
    fn strings_break_at_their_line_breaks_and_long_rows_wrap() {
        let lines = vec![
            "{".to_string(),
            format!("  \"message\": {},", json!(TRACEBACK)),
            r#"  "path": "C:\\new\\table","#.to_string(),
            r#"  "crlf": "a\r\nb\tc","#.to_string(),
            format!("  \"long\": \"{}\"", "x".repeat(30)),
            "}".to_string(),
        ];
        assert_eq!(
            rows(&lines, 40),
            [
                "{",
                r#"  "message": "Traceback (most recent"#,
                "    call last):",
                r#"      File \"/app/main.py\", line 3, in"#,
                "        <module>",
                r#"        raise ValueError(\"boom\")"#,
                r#"    ValueError: boom","#,
                r#"  "path": "C:\\new\\table","#,
                r#"  "crlf": "a"#,
                r#"    b    c","#,
                r#"  "long":"#,
                r#"    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
                "}",
            ]
        );
        let wide = vec![format!("  \"m\": \"日本語 {}   \"", "x".repeat(9))];
        for width in 0..12 {
            assert!(
                rows(&wide, width)
                    .iter()
                    .all(|r| text::width(r) <= width.max(2))
            );
        }
    }

    fn app_with_traceback() -> App {
        let mut app = App::new("http://x", 10, false);
        let record = json!({"id": "e1", "level": "error", "service": "api",
            "message": format!("{TRACEBACK}\n{}", "then a very long line ".repeat(8))});
        app.detail = Some(Detail::json("event e1", &record));
        app
    }

    #[test]
    fn a_traceback_shows_one_frame_a_row_and_nothing_is_cut() {
        let mut app = app_with_traceback();
        let shown = screen(&render(&mut app, 80, 24));
        assert!(!shown.contains(r"\n"), "{shown}");
        assert!(
            shown.contains(r#"│      File \"/app/main.py\", line 3, in <module>"#),
            "{shown}"
        );
        assert!(shown.contains("│    ValueError: boom"), "{shown}");
        // The long line goes on over the next rows to its very end.
        assert!(shown.contains("very long line \","), "{shown}");
    }

    #[test]
    fn the_detail_scrolls_to_its_last_wrapped_row() {
        let mut app = app_with_traceback();
        let _ = render(&mut app, 80, 8);
        let detail = app.detail.as_ref().expect("open");
        assert!(detail.rows > detail.lines.len(), "some rows wrap");
        app.on_key(key(KeyCode::Char('G')));
        let shown = screen(&render(&mut app, 80, 8));
        assert!(shown.contains("│}"), "the last row shows:\n{shown}");
    }
}
