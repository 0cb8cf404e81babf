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
    let config = if value.is_null() {
        Config::default()
    } else {
        value
            .apply_merge()
            .map_err(|e| fail(diagnose::from_yaml(&e, &lines)))?;
        serde_path_to_error::deserialize(value)
            .map_err(|e| fail(vec![diagnose::from_serde(&e, &lines)]))?
    };
    let mut problems = validate(&config, &lines);
    let outside = external(&config);
    if !outside.is_empty() {
        problems.extend(outside.into_iter().map(|(path, message)| {
            Problem::new(ErrorKind::File, lines.nearest(&path), path, message)
        }));
        problems.sort_by_key(|p| p.line().unwrap_or(usize::MAX));
    }
    match ConfigError::from_problems(origin, problems) {
        Some(err) => Err(err),
        None => Ok(config),
    }
}

/// The effective config as YAML: every key, defaults filled in, durations
/// and sizes in their short forms. Loading it back gives the same `Config`.
pub fn to_yaml(config: &Config) -> String {
    // Serializing plain strings, numbers and maps cannot fail; if it ever
    // did, a YAML comment is more useful to `shoal check` than a panic.
    serde_yaml_ng::to_string(config).unwrap_or_else(|e| format!("# cannot print the config: {e}\n"))
}

/// The line of `path` (a key path like `app.command`) in config `text`, or
/// of its closest enclosing key written there: for messages about a loaded
/// config outside this crate, such as warnings.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    LineMap::build(text).nearest(path)
}
