//! The loading pipeline: read → interpolate → parse → map onto the model →
//! validate; and the reverse, printing the effective config.

use std::path::Path;

use crate::diagnose;
use crate::error::{ConfigError, ErrorKind, Problem};
use crate::interpolate::interpolate;
use crate::lines::LineMap;
use crate::model::Config;
use crate::validate::validate;

/// Loads and validates a config file, taking `${VAR}` values from the
/// process environment. Errors are reported against the path as given.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let read_error = |message: String| {
        ConfigError::new(
            &origin,
            Problem::new(ErrorKind::Read, None, String::new(), message),
        )
    };
    let bytes =
        std::fs::read(path).map_err(|e| read_error(format!("cannot read the config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        read_error(format!(
            "is not valid UTF-8 (bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    load_str(&text, &origin, &|name| std::env::var(name).ok())
}

/// Loads and validates config text. `origin` names the source in messages
/// (normally the file name); `env` supplies `${VAR}` values.
pub fn load_str(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    load_str_checked(text, origin, env, &|_| Vec::new())
}

/// A check this crate cannot make itself, such as reading the TLS
/// certificate files a config names: `(key path, message)` for each problem.
pub type ExternalCheck<'a> = &'a dyn Fn(&Config) -> Vec<(String, String)>;

/// [`load_str`], plus `external` on the parsed config. Its problems get the
/// line of their key path and are reported with the others (kind
/// [`ErrorKind::File`]), in file order.
pub fn load_str_checked(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    external: ExternalCheck<'_>,
) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| {
        ConfigError::from_problems(origin, problems).unwrap_or_else(|| {
            ConfigError::new(
                origin,
                Problem::new(
                    ErrorKind::Invalid,
                    None,
                    String::new(),
                    "invalid config".into(),
                ),
            )
        })
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = interpolate(text, env).map_err(fail)?;
    let lines = LineMap::build(&text);
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| fail(diagnose::from_yaml(&e, &lines)))?;
    // An empty file (or only comments) is an empty config: all defaults.
    let (config, mut problems, removed) = if value.is_null() {
        (Config::default(), Vec::new(), Vec::new())
    } else {
        value
            .apply_merge()
            .map_err(|e| fail(diagnose::from_yaml(&e, &lines)))?;
        let mapped = map_onto_model(value, &lines);
        match mapped.config {
            Some(config) => (config, mapped.problems, mapped.removed),
            None => return Err(fail(mapped.problems)),
        }
    };
    let mut later = validate(&config, &lines);
    later.extend(
        external(&config).into_iter().map(|(path, message)| {
            Problem::new(ErrorKind::File, lines.nearest(&path), path, message)
        }),
    );
    // With a key set aside (its value had the wrong type, or it is not a
    // key at all), the default stood in for it: a problem about that key,
    // or one that names it, would be about a value the user never wrote.
    problems.extend(later.into_iter().filter(|p| !touches(p, &removed)));
    problems.sort_by_key(|p| p.line().unwrap_or(usize::MAX));
    match ConfigError::from_problems(origin, problems) {
        Some(err) => Err(err),
        None => Ok(config),
    }
}

/// At most this many unknown-key and type problems are collected.
const MAX_MAPPING_PROBLEMS: usize = 50;

struct Mapped {
    /// `None` when the file could not be mapped even with the bad keys
    /// set aside (its top level is not a mapping, or too many problems).
    config: Option<Config>,
    problems: Vec<Problem>,
    /// Key paths set aside, as `app.health.interval`.
    removed: Vec<String>,
}

/// Maps the YAML onto the model, collecting every unknown-key and type
/// problem rather than stopping at the first: serde stops at the first,
/// so each time the offending key is set aside (its section's default
/// stands in) and the mapping tried again.
fn map_onto_model(mut value: serde_yaml_ng::Value, lines: &LineMap) -> Mapped {
    let mut problems = Vec::new();
    let mut removed = Vec::new();
    while problems.len() < MAX_MAPPING_PROBLEMS {
        // A config is small: mapping it again costs microseconds.
        match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(config) => {
                return Mapped {
                    config: Some(config),
                    problems,
                    removed,
                }
            }
            Err(e) => {
                problems.push(diagnose::from_serde(&e, lines));
                match set_aside(&mut value, e.path()) {
                    Some(path) => removed.push(path),
                    None => break,
                }
            }
        }
    }
    Mapped {
        config: None,
        problems,
        removed,
    }
}

