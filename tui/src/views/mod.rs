//! One module per view, registered here: [`Tab`] names them and [`draw`] puts the active one
//! between the tab bar and the status bar, with the help and detail overlays on top.
//!
//! A view module holds its state, its key handling and its drawing. Adding one is a module
//! here, a [`Tab`] variant, and a line in [`App`]'s dispatch.

pub mod alerts;
pub mod metrics;
pub mod predictions;
pub mod search;
pub mod services;
pub mod tail;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, Connection};
use crate::theme::Theme;
use crate::widgets::{detail, help, text};

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// The live stream.
    Tail,
    /// Search with a histogram.
    Search,
    /// The service catalog.
    Services,
    /// Container CPU and memory.
    Metrics,
    /// Model predictions.
    Predictions,
    /// Alerts.
    Alerts,
}

impl Tab {
    /// Every view, in tab order.
    pub const ALL: [Tab; 6] = [
        Tab::Tail,
        Tab::Search,
        Tab::Services,
        Tab::Metrics,
        Tab::Predictions,
        Tab::Alerts,
    ];

    /// The name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Tail => "Tail",
            Tab::Search => "Search",
            Tab::Services => "Services",
            Tab::Metrics => "Metrics",
            Tab::Predictions => "Predictions",
            Tab::Alerts => "Alerts",
        }
    }

    /// The view's own keys, for the help overlay.
    pub fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Tab::Tail => tail::KEYS,
            Tab::Search => search::KEYS,
            Tab::Services => services::KEYS,
            Tab::Metrics => metrics::KEYS,
            Tab::Predictions => predictions::KEYS,
            Tab::Alerts => alerts::KEYS,
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    /// The view to the right (wrapping).
    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    /// The view to the left (wrapping).
    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }

    /// The view a digit key selects (`1` is the first).
    pub fn from_digit(c: char) -> Option<Tab> {
        let n = c.to_digit(10)? as usize;
        Tab::ALL.get(n.checked_sub(1)?).copied()
    }
}

/// Where the chrome and the view go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chrome {
    /// The tab bar.
    pub tabs: Rect,
    /// The active view.
    pub body: Rect,
    /// The status bar.
    pub status: Rect,
}

/// Splits the screen into tab bar, body and status bar.
pub fn chrome(area: Rect) -> Chrome {
    let tabs = Rect {
        height: area.height.min(1),
        ..area
    };
    let status = Rect {
        y: (area.y + area.height)
            .saturating_sub(1)
            .max(area.y + tabs.height),
        height: area.height.saturating_sub(1).min(1),
        ..area
    };
    let body = Rect {
        y: tabs.y + tabs.height,
        height: status.y.saturating_sub(tabs.y + tabs.height),
        ..area
    };
    Chrome { tabs, body, status }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let theme = Theme::new(app.color);
    let area = frame.area();
    let parts = chrome(area);
    frame.render_widget(
        Paragraph::new(tab_bar(app, theme, usize::from(area.width))).style(theme.bar()),
        parts.tabs,
    );
    let status = match app.tab {
        Tab::Tail => tail::draw(frame, parts.body, app, theme),
        Tab::Search => search::draw(frame, parts.body, app, theme),
        Tab::Services => services::draw(frame, parts.body, app, theme),
        Tab::Metrics => metrics::draw(frame, parts.body, app, theme),
        Tab::Predictions => predictions::draw(frame, parts.body, app, theme),
        Tab::Alerts => alerts::draw(frame, parts.body, app, theme),
    };
    let status = status_line(app, theme, status, usize::from(area.width));
    frame.render_widget(Paragraph::new(status).style(theme.bar()), parts.status);
    if let Some(d) = &app.detail {
        detail::render(frame, parts.body, d, theme);
    }
    if let Some(scroll) = app.help {
        help::render(frame, area, app.tab, scroll, theme);
    }
}

