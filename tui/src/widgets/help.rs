//! The help overlay: every key, global ones first, then the active view's, then the
//! other views' and the detail overlay's, scrollable when the terminal is short.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::app::{DETAIL_KEYS, GLOBAL_KEYS};
use crate::theme::Theme;
use crate::views::Tab;

/// Every line of the help, for the active view `tab`.
pub fn lines(tab: Tab, theme: Theme, width: usize) -> Vec<Line<'static>> {
    let mut sections: Vec<(String, &[(&str, &str)])> = vec![
        ("everywhere".into(), GLOBAL_KEYS),
        (tab.title().to_lowercase(), tab.keys()),
    ];
    for other in Tab::ALL {
        if other != tab {
            sections.push((other.title().to_lowercase(), other.keys()));
        }
    }
    sections.push(("detail".into(), DETAIL_KEYS));
    let key_cols = sections
        .iter()
        .flat_map(|(_, keys)| keys.iter())
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = Vec::new();
    let what_cols = width.saturating_sub(key_cols + 4).max(10);
    for (title, keys) in sections {
        out.push(Line::styled(format!(" {title}"), theme.column_titles()));
        for (k, what) in keys {
            // Long descriptions continue under themselves rather than being cut.
            for (n, chunk) in wrap_words(what, what_cols).into_iter().enumerate() {
                let k = if n == 0 { *k } else { "" };
                out.push(Line::from(vec![
                    Span::raw("  "),
                    Span::styled(format!("{k:<key_cols$}"), theme.key()),
                    Span::raw(chunk),
                ]));
            }
        }
    }
    out
}

/// Splits text at spaces into lines of at most `cols` characters.
fn wrap_words(text: &str, cols: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > cols {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Draws the help box centred over `area`, from line `scroll`.
pub fn render(frame: &mut Frame<'_>, area: Rect, tab: Tab, scroll: usize, theme: Theme) {
    let width = area.width.saturating_sub(4).min(84);
    let all = lines(tab, theme, usize::from(width.saturating_sub(2)));
    let height = (all.len() as u16 + 2)
        .min(area.height.saturating_sub(2))
        .max(3.min(area.height));
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    let shown = usize::from(height.saturating_sub(2));
    let scroll = scroll.min(all.len().saturating_sub(shown));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(" keys · j/k scroll · Esc or ? closes ");
    let lines: Vec<Line<'static>> = all.into_iter().skip(scroll).take(shown).collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
