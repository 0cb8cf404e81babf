//! End-to-end tests of `load_str`/`load_file`/`to_yaml`: every kind of error
//! with its exact message and line, and the effective-config round trip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(yaml: &str) -> Result<Config, ConfigError> {
    load_str(yaml, "shoal.yaml", &no_env)
}

/// The whole error text, for configs that must fail.
fn err(yaml: &str) -> String {
    match load(yaml) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn kind(yaml: &str) -> ErrorKind {
    load(yaml).unwrap_err().kind()
}

// --- unknown keys --------------------------------------------------------

#[test]
fn unknown_key_suggests_the_close_one() {
    let yaml = "app:\n  command: [./srv]\n  instanses: 3\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:3: unknown key `instanses` in `app` (did you mean `instances`?)"
    );
    let e = load(yaml).unwrap_err();
    assert_eq!(e.path(), "app.instanses");
    assert_eq!(e.line(), Some(3));
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        err("# my app\nlisen: 0.0.0.0:80\n"),
        "shoal.yaml:2: unknown key `lisen` at the top level (did you mean `listen`?)"
    );
}

/// Issue 20, item 5: seven mistakes, one run. Unknown keys and wrong
/// types no longer stop at the first; each is reported with its line and
/// key path, together with the semantic problems.
#[test]
fn every_mistake_is_reported_in_one_pass() {
    let yaml = "\
listen: 127.0.0.1:8080
app:
  command: [gunicorn, -b, '127.0.0.1:{port}', 'app:app']
  instances: three
  health:
    interval: 1500ms
    fall: -1
balance:
  algorithm: round-robin
proxy:
  retries: 11
log:
  levl: info
upstreams: {url: 'http://a:1'}
";
    assert_eq!(
        err(yaml),
        "shoal.yaml:4: app.instances: expected a whole number (got string \"three\")\n\
         shoal.yaml:6: app.health.interval: must not be shorter than `app.health.timeout` (2s, the default) (got 1s500ms)\n\
         shoal.yaml:7: app.health.fall: must not be negative (got -1)\n\
         shoal.yaml:9: balance.algorithm: unknown value `round-robin`: expected `round_robin`, `weighted`, `least_conn`, `ip_hash`, `hash`, `random` or `p2c_ewma` (did you mean `round_robin`?)\n\
         shoal.yaml:11: proxy.retries: must be at most 10 (got 11)\n\
         shoal.yaml:13: unknown key `levl` in `log` (did you mean `level`?)\n\
         shoal.yaml:14: upstreams: expected a list of backends (got one backend's `url` without its `- `: write `upstreams: [{url: http://HOST:PORT}]`), or a map of named groups"
    );
    let e = load(yaml).unwrap_err();
    assert_eq!(e.problems().len(), 7);
    assert_eq!((e.path(), e.line()), ("app.instances", Some(4)));
}

/// What only followed from a key set aside is not reported: a misspelt
/// required key is not also "missing", a misspelt section's keys are not
/// "the default".
#[test]
fn set_aside_keys_do_not_cause_more_problems() {
    assert_eq!(
        err("app:\n  comand: [x]\n  instances: 2\n"),
        "shoal.yaml:2: unknown key `comand` in `app` (did you mean `command`?)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    timeout: fast\n    interval: 1s\n"),
        "shoal.yaml:4: app.health.timeout: invalid duration `fast`: expected a number followed by a unit, like `500ms`, `30s`, `5m`, `1h` or `1m30s`"
    );
    // A key inside a list item is set aside, not the item: the items after
    // it keep their numbers, and their problems are found too.
    let e = load(
        "upstreams:\n  - url: http://a:1\n    wieght: 2\n  - url: http://b:2\n    protocol: http2\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "shoal.yaml:3: unknown key `wieght` in `upstreams[0]` (did you mean `weight`?)\n\
         shoal.yaml:5: upstreams[1].protocol: unknown value `http2`: expected `http1` or `h2` (did you mean `h2`?)"
    );
}

#[test]
fn unknown_key_in_a_list_item() {
    assert_eq!(
        err("upstreams:\n  - url: http://a:1\n  - url: http://b:2\n    wieght: 2\n"),
        "shoal.yaml:4: unknown key `wieght` in `upstreams[1]` (did you mean `weight`?)"
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_ones() {
    assert_eq!(
        err("app: {command: x}\nlog:\n  level: info\n  turbo: true\n"),
        "shoal.yaml:4: unknown key `turbo` in `log` (known keys: `level`, `format`)"
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        err("app:\n  command: x\n  instances: 2\n  instances: 3\n"),
        "shoal.yaml:4: duplicate key `instances` in `app`"
    );
}

// --- types ---------------------------------------------------------------

#[test]
fn wrong_type_names_what_was_expected() {
    assert_eq!(
        err("app:\n  command: x\n  instances: three\n"),
        "shoal.yaml:3: app.instances: expected a whole number (got string \"three\")"
    );
    assert_eq!(
        kind("app:\n  command: x\n  instances: three\n"),
        ErrorKind::Type
    );
    assert_eq!(
        err("upstreams: {}\n"),
        "shoal.yaml:1: upstreams: is empty; list at least one `- url: http://HOST:PORT`, or set `app`"
    );
    assert_eq!(
        err("app: 3\n"),
        "shoal.yaml:1: app: expected a mapping (got integer `3`)"
    );
    assert_eq!(
        err("app:\n  command: [srv, {x: 1}]\n"),
        "shoal.yaml:2: app.command[1]: expected a string (got a mapping)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    fall:\n"),
        "shoal.yaml:4: app.health.fall: expected a whole number (got an empty value)"
    );
    assert_eq!(
        err("- a\n- b\n"),
        "shoal.yaml:1: the file must be a mapping of keys like `listen:` and `app:` (got a list)"
    );
}

#[test]
fn integer_out_of_type_range() {
    assert_eq!(
        err("app:\n  command: x\n  instances: -2\n"),
        "shoal.yaml:3: app.instances: must not be negative (got -2)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    rise: 5000000000\n"),
        "shoal.yaml:4: app.health.rise: is too large (got 5000000000; the most is 4294967295)"
    );
}

#[test]
fn bad_enum_value_suggests() {
    assert_eq!(
        err("app: {command: x}\nbalance:\n  algorithm: round-robin\n"),
        "shoal.yaml:3: balance.algorithm: unknown value `round-robin`: expected `round_robin`, `weighted`, `least_conn`, `ip_hash`, `hash`, `random` or `p2c_ewma` (did you mean `round_robin`?)"
    );
    assert_eq!(
        err("app: {command: x}\nlog:\n  format: yaml\n"),
        "shoal.yaml:3: log.format: unknown value `yaml`: expected `text` or `json`"
    );
}

// --- balance -----------------------------------------------------------------

#[test]
fn every_algorithm_by_name() {
    for (name, algorithm) in [
        ("round_robin", Algorithm::RoundRobin),
        ("weighted", Algorithm::Weighted),
        ("least_conn", Algorithm::LeastConn),
        ("ip_hash", Algorithm::IpHash),
        ("random", Algorithm::Random),
        ("p2c_ewma", Algorithm::P2cEwma),
    ] {
        let c = load(&format!(
            "app: {{command: x}}\nbalance:\n  algorithm: {name}\n"
        ))
        .unwrap();
        assert_eq!(c.balance.algorithm, algorithm);
        assert_eq!(algorithm.as_str(), name);
        assert_eq!(c.balance.hash_key, None);
    }
    let c = load("app: {command: x}\nbalance: {algorithm: hash, hash_key: path}\n").unwrap();
    assert_eq!(c.balance.algorithm, Algorithm::Hash);
    assert_eq!(Algorithm::Hash.as_str(), "hash");
}

#[test]
fn other_tools_algorithm_names_suggest_ours() {
    for (theirs, ours) in [
        ("leastconn", "least_conn"),
        ("source", "ip_hash"),
        ("wrr", "weighted"),
        ("maglev", "hash"),
        ("peak_ewma", "p2c_ewma"),
    ] {
        let e = err(&format!(
            "app: {{command: x}}\nbalance:\n  algorithm: {theirs}\n"
        ));
        assert!(
            e.ends_with(&format!("(did you mean `{ours}`?)")),
            "{theirs}: {e}"
        );
    }
}

