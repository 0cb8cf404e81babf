//! `${VAR}`, `${VAR:-default}` and `$$` in the raw text, before YAML parsing.
//!
//! Working on the text (not on parsed strings) lets a variable supply a number
//! or a duration (`instances: ${N:-3}`), and since a substituted value may not
//! contain a line break, every line number YAML reports afterwards is still
//! the line the user wrote.
//!
//! Comments are left alone, so a commented-out `${OLD_SECRET}` is not an error.
//! A `#` starts a comment the way YAML says: at the start of a line or after
//! whitespace, outside quotes, and not inside a block scalar (`|` or `>`).

use crate::error::{ErrorKind, Problem};

/// Returns the text with every placeholder replaced, or one problem per bad
/// placeholder (all of them, not just the first).
pub(crate) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    // Indentation of the line that opened the block scalar we are inside.
    let mut block_parent_indent: Option<usize> = None;

    for (index, raw_line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let indent = raw_line.len() - raw_line.trim_start_matches(' ').len();
        let blank = raw_line.trim().is_empty();
        if let Some(parent) = block_parent_indent {
            if blank || indent > parent {
                substitute(raw_line, line_no, env, &mut out, &mut problems);
                continue;
            }
            block_parent_indent = None;
        }
        let comment_at = comment_start(raw_line);
        let (code, comment) = raw_line.split_at(comment_at.unwrap_or(raw_line.len()));
        substitute(code, line_no, env, &mut out, &mut problems);
        out.push_str(comment);
        if opens_block_scalar(code) {
            block_parent_indent = Some(indent);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn substitute(
    segment: &str,
    line: usize,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
    problems: &mut Vec<Problem>,
) {
    let mut rest = segment;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                problems.push(problem(
                    line,
                    "unterminated `${` (close it with `}`, or write `$${` for a literal `${`)"
                        .into(),
                ));
                out.push_str(&rest[dollar..]);
                return;
            };
            let inner = &body[..close];
            match resolve(inner, env) {
                Ok(value) => out.push_str(&value),
                Err(message) => problems.push(problem(line, message)),
            }
            rest = &body[close + 1..];
        } else {
            // A lone `$` (a regex anchor, a price) is kept as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
}

fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_valid_name(name) {
        return Err(format!(
            "invalid variable name `{name}` in `${{{inner}}}` (use letters, digits and `_`, not starting with a digit)"
        ));
    }
    // As in the shell, `:-` also replaces a variable that is set but empty.
    let value = match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_string(),
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(format!(
                "environment variable `{name}` is not set (used as `${{{name}}}`; set it, or give a default: `${{{name}:-value}}`)"
            ))
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable `{name}` contains a line break, which a config value cannot contain"
        ));
    }
    Ok(value)
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn problem(line: usize, message: String) -> Problem {
    Problem::new(ErrorKind::Interpolation, Some(line), String::new(), message)
}

/// Byte offset of the `#` that starts a comment on this line, if any.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev: Option<char> = None;
    // The last non-blank character, to tell an opening quote (`key: 'x'`)
    // from an apostrophe inside a plain scalar (`msg: don't`).
    let mut prev_significant: Option<char> = None;
    // Set right after a single quote closed, because `''` inside a
    // single-quoted scalar is an escaped quote, not the end of it.
    let mut just_closed_single = false;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let was_just_closed = std::mem::take(&mut just_closed_single);
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => {
                quote = None;
                just_closed_single = q == '\'';
            }
            Some(_) => {}
            None => {
                if c == '#' && prev.is_none_or(char::is_whitespace) {
                    return Some(i);
                }
                let opens =
                    prev_significant.is_none_or(|p| matches!(p, ':' | '-' | '[' | '{' | ',' | '?'));
                if (c == '\'' && (opens || was_just_closed)) || (c == '"' && opens) {
                    quote = Some(c);
                }
            }
        }
        if !c.is_whitespace() {
            prev_significant = Some(c);
        }
        prev = Some(c);
    }
    None
}

