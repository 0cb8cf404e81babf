//! Drawing a [`Model`]: the title with the fleet's totals, a block per app
//! with a row per instance, the latest events, the question or the last
//! outcome, and the keys. Reads the model only; fetching is elsewhere.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::keys::HELP;
use super::model::{self, AppView, Model, Notice};

const HEADER: [&str; 9] = [
    "ID", "STATE", "HEALTH", "PID", "CPU%", "RSS", "REQ/S", "P95", "RESTARTS",
];

const WIDTHS: [Constraint; 9] = [
    Constraint::Length(16),
    Constraint::Length(9),
    Constraint::Length(8),
    Constraint::Length(8),
    Constraint::Length(7),
    Constraint::Length(8),
    Constraint::Length(8),
    Constraint::Length(8),
    Constraint::Length(8),
];

pub fn draw(frame: &mut Frame<'_>, m: &Model) {
    let apps = m.apps();
    // Each app's block: its rows, the header and two borders.
    let mut constraints: Vec<Constraint> = vec![Constraint::Length(2)];
    constraints.extend(
        apps.iter()
            .map(|a| Constraint::Length(a.rows.len().max(1) as u16 + 3)),
    );
    if apps.is_empty() {
        constraints.push(Constraint::Length(3));
    }
    constraints.extend([
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ]);
    let areas = Layout::vertical(constraints).split(frame.area());
    let (first, rest) = areas.split_at(1);
    title(frame, first[0], m);
    let (blocks, tail) = rest.split_at(rest.len() - 3);
    if apps.is_empty() {
        let what = if m.status.is_some() {
            "no app: shoal balances upstreams only"
        } else {
            "waiting for the first answer…"
        };
        frame.render_widget(
            Paragraph::new(what).block(Block::default().borders(Borders::ALL)),
            blocks[0],
        );
    }
    for (i, (app, area)) in apps.iter().zip(blocks).enumerate() {
        app_block(frame, *area, app, i == m.selected && apps.len() > 1);
    }
    events(frame, tail[0], m);
    notice(frame, tail[1], m);
    footer(frame, tail[2]);
}

/// `shoal 0.1.0 · admin 127.0.0.1:9090 · up 2m` and the fleet's totals; or
/// why the admin API does not answer.
fn title(frame: &mut Frame<'_>, area: Rect, m: &Model) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut first = vec![Span::styled("shoal top", bold)];
    if let Some(s) = &m.status {
        first.push(Span::raw(format!(
            " · shoal {} · admin {} · up {}",
            s.version,
            m.admin,
            duration(s.uptime_secs)
        )));
        if s.shutting_down {
            first.push(Span::styled(
                " · shutting down",
                Style::default().fg(Color::Yellow),
            ));
        }
    } else {
        first.push(Span::raw(format!(" · admin {}", m.admin)));
    }
    let second = match (&m.trouble, m.fleet()) {
        (Some(why), _) => Line::from(Span::styled(
            format!(
                "admin API unreachable: {why} — retrying{}",
                if m.status.is_some() {
                    " (numbers below are stale)"
                } else {
                    ""
                }
            ),
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )),
        (None, Some(f)) => {
            let all_up = f.up == f.total && f.total > 0;
            Line::from(vec![
                Span::styled(
                    format!("{}/{} up", f.up, f.total),
                    Style::default().fg(if all_up { Color::Green } else { Color::Yellow }),
                ),
                Span::raw(format!(
                    " · {} req/s · errors {} · p95 {}",
                    model::rate(f.requests_per_sec),
                    f.error_rate.map_or_else(|| "-".into(), model::share),
                    f.p95_ms.map_or_else(|| "-".into(), model::millis),
                )),
            ])
        }
        (None, None) => Line::from("connecting…"),
    };
    frame.render_widget(Paragraph::new(vec![Line::from(first), second]), area);
}

fn app_block(frame: &mut Frame<'_>, area: Rect, app: &AppView, selected: bool) {
    let mut title = format!(
        " {}{} · {} of {} instance(s) · generation {} ",
        if selected { "▶ " } else { "" },
        app.name,
        app.instances,
        app.target,
        app.generation
    );
    if let Some(op) = &app.operation {
        title.push_str(&format!("· running: {op} "));
    }
    let border = if selected {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default()
    };
    let rows = app.rows.iter().map(|r| {
        let style = if r.healthy {
            Style::default()
        } else {
            Style::default().fg(Color::Yellow)
        };
        Row::new([
            Cell::from(r.id.as_str()),
            Cell::from(r.state.as_str()),
            Cell::from(r.health.as_str()),
            Cell::from(r.pid.as_str()),
            Cell::from(r.cpu.as_str()),
            Cell::from(r.rss.as_str()),
            Cell::from(r.rps.as_str()),
            Cell::from(r.p95.as_str()),
            Cell::from(r.restarts.as_str()),
        ])
        .style(style)
    });
    let table = Table::new(rows, WIDTHS)
        .header(Row::new(HEADER).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(border)
                .title(title),
        );
    frame.render_widget(table, area);
}

