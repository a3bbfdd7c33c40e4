//! The filter box: the text being typed, a caret under a parse error, and the error itself.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::FilterEdit;
use crate::theme::Theme;
use crate::widgets::text;

/// Rows the box needs, borders included.
pub const HEIGHT: u16 = 6;

const PROMPT: &str = "> ";

/// Draws the box in `area` and places the terminal cursor in it.
pub fn render(frame: &mut Frame<'_>, area: Rect, edit: &FilterEdit, theme: Theme) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(" filter · Enter applies · Esc cancels ");
    let inner = block.inner(area);
    let avail = usize::from(inner.width)
        .saturating_sub(PROMPT.len() + 1)
        .max(1);

    // Column of every character boundary, so the cursor and the caret can be placed.
    let chars: Vec<char> = edit.text.chars().collect();
    let mut cols = Vec::with_capacity(chars.len() + 1);
    let mut at = 0;
    for &c in &chars {
        cols.push(at);
        at += text::char_width(text::visible(c));
    }
    cols.push(at);
    let col_of = |i: usize| cols[i.min(chars.len())];

    // Scroll sideways so the cursor stays visible.
    let cursor_col = col_of(edit.cursor);
    let offset = (cursor_col + 1).saturating_sub(avail);
    let first = cols
        .iter()
        .position(|&c| c >= offset)
        .unwrap_or(chars.len());
    let shown: String = chars[first.min(chars.len())..].iter().collect();
    let shown = text::sanitize(&shown, avail);

    let mut lines = vec![Line::from(vec![
        Span::styled(PROMPT, theme.dim()),
        Span::raw(shown),
    ])];
    match &edit.error {
        Some(error) => {
            let caret = col_of(error.position).saturating_sub(offset).min(avail);
            lines.push(Line::styled(
                format!("{}{}^", " ".repeat(PROMPT.len()), " ".repeat(caret)),
                theme.error(),
            ));
            lines.push(Line::styled(error.to_string(), theme.error()));
        }
        None if edit.text.trim().is_empty() => {
            lines.push(Line::raw(""));
            lines.push(Line::styled("empty: shows every line", theme.dim()));
        }
        None => {
            lines.push(Line::raw(""));
            lines.push(Line::styled("✓ valid query", theme.ok()));
        }
    }
    frame.render_widget(Clear, area);
    // Only the error line is long enough to wrap; it gets the last two rows.
    let paragraph = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
    let x = inner.x + (PROMPT.len() + cursor_col - offset).min(usize::from(inner.width)) as u16;
    frame.set_cursor_position(Position::new(x, inner.y));
}
