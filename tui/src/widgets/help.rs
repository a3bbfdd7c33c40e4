//! The help overlay: every key, from [`KEYS`](crate::app::KEYS).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::app::KEYS;
use crate::theme::Theme;

/// Draws the help box centred over `area`.
pub fn render(frame: &mut Frame<'_>, area: Rect, theme: Theme) {
    let key_cols = KEYS.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut lines: Vec<Line<'_>> = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::raw(" "),
                Span::styled(format!("{keys:<key_cols$}"), theme.key()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " times are UTC · Esc or ? closes this help",
        theme.dim(),
    ));
    let width = (area.width.saturating_sub(4)).min(64);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(" keys ");
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
