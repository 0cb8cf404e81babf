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