#[test]
fn hash_keys_of_every_source() {
    for (text, key) in [
        ("header:X-User-Id", HashKey::Header("X-User-Id".into())),
        ("cookie:session", HashKey::Cookie("session".into())),
        ("query:user", HashKey::Query("user".into())),
        ("path", HashKey::Path),
    ] {
        let c = load(&format!(
            "app: {{command: x}}\nbalance:\n  algorithm: hash\n  hash_key: '{text}'\n"
        ))
        .unwrap();
        assert_eq!(c.balance.hash_key, Some(key.clone()));
        assert_eq!(key.to_string(), text);
    }
    // Unquoted works too: `header:X` is a plain YAML scalar.
    let c = load("app: {command: x}\nbalance:\n  algorithm: hash\n  hash_key: header:X-Tenant\n")
        .unwrap();
    assert_eq!(c.balance.hash_key, Some(HashKey::Header("X-Tenant".into())));
}

#[test]
fn hash_key_is_required_for_hash() {
    let yaml = "app: {command: x}\nbalance:\n  algorithm: hash\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:2: balance.hash_key: is required with `algorithm: hash`: what to hash, as \
         `header:NAME`, `cookie:NAME`, `query:NAME` or `path` (e.g. `hash_key: header:X-User-Id`)"
    );
    assert_eq!(kind(yaml), ErrorKind::Missing);
}

#[test]
fn hash_key_is_refused_for_other_algorithms() {
    let yaml = "app: {command: x}\nbalance:\n  algorithm: round_robin\n  hash_key: path\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:4: balance.hash_key: only applies to `algorithm: hash` (the algorithm is \
         `round_robin`); remove it, or set `algorithm: hash`"
    );
    assert_eq!(kind(yaml), ErrorKind::Invalid);
    // The default algorithm is named too.
    assert_eq!(
        err("app: {command: x}\nbalance:\n  hash_key: path\n"),
        "shoal.yaml:3: balance.hash_key: only applies to `algorithm: hash` (the algorithm is \
         `least_conn`); remove it, or set `algorithm: hash`"
    );
    assert_eq!(
        err("app: {command: x}\nbalance:\n  algorithm: ip_hash\n  hash_key: header:X-Real-IP\n"),
        "shoal.yaml:4: balance.hash_key: only applies to `algorithm: hash`; `ip_hash` always \
         hashes the client's address (remove `hash_key`, or use `algorithm: hash`)"
    );
}

#[test]
fn bad_hash_keys_say_why() {
    let e = |key: &str| {
        err(&format!(
            "app: {{command: x}}\nbalance:\n  algorithm: hash\n  hash_key: '{key}'\n"
        ))
    };
    assert_eq!(
        e("X-User-Id"),
        "shoal.yaml:4: balance.hash_key: invalid hash key `X-User-Id`: expected `header:NAME`, \
         `cookie:NAME`, `query:NAME` or `path` (for a header, write `header:X-User-Id`)"
    );
    assert_eq!(
        e("headers:X-User-Id"),
        "shoal.yaml:4: balance.hash_key: invalid hash key `headers:X-User-Id`: unknown source \
         `headers` (did you mean `header`?); expected `header:NAME`, `cookie:NAME`, `query:NAME` \
         or `path`"
    );
    assert_eq!(
        e("cookie:"),
        "shoal.yaml:4: balance.hash_key: invalid hash key `cookie:`: a name must follow `cookie:`"
    );
    assert!(e("header:X User").contains(
        "invalid hash key `header:X User`: a header or cookie name may only contain letters"
    ));
    assert!(e("query:a&b").contains("must not contain spaces, `&`, `=` or `#`"));
    assert!(e("ip").contains("use `algorithm: ip_hash`"));
    assert!(e("URI").contains("write `path`"));
    assert_eq!(
        err("app: {command: x}\nbalance:\n  algorithm: hash\n  hash_key: [path]\n"),
        "shoal.yaml:4: balance.hash_key: expected a hash key like `header:X-User-Id`, \
         `cookie:session`, `query:user` or `path` (got a list)"
    );
    assert_eq!(
        kind("app: {command: x}\nbalance:\n  algorithm: hash\n  hash_key: 'x'\n"),
        ErrorKind::Invalid
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        err("app:\n  command: x\n  stop_timeout: 10\n"),
        "shoal.yaml:3: app.stop_timeout: invalid duration `10`: missing unit (write `10s` for seconds or `10ms` for milliseconds)"
    );
    assert_eq!(
        err("app: {command: x}\nshutdown:\n  grace: 10 minutes\n"),
        "shoal.yaml:3: shutdown.grace: invalid duration `10 minutes`: missing unit after `10` (use h, m, s, ms, us or ns)"
    );
}

#[test]
fn bad_listen_address() {
    assert_eq!(
        err("app: {command: x}\nlisten: 8080\n"),
        "shoal.yaml:2: listen: invalid address `8080`: a port alone is not enough; write `0.0.0.0:8080` (all interfaces) or `127.0.0.1:8080` (this machine only)"
    );
    assert_eq!(
        err("app: {command: x}\nadmin:\n  listen: localhost:9090\n"),
        "shoal.yaml:3: admin.listen: invalid address `localhost:9090`: host names are not resolved here; write `127.0.0.1:9090`"
    );
    assert_eq!(
        err("app:\n  command: x\n  host: localhost\n"),
        "shoal.yaml:3: app.host: invalid IP address `localhost`: host names are not resolved here; write `127.0.0.1` or `::1`"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        err("upstreams:\n  - weight: 2\n"),
        "shoal.yaml:2: upstreams[0]: missing required key `url`"
    );
    assert_eq!(kind("upstreams:\n  - weight: 2\n"), ErrorKind::Missing);
    assert_eq!(
        err("app:\n  instances: 2\n"),
        "shoal.yaml:1: app.command: is required: the command that starts one instance, as a list (`[\"./server\", \"--port\", \"{port}\"]`) or one shell string"
    );
}

// --- syntax and interpolation ----------------------------------------------

#[test]
fn yaml_syntax_error_has_a_line() {
    assert_eq!(
        err("app:\n  command: [a, b\nlisten: 0.0.0.0:1\n"),
        "shoal.yaml:3: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence"
    );
    assert_eq!(kind("a: [\n"), ErrorKind::Syntax);
    assert_eq!(
        err("app: {command: x}\n---\nlisten: 0.0.0.0:1\n"),
        "shoal.yaml: only one YAML document is allowed (remove the second `---`)"
    );
}

#[test]
fn unset_variable_is_reported_with_its_line() {
    let e = load("app:\n  command: x\n  env:\n    DB: ${DATABASE_URL}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "shoal.yaml:4: environment variable `DATABASE_URL` is not set (used as `${DATABASE_URL}`; set it, or give a default: `${DATABASE_URL:-value}`)"
    );
    assert_eq!(e.kind(), ErrorKind::Interpolation);
    assert_eq!(e.path(), "");
}

#[test]
fn interpolated_values_are_typed_by_yaml() {
    let env = |name: &str| match name {
        "N" => Some("4".to_string()),
        "PORT" => Some("9000".to_string()),
        _ => None,
    };
    let yaml = "listen: 0.0.0.0:${PORT}\napp:\n  command: \"echo $$HOME\"\n  instances: ${N}\n  stop_timeout: ${STOP:-45s}\n";
    let c = load_str(yaml, "shoal.yaml", &env).unwrap();
    assert_eq!(c.listen.port(), 9000);
    let app = c.app.unwrap();
    assert_eq!(app.instances, 4);
    assert_eq!(app.stop_timeout, Duration::from_secs(45));
    assert_eq!(app.command, CommandSpec::Shell("echo $HOME".into()));
}

// --- semantic checks ---------------------------------------------------------