/// Removes the deepest mapping key on `path` that the value holds (a list
/// item is never removed, which would renumber the items after it: its
/// list goes instead). Returns the key path removed; `None` when nothing
/// can be (the problem is the top level itself).
fn set_aside(root: &mut serde_yaml_ng::Value, path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    use serde_yaml_ng::Value;
    // Follow the path as far as the value has it; remember the last
    // mapping key found: (segments to its mapping, the key).
    let segments: Vec<&Segment> = path.iter().collect();
    let mut node = &*root;
    let mut target: Option<(usize, String)> = None;
    for (depth, segment) in segments.iter().enumerate() {
        let next = match (segment, node) {
            (Segment::Map { key }, Value::Mapping(m)) => {
                let found = m.get(key.as_str());
                if found.is_some() {
                    target = Some((depth, key.clone()));
                }
                found
            }
            (Segment::Seq { index }, Value::Sequence(items)) => items.get(*index),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    let (depth, key) = target?;
    let mut node = root;
    let mut shown = String::new();
    for segment in &segments[..depth] {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Mapping(m)) => {
                shown = crate::lines::join_key(&shown, key);
                m.get_mut(key.as_str())?
            }
            (Segment::Seq { index }, Value::Sequence(items)) => {
                shown.push_str(&format!("[{index}]"));
                items.get_mut(*index)?
            }
            _ => return None,
        };
    }
    match node {
        Value::Mapping(m) => {
            m.remove(key.as_str())?;
            Some(crate::lines::join_key(&shown, &key))
        }
        _ => None,
    }
}

/// Is `problem` about a key in `removed`, one inside it or a section
/// holding it, or does its message name one (`` `app.health.timeout` ``)?
fn touches(problem: &Problem, removed: &[String]) -> bool {
    let within = |path: &str, r: &str| {
        path == r
            || path
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    removed.iter().any(|r| {
        // A required key reported missing beside a key set aside in the
        // same section: most likely the same key misspelt (`comand`).
        if problem.kind() == ErrorKind::Missing
            && crate::lines::parent(problem.path()) == crate::lines::parent(r)
        {
            return true;
        }
        // About the key, about something inside it, or about a section
        // that holds it (`tls: has no certificate` after a misspelt
        // `certficates`; `nothing to run` after a misspelt `app`).
        within(problem.path(), r)
            || within(r, problem.path())
            || problem.path().is_empty()
            || problem
                .message()
                .split('`')
                .skip(1)
                .step_by(2)
                .any(|named| within(named, r) || within(r, named))
    })
}

/// The effective config as YAML: every key, defaults filled in, durations
/// and sizes in their short forms. Loading it back gives the same `Config`:
/// a `$` in a value (already interpolated) is written `$$`, so it is not
/// read as a placeholder again. (The printed text has no comments, where
/// `$` would stay as it is.)
pub fn to_yaml(config: &Config) -> String {
    // Serializing plain strings, numbers and maps cannot fail; if it ever
    // did, a YAML comment is more useful to `shoal check` than a panic.
    match serde_yaml_ng::to_string(config) {
        Ok(text) => text.replace('$', "$$"),
        Err(e) => format!("# cannot print the config: {e}\n"),
    }
}

/// The line of `path` (a key path like `app.command`) in config `text`, or
/// of its closest enclosing key written there: for messages about a loaded
/// config outside this crate, such as warnings.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    LineMap::build(text).nearest(path)
}
