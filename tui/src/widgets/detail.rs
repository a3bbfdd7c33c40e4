//! The detail overlay: a record's every field as pretty JSON, scrollable.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::app::Detail;
use crate::theme::Theme;
use crate::widgets::text;

/// Draws the detail over `area` (the view's body), leaving a column of the view visible on
/// wide terminals so the user keeps their bearings.
pub fn render(frame: &mut Frame<'_>, area: Rect, detail: &Detail, theme: Theme) {
    let popup = if area.width >= 120 {
        Rect {
            x: area.x + area.width / 3,
            width: area.width - area.width / 3,
            ..area
        }
    } else {
        area
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(
            " {} · j/k scroll · y copy · Esc close ",
            text::sanitize(&detail.title, 60)
        ));
    let inner = block.inner(popup);
    let width = usize::from(inner.width);
    let lines: Vec<Line<'static>> = detail
        .lines
        .iter()
        .skip(detail.scroll)
        .take(usize::from(inner.height))
        .map(|l| Line::raw(text::sanitize(l, width)))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