#[test]
fn empty_file_means_nothing_to_run() {
    let expected = "shoal.yaml: nothing to run: set `app` (a command shoal runs as several instances) or `upstreams` (servers shoal proxies to)";
    assert_eq!(err(""), expected);
    assert_eq!(err("# only a comment\n"), expected);
    let e = load("").unwrap_err();
    assert_eq!(
        (e.path(), e.line(), e.kind()),
        ("", None, ErrorKind::Invalid)
    );
    assert_eq!(
        err("app:\n"),
        "shoal.yaml:1: app: is empty; set at least `app.command` (or remove `app` and list `upstreams`)"
    );
    assert_eq!(
        err("upstreams: []\n"),
        "shoal.yaml:1: upstreams: is empty; list at least one `- url: http://HOST:PORT`, or set `app`"
    );
}

#[test]
fn empty_command() {
    assert_eq!(
        err("app:\n  command: []\n"),
        "shoal.yaml:2: app.command: must not be empty"
    );
    assert_eq!(
        err("app:\n  command: '  '\n"),
        "shoal.yaml:2: app.command: must not be empty"
    );
    assert_eq!(
        err("app:\n  command:\n    - ''\n    - x\n"),
        "shoal.yaml:3: app.command[0]: the program name must not be empty"
    );
}

#[test]
fn instances_range() {
    assert_eq!(
        err("app:\n  command: x\n  instances: 0\n"),
        "shoal.yaml:3: app.instances: must be between 1 and 1024 (got 0)"
    );
    assert_eq!(
        err("app:\n  command: x\n  instances: 1025\n"),
        "shoal.yaml:3: app.instances: must be between 1 and 1024 (got 1025)"
    );
}

#[test]
fn health_fall_and_rise_at_least_one() {
    let yaml = "app:\n  command: x\n  health:\n    path: /healthz\n    fall: 0\n    rise: 0\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:5: app.health.fall: must be at least 1 (got 0)\n\
         shoal.yaml:6: app.health.rise: must be at least 1 (got 0)"
    );
    let e = load(yaml).unwrap_err();
    assert_eq!(e.problems().len(), 2);
    assert_eq!((e.path(), e.line()), ("app.health.fall", Some(5)));
}

#[test]
fn health_timeout_and_interval() {
    assert_eq!(
        err("app:\n  command: x\n  health:\n    timeout: 10s\n"),
        "shoal.yaml:4: app.health.timeout: must not be longer than `app.health.interval` (5s, the default) (got 10s)"
    );
    // Only the interval was written: point at it.
    assert_eq!(
        err("upstreams: [{url: 'http://a:1'}]\nhealth:\n  interval: 1s\n"),
        "shoal.yaml:3: health.interval: must not be shorter than `health.timeout` (2s, the default) (got 1s)"
    );
    // The issue-20 case: only the interval, in `app.health`.
    assert_eq!(
        err("app:\n  command: x\n  health:\n    interval: 1500ms\n"),
        "shoal.yaml:4: app.health.interval: must not be shorter than `app.health.timeout` (2s, the default) (got 1s500ms)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    timeout: 0s\n"),
        "shoal.yaml:4: app.health.timeout: must be greater than 0 (got 0s)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    interval: 50ms\n    timeout: 10ms\n"),
        "shoal.yaml:4: app.health.interval: must be at least 100ms (got 50ms)"
    );
}

#[test]
fn health_path_needs_a_slash() {
    assert_eq!(
        err("app:\n  command: x\n  health:\n    path: healthz\n"),
        "shoal.yaml:4: app.health.path: must start with `/` (got `healthz`)"
    );
}

#[test]
fn health_http_check_keys() {
    let c = load(
        "app:\n  command: x\n  health:\n    path: /h\n    method: HEAD\n    expect_status: 2xx\n",
    )
    .unwrap();
    let h = &c.app.unwrap().health;
    assert_eq!(h.method, "HEAD");
    assert_eq!(h.expect_status, StatusRange { min: 200, max: 299 });
    for (text, min, max) in [("204", 204, 204), ("200-399", 200, 399), ("5XX", 500, 599)] {
        let yaml =
            format!("app:\n  command: x\n  health:\n    path: /h\n    expect_status: {text}\n");
        let h = load(&yaml).unwrap().app.unwrap().health;
        assert_eq!(
            (h.expect_status.min, h.expect_status.max),
            (min, max),
            "{text}"
        );
    }
    // The default is 2xx and 3xx, as HAProxy's httpchk, and prints as a range.
    assert_eq!(StatusRange::DEFAULT.to_string(), "200-399");
    assert!(StatusRange::DEFAULT.contains(302) && !StatusRange::DEFAULT.contains(404));
    assert_eq!(
        err("app:\n  command: x\n  health:\n    path: /h\n    expect_status: 399-200\n"),
        "shoal.yaml:5: app.health.expect_status: the range `399-200` is empty (write the lower status first, like `200-399`)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    path: /h\n    expect_status: 700\n"),
        "shoal.yaml:5: app.health.expect_status: `700` is not a status from 100 to 599 (write a status like `200`, a range like `200-399`, or a class like `2xx`)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    path: /h\n    method: get\n    expect_body: ''\n"),
        "shoal.yaml:5: app.health.method: must be an HTTP method in capitals, like `GET` or `HEAD` (got `get`)\n\
         shoal.yaml:6: app.health.expect_body: must not be empty (leave it out to accept any body)"
    );
    assert_eq!(
        err("app:\n  command: x\n  health:\n    path: /h\n    method: HEAD\n    expect_body: ok\n"),
        "shoal.yaml:6: app.health.expect_body: cannot be checked with `method: HEAD` (a HEAD response has no body)"
    );
    // HTTP-only keys on a TCP check are an error, not silently ignored.
    assert_eq!(
        err("upstreams: [{url: 'http://a:1'}]\nhealth:\n  expect_body: ok\n"),
        "shoal.yaml:3: health.expect_body: only applies to HTTP checks; set `health.path` too (without it a check is a TCP connect)"
    );
}

#[test]
fn replay_body_size() {
    assert_eq!(
        load("app: {command: x}\n").unwrap().proxy.replay_body_size,
        64 << 10
    );
    let c = load("app: {command: x}\nproxy: {replay_body_size: 1MiB}\n").unwrap();
    assert_eq!(c.proxy.replay_body_size, 1 << 20);
    assert_eq!(
        load("app: {command: x}\nproxy: {replay_body_size: 0}\n")
            .unwrap()
            .proxy
            .replay_body_size,
        0
    );
    assert_eq!(
        err("app: {command: x}\nproxy:\n  replay_body_size: 1GiB\n"),
        "shoal.yaml:3: proxy.replay_body_size: must be at most 64MiB (got 1GiB): the body is held in memory"
    );
}

#[test]
fn outlier_ejection_and_slow_start() {
    let c =
        load("app: {command: x}\nproxy:\n  max_ejection_time: 1m\n  slow_start: 30s\n").unwrap();
    assert_eq!(c.proxy.max_ejection_time, Duration::from_secs(60));
    assert_eq!(c.proxy.slow_start, Duration::from_secs(30));
    let d = load("app: {command: x}\n").unwrap();
    assert_eq!(d.proxy.max_ejection_time, Duration::from_secs(300));
    assert_eq!(d.proxy.slow_start, Duration::ZERO);
    assert!(!d.balance.panic_mode);
    assert!(
        load("app: {command: x}\nbalance: {panic_mode: true}\n")
            .unwrap()
            .balance
            .panic_mode
    );
    assert_eq!(
        err("app: {command: x}\nproxy:\n  max_ejection_time: 5s\n"),
        "shoal.yaml:3: proxy.max_ejection_time: must not be shorter than `proxy.fail_timeout` (10s, the default) (got 5s)"
    );
    assert_eq!(
        err("app: {command: x}\nproxy:\n  slow_start: 2h\n"),
        "shoal.yaml:3: proxy.slow_start: must be at most 1h (got 2h)"
    );
}

#[test]
fn upstream_url_and_weight() {
    assert_eq!(
        err("upstreams:\n  - url: https://api\n    weight: 0\n  - url: api:80\n"),
        "shoal.yaml:2: upstreams[0].url: missing port: write `https://api:PORT`\n\
         shoal.yaml:3: upstreams[0].weight: must be between 1 and 1000 (got 0)\n\
         shoal.yaml:4: upstreams[1].url: missing `http://`: write `http://api:80` (or `https://api:80`)"
    );
}

