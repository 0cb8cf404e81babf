//! Key path → line, read from the YAML events of the (interpolated) text.
//!
//! serde only knows *which* key was wrong; this map says *where* it is. It is
//! built with yaml-rust2's marked event parser, separately from the serde
//! parse, and also catches duplicate keys, which the serde parse reports only
//! at the start of the enclosing mapping.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub path: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub(crate) struct LineMap {
    lines: HashMap<String, usize>,
    duplicates: Vec<Duplicate>,
}

enum Frame {
    Map {
        path: String,
        seen: HashSet<String>,
        /// `None` while waiting for a key; `Some(path)` of the value to come.
        value_path: Option<String>,
    },
    Seq {
        path: String,
        next_index: usize,
    },
}

pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl LineMap {
    /// Never fails: text yaml-rust2 cannot parse yields a partial map, and
    /// the serde parse reports the syntax error.
    pub(crate) fn build(text: &str) -> LineMap {
        let mut map = LineMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, mark)) = parser.next_token() {
            let line = mark.line();
            match event {
                Event::StreamEnd => break,
                Event::Scalar(value, ..) => {
                    if map.take_key(&mut stack, &value, line) {
                        continue;
                    }
                    map.begin_node(&mut stack, line);
                    end_node(&mut stack);
                }
                Event::Alias(_) => {
                    if map.take_key(&mut stack, "?", line) {
                        continue;
                    }
                    map.begin_node(&mut stack, line);
                    end_node(&mut stack);
                }
                Event::MappingStart(..) => {
                    let path = map.begin_node(&mut stack, line);
                    stack.push(Frame::Map {
                        path,
                        seen: HashSet::new(),
                        value_path: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let path = map.begin_node(&mut stack, line);
                    stack.push(Frame::Seq {
                        path,
                        next_index: 0,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    end_node(&mut stack);
                }
                _ => {}
            }
        }
        map
    }

    /// If the innermost mapping is waiting for a key, records `key` and
    /// returns true.
    fn take_key(&mut self, stack: &mut [Frame], key: &str, line: usize) -> bool {
        let Some(Frame::Map {
            path,
            seen,
            value_path,
        }) = stack.last_mut()
        else {
            return false;
        };
        if value_path.is_some() {
            return false;
        }
        let full = join_key(path, key);
        if !seen.insert(key.to_string()) {
            self.duplicates.push(Duplicate {
                path: full.clone(),
                line,
            });
        }
        self.lines.entry(full.clone()).or_insert(line);
        *value_path = Some(full);
        true
    }

    /// Path of a node that starts here (a mapping value, a list item or the
    /// root), recording the line of list items. A complex (non-scalar) key is
    /// given the path `parent.?`.
    fn begin_node(&mut self, stack: &mut [Frame], line: usize) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map {
                path, value_path, ..
            }) => match value_path {
                Some(p) => p.clone(),
                None => join_key(path, "?"),
            },
            Some(Frame::Seq { path, next_index }) => {
                let p = format!("{path}[{next_index}]");
                self.lines.entry(p.clone()).or_insert(line);
                p
            }
        }
    }

    /// Line where the key (or list item) at `path` is written.
    pub(crate) fn get(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.lines.contains_key(path)
    }

    /// Line of `path`, or of its closest ancestor present in the file (a
    /// default value has no line of its own; its section is the best pointer).
    pub(crate) fn nearest(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.get(p) {
                return Some(line);
            }
            p = parent(p)?;
        }
    }

    pub(crate) fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }
}

/// After a node ends: a mapping goes back to waiting for a key, a list moves
/// on to its next index.
fn end_node(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map {
            path, value_path, ..
        }) => {
            // A complex key just ended: its value comes next.
            if value_path.is_none() {
                *value_path = Some(join_key(path, "?"));
            } else {
                *value_path = None;
            }
        }
        Some(Frame::Seq { next_index, .. }) => *next_index += 1,
        None => {}
    }
}

/// `app.health.fall` → `app.health`, `upstreams[0]` → `upstreams`, `app` → `""`,
/// `""` → `None`.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    })
}

/// The last segment of a path: `app.instanses` → `instanses`.
pub(crate) fn last_segment(path: &str) -> &str {
    match path.rfind('.') {
        Some(i) if !path[i..].contains('[') => &path[i + 1..],
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
listen: 0.0.0.0:8080
app:
  command: [\"srv\", \"--port\", \"{port}\"]
  health:
    path: /healthz

    fall: 2
upstreams:
  - url: http://a:1
    weight: 3
  - {url: 'http://b:2'}
log: {level: info, format: json}
";

    #[test]
    fn keys_and_items_map_to_their_lines() {
        let m = LineMap::build(TEXT);
        assert_eq!(m.get("listen"), Some(2));
        assert_eq!(m.get("app"), Some(3));
        assert_eq!(m.get("app.command"), Some(4));
        assert_eq!(m.get("app.health.path"), Some(6));
        assert_eq!(m.get("app.health.fall"), Some(8));
        assert_eq!(m.get("upstreams[0]"), Some(10));
        assert_eq!(m.get("upstreams[0].url"), Some(10));
        assert_eq!(m.get("upstreams[0].weight"), Some(11));
        assert_eq!(m.get("upstreams[1].url"), Some(12));
        assert_eq!(m.get("log.format"), Some(13));
        assert_eq!(m.get("app.command[0]"), Some(4));
        assert!(m.duplicates().is_empty());
    }

    #[test]
    fn missing_keys_fall_back_to_their_section() {
        let m = LineMap::build(TEXT);
        assert_eq!(m.nearest("app.health.rise"), Some(5));
        assert_eq!(m.nearest("app.backoff.max"), Some(3));
        assert_eq!(m.nearest("shutdown.grace"), None);
    }

    #[test]
    fn duplicate_keys_are_found_with_the_second_line() {
        let m = LineMap::build("app:\n  instances: 1\n  env: {}\n  instances: 2\n");
        assert_eq!(
            m.duplicates(),
            &[Duplicate {
                path: "app.instances".into(),
                line: 4
            }]
        );
        // The same key in different mappings is fine.
        let m = LineMap::build("health: {fall: 1}\napp: {health: {fall: 1}}\n");
        assert!(m.duplicates().is_empty());
    }

    #[test]
    fn broken_yaml_gives_a_partial_map() {
        let m = LineMap::build("listen: x\napp: [\n");
        assert_eq!(m.get("listen"), Some(1));
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("app.health.fall"), Some("app.health"));
        assert_eq!(parent("upstreams[0]"), Some("upstreams"));
        assert_eq!(parent("upstreams[0].url"), Some("upstreams[0]"));
        assert_eq!(parent("app"), Some(""));
        assert_eq!(parent(""), None);
        assert_eq!(last_segment("app.instanses"), "instanses");
        assert_eq!(last_segment("lisen"), "lisen");
        assert_eq!(last_segment("upstreams[0].wieght"), "wieght");
    }
}
