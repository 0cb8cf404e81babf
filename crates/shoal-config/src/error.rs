//! The error `load_*` returns: every problem found, each with where it is.

use std::fmt;

/// What sort of problem a [`Problem`] is; tests and callers can match on it
/// instead of on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read (missing, unreadable, not UTF-8).
    Read,
    /// A bad `${...}` placeholder or an unset variable.
    Interpolation,
    /// The text is not valid YAML (or holds more than one document).
    Syntax,
    /// A key shoal does not know, or a key that appears twice.
    UnknownKey,
    /// A value of the wrong type: a list where a number belongs, etc.
    Type,
    /// A required key is absent.
    Missing,
    /// A value of the right type that is out of range or does not make sense,
    /// alone or together with another key.
    Invalid,
    /// A file the config names (a TLS certificate or key) is missing,
    /// unreadable or does not hold what it should.
    File,
}

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: ErrorKind,
    line: Option<usize>,
    path: String,
    message: String,
}

impl Problem {
    pub(crate) fn new(kind: ErrorKind, line: Option<usize>, path: String, message: String) -> Self {
        Problem {
            kind,
            line,
            path,
            message,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// 1-based line in the file, when the problem has one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// Key path such as `app.health.fall` or `upstreams[0].url`; `""` when the
    /// problem is not about one key (a syntax error, nothing to run).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The text after the location, without the key path.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn write(&self, origin: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{origin}:{line}: ")?,
            None => write!(f, "{origin}: ")?,
        }
        // An unknown-key message names the key and its parent itself.
        if !self.path.is_empty() && self.kind != ErrorKind::UnknownKey {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config could not be loaded. Displays one line per problem, like
/// `shoal.yaml:14: app.health.fall: must be at least 1 (got 0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    // Never empty: every constructor takes at least one problem.
    problems: Vec<Problem>,
}

impl ConfigError {
    pub(crate) fn new(origin: &str, first: Problem) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems: vec![first],
        }
    }

    /// `None` when there are no problems.
    pub(crate) fn from_problems(origin: &str, problems: Vec<Problem>) -> Option<Self> {
        if problems.is_empty() {
            None
        } else {
            Some(ConfigError {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Name of the file (or other source) as given to the loader.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every problem, in the order they appear in the file.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn first(&self) -> Option<&Problem> {
        self.problems.first()
    }

    /// Key path of the first problem, `""` if it has none.
    pub fn path(&self) -> &str {
        self.first().map_or("", Problem::path)
    }

    /// Line of the first problem.
    pub fn line(&self) -> Option<usize> {
        self.first().and_then(Problem::line)
    }

    /// Kind of the first problem.
    pub fn kind(&self) -> ErrorKind {
        self.first().map_or(ErrorKind::Invalid, Problem::kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.write(&self.origin, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_line_per_problem() {
        let err = ConfigError::from_problems(
            "shoal.yaml",
            vec![
                Problem::new(
                    ErrorKind::Invalid,
                    Some(14),
                    "app.health.fall".into(),
                    "must be at least 1 (got 0)".into(),
                ),
                Problem::new(
                    ErrorKind::UnknownKey,
                    Some(3),
                    "app.instanses".into(),
                    "unknown key `instanses` in `app`".into(),
                ),
                Problem::new(
                    ErrorKind::Invalid,
                    None,
                    String::new(),
                    "nothing to run".into(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            err.to_string(),
            "shoal.yaml:14: app.health.fall: must be at least 1 (got 0)\n\
             shoal.yaml:3: unknown key `instanses` in `app`\n\
             shoal.yaml: nothing to run"
        );
        assert_eq!(err.path(), "app.health.fall");
        assert_eq!(err.line(), Some(14));
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(ConfigError::from_problems("x", Vec::new()).is_none());
    }
}