#[test]
fn listeners_must_not_collide() {
    assert_eq!(
        err("app: {command: x}\nlisten: 127.0.0.1:9090\n"),
        "shoal.yaml:2: listen: must differ from `admin.listen` (both are 127.0.0.1:9090)"
    );
    assert_eq!(
        err("app: {command: x}\nlisten: 0.0.0.0:9000\nadmin:\n  listen: 127.0.0.1:9000\n"),
        "shoal.yaml:4: admin.listen: overlaps `listen`: 127.0.0.1:9000 and 0.0.0.0:9000 both take port 9000"
    );
    // Port 0 means "any free port", so two of them never collide.
    assert!(
        load("app: {command: x}\nlisten: 127.0.0.1:0\nadmin: {listen: '127.0.0.1:0'}\n").is_ok()
    );
    assert!(
        load("app: {command: x}\nlisten: 127.0.0.1:9090\nadmin: {listen: '127.0.0.2:9090'}\n")
            .is_ok()
    );
}

#[test]
fn workers_retries_and_waits() {
    assert_eq!(
        err("app: {command: x}\nworkers: 0\nproxy:\n  retries: 11\nshutdown:\n  grace: 2h\n"),
        "shoal.yaml:2: workers: must be between 1 and 1024 (got 0)\n\
         shoal.yaml:4: proxy.retries: must be at most 10 (got 11)\n\
         shoal.yaml:6: shutdown.grace: must be at most 1h (got 2h)"
    );
    assert_eq!(
        err("app:\n  command: x\n  stop_timeout: 61m\n"),
        "shoal.yaml:3: app.stop_timeout: must be at most 1h (got 1h1m)"
    );
    assert_eq!(
        err("app: {command: x}\nproxy: {connect_timeout: 0ms}\n"),
        "shoal.yaml:2: proxy.connect_timeout: must be greater than 0 (got 0s)"
    );
}

#[test]
fn backoff_must_not_be_zero() {
    assert_eq!(
        err("app:\n  command: x\n  backoff:\n    initial: 0ms\n"),
        "shoal.yaml:4: app.backoff.initial: must be at least 10ms (got 0s)"
    );
}

#[test]
fn backoff_order() {
    assert_eq!(
        err("app:\n  command: x\n  backoff:\n    initial: 1m\n"),
        "shoal.yaml:4: app.backoff.initial: must not be longer than `app.backoff.max` (30s, the default) (got 1m)"
    );
    assert_eq!(
        err("app:\n  command: x\n  backoff:\n    max: 100ms\n"),
        "shoal.yaml:4: app.backoff.max: must not be shorter than `app.backoff.initial` (500ms, the default) (got 100ms)"
    );
}

#[test]
fn old_restart_section_says_where_backoff_went() {
    let yaml = "app:\n  command: x\n  restart:\n    backoff_initial: 1s\n    backoff_max: 1m\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:3: app.restart: expected `always`, `on-failure` or `never` (got a mapping); \
         the backoff settings moved to `app.backoff`, as `initial` (was `backoff_initial`), \
         `max` (was `backoff_max`) and `reset_after`"
    );
    let e = load(yaml).unwrap_err();
    assert_eq!(
        (e.path(), e.line(), e.kind()),
        ("app.restart", Some(3), ErrorKind::Type)
    );
    // Flow style, on another line.
    assert!(err("app:\n  command: x\n\n  restart: {reset_after: 5m}\n")
        .starts_with("shoal.yaml:4: app.restart: expected `always`, `on-failure` or `never` (got a mapping); the backoff settings moved to `app.backoff`"));
}

#[test]
fn restart_policies() {
    let policy = |yaml: &str| load(yaml).unwrap().app.unwrap().restart;
    assert_eq!(policy("app:\n  command: x\n"), RestartPolicy::Always);
    assert_eq!(
        policy("app:\n  command: x\n  restart: always\n"),
        RestartPolicy::Always
    );
    assert_eq!(
        policy("app:\n  command: x\n  restart: on-failure\n"),
        RestartPolicy::OnFailure
    );
    assert_eq!(
        policy("app:\n  command: x\n  restart: never\n"),
        RestartPolicy::Never
    );
}

#[test]
fn upstream_protocols() {
    let c = load(
        "app:\n  command: x\n  protocol: h2\nupstreams:\n  - url: http://a:1\n  - { url: http://b:2, protocol: h2 }\n  - { url: http://c:3, protocol: http1 }\n",
    )
    .unwrap();
    assert_eq!(c.app.unwrap().protocol, UpstreamProtocol::H2);
    let protocols: Vec<_> = c.upstreams.list().iter().map(|u| u.protocol).collect();
    assert_eq!(
        protocols,
        [
            UpstreamProtocol::Http1,
            UpstreamProtocol::H2,
            UpstreamProtocol::Http1
        ]
    );
    assert_eq!(
        load("app: {command: x}\n").unwrap().app.unwrap().protocol,
        UpstreamProtocol::Http1,
        "HTTP/1.1 by default"
    );
    assert_eq!(UpstreamProtocol::H2.as_str(), "h2");
    assert_eq!(UpstreamProtocol::Http1.as_str(), "http1");
}

#[test]
fn bad_protocol_names_the_values_and_suggests() {
    let yaml = "app:\n  command: x\n  protocol: http2\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:3: app.protocol: unknown value `http2`: expected `http1` or `h2` (did you mean `h2`?)"
    );
    assert_eq!(kind(yaml), ErrorKind::Invalid);
    assert_eq!(
        err("upstreams:\n  - url: http://a:1\n  - url: http://b:2\n    protocol: HTTP/1.1\n"),
        "shoal.yaml:4: upstreams[1].protocol: unknown value `HTTP/1.1`: expected `http1` or `h2` (did you mean `http1`?)"
    );
    for (theirs, ours) in [
        ("h2c", "h2"),
        ("grpc", "h2"),
        ("h1", "http1"),
        ("http", "http1"),
    ] {
        let e = err(&format!(
            "upstreams:\n  - {{ url: http://a:1, protocol: {theirs} }}\n"
        ));
        assert!(
            e.ends_with(&format!("(did you mean `{ours}`?)")),
            "{theirs}: {e}"
        );
    }
    assert_eq!(
        err("upstreams:\n  - url: http://a:1\n    protocol: spdy\n"),
        "shoal.yaml:3: upstreams[0].protocol: unknown value `spdy`: expected `http1` or `h2`"
    );
    // Not a name at all.
    assert_eq!(
        err("app:\n  command: x\n  protocol: [h2]\n"),
        "shoal.yaml:3: app.protocol: expected `http1` or `h2` (got a list)"
    );
    assert_eq!(
        err("app:\n  command: x\n  protocol: 2\n"),
        "shoal.yaml:3: app.protocol: expected `http1` or `h2` (got integer `2`) (did you mean `h2`?)"
    );
    assert_eq!(
        err("upstreams:\n  - url: http://a:1\n    protocl: h2\n"),
        "shoal.yaml:3: unknown key `protocl` in `upstreams[0]` (did you mean `protocol`?)"
    );
}

#[test]
fn bad_restart_policy_lists_the_values() {
    let yaml = "app:\n  command: x\n  restart: on_failure\n";
    assert_eq!(
        err(yaml),
        "shoal.yaml:3: app.restart: unknown value `on_failure`: expected `always`, `on-failure` or `never` (did you mean `on-failure`?)"
    );
    assert_eq!(kind(yaml), ErrorKind::Invalid);
    assert_eq!(
        err("app:\n  command: x\n  restart: sometimes\n"),
        "shoal.yaml:3: app.restart: unknown value `sometimes`: expected `always`, `on-failure` or `never`"
    );
    // Docker's and PM2's spellings.
    assert_eq!(
        err("app:\n  command: x\n  restart: no\n"),
        "shoal.yaml:3: app.restart: unknown value `no`: expected `always`, `on-failure` or `never` (did you mean `never`?)"
    );
    assert_eq!(
        err("app:\n  command: x\n  restart: unless-stopped\n"),
        "shoal.yaml:3: app.restart: unknown value `unless-stopped`: expected `always`, `on-failure` or `never` (did you mean `always`?)"
    );
    assert_eq!(
        err("app:\n  command: x\n  restart: false\n"),
        "shoal.yaml:3: app.restart: expected `always`, `on-failure` or `never` (got boolean `false`) (did you mean `never`?)"
    );
    assert_eq!(
        err("app:\n  command: x\n  restart: 3\n"),
        "shoal.yaml:3: app.restart: expected `always`, `on-failure` or `never` (got integer `3`)"
    );
}