/// Whether a line ends with a block scalar header such as `key: |`, `- >-`
/// or `run: |2`, so that the following more-indented lines are literal text.
fn opens_block_scalar(code: &str) -> bool {
    let trimmed = code.trim_end();
    let header_len = trimmed
        .chars()
        .rev()
        .take_while(|c| matches!(c, '-' | '+' | '0'..='9'))
        .count();
    let without_indicators = &trimmed[..trimmed.len() - header_len];
    let Some(before) = without_indicators
        .strip_suffix('|')
        .or_else(|| without_indicators.strip_suffix('>'))
    else {
        return false;
    };
    before.is_empty() || before.ends_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("9000".into()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<(Option<usize>, String)>> {
        interpolate(text, &env).map_err(|ps| {
            ps.iter()
                .map(|p| (p.line(), p.message().to_string()))
                .collect()
        })
    }

    #[test]
    fn set_variable_is_substituted() {
        assert_eq!(
            run("listen: 0.0.0.0:${PORT}\n"),
            Ok("listen: 0.0.0.0:9000\n".into())
        );
    }

    #[test]
    fn default_applies_when_unset_or_empty() {
        assert_eq!(run("a: ${NOPE:-3}\n"), Ok("a: 3\n".into()));
        assert_eq!(run("a: ${EMPTY:-x}\n"), Ok("a: x\n".into()));
        assert_eq!(run("a: ${PORT:-1}\n"), Ok("a: 9000\n".into()));
        assert_eq!(run("a: '${NOPE:-}'\n"), Ok("a: ''\n".into()));
        assert_eq!(run("a: ${EMPTY}\n"), Ok("a: \n".into()));
    }

    #[test]
    fn unset_without_default_names_variable_and_line() {
        let errs = run("a: 1\nb: ${DB_URL}\nc: ${OTHER}\n").unwrap_err();
        assert_eq!(
            errs,
            vec![
                (
                    Some(2),
                    "environment variable `DB_URL` is not set (used as `${DB_URL}`; set it, or give a default: `${DB_URL:-value}`)".to_string()
                ),
                (
                    Some(3),
                    "environment variable `OTHER` is not set (used as `${OTHER}`; set it, or give a default: `${OTHER:-value}`)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(
            run("a: \"$$HOME and $${PORT}\"\n"),
            Ok("a: \"$HOME and ${PORT}\"\n".into())
        );
        assert_eq!(run("a: ^x$\n"), Ok("a: ^x$\n".into()));
        assert_eq!(run("a: $5 $\n"), Ok("a: $5 $\n".into()));
    }

    #[test]
    fn bad_placeholders_are_errors() {
        let errs = run("a: ${PORT\n").unwrap_err();
        assert_eq!(errs[0].0, Some(1));
        assert!(errs[0].1.starts_with("unterminated `${`"), "{}", errs[0].1);
        let errs = run("\na: ${1X}\n").unwrap_err();
        assert_eq!(errs[0].0, Some(2));
        assert!(
            errs[0].1.starts_with("invalid variable name `1X`"),
            "{}",
            errs[0].1
        );
        let errs = run("a: ${MULTI}\n").unwrap_err();
        assert!(errs[0].1.contains("contains a line break"), "{}", errs[0].1);
    }

    #[test]
    fn comments_are_not_interpolated() {
        assert_eq!(run("# ${NOPE}\n"), Ok("# ${NOPE}\n".into()));
        assert_eq!(
            run("a: 1 # was ${NOPE}\n"),
            Ok("a: 1 # was ${NOPE}\n".into())
        );
        assert_eq!(run("a: '# ${PORT}'\n"), Ok("a: '# 9000'\n".into()));
        assert_eq!(
            run("a: \"x\\\" # ${PORT}\"\n"),
            Ok("a: \"x\\\" # 9000\"\n".into())
        );
        // Not a comment: `#` glued to text, and an apostrophe in a plain scalar.
        assert_eq!(run("a: x#${PORT}\n"), Ok("a: x#9000\n".into()));
        assert_eq!(
            run("a: don't # ${NOPE}\n"),
            Ok("a: don't # ${NOPE}\n".into())
        );
        assert_eq!(
            run("a: 'it''s # ${PORT}'\n"),
            Ok("a: 'it''s # 9000'\n".into())
        );
    }

    #[test]
    fn block_scalars_are_interpolated_even_after_hash() {
        let text = "command: |\n  echo # ${PORT}\n  next\nb: 1 # ${NOPE}\n";
        assert_eq!(
            run(text),
            Ok("command: |\n  echo # 9000\n  next\nb: 1 # ${NOPE}\n".into())
        );
        let text = "items:\n  - >-\n    # ${PORT}\n\n    x\n  - y # ${NOPE}\n";
        assert_eq!(
            run(text),
            Ok("items:\n  - >-\n    # 9000\n\n    x\n  - y # ${NOPE}\n".into())
        );
        assert!(!opens_block_scalar("a: b|"));
        assert!(opens_block_scalar("run: |2"));
        assert!(opens_block_scalar("- >+"));
    }

    #[test]
    fn line_count_never_changes() {
        let text = "a: ${PORT}\r\nb: ${NOPE:-x}\n\n# ${Q}\nc: 1";
        let out = run(text).unwrap();
        assert_eq!(out.lines().count(), text.lines().count());
    }
}
