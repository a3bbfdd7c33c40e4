//! The filter box: the text being typed, a caret under a parse error, and the error itself.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::edit::{LineEdit, QueryEdit};
use crate::theme::Theme;
use crate::widgets::text;

/// Rows the box needs, borders included.
pub const HEIGHT: u16 = 7;

const PROMPT: &str = "> ";

/// Rows a plain input box needs, borders included.
pub const LINE_HEIGHT: u16 = 3;

/// Draws a query box in `area` and places the terminal cursor in it; `empty` says what an
/// empty query means here.
pub fn render(
    frame: &mut Frame<'_>,
    area: Rect,
    edit: &QueryEdit,
    title: &str,
    empty: &str,
    theme: Theme,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(" {title} "));
    let inner = block.inner(area);
    let (offset, cursor_col, shown, col_of) = scrolled(&edit.line, inner);
    let avail = usize::from(inner.width)
        .saturating_sub(PROMPT.len() + 1)
        .max(1);
    let mut lines = vec![Line::from(vec![
        Span::styled(PROMPT, theme.dim()),
        Span::raw(shown),
    ])];
    match &edit.error {
        Some(error) => {
            let caret = col_of[error.position.min(col_of.len() - 1)]
                .saturating_sub(offset)
                .min(avail);
            lines.push(Line::styled(
                format!("{}{}^", " ".repeat(PROMPT.len()), " ".repeat(caret)),
                theme.error(),
            ));
            lines.push(Line::styled(error.message.clone(), theme.error()));
        }
        None if edit.text().trim().is_empty() => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(empty.to_string(), theme.dim()));
        }
        None => {
            lines.push(Line::raw(""));
            lines.push(Line::styled("✓ valid query", theme.ok()));
        }
    }
    frame.render_widget(Clear, area);
    // Only the error line is long enough to wrap; it gets the last three rows. Its position
    // is left out: the caret shows it.
    let paragraph = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
    place_cursor(frame, inner, cursor_col - offset);
}

/// Draws a plain one-line input box (3 rows) and places the terminal cursor in it.
pub fn render_line(frame: &mut Frame<'_>, area: Rect, edit: &LineEdit, title: &str, theme: Theme) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(" {title} "));
    let inner = block.inner(area);
    let (offset, cursor_col, shown, _) = scrolled(edit, inner);
    frame.render_widget(Clear, area);
    let line = Line::from(vec![Span::styled(PROMPT, theme.dim()), Span::raw(shown)]);
    frame.render_widget(Paragraph::new(line).block(block), area);
    place_cursor(frame, inner, cursor_col - offset);
}

fn place_cursor(frame: &mut Frame<'_>, inner: Rect, col: usize) {
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let x = inner.x + (PROMPT.len() + col).min(usize::from(inner.width) - 1) as u16;
    frame.set_cursor_position(Position::new(x, inner.y));
}

/// The part of the text to show so the cursor stays visible: (sideways offset, cursor
/// column, shown text, column of every character boundary).
fn scrolled(edit: &LineEdit, inner: Rect) -> (usize, usize, String, Vec<usize>) {
    let avail = usize::from(inner.width)
        .saturating_sub(PROMPT.len() + 1)
        .max(1);
    let chars: Vec<char> = edit.text.chars().collect();
    let mut cols = Vec::with_capacity(chars.len() + 1);
    let mut at = 0;
    for &c in &chars {
        cols.push(at);
        at += text::char_width(text::visible(c));
    }
    cols.push(at);
    let cursor_col = cols[edit.cursor.min(chars.len())];
    let offset = (cursor_col + 1).saturating_sub(avail);
    let first = cols
        .iter()
        .position(|&c| c >= offset)
        .unwrap_or(chars.len());
    let shown: String = chars[first.min(chars.len())..].iter().collect();
    let shown = text::sanitize(&shown, avail);
    (offset, cursor_col, shown, cols)
}
