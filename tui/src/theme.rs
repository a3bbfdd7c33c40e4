//! Colours and text styles in one place, so `NO_COLOR` is honoured everywhere at once.

use ratatui::style::{Color, Modifier, Style};
use shiplog_core::Level;

/// The styles the views use; without colour only modifiers (bold, dim, reverse) remain.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// A theme with or without colours.
    pub fn new(color: bool) -> Self {
        Theme { color }
    }

    /// Whether colours should be used: true unless `NO_COLOR` is set to a non-empty value.
    pub fn color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// A log level's label.
    pub fn level(self, level: Option<Level>) -> Style {
        match level {
            Some(Level::Fatal) => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Some(Level::Error) => self.fg(Color::Red),
            Some(Level::Warn) => self.fg(Color::Yellow),
            Some(Level::Info) | None => Style::new(),
            Some(Level::Debug | Level::Trace) => Style::new().add_modifier(Modifier::DIM),
        }
    }

    /// The message of a line at this level: only errors and warnings tint it.
    pub fn message(self, level: Option<Level>) -> Style {
        match level {
            Some(Level::Fatal | Level::Error) => self.fg(Color::Red),
            Some(Level::Debug | Level::Trace) => Style::new().add_modifier(Modifier::DIM),
            _ => Style::new(),
        }
    }

    /// Secondary text: timestamps, hints.
    pub fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// The service column.
    pub fn service(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// The top bar and the bottom status bar.
    pub fn bar(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Column titles.
    pub fn column_titles(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Good news: connected, a valid filter.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Something to notice: connecting, paused, a gap.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Something wrong: disconnected, a filter that does not parse.
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Borders of boxes and overlays.
    pub fn border(self) -> Style {
        self.fg(Color::Blue)
    }

    /// A key name in the help overlay.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The active tab in the tab bar.
    pub fn tab_active(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }

    /// The selected row of a list or table.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Text matching the highlight.
    pub fn matched(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::UNDERLINED | Modifier::BOLD)
        }
    }

    /// A chart's bars and sparklines.
    pub fn chart(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// A second series on the same chart (memory next to CPU).
    pub fn chart_alt(self) -> Style {
        self.fg(Color::Magenta)
    }
}
