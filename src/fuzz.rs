//! The entry points of the fuzz targets (`fuzz/`, run by `scripts/fuzz`):
//! every parser of bytes a client, a backend or a config file controls
//! (and a balancer in front: the PROXY protocol header).
//! Built for `cargo fuzz` (`--cfg fuzzing`) and for `cargo test`, which
//! runs the inputs kept in `fuzz/seeds/` and `fuzz/regressions/` through
//! them on stable.

pub use crate::proxy::fuzz_h1::{chunked, request_head, response_head};
pub use crate::proxy::proxy_protocol::fuzz as proxy_header;

/// A config file: loading never panics, and what `shoal check` prints of
/// a valid one loads back to the same config (`shoal_config::to_yaml`).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    let Ok(config) = shoal_config::load_str(text, "fuzz.yaml", &env) else {
        return;
    };
    let printed = shoal_config::to_yaml(&config);
    let again = shoal_config::load_str(&printed, "printed.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("the printed config does not load: {e}\n{printed}"));
    assert_eq!(again, config, "printed and loaded again:\n{printed}");
}

/// What a route and a `files` route make of a request's target and of its
/// `Range` and `Accept-Encoding` values: the first byte picks a file
/// length for the range, the rest is the target, then (after a `\n`) the
/// header values.
/// - `request_rules::normalized`: a path that starts with `/`, with no
///   `//`, `.` or `..` segment, which normalises to itself;
/// - `files` path decoding: a relative path with no `..`, root or NUL;
/// - `Range` against the file's length: a range inside it;
/// - `Accept-Encoding`: a codec it offered, or none; no panic anywhere.
pub fn request_target(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (target, headers) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if let Ok(path) = std::str::from_utf8(target) {
        if path.starts_with('/') {
            if let Some(n) = crate::proxy::request_rules::normalized(path) {
                assert!(n.starts_with('/'), "{path:?} → {n:?}");
                assert!(!n.contains("//"), "{path:?} → {n:?}");
                for seg in n.split('/') {
                    assert!(seg != "." && seg != "..", "{path:?} → {n:?}");
                }
                assert_eq!(
                    crate::proxy::request_rules::normalized(&n),
                    None,
                    "{path:?} → {n:?} is not its own normal form"
                );
            }
        }
        crate::files::fuzz_path(path);
    }
    crate::files::fuzz_range(headers, u64::from(len));
    let _ = crate::compress::fuzz_negotiate(headers);
}