/// The newest events that fit, newest last.
fn events(frame: &mut Frame<'_>, area: Rect, m: &Model) {
    let fit = area.height.saturating_sub(2) as usize;
    let skip = m.events.len().saturating_sub(fit);
    let lines: Vec<Line<'_>> = m
        .events
        .iter()
        .skip(skip)
        .map(|e| {
            let style = if e.kind.is_trouble() {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::styled(clock(e.at), Style::default().fg(Color::DarkGray)),
                Span::styled(format!(" {:<18}", e.kind.as_str()), style),
                Span::raw(format!(
                    " {:<10} {}",
                    e.instance.as_deref().or(e.app.as_deref()).unwrap_or("-"),
                    e.message
                )),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" events ")),
        area,
    );
}

/// The question, or the last outcome.
fn notice(frame: &mut Frame<'_>, area: Rect, m: &Model) {
    let line = if let Some(ask) = &m.asking {
        Line::from(Span::styled(
            ask.question(),
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ))
    } else {
        match &m.notice {
            None => Line::default(),
            Some(Notice::Running(text)) => Line::from(Span::styled(
                text.as_str(),
                Style::default().fg(Color::Cyan),
            )),
            Some(Notice::Done(text)) => Line::from(Span::styled(
                format!("done: {text}"),
                Style::default().fg(Color::Green),
            )),
            Some(Notice::Failed(text)) => Line::from(Span::styled(
                format!("failed: {text}"),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            )),
            Some(Notice::Cancelled(text)) => Line::from(text.as_str()),
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn footer(frame: &mut Frame<'_>, area: Rect) {
    let mut spans = Vec::new();
    for (key, what) in HELP {
        spans.push(Span::styled(
            format!(" {key} "),
            Style::default().fg(Color::Black).bg(Color::Gray),
        ));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `45s`, `12m`, `3h04m`, `2d05h`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `14:03:07` (UTC) of seconds since the Unix epoch.
fn clock(at: f64) -> String {
    let s = at.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::admin::status::Status;

    fn screen(m: &Model, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, m)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    fn status() -> Status {
        serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "uptime_secs": 125.0, "shutting_down": false,
            "listen": "127.0.0.1:8080", "balance": "round_robin", "retries": 2,
            "app": null,
            "apps": [{"name": "app", "instances": 1, "target": 1, "generation": 1,
                      "running_generations": [1], "last_rollout": null, "operation": null,
                      "min": null, "max": null}],
            "instances": [{"id": "app-1", "app": "app", "slot": 1, "generation": 1,
                "pid": 4242, "port": 40001, "state": "running", "health": "up",
                "last_check": null, "ejections": 0, "restarts": 2, "in_flight": 0,
                "requests": 10, "connections_opened": 1, "protocol": "http1",
                "rss_bytes": 10485760, "cpu_percent": 1.5, "requests_per_sec": 20.0,
                "errors_per_sec": 0.0, "p95_ms": 3.0, "uptime_secs": 100.0,
                "last_exit": null, "failure": null}],
            "upstreams": []
        }))
        .unwrap()
    }

    #[test]
    fn the_screen_shows_rows_totals_events_and_keys() {
        let mut m = Model::new("127.0.0.1:9090".into());
        let text = screen(&m, 120, 20);
        assert!(text.contains("waiting for the first answer"), "{text}");
        m.update(super::super::model::Snapshot {
            status: status(),
            fleet: None,
            events: vec![serde_json::from_value(serde_json::json!({
                "id": 1, "at": 1_700_000_000.0, "kind": "instance_started",
                "app": "app", "instance": "app-1", "message": "app-1 started (pid 4242)"
            }))
            .unwrap()],
            events_restarted: false,
        });
        let text = screen(&m, 120, 20);
        for want in [
            "up 2m",
            "1/1 up · 20.0 req/s · errors 0.0%",
            "app · 1 of 1 instance(s)",
            "app-1",
            "running",
            "4242",
            "10.0M",
            "3.0ms",
            "instance_started",
            "app-1 started (pid 4242)",
            "q  quit",
            "+  scale up",
        ] {
            assert!(text.contains(want), "no `{want}` in\n{text}");
        }
        m.ask_scale(1);
        assert!(screen(&m, 120, 20).contains("Scale app from 1 to 2 instance(s)?"));
        m.answer(false);
        m.failed("no shoal answers at 127.0.0.1:9090 (connection refused)".into());
        let text = screen(&m, 120, 20);
        assert!(
            text.contains("admin API unreachable: no shoal answers"),
            "{text}"
        );
        assert!(text.contains("scale app to 2: cancelled"), "{text}");
    }

    #[test]
    fn durations_and_clocks() {
        assert_eq!(duration(5.4), "5s");
        assert_eq!(duration(125.0), "2m");
        assert_eq!(duration(3.0 * 3600.0 + 240.0), "3h04m");
        assert_eq!(duration(2.0 * 86_400.0 + 5.0 * 3600.0), "2d05h");
        assert_eq!(clock(1_796_625_601.5), "06:40:01");
    }
}