#[test]
fn scaling_bounds_range() {
    assert_eq!(
        err("app:\n  command: x\n  min: 0\n  max: 2000\n"),
        "shoal.yaml:3: app.min: must be between 1 and 1024 (got 0)\n\
         shoal.yaml:4: app.max: must be between 1 and 1024 (got 2000)"
    );
    assert_eq!(
        err("app:\n  command: x\n  max: 0\n"),
        "shoal.yaml:3: app.max: must be between 1 and 1024 (got 0)"
    );
}

#[test]
fn min_not_greater_than_max() {
    // One problem: no `instances` could fit, so that is not reported too.
    assert_eq!(
        err("app:\n  command: x\n  instances: 3\n  min: 5\n  max: 2\n"),
        "shoal.yaml:4: app.min: must not be greater than `app.max` (2) (got 5)"
    );
    let c = load("app:\n  command: x\n  instances: 4\n  min: 4\n  max: 4\n").unwrap();
    let app = c.app.unwrap();
    assert_eq!((app.min, app.max), (Some(4), Some(4)));
}

#[test]
fn instances_within_min_and_max() {
    assert_eq!(
        err("app:\n  command: x\n  instances: 3\n  min: 4\n  max: 8\n"),
        "shoal.yaml:3: app.instances: must be at least `app.min` (4) (got 3)"
    );
    assert_eq!(
        err("app:\n  command: x\n  min: 4\n  max: 8\n  instances: 9\n"),
        "shoal.yaml:5: app.instances: must be at most `app.max` (8) (got 9)"
    );
    // `instances` left at its default: the bound is what was written.
    assert_eq!(
        err("app:\n  command: x\n  min: 5\n"),
        "shoal.yaml:3: app.min: must not be greater than `app.instances` (3, the default) (got 5); set `app.instances` within the bounds"
    );
    assert_eq!(
        err("app:\n  command: x\n  max: 2\n"),
        "shoal.yaml:3: app.max: must not be less than `app.instances` (3, the default) (got 2); set `app.instances` within the bounds"
    );
    // An `instances` out of its own range is reported once.
    assert_eq!(
        err("app:\n  command: x\n  instances: 0\n  min: 1\n"),
        "shoal.yaml:3: app.instances: must be between 1 and 1024 (got 0)"
    );
    assert!(load("app:\n  command: x\n  min: 1\n  max: 3\n").is_ok());
}

#[test]
fn surge_and_unavailable() {
    assert_eq!(
        err("app:\n  command: x\n  max_surge: 2000\n  max_unavailable: 1025\n"),
        "shoal.yaml:3: app.max_surge: must be at most 1024 (got 2000)\n\
         shoal.yaml:4: app.max_unavailable: must be at most 1024 (got 1025)"
    );
    let stuck = "must not be 0 while `app.max_unavailable` is 0 too: a rolling reload could then make no progress (set one of them to at least 1)";
    assert_eq!(
        err("app:\n  command: x\n  max_surge: 0\n"),
        format!("shoal.yaml:3: app.max_surge: {stuck}")
    );
    assert_eq!(
        err("app:\n  command: x\n  max_unavailable: 0\n  max_surge: 0\n"),
        format!("shoal.yaml:4: app.max_surge: {stuck}")
    );
    // `max_surge` from a merge key is not a line of its own: point at the other.
    assert_eq!(
        err("app:\n  <<: {max_surge: 0}\n  command: x\n  max_unavailable: 0\n"),
        "shoal.yaml:4: app.max_unavailable: must not be 0 while `app.max_surge` is 0 too: a rolling reload could then make no progress (set one of them to at least 1)"
    );
    // All instances may be replaced at once.
    let c =
        load("app:\n  command: x\n  instances: 2\n  max_surge: 0\n  max_unavailable: 2\n").unwrap();
    let app = c.app.unwrap();
    assert_eq!((app.max_surge, app.max_unavailable), (0, 2));
}

#[test]
fn drain_and_ready_timeouts() {
    assert_eq!(
        err("app:\n  command: x\n  drain_timeout: 0s\n  ready_timeout: 0ms\n"),
        "shoal.yaml:3: app.drain_timeout: must be greater than 0 (got 0s)\n\
         shoal.yaml:4: app.ready_timeout: must be greater than 0 (got 0s)"
    );
    assert_eq!(
        err("app:\n  command: x\n  drain_timeout: 2h\n  ready_timeout: 1h1s\n"),
        "shoal.yaml:3: app.drain_timeout: must be at most 1h (got 2h)\n\
         shoal.yaml:4: app.ready_timeout: must be at most 1h (got 1h1s)"
    );
    let app = load("app:\n  command: x\n  drain_timeout: 1h\n  ready_timeout: 1ms\n")
        .unwrap()
        .app
        .unwrap();
    assert_eq!(app.drain_timeout, Duration::from_secs(3600));
    assert_eq!(app.ready_timeout, Duration::from_millis(1));
}

#[test]
fn crash_loop_limits() {
    assert_eq!(
        err("app:\n  command: x\n  max_restarts: 0\n  restart_window: 500ms\n"),
        "shoal.yaml:3: app.max_restarts: must be at least 1 (got 0)\n\
         shoal.yaml:4: app.restart_window: must be at least 1s (got 500ms)"
    );
    let app = load("app:\n  command: x\n  max_restarts: 1\n  restart_window: 1s\n")
        .unwrap()
        .app
        .unwrap();
    assert_eq!(
        (app.max_restarts, app.restart_window),
        (1, Duration::from_secs(1))
    );
}

#[test]
fn max_memory() {
    let memory = |yaml: &str| load(yaml).unwrap().app.unwrap().max_memory;
    assert_eq!(memory("app:\n  command: x\n"), None);
    assert_eq!(memory("app:\n  command: x\n  max_memory:\n"), None);
    assert_eq!(
        memory("app:\n  command: x\n  max_memory: 512MiB\n"),
        Some(512 << 20)
    );
    assert_eq!(
        memory("app:\n  command: x\n  max_memory: 1MiB\n"),
        Some(1 << 20)
    );
    assert_eq!(
        memory("app:\n  command: x\n  max_memory: 2GB\n"),
        Some(2_000_000_000)
    );
    assert_eq!(
        err("app:\n  command: x\n  max_memory: 512\n"),
        "shoal.yaml:3: app.max_memory: must be at least 1MiB (got 512B)"
    );
    assert_eq!(
        err("app:\n  command: x\n  max_memory: 1000KB\n"),
        "shoal.yaml:3: app.max_memory: must be at least 1MiB (got 1MB)"
    );
    assert_eq!(
        err("app:\n  command: x\n  max_memory: 512M\n"),
        "shoal.yaml:3: app.max_memory: invalid size `512M`: ambiguous unit `M`: write `512MiB` (powers of 1024) or `512MB` (powers of 1000)"
    );
    assert_eq!(
        err("app:\n  command: x\n  max_memory: [1]\n"),
        "shoal.yaml:3: app.max_memory: expected a size like `64MiB`, `10KB` or a number of bytes (got a list)"
    );
}

#[test]
fn log_level_typo() {
    assert_eq!(
        err("app: {command: x}\nlog:\n  level: debg\n"),
        "shoal.yaml:3: log.level: `debg` is not a log level (did you mean `debug`?); use trace, debug, info, warn, error or off, or directives like `shoal=debug,info`"
    );
    assert_eq!(
        err("app: {command: x}\nlog:\n  level: ''\n"),
        "shoal.yaml:3: log.level: must not be empty; use trace, debug, info, warn, error or off, or directives like `shoal=debug,info`"
    );
}

