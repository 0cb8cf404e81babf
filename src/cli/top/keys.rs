//! Keys → what `shoal top` does. While a question is on screen, `y`
//! confirms and any other key cancels (Ctrl-C still quits).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    SelectPrevious,
    SelectNext,
    ScaleUp,
    ScaleDown,
    Reload,
    Confirm,
    Cancel,
    /// Not a key of ours.
    Nothing,
}

/// The footer's list of keys.
pub const HELP: &[(&str, &str)] = &[
    ("q", "quit"),
    ("↑/↓ j/k", "select app"),
    ("+", "scale up"),
    ("-", "scale down"),
    ("r", "rolling reload"),
];

pub fn action(key: KeyEvent, asking: bool) -> Action {
    // Key releases and repeats (terminals that report them) are not presses.
    if key.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    if asking {
        return match key.code {
            KeyCode::Char('y' | 'Y') => Action::Confirm,
            _ => Action::Cancel,
        };
    }
    match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::SelectPrevious,
        KeyCode::Down | KeyCode::Char('j') => Action::SelectNext,
        // `=` is `+` without Shift on most keyboards.
        KeyCode::Char('+' | '=') => Action::ScaleUp,
        KeyCode::Char('-') => Action::ScaleDown,
        KeyCode::Char('r') => Action::Reload,
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_do_what_the_footer_says() {
        let cases = [
            (KeyCode::Char('q'), Action::Quit),
            (KeyCode::Up, Action::SelectPrevious),
            (KeyCode::Char('k'), Action::SelectPrevious),
            (KeyCode::Down, Action::SelectNext),
            (KeyCode::Char('j'), Action::SelectNext),
            (KeyCode::Char('+'), Action::ScaleUp),
            (KeyCode::Char('='), Action::ScaleUp),
            (KeyCode::Char('-'), Action::ScaleDown),
            (KeyCode::Char('r'), Action::Reload),
            (KeyCode::Char('y'), Action::Nothing),
            (KeyCode::Enter, Action::Nothing),
        ];
        for (code, want) in cases {
            assert_eq!(action(key(code), false), want, "{code:?}");
        }
    }

    #[test]
    fn a_question_takes_y_or_cancels() {
        assert_eq!(action(key(KeyCode::Char('y')), true), Action::Confirm);
        assert_eq!(action(key(KeyCode::Char('Y')), true), Action::Confirm);
        for code in [
            KeyCode::Char('n'),
            KeyCode::Char('q'),
            KeyCode::Char('+'),
            KeyCode::Enter,
            KeyCode::Esc,
        ] {
            assert_eq!(action(key(code), true), Action::Cancel, "{code:?}");
        }
    }

    #[test]
    fn ctrl_c_quits_always_and_releases_do_nothing() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c, false), Action::Quit);
        assert_eq!(action(ctrl_c, true), Action::Quit);
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release, false), Action::Nothing);
    }
}
