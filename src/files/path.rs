//! A request's path as a path below a `files` root: percent-decoded once,
//! split at `/`; a `..` segment, a NUL or a backslash anywhere refuse it
//! (so `%2e%2e%2f` does too, decoded into `../`). The file found is then
//! checked again on disk (`Files::resolve`): its canonical path must be
//! under the root, so no symlink leads out of it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` decoded, once; `None` for a `%` not followed by two hex digits.
pub fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = hex(*raw.get(i + 1)?)?;
            let lo = hex(*raw.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The request path (`/a/b.css`, no query) as a relative path, and
/// whether it names a directory (ends in `/`); `None` when it must not be
/// served.
pub fn relative(path: &str) -> Option<(PathBuf, bool)> {
    let decoded = percent_decode(path.as_bytes())?;
    if decoded.contains(&0) || decoded.contains(&b'\\') {
        return None;
    }
    let mut rel = PathBuf::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return None,
            s => rel.push(OsStr::from_bytes(s)),
        }
    }
    Some((rel, decoded.ends_with(b"/") || decoded.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_bytes_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/%2e%2e%2fetc%2fpasswd",
            "/a/%2E%2E/b",
            "/..",
            "/a%00b",
            "/a%5cb",
            "/a\\b",
            "/a%zz",
            "/a%2",
        ] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_paths_are_taken_apart() {
        assert_eq!(
            relative("/a/b%20c.txt"),
            Some((PathBuf::from("a/b c.txt"), false))
        );
        assert_eq!(relative("/docs/"), Some((PathBuf::from("docs"), true)));
        assert_eq!(relative("/"), Some((PathBuf::new(), true)));
        assert_eq!(relative(""), Some((PathBuf::new(), true)));
        assert_eq!(relative("//a/./b"), Some((PathBuf::from("a/b"), false)));
        assert_eq!(relative("/a..b"), Some((PathBuf::from("a..b"), false)));
        assert_eq!(
            relative("/%252e%252e/x"),
            Some((PathBuf::from("%2e%2e/x"), false)),
            "decoded once"
        );
    }
}