#[test]
fn env_names_shoal_sets_are_refused() {
    assert_eq!(
        err("app:\n  command: x\n  env:\n    PORT: 1\n"),
        "shoal.yaml:4: app.env.PORT: is set by shoal for each instance and cannot be set here"
    );
}

#[test]
fn all_semantic_problems_are_reported_in_file_order() {
    let yaml = "\
listen: 0.0.0.0:8080
app:
  command: []
  instances: 0
  health:
    fall: 0
upstreams:
  - url: http://b
proxy:
  retries: 20
";
    let e = load(yaml).unwrap_err();
    let lines: Vec<_> = e
        .problems()
        .iter()
        .map(|p| (p.line(), p.path().to_string()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (Some(3), "app.command".to_string()),
            (Some(4), "app.instances".to_string()),
            (Some(6), "app.health.fall".to_string()),
            (Some(8), "upstreams[0].url".to_string()),
            (Some(10), "proxy.retries".to_string()),
        ]
    );
    assert_eq!(e.to_string().lines().count(), 5);
}

// --- accepted forms --------------------------------------------------------

#[test]
fn command_as_list_or_shell_string() {
    let c = load("app:\n  command: [python3, -m, http.server, 8000, '{port}']\n").unwrap();
    assert_eq!(
        c.app.unwrap().command,
        CommandSpec::Argv(vec![
            "python3".into(),
            "-m".into(),
            "http.server".into(),
            "8000".into(),
            "{port}".into()
        ])
    );
    let c = load("app:\n  command: ./server --port {port}\n").unwrap();
    assert_eq!(
        c.app.unwrap().command,
        CommandSpec::Shell("./server --port {port}".into())
    );
}

#[test]
fn env_values_may_be_numbers_or_booleans() {
    let c = load("app:\n  command: x\n  env:\n    WORKERS: 4\n    DEBUG: true\n    NAME: shoal\n")
        .unwrap();
    let env = c.app.unwrap().env;
    let expected: BTreeMap<String, String> =
        [("WORKERS", "4"), ("DEBUG", "true"), ("NAME", "shoal")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
    assert_eq!(env, expected);
}

#[test]
fn minimal_config_gets_defaults() {
    let c = load("app:\n  command: ./srv\n").unwrap();
    let app = c.app.as_ref().unwrap();
    assert_eq!(app.instances, 3);
    assert_eq!(app.health, HealthConfig::default());
    assert_eq!(app.drain_timeout, Duration::from_secs(30));
    assert_eq!(app.ready_timeout, Duration::from_secs(60));
    assert_eq!((app.min, app.max), (None, None));
    assert_eq!((app.max_surge, app.max_unavailable), (1, 0));
    assert_eq!(app.restart, RestartPolicy::Always);
    assert_eq!(app.max_restarts, 10);
    assert_eq!(app.restart_window, Duration::from_secs(300));
    assert_eq!(app.backoff, BackoffConfig::default());
    assert_eq!(app.backoff.initial, Duration::from_millis(500));
    assert_eq!(app.max_memory, None);
    assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
    assert_eq!(c.admin.listen, SocketAddr::from(([127, 0, 0, 1], 9090)));
    assert_eq!(c.balance.algorithm, Algorithm::LeastConn);
    let c = load("upstreams:\n  - url: http://10.0.0.1:80\n").unwrap();
    assert_eq!(c.upstreams.list()[0].weight, 1);
    assert!(c.app.is_none());
}

// --- effective config ---------------------------------------------------------

#[test]
fn effective_config_round_trips() {
    let yaml = "\
listen: '[::]:8000'
workers: 4
admin:
  listen: 127.0.0.1:9191
app:
  command: [./server, --port, '{port}']
  instances: 5
  env: {RUST_LOG: debug, 'X-Y': 'a: b # c'}
  cwd: /srv/app
  host: ::1
  health:
    path: /healthz
    interval: 1500ms
    timeout: 1s
    fall: 2
    rise: 4
  stop_timeout: 1m30s
  drain_timeout: 45s
  ready_timeout: 2m
  min: 2
  max: 16
  max_surge: 2
  max_unavailable: 1
  restart: on-failure
  max_restarts: 5
  restart_window: 10m
  backoff:
    initial: 250ms
    max: 10s
    reset_after: 2m
  max_memory: 512MiB
  protocol: h2
upstreams:
  - url: http://[::1]:7000
    weight: 10
    protocol: h2
  - url: http://backend.internal:80
health:
  interval: 10s
  timeout: 3s
balance:
  algorithm: hash
  hash_key: cookie:session
proxy:
  connect_timeout: 750ms
  retries: 0
  max_idle_per_backend: 8
  idle_timeout: 90s
shutdown:
  grace: 45s
log:
  level: shoal=debug,info
  format: json
";
    let original = load(yaml).unwrap();
    let printed = to_yaml(&original);
    let again = load_str(&printed, "effective", &no_env).unwrap();
    assert_eq!(again, original);
    for line in [
        "  interval: 1s500ms",
        "  stop_timeout: 1m30s",
        "  idle_timeout: 1m30s",
        "  algorithm: hash\n  hash_key: cookie:session\n",
        "  weight: 10",
        "  path: /healthz",
        "  drain_timeout: 45s",
        "  ready_timeout: 2m",
        "  min: 2",
        "  max: 16",
        "  max_surge: 2",
        "  max_unavailable: 1",
        "  restart: on-failure",
        "  max_restarts: 5",
        "  restart_window: 10m",
        "  backoff:\n    initial: 250ms\n    max: 10s\n    reset_after: 2m\n",
        "  max_memory: 512MiB",
        "  protocol: h2",
        "  weight: 10\n  protocol: h2\n",
        "- url: http://backend.internal:80\n  weight: 1\n  protocol: http1\n",
    ] {
        assert!(printed.contains(line), "missing {line:?} in:\n{printed}");
    }

    let defaults = load("app:\n  command: x\n").unwrap();
    let printed = to_yaml(&defaults);
    assert_eq!(load_str(&printed, "effective", &no_env).unwrap(), defaults);
    // Every key is printed, defaults included.
    for key in [
        "listen:",
        "workers:",
        "admin:",
        "command:",
        "instances: 3",
        "env:",
        "cwd:",
        "host:",
        "path:",
        "interval: 5s",
        "timeout: 2s",
        "fall: 3",
        "rise: 2",
        "stop_timeout: 30s",
        "drain_timeout: 30s",
        "ready_timeout: 1m",
        "min: null",
        "max: null",
        "max_surge: 1",
        "max_unavailable: 0",
        "restart: always",
        "max_restarts: 10",
        "restart_window: 5m",
        "backoff:\n    initial: 500ms\n    max: 30s\n    reset_after: 1m\n",
        "max_memory: null",
        "protocol: http1",
        "upstreams: []",
        "algorithm: least_conn\n  hash_key: null\n",
        "connect_timeout: 5s",
        "retries: 2",
        "max_idle_per_backend: 64",
        "idle_timeout: 1m",
        "grace: 30s",
        "level: info",
        "format: text",
    ] {
        assert!(printed.contains(key), "missing {key:?} in:\n{printed}");
    }
}

// --- files ---------------------------------------------------------------------

#[test]
fn load_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shoal.yaml");
    std::fs::write(&path, "app:\n  command: x\n  instances: 0\n").unwrap();
    let e = load_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: app.instances: must be between 1 and 1024 (got 0)",
            path.display()
        )
    );

    std::fs::write(&path, "app:\n  command: x\n").unwrap();
    assert!(load_file(&path).is_ok());

    let missing = dir.path().join("nope.yaml");
    let e = load_file(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Read);
    assert!(e.to_string().starts_with(&format!(
        "{}: cannot read the config file: ",
        missing.display()
    )));

    std::fs::write(&path, b"app: \xff\n").unwrap();
    assert!(load_file(&path)
        .unwrap_err()
        .to_string()
        .contains("is not valid UTF-8"));
}