fn tab_bar(app: &App, theme: Theme, width: usize) -> Line<'static> {
    let mut spans = vec![];
    let mut used = 0;
    if width >= 100 {
        spans.push(Span::raw(" shiplog "));
        used += 9;
    }
    for tab in Tab::ALL {
        let mut label = format!(" {} {} ", tab.index() + 1, tab.title());
        if tab == Tab::Alerts && app.alerts.firing() > 0 {
            label = format!(
                " {} {} {} ",
                tab.index() + 1,
                tab.title(),
                app.alerts.firing()
            );
        }
        used += text::width(&label);
        let style = if tab == app.tab {
            theme.tab_active()
        } else if tab == Tab::Alerts && app.alerts.firing() > 0 {
            theme.bar().patch(theme.error())
        } else {
            theme.bar()
        };
        spans.push(Span::styled(label, style));
    }
    let (dot, style) = match (&app.connection, &app.api_down) {
        (Connection::Disconnected(_), _) | (_, Some(_)) => {
            ("○ offline", theme.bar().patch(theme.error()))
        }
        (Connection::Connecting, None) => ("○ connecting", theme.bar().patch(theme.warn())),
        (Connection::Connected, None) => ("● live", theme.bar().patch(theme.ok())),
    };
    let right = if width >= 120 {
        format!("{} · {dot} ", text::sanitize(&app.url, 50))
    } else {
        format!("{dot} ")
    };
    // Too narrow for the words: the dot alone still tells live from offline.
    let right = if used + text::width(&right) < width {
        right
    } else {
        format!("{} ", dot.split(' ').next().unwrap_or(""))
    };
    let gap = width.saturating_sub(used + text::width(&right));
    if gap > 0 {
        spans.push(Span::raw(" ".repeat(gap)));
        spans.push(Span::styled(right, style));
    }
    Line::from(spans)
}

/// The view's status, replaced by the connection problem while there is one, with the
/// notice and the help hint on the right.
fn status_line(app: &App, theme: Theme, view: Line<'static>, width: usize) -> Line<'static> {
    let problem = match (&app.connection, &app.api_down) {
        (Connection::Disconnected(why), _) if app.tab == Tab::Tail => Some(why.clone()),
        (_, Some(why)) => Some(format!("{why}; retrying")),
        (Connection::Disconnected(why), None) => Some(why.clone()),
        _ => None,
    };
    let right = match &app.notice {
        Some(n) => format!(" {} · ? help ", text::sanitize(n, 60)),
        None => " ? help ".to_string(),
    };
    let avail = width.saturating_sub(text::width(&right));
    let mut spans = match problem {
        Some(why) => vec![Span::styled(
            text::fit(&format!(" ○ disconnected: {why}"), avail),
            theme.bar().patch(theme.error()),
        )],
        None => {
            let mut spans = Vec::new();
            let mut left = 0;
            for span in view.spans {
                let w = text::width(&span.content);
                if left + w > avail {
                    let rest = avail - left;
                    spans.push(Span::styled(text::fit(&span.content, rest), span.style));
                    left = avail;
                    break;
                }
                left += w;
                spans.push(span);
            }
            spans.push(Span::raw(" ".repeat(avail - left)));
            spans
        }
    };
    spans.push(Span::raw(right));
    Line::from(spans)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The two sizes every view is snapshotted at.
    pub(crate) const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

    /// Draws the app at a size, as the main loop does.
    pub(crate) fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        crate::prepare_frame(app, Rect::new(0, 0, width, height));
        terminal.draw(|f| draw(f, app)).unwrap();
        terminal
    }

    /// The screen as text, one line per row, for assertions on its content.
    pub(crate) fn screen(terminal: &Terminal<TestBackend>) -> String {
        let buffer = terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                out.push_str(buffer[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn digits_map_to_tabs() {
        assert_eq!(Tab::from_digit('1'), Some(Tab::Tail));
        assert_eq!(Tab::from_digit('6'), Some(Tab::Alerts));
        assert_eq!(Tab::from_digit('7'), None);
        assert_eq!(Tab::from_digit('0'), None);
        assert_eq!(Tab::Alerts.next(), Tab::Tail);
        assert_eq!(Tab::Tail.prev(), Tab::Alerts);
    }

    #[test]
    fn chrome_leaves_the_body_the_middle() {
        let c = chrome(Rect::new(0, 0, 80, 24));
        assert_eq!(
            (c.tabs.y, c.body.y, c.body.height, c.status.y),
            (0, 1, 22, 23)
        );
        for h in 0..3 {
            let _ = chrome(Rect::new(0, 0, 10, h));
        }
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut app = App::new("http://127.0.0.1:7070", 10, true);
        for tab in Tab::ALL {
            app.tab = tab;
            for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 8)] {
                let _ = render(&mut app, w, h);
            }
        }
    }
}