/// Odd and hostile YAML never panics, and each gets the answer it should:
/// accepted, or an error that says where and what.
#[test]
fn hostile_input_never_panics() {
    let cases: &[(&str, Option<&str>)] = &[
        // A byte-order mark is skipped; an unknown tag is ignored.
        ("\u{feff}app: {command: x}", None),
        ("app: !custom {command: x}\n", None),
        (
            "app: &a {command: x}\nhealth: *a\n",
            Some("shoal.yaml:2: unknown key `command` in `health`"),
        ),
        (
            "app: {command: x}\n? [a, b]\n: c\n",
            Some("a list used as a key at the top level"),
        ),
        (
            "app: {command: x}\n!!binary aGk=: 1\n",
            Some("shoal.yaml:2: unknown key `aGk=` at the top level"),
        ),
        ("${", Some("shoal.yaml:1: unterminated `${`")),
        ("$", Some("shoal.yaml:1: the file must be a mapping")),
        (
            "app: {command: x, <<: [1]}\n",
            Some("invalid YAML: expected a mapping for merging"),
        ),
        (
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            Some("invalid YAML: did not find expected node content"),
        ),
        ("\t- x", Some("shoal.yaml:1: invalid YAML: found character that cannot start")),
        (
            "app:\n  command: x\n  health: {interval: 18446744073709551615h}\n",
            Some("shoal.yaml:3: app.health.interval: invalid duration `18446744073709551615h`: too large"),
        ),
    ];
    for (text, expected) in cases {
        match (load(text), expected) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                let e = e.to_string();
                assert!(e.contains(want), "{text:?}: {e}");
            }
            (got, _) => panic!("{text:?}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn proxy_timeouts_and_passive_health_are_checked() {
    assert_eq!(
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  read_timeout: 0s\n"),
        "shoal.yaml:3: proxy.read_timeout: must be greater than 0 (got 0s)"
    );
    let p = load("upstreams: [{ url: \"http://127.0.0.1:1\" }]\n")
        .unwrap()
        .proxy;
    assert_eq!(p.send_timeout, Duration::from_secs(60));
    let p = load("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy: {send_timeout: 5m}\n")
        .unwrap()
        .proxy;
    assert_eq!(p.send_timeout, Duration::from_secs(300));
    assert_eq!(
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  send_timeout: 0s\n"),
        "shoal.yaml:3: proxy.send_timeout: must be greater than 0 (got 0s)"
    );
    assert_eq!(
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  send_timeout: 2h\n"),
        "shoal.yaml:3: proxy.send_timeout: must be at most 1h (got 2h)"
    );
    assert_eq!(
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  send_timeout: soon\n"),
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  read_timeout: soon\n")
            .replace("read_timeout", "send_timeout")
    );
    assert_eq!(
        err("upstreams: [{ url: \"http://127.0.0.1:1\" }]\nproxy:\n  fail_statuses: [503, 200]\n"),
        "shoal.yaml:3: proxy.fail_statuses[1]: must be an error status from 400 to 599 (got 200)"
    );
}

#[test]
fn limits_defaults_values_and_ranges() {
    let l = load("app: {command: x}\n").unwrap().limits;
    assert_eq!(l.max_body_size, None);
    assert_eq!(l.max_header_size, 64 << 10);
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(l.body_read_timeout, Duration::from_secs(60));
    assert_eq!(l.send_timeout, Duration::from_secs(60));
    assert_eq!(l.idle_timeout, Duration::from_secs(75));
    assert_eq!(l.max_connections, None);

    let l = load(
        "app: {command: x}\nlimits:\n  max_body_size: 10MiB\n  max_header_size: 16KiB\n  \
         header_read_timeout: 5s\n  body_read_timeout: 20s\n  send_timeout: 2m\n  \
         idle_timeout: 30s\n  max_connections: 1000\n",
    )
    .unwrap()
    .limits;
    assert_eq!(l.max_body_size, Some(10 << 20));
    assert_eq!(l.max_header_size, 16 << 10);
    assert_eq!(l.header_read_timeout, Duration::from_secs(5));
    assert_eq!(l.body_read_timeout, Duration::from_secs(20));
    assert_eq!(l.send_timeout, Duration::from_secs(120));
    assert_eq!(l.idle_timeout, Duration::from_secs(30));
    assert_eq!(l.max_connections, Some(1000));
    let printed = to_yaml(&load("app: {command: x}\nlimits: {max_body_size: 1MB}\n").unwrap());
    assert!(printed.contains("limits:\n  max_body_size: 1MB\n  max_header_size: 64KiB\n  header_read_timeout: 10s\n  body_read_timeout: 1m\n  send_timeout: 1m\n  idle_timeout: 1m15s\n  max_connections: null\n  abort_on_client_close: false\n"), "{printed}");

    assert_eq!(
        err("app: {command: x}\nlimits:\n  max_body_size: 0\n"),
        "shoal.yaml:3: limits.max_body_size: must be greater than 0 (got 0B); leave it out for no limit"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  max_header_size: 1KiB\n"),
        "shoal.yaml:3: limits.max_header_size: must be between 8KiB and 1MiB (got 1KiB)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  max_header_size: 2MiB\n"),
        "shoal.yaml:3: limits.max_header_size: must be between 8KiB and 1MiB (got 2MiB)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  header_read_timeout: 0s\n"),
        "shoal.yaml:3: limits.header_read_timeout: must be greater than 0 (got 0s)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  idle_timeout: 2h\n"),
        "shoal.yaml:3: limits.idle_timeout: must be at most 1h (got 2h)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  body_read_timeout: 0s\n"),
        "shoal.yaml:3: limits.body_read_timeout: must be greater than 0 (got 0s)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  send_timeout: 61m\n"),
        "shoal.yaml:3: limits.send_timeout: must be at most 1h (got 1h1m)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  send_timeot: 1s\n"),
        "shoal.yaml:3: unknown key `send_timeot` in `limits` (did you mean `send_timeout`?)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  max_connections: 0\n"),
        "shoal.yaml:3: limits.max_connections: must be at least 1 (got 0)"
    );
    assert_eq!(
        err("app: {command: x}\nlimits:\n  max_body: 1MiB\n"),
        "shoal.yaml:3: unknown key `max_body` in `limits` (did you mean `max_body_size`?)"
    );
}

// --- tls ----------------------------------------------------------------------

#[test]
fn tls_one_certificate() {
    let c = load("app: {command: x}\ntls:\n  cert: /etc/shoal/a.pem\n  key: /etc/shoal/a.key\n")
        .unwrap();
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_2);
    assert_eq!(tls.alpn, vec![Alpn::H2, Alpn::Http11]);
    assert_eq!(tls.alpn_ids(), vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let files = tls.files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].cert, std::path::Path::new("/etc/shoal/a.pem"));
    assert_eq!(files[0].key, std::path::Path::new("/etc/shoal/a.key"));
    assert_eq!(
        (files[0].cert_at.as_str(), files[0].key_at.as_str()),
        ("tls.cert", "tls.key")
    );
    // No `tls` (or `tls: null`): plain HTTP.
    assert!(load("app: {command: x}\n").unwrap().tls.is_none());
    assert!(load("app: {command: x}\ntls: null\n")
        .unwrap()
        .tls
        .is_none());
}

#[test]
fn tls_several_certificates_with_options() {
    let yaml = "app: {command: x}\ntls:\n  certificates:\n    - {cert: a.pem, key: a.key}\n    - cert: b.pem\n      key: b.key\n  min_version: 1.3\n  alpn: [http/1.1]\n";
    let c = load(yaml).unwrap();
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    assert_eq!(tls.alpn, vec![Alpn::Http11]);
    let files = tls.files();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].cert, std::path::Path::new("b.pem"));
    assert_eq!(files[1].key_at, "tls.certificates[1].key");
    // A quoted version is the same version.
    let c = load("app: {command: x}\ntls: {cert: a, key: b, min_version: '1.3'}\n").unwrap();
    assert_eq!(c.tls.unwrap().min_version, TlsVersion::V1_3);
}

#[test]
fn tls_shape_errors() {
    assert_eq!(
        err("app: {command: x}\ntls:\n  cert: a.pem\n  key: a.key\n  certificates:\n    - {cert: b.pem, key: b.key}\n"),
        "shoal.yaml:5: tls.certificates: cannot be used together with `tls.cert`/`tls.key`: list every certificate under `certificates` (the first is the default), or use `cert` and `key` alone"
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  cert: a.pem\n"),
        "shoal.yaml:2: tls.key: is required with `tls.cert`: the PEM file of the certificate's private key"
    );
    assert_eq!(
        kind("app: {command: x}\ntls:\n  cert: a.pem\n"),
        ErrorKind::Missing
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  key: a.key\n"),
        "shoal.yaml:2: tls.cert: is required with `tls.key`: the PEM file of the certificate (chain)"
    );
    assert_eq!(
        err("app: {command: x}\ntls: {}\n"),
        "shoal.yaml:2: tls: has no certificate: set `cert` and `key` (PEM files) for one certificate, or `certificates: [{cert: ..., key: ...}, ...]` for several chosen by SNI"
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  certificates: []\n"),
        "shoal.yaml:3: tls.certificates: is empty; list at least one `{cert: FILE, key: FILE}`"
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  certificates:\n    - {cert: a.pem}\n"),
        "shoal.yaml:4: tls.certificates[0]: missing required key `key`"
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  cert: ''\n  key: a.key\n"),
        "shoal.yaml:3: tls.cert: must not be empty: the path of a PEM file"
    );
    assert_eq!(
        err("app: {command: x}\ntls:\n  certficates: []\n"),
        "shoal.yaml:3: unknown key `certficates` in `tls` (did you mean `certificates`?)"
    );
}

#[test]
fn tls_version_and_alpn_errors() {
    let with = |extra: &str| {
        err(&format!(
            "app: {{command: x}}\ntls:\n  cert: a\n  key: b\n  {extra}\n"
        ))
    };
    assert_eq!(
        with("min_version: 1.1"),
        "shoal.yaml:5: tls.min_version: unknown TLS version `1.1`: expected `1.2` or `1.3` (TLS 1.0 and 1.1 are obsolete (RFC 8996) and not supported)"
    );
    assert_eq!(
        with("min_version: TLSv1.2"),
        "shoal.yaml:5: tls.min_version: unknown TLS version `TLSv1.2`: expected `1.2` or `1.3` (write `1.2`)"
    );
    assert_eq!(
        with("alpn: [h2c]"),
        "shoal.yaml:5: tls.alpn[0]: unknown value `h2c`: expected `h2` or `http/1.1` (did you mean `h2`?)"
    );
    assert_eq!(
        with("alpn: []"),
        "shoal.yaml:5: tls.alpn: must not be empty: list `h2`, `http/1.1` or both (in order of preference)"
    );
    assert_eq!(
        with("alpn: [h2, h2]"),
        "shoal.yaml:5: tls.alpn[1]: `h2` is listed twice"
    );
}

#[test]
fn tls_round_trips_in_the_effective_config() {
    for yaml in [
        "app: {command: x}\ntls: {cert: /a.pem, key: /a.key}\n",
        "app: {command: x}\ntls:\n  certificates: [{cert: a, key: b}, {cert: c, key: d}]\n  min_version: 1.3\n  alpn: [http/1.1, h2]\n",
        "app: {command: x}\n",
    ] {
        let original = load(yaml).unwrap();
        let printed = to_yaml(&original);
        assert_eq!(load_str(&printed, "effective", &no_env).unwrap(), original, "{printed}");
    }
    let printed = to_yaml(&load("app: {command: x}\ntls: {cert: /a.pem, key: /a.key}\n").unwrap());
    let section =
        "tls:\n  cert: /a.pem\n  key: /a.key\n  min_version: 1.2\n  alpn:\n  - h2\n  - http/1.1\n";
    assert!(
        printed.contains(section),
        "missing {section:?} in:\n{printed}"
    );
    assert!(!printed.contains("certificates"), "{printed}");
}

/// Problems found outside this crate (the TLS files) get the line of their
/// key and sort in with the others.
#[test]
fn external_problems_get_lines() {
    let yaml = "app: {command: x}\ntls:\n  certificates:\n    - {cert: a.pem, key: a.key}\n    - cert: b.pem\n      key: b.key\nproxy:\n  retries: 99\n";
    let check = |c: &Config| {
        let files = c.tls.as_ref().unwrap().files();
        vec![(
            files[1].key_at.clone(),
            "cannot read `b.key`: gone".to_string(),
        )]
    };
    let e = load_str_checked(yaml, "shoal.yaml", &no_env, &check).unwrap_err();
    assert_eq!(
        e.to_string(),
        "shoal.yaml:6: tls.certificates[1].key: cannot read `b.key`: gone\n\
         shoal.yaml:8: proxy.retries: must be at most 10 (got 99)"
    );
    assert_eq!(e.kind(), ErrorKind::File);
    assert_eq!(e.path(), "tls.certificates[1].key");
    assert!(load_str_checked("app: {command: x}\n", "x", &no_env, &|_| Vec::new()).is_ok());
}

/// A `$` in a value survives printing and loading back: `$$` in the file
/// is one `$` in the config, and `shoal check` prints it as `$$` again.
#[test]
fn dollars_in_values_round_trip() {
    let yaml = "app:\n  command: \"echo $$$$ $${HOME} cost=$$5\"\n  env: { PRICE: \"$$1\" }\n";
    let config = load(yaml).unwrap();
    let app = config.app.as_ref().unwrap();
    assert_eq!(
        app.command,
        crate::CommandSpec::Shell("echo $$ ${HOME} cost=$5".into())
    );
    let printed = crate::to_yaml(&config);
    assert_eq!(load(&printed).unwrap(), config, "{printed}");
}

// --- cache ---------------------------------------------------------------

#[test]
fn cache_defaults_and_route_overrides() {
    let c = load("upstreams: [{url: http://127.0.0.1:9}]\ncache: {}\n").unwrap();
    let top = c.cache.as_ref().unwrap();
    assert_eq!(top.memory.max_size, 64 << 20);
    assert_eq!(top.memory.max_item_size, 5 << 20);
    assert_eq!(top.methods, ["GET", "HEAD"]);
    assert_eq!(top.header, "X-Cache");
    assert_eq!(top.coalesce.wait, Duration::from_secs(5));
    assert_eq!(top.default_ttl, None);
    let yaml = "upstreams: [{url: http://127.0.0.1:9}]\nroutes:\n\
        - {match: {path_prefix: /a}, to: upstreams, cache: {default_ttl: 1m, header: X-C}}\n\
        - {match: {path_prefix: /b}, to: upstreams, cache: true}\n\
        - {to: upstreams}\n";
    let c = load(yaml).unwrap();
    let r = |i: usize| cache_for_route(c.cache.as_ref(), c.routes[i].cache.as_ref());
    let a = r(0).unwrap();
    assert_eq!(a.default_ttl, Some(Duration::from_secs(60)));
    assert_eq!(a.header, "X-C");
    assert!(r(1).is_some());
    assert!(r(2).is_none());
}

#[test]
fn cache_mistakes_name_the_key_and_line() {
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\ncache:\n  memory: {max_size: 1MiB, max_item_size: 2MiB}\n");
    assert!(e.contains("shoal.yaml:3: cache.memory.max_item_size: must not be larger than `cache.memory.max_size`"), "{e}");
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\ncache:\n  methods: [GET, POST]\n");
    assert!(
        e.contains(
            "shoal.yaml:3: cache.methods[1]: the cache answers `GET` and `HEAD` only (got `POST`)"
        ),
        "{e}"
    );
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\ncache:\n  memry: {}\n");
    assert!(
        e.contains("shoal.yaml:3: unknown key `memry` in `cache` (did you mean `memory`?)"),
        "{e}"
    );
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\nroutes:\n  - respond: {body: x}\n    cache: true\n");
    assert!(
        e.contains("routes[0].cache: only applies to a route that sends requests to a pool"),
        "{e}"
    );
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\nroutes:\n  - to: upstreams\n    cache: {memory: {max_size: 1MiB}}\n");
    assert!(
        e.contains("unknown key `memory` in `routes[0].cache`"),
        "{e}"
    );
    let e = err("upstreams: [{url: http://127.0.0.1:9}]\ncache:\n  key: {headers: [Host]}\n");
    assert!(
        e.contains("shoal.yaml:3: cache.key.headers[0]: `Host` cannot be part of the key"),
        "{e}"
    );
}
