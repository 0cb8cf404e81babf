//! `shoal check -c FILE` against bad configs: exit code 78 and the documented
//! message (key path and `:LINE:`) on stderr; a good config exits 0 and
//! prints the effective config. The message forms are listed in
//! docs/CONFIG.md, "Error messages".

use std::path::PathBuf;
use std::process::{Command, Output};

const EXIT_CONFIG: i32 = 78;

struct Checked {
    output: Output,
    // Held so the file outlives the run.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Checked {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
}

fn check(yaml: &str) -> Checked {
    check_with_env(yaml, &[])
}

fn check_with_env(yaml: &str, env: &[(&str, &str)]) -> Checked {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shoal.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["check", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run shoal check");
    Checked {
        output,
        _dir: dir,
        path,
    }
}

/// Asserts exit 78 and that stderr holds `FILE:LINE: MESSAGE`.
fn assert_rejected(yaml: &str, line: usize, message: &str) {
    let run = check(yaml);
    let stderr = run.stderr();
    assert_eq!(run.code(), Some(EXIT_CONFIG), "stderr:\n{stderr}");
    let expected = format!("{}:{line}: {message}", run.path.display());
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in stderr:\n{stderr}"
    );
}

#[test]
fn unknown_key_with_suggestion() {
    assert_rejected(
        "app:\n  command: [./srv]\n  instanses: 3\n",
        3,
        "unknown key `instanses` in `app` (did you mean `instances`?)",
    );
}

#[test]
fn wrong_type() {
    assert_rejected(
        "app:\n  command: x\n  instances: three\n",
        3,
        "app.instances: expected a whole number (got string \"three\")",
    );
}

#[test]
fn duration_without_unit() {
    assert_rejected(
        "app:\n  command: x\n  health:\n    interval: 5\n",
        4,
        "app.health.interval: invalid duration `5`: missing unit (write `5s` for seconds or `5ms` for milliseconds)",
    );
}

#[test]
fn health_fall_zero() {
    assert_rejected(
        "app:\n  command: x\n  health:\n    path: /healthz\n    fall: 0\n",
        5,
        "app.health.fall: must be at least 1 (got 0)",
    );
}

#[test]
fn health_timeout_longer_than_interval() {
    assert_rejected(
        "app:\n  command: x\n  health:\n    interval: 1s\n    timeout: 2s\n",
        5,
        "app.health.timeout: must not be longer than `app.health.interval` (1s) (got 2s)",
    );
}

#[test]
fn https_upstream_without_port() {
    assert_rejected(
        "upstreams:\n  - url: http://10.0.0.1:80\n  - url: https://10.0.0.2\n",
        3,
        "upstreams[1].url: missing port: write `https://10.0.0.2:PORT`",
    );
}

#[test]
fn upstream_protocol_by_another_name() {
    assert_rejected(
        "upstreams:\n  - url: http://10.0.0.1:80\n    protocol: http2\n",
        3,
        "upstreams[0].protocol: unknown value `http2`: expected `http1` or `h2` (did you mean `h2`?)",
    );
}

#[test]
fn bad_listen_address() {
    assert_rejected(
        "app: {command: x}\nlisten: 8080\n",
        2,
        "listen: invalid address `8080`: a port alone is not enough; write `0.0.0.0:8080` (all interfaces) or `127.0.0.1:8080` (this machine only)",
    );
}

#[test]
fn listeners_collide() {
    assert_rejected(
        "app: {command: x}\nlisten: 127.0.0.1:9000\nadmin:\n  listen: 127.0.0.1:9000\n",
        4,
        "admin.listen: must differ from `listen` (both are 127.0.0.1:9000)",
    );
}

#[test]
fn instances_out_of_range() {
    assert_rejected(
        "app:\n  command: x\n  instances: 0\n",
        3,
        "app.instances: must be between 1 and 1024 (got 0)",
    );
}

#[test]
fn unknown_balance_algorithm() {
    assert_rejected(
        "app: {command: x}\nbalance:\n  algorithm: fastest\n",
        3,
        "balance.algorithm: unknown value `fastest`: expected `round_robin`, `weighted`, `least_conn`, `ip_hash`, `hash`, `random` or `p2c_ewma`",
    );
}

#[test]
fn unset_variable() {
    assert_rejected(
        "app:\n  command: x\n  env:\n    DB: ${SHOAL_TEST_SURELY_UNSET_VAR}\n",
        4,
        "environment variable `SHOAL_TEST_SURELY_UNSET_VAR` is not set",
    );
}

#[test]
fn yaml_syntax_error() {
    assert_rejected(
        "app:\n  command: [a, b\nlisten: 0.0.0.0:1\n",
        3,
        "invalid YAML: did not find expected ',' or ']'",
    );
}

#[test]
fn empty_file_has_nothing_to_run() {
    let run = check("");
    assert_eq!(run.code(), Some(EXIT_CONFIG));
    let expected = format!("{}: nothing to run:", run.path.display());
    assert!(
        run.stderr().contains(&expected),
        "stderr:\n{}",
        run.stderr()
    );
}

#[test]
fn every_semantic_problem_is_reported() {
    let run =
        check("app:\n  command: x\n  instances: 0\nproxy:\n  retries: 11\nlog:\n  level: infoo\n");
    assert_eq!(run.code(), Some(EXIT_CONFIG));
    let stderr = run.stderr();
    let file = run.path.display();
    for expected in [
        format!("{file}:3: app.instances: must be between 1 and 1024 (got 0)"),
        format!("{file}:5: proxy.retries: must be at most 10 (got 11)"),
        format!("{file}:7: log.level: `infoo` is not a log level (did you mean `info`?)"),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in stderr:\n{stderr}"
        );
    }
}

/// Issue 20, item 5: unknown keys and wrong types are all reported in one
/// run, each with its line and key path, beside the semantic problems.
#[test]
fn every_mapping_problem_is_reported_in_one_run() {
    let run = check(
        "app:\n  command: sh\n  instanses: 3\n  stop_timeout: 10\nbalance:\n  algoritm: p2c_ewma\nproxy:\n  retries: many\n  connect_timeout: 0s\n",
    );
    assert_eq!(run.code(), Some(EXIT_CONFIG));
    let stderr = run.stderr();
    let file = run.path.display();
    let expected = [
        format!("{file}:3: unknown key `instanses` in `app` (did you mean `instances`?)"),
        format!("{file}:4: app.stop_timeout: invalid duration `10`: missing unit"),
        format!("{file}:6: unknown key `algoritm` in `balance` (did you mean `algorithm`?)"),
        format!("{file}:8: proxy.retries: expected a whole number (got string \"many\")"),
        format!("{file}:9: proxy.connect_timeout: must be greater than 0 (got 0s)"),
    ];
    for e in &expected {
        assert!(
            stderr.contains(e.as_str()),
            "expected {e:?} in stderr:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), expected.len(), "{stderr}");
}

#[test]
fn valid_config_prints_the_effective_config() {
    let run = check_with_env(
        "listen: 127.0.0.1:${SHOAL_TEST_PORT}\napp:\n  command: [sh, ./server.sh, --port, '{port}']\n  instances: 2\n  health: {path: /healthz, interval: 90s}\n",
        &[("SHOAL_TEST_PORT", "8181")],
    );
    let stdout = run.stdout();
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr());
    for expected in [
        "listen: 127.0.0.1:8181",
        "  instances: 2",
        "    path: /healthz",
        "    interval: 1m30s",
        // Defaults are filled in.
        "    timeout: 2s",
        "  stop_timeout: 30s",
        "  algorithm: least_conn",
        "  grace: 30s",
        "  level: info",
    ] {
        assert!(
            stdout.contains(expected),
            "expected {expected:?} in stdout:\n{stdout}"
        );
    }
}

#[test]
fn effective_config_checks_clean_again() {
    let first = check("upstreams:\n  - url: http://127.0.0.1:7000\n    weight: 3\nbalance: {algorithm: round_robin}\n");
    assert_eq!(first.code(), Some(0), "stderr:\n{}", first.stderr());
    let second = check(&first.stdout());
    assert_eq!(second.code(), Some(0), "stderr:\n{}", second.stderr());
    assert_eq!(second.stdout(), first.stdout());
}

#[test]
fn embedded_demo_config_is_valid() {
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["check", "--demo"])
        .output()
        .expect("run shoal check --demo");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A config with upstream groups and routes of every kind: `shoal check`
/// accepts it and prints an effective config that reads back the same.
#[test]
fn routes_and_groups_round_trip() {
    let yaml = "\
app:
  command: [cat, '{port}']
upstreams:
  api:
    servers:
      - url: http://127.0.0.1:9001
    balance: {algorithm: round_robin}
    health: {path: /healthz}
  static:
    - url: http://127.0.0.1:9002
      weight: 2
routes:
  - name: api
    match: {host: '*.example.com', path_prefix: /api/, methods: [GET, POST], headers: {x-env: prod}}
    to: api
    strip_prefix: /api
    add_prefix: /v1
    request_headers: {set: {x-route: api}, remove: [cookie]}
    response_headers: {add: {x-served-by: shoal}}
    proxy: {retries: 0, response_header_timeout: 5s}
    limits: {max_body_size: 1MiB}
  - match: {path: /old}
    redirect: {to: 'https://{host}/new{query}', status: 301}
  - match: {path: /maintenance}
    respond: {status: 503, body: back soon, headers: {retry-after: '60'}}
  - to: app
";
    let first = check(yaml);
    assert_eq!(first.code(), Some(0), "stderr:\n{}", first.stderr());
    let printed = first.stdout();
    let second = check(&printed);
    assert_eq!(second.code(), Some(0), "stderr:\n{}", second.stderr());
    assert_eq!(second.stdout(), printed);
    assert!(printed.contains("strip_prefix: /api"), "{printed}");
}

#[test]
fn route_to_an_unknown_pool() {
    assert_rejected(
        "app: {command: x}\nupstreams:\n  api: [{url: 'http://a:1'}]\nroutes:\n  - to: apii\n",
        5,
        "routes[0].to: `apii` is not an app or upstream group (did you mean `api`?); the pools are `app`, `api`",
    );
}

#[test]
fn route_that_can_never_match() {
    assert_rejected(
        "app: {command: x}\nroutes:\n  - match: {path_prefix: /}\n    to: app\n  - match: {path_prefix: /api}\n    to: app\n",
        5,
        "routes[1]: can never match: `routes[0]` (line 3) comes first and takes every request this one would; put the narrower route first",
    );
}

#[test]
fn route_with_two_actions_or_none() {
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    respond: {status: 200}\n",
        3,
        "routes[0]: has `to` and `respond`: a route does one thing; split it into routes",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - match: {path: /x}\n",
        3,
        "routes[0]: needs an action",
    );
}

#[test]
fn group_named_like_the_app() {
    assert_rejected(
        "app: {command: x}\nupstreams:\n  app: [{url: 'http://a:1'}]\n",
        3,
        "upstreams.app: `app` names the pool of `app`'s instances; give the group another name",
    );
}

#[test]
fn groups_without_routes() {
    assert_rejected(
        "upstreams:\n  api: [{url: 'http://a:1'}]\n  web: [{url: 'http://b:1'}]\n",
        1,
        "upstreams: has several pools (api, web) but there are no `routes`",
    );
}

#[test]
fn bad_route_values() {
    assert_rejected(
        "app: {command: x}\nroutes:\n  - match: {path: api}\n    to: app\n",
        3,
        "routes[0].match.path: must start with `/` (got `api`)",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - redirect: {to: /x, status: 200}\n",
        3,
        "routes[0].redirect.status: must be 301, 302, 303, 307 or 308 (got 200)",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    response_headers:\n      set: {content-length: '1'}\n",
        5,
        "routes[0].response_headers.set.content-length: `content-length` frames the message",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - respond: {status: 200}\n    strip_prefix: /a\n",
        4,
        "routes[0].strip_prefix: only applies to a route with `to`",
    );
}

#[test]
fn several_apps() {
    // Each app's keys are named under `apps.NAME`.
    assert_rejected(
        "apps:\n  api:\n    command: [cat]\n    instances: 0\n  web: {command: [cat]}\nroutes: [{to: api}]\n",
        4,
        "apps.api.instances: must be between 1 and 1024 (got 0)",
    );
    assert_rejected(
        "apps:\n  api: {command: [nosuchprogram-x]}\nroutes: [{to: api}]\n",
        2,
        "apps.api.command[0]: cannot run `nosuchprogram-x`: not found in PATH",
    );
    assert_rejected(
        "app: {command: [cat]}\napps:\n  web: {command: [cat]}\n",
        2,
        "apps: and `app` together",
    );
    assert_rejected(
        "apps:\n  api: {command: [cat]}\n  web: {command: [cat]}\n",
        1,
        "apps: has several pools (api, web) but there are no `routes`",
    );
    assert_rejected(
        "apps:\n  api: {command: [cat]}\nupstreams:\n  api: [{url: 'http://a:1'}]\nroutes: [{to: api}]\n",
        2,
        "apps.api: `api` is also the name of an upstream group; pool names must differ",
    );
    // Two apps of one name: YAML would keep the last; shoal refuses.
    assert_rejected(
        "apps:\n  api:\n    command: [cat]\n  api:\n    command: [cat]\nroutes: [{to: api}]\n",
        4,
        "duplicate key `api` in `apps`",
    );
    // One app of `apps` needs no routes.
    let run = check("apps:\n  api: {command: [cat, '{port}']}\n");
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}

const UPSTREAM: &str = "upstreams: [{url: \"http://127.0.0.1:9\"}]\n";

#[test]
fn listen_and_listeners_together() {
    assert_rejected(
        &format!("listen: 127.0.0.1:8000\nlisteners:\n  - listen: 127.0.0.1:8001\n{UPSTREAM}"),
        1,
        "listen: cannot be used together with `listeners`: `listen` is the shorthand for one listener; move it into `listeners` as `- listen: ...`",
    );
}

#[test]
fn redirect_https_with_tls_on_one_listener() {
    let run = check(&format!(
        "listeners:\n  - listen: 127.0.0.1:8001\n    tls: {{cert: a.pem, key: a.key}}\n    redirect_https: true\n{UPSTREAM}"
    ));
    assert_eq!(run.code(), Some(EXIT_CONFIG));
    let expected = format!(
        "{}:4: listeners[0].redirect_https: cannot be used together with `listeners[0].tls`",
        run.path.display()
    );
    assert!(run.stderr().contains(&expected), "{}", run.stderr());
}

#[test]
fn redirect_https_without_a_tls_listener() {
    assert_rejected(
        &format!("listeners:\n  - listen: 127.0.0.1:8001\n  - listen: 127.0.0.1:8002\n    redirect_https: true\n{UPSTREAM}"),
        4,
        "listeners[1].redirect_https: needs a listener with `tls` to redirect to, and none has one",
    );
}

#[test]
fn unknown_proxy_protocol_version() {
    assert_rejected(
        &format!("trusted_proxies: [10.0.0.1]\nlisteners:\n  - listen: 127.0.0.1:8001\n    proxy_protocol: v3\n{UPSTREAM}"),
        4,
        "listeners[0].proxy_protocol: unknown value `v3`: expected `off`, `v1` or `v2`",
    );
}

#[test]
fn proxy_protocol_without_trusted_proxies() {
    assert_rejected(
        &format!("listeners:\n  - listen: 127.0.0.1:8001\n    proxy_protocol: v1\n{UPSTREAM}"),
        3,
        "listeners[0].proxy_protocol: needs `trusted_proxies`",
    );
}

#[test]
fn two_listeners_on_one_address() {
    assert_rejected(
        &format!("listeners:\n  - listen: 127.0.0.1:8001\n  - listen: 127.0.0.1:8001\n{UPSTREAM}"),
        3,
        "listeners[1].listen: must differ from `listeners[0].listen` (both are 127.0.0.1:8001)",
    );
    assert_rejected(
        &format!("listeners:\n  - listen: 0.0.0.0:8001\n  - listen: 127.0.0.1:8001\n{UPSTREAM}"),
        3,
        "listeners[1].listen: overlaps `listeners[0].listen`: 127.0.0.1:8001 and 0.0.0.0:8001 both take port 8001",
    );
}

#[test]
fn a_listener_tls_file_problem_names_its_listener() {
    assert_rejected(
        &format!("listeners:\n  - listen: 127.0.0.1:8001\n  - listen: 127.0.0.1:8002\n    tls: {{cert: /no/such.pem, key: /no/such.key}}\n{UPSTREAM}"),
        4,
        "listeners[1].tls.cert: cannot read `/no/such.pem`: no such file",
    );
}

/// TLS to backends (`upstreams[].tls`, `app.tls`): the files are read when
/// the config is loaded, so a bad one is a config error at its key and line.
mod backend_tls {
    use super::*;

    #[test]
    fn a_ca_file_that_does_not_exist() {
        assert_rejected(
            "upstreams:\n  - url: https://127.0.0.1:8443\n    tls:\n      ca: /nonexistent/ca.pem\n",
            4,
            "upstreams[0].tls.ca: cannot read `/nonexistent/ca.pem`: no such file",
        );
    }

    #[test]
    fn a_ca_file_without_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        assert_rejected(
            &format!(
                "app:\n  command: x\n  tls:\n    ca: {}\n    server_name: app.test\n",
                ca.display()
            ),
            4,
            &format!(
                "app.tls.ca: no certificate in `{}` (expected one or more `-----BEGIN CERTIFICATE-----` blocks)",
                ca.display()
            ),
        );
    }

    #[test]
    fn a_cert_without_a_key() {
        assert_rejected(
            "upstreams:\n  - url: https://127.0.0.1:8443\n    tls:\n      cert: client.pem\n",
            3,
            "upstreams[0].tls.key: is required with `upstreams[0].tls.cert`: the PEM file of the client certificate's private key",
        );
    }

    #[test]
    fn tls_on_an_http_upstream() {
        assert_rejected(
            "upstreams:\n  - url: http://127.0.0.1:8080\n  - url: http://127.0.0.1:8081\n    tls: { server_name: api.test }\n",
            4,
            "upstreams[1].tls: only applies to an `https://` upstream (the URL is `http://127.0.0.1:8081`); write `https://` in `url`, or remove `tls`",
        );
    }

    #[test]
    fn app_tls_of_the_wrong_type() {
        assert_rejected(
            "app:\n  command: x\n  tls: 3\n",
            3,
            "app.tls: expected `true`, `false` or a mapping",
        );
    }

    #[test]
    fn an_unknown_key_in_the_block() {
        assert_rejected(
            "upstreams:\n  - url: https://127.0.0.1:8443\n    tls:\n      verify_peer: false\n",
            4,
            "unknown key `verify_peer` in `upstreams[0].tls`",
        );
    }

    /// `verify: false` is allowed, never silently: `shoal check` warns
    /// (exit 0), naming the key and line.
    #[test]
    fn verify_false_is_a_warning() {
        let run =
            check("upstreams:\n  - url: https://127.0.0.1:8443\n    tls:\n      verify: false\n");
        let stderr = run.stderr();
        assert_eq!(run.code(), Some(0), "stderr:\n{stderr}");
        let expected = format!(
            "warning: {}:4: upstreams[0].tls.verify: is false: the backend's certificate is not checked",
            run.path.display()
        );
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
        assert!(run.stdout().contains("verify: false"), "{}", run.stdout());
    }
}

#[test]
fn a_listeners_own_routes() {
    assert_rejected(
        "app: {command: x}\nlisteners:\n  - listen: 127.0.0.1:8001\n  - listen: 127.0.0.1:8002\n    routes:\n      - to: apq\n",
        6,
        "listeners[1].routes[0].to: `apq` is not an app or upstream group (did you mean `app`?); the pools are `app`",
    );
    assert_rejected(
        "app: {command: x}\nlisteners:\n  - listen: 127.0.0.1:8001\n    routes:\n      - {to: app}\n      - {match: {path: /x}, to: app}\n",
        6,
        "listeners[0].routes[1]: can never match: `listeners[0].routes[0]` (line 5) comes first",
    );
}

#[test]
fn bad_compress_values() {
    assert_rejected(
        "app: {command: x}\ncompress:\n  codecs: [zstd, xz]\n",
        3,
        "compress.codecs[1]: unknown value `xz`: expected `zstd`, `br` or `gzip`",
    );
    assert_rejected(
        "app: {command: x}\ncompress:\n  enabled: true\n  level: {gzip: 10}\n",
        4,
        "compress.level.gzip: must be between 1 and 9 (got 10)",
    );
    assert_rejected(
        "app: {command: x}\ncompress:\n  level: {lz4: 1}\n",
        3,
        "unknown key `lz4` in `compress.level`",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    compress:\n      level: {br: 12}\n",
        5,
        "routes[0].compress.level.br: must be between 0 and 11 (got 12)",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    compress: fast\n",
        4,
        "routes[0].compress: expected `true`, `false` or a mapping of `compress` keys",
    );
    assert_rejected(
        "app: {command: x}\ncompress:\n  types: [text/html, json]\n",
        3,
        "compress.types[1]: `json` is not a media type",
    );
}

#[test]
fn bad_files_roots() {
    assert_rejected(
        "app: {command: x}\nroutes:\n  - files:\n      root: /nonexistent/shoal-root\n",
        4,
        "routes[0].files.root: `/nonexistent/shoal-root` does not exist",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    assert_rejected(
        &format!(
            "app: {{command: x}}\nroutes:\n  - match: {{path_prefix: /s}}\n    files: {{root: {}}}\n  - to: app\n",
            file.display()
        ),
        4,
        &format!("routes[0].files.root: `{}` is not a directory", file.display()),
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - files: {root: /tmp}\n    to: app\n",
        3,
        "routes[0]: has `to` and `files`: a route does one thing",
    );
}

#[test]
fn compress_and_files_in_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = check(&format!(
        "upstreams: [{{url: 'http://127.0.0.1:9'}}]\ncompress: {{enabled: true}}\nroutes:\n  - match: {{path_prefix: /static}}\n    files: {{root: {}, precompressed: true}}\n    strip_prefix: /static\n    compress: false\n  - to: upstreams\n    compress: {{codecs: [gzip], level: {{gzip: 6}}}}\n",
        dir.path().display()
    ));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let out = run.stdout();
    for needle in [
        "compress:\n  enabled: true\n  codecs:\n  - zstd\n  - br\n  - gzip\n",
        "min_size: 1KiB",
        "precompressed: true",
        "index: index.html",
        "compress: false",
        "level:\n      gzip: 6",
    ] {
        assert!(out.contains(needle), "{needle:?} in\n{out}");
    }
}

#[test]
fn respond_answers_keep_their_framing() {
    assert_rejected(
        "app: {command: x}\nroutes:\n  - respond:\n      status: 204\n      body: ok\n",
        5,
        "routes[0].respond.body: a 204 answer has no body",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - respond:\n      headers: {content-length: '9'}\n",
        4,
        "routes[0].respond.headers.content-length: `content-length` frames the message",
    );
    assert_rejected(
        "apps:\n  upstreams: {command: [cat]}\nupstreams: [{url: 'http://a:1'}]\nroutes: [{to: upstreams}]\n",
        2,
        "apps.upstreams: `upstreams` names the pool of the flat `upstreams` list",
    );
}

#[test]
fn admin_token_rules() {
    assert_rejected(
        "app: {command: x}\nadmin:\n  listen: 0.0.0.0:9090\n",
        3,
        "admin.listen: is 0.0.0.0:9090, which other hosts can reach, and there is no `admin.token`",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  token: short\n",
        3,
        "admin.token: is 5 characters; use at least 16",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  read: token\n",
        2,
        "admin.token: is required with `admin.read: token`",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  token_file: /no/such/token\n",
        3,
        "admin.token_file: cannot read `/no/such/token`",
    );
    // With a token, another host may reach it.
    let run = check("app: {command: [cat, '{port}']}\nadmin:\n  listen: 0.0.0.0:9090\n  token: 0123456789abcdef0123\n");
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}

/// A token over plain HTTP to a listener other hosts reach is allowed,
/// with a warning naming the key and line; with `admin.tls` there is none.
#[test]
fn a_token_in_clear_is_a_warning() {
    let run = check("app: {command: [cat, '{port}']}\nadmin:\n  listen: 0.0.0.0:9090\n  token: 0123456789abcdef0123\n");
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let expected = format!(
        "warning: {}:4: admin.token: is sent over plain HTTP to 0.0.0.0:9090, which other hosts can reach: the token travels in clear",
        run.path.display()
    );
    assert!(
        run.stderr().contains(&expected),
        "expected {expected:?} in:\n{}",
        run.stderr()
    );
    // Loopback: no warning.
    let run = check("app: {command: [cat, '{port}']}\nadmin:\n  token: 0123456789abcdef0123\n");
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        !run.stderr().contains("travels in clear"),
        "{}",
        run.stderr()
    );
}

/// `admin.tls` has the keys and checks of a listener's `tls`, reported at
/// `admin.tls.…` with their lines; its files are read at load.
#[test]
fn admin_tls_errors_name_the_key_and_line() {
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls:\n    cert: a.pem\n",
        3,
        "admin.tls.key: is required with `admin.tls.cert`",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls:\n    min_version: 1.3\n",
        3,
        "admin.tls: has no certificate",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls:\n    cert: a.pem\n    key: a.key\n    ciphers: [x]\n",
        6,
        "unknown key `ciphers` in `admin.tls`",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls:\n    cert: a.pem\n    key: a.key\n    min_version: 1.1\n",
        6,
        "admin.tls.min_version: unknown TLS version `1.1`",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls:\n    cert: a.pem\n    key: a.key\n    alpn: [h2, h2]\n",
        6,
        "admin.tls.alpn[1]: `h2` is listed twice",
    );
    assert_rejected(
        "app: {command: x}\nadmin:\n  tls: {cert: /no/such.pem, key: /no/such.key}\n",
        3,
        "admin.tls.cert: cannot read `/no/such.pem`: no such file",
    );
}

#[test]
fn a_groups_backend_is_named_as_written() {
    assert_rejected(
        "upstreams:\n  api:\n    servers:\n      - url: http://a:1\n        tls: {verify: false}\n    balance: {algorithm: round_robin}\nroutes: [{to: api}]\n",
        5,
        "upstreams.api.servers[0].tls: only applies to an `https://` upstream",
    );
}

#[test]
fn autoscale_errors_name_the_key_and_line() {
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    min: 2\n    targets: {cpu: 50}\n",
        3,
        "app.autoscale.max: is required: the most instances the autoscaler may run",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    max: 3\n    targets: {cpu: 50, rps: 10}\n",
        5,
        "unknown key `rps` in `app.autoscale.targets` (did you mean `rps_per_instance`?)",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    min: 5\n    max: 3\n    targets: {cpu: 50}\n",
        4,
        "app.autoscale.min: must not be greater than `app.autoscale.max` (3) (got 5)",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    max: 3\n    mode: threshold\n    targets: {cpu: 50}\n    scale_down_threshold: 0.9\n",
        7,
        "app.autoscale.scale_down_threshold: must leave a band with `app.autoscale.scale_up_threshold` (0.8): down below up (got 0.9)",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    max: 3\n",
        3,
        "app.autoscale: needs at least one target: cpu, memory, rps_per_instance, p95_latency or in_flight_per_instance",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  max: 4\n  autoscale:\n    max: 6\n    targets: {memory: 100MiB}\n",
        5,
        "app.autoscale.max: must be at most `app.max` (4) (got 6)",
    );
    assert_rejected(
        "apps:\n  api:\n    command: [cat]\n    autoscale: {max: 3, targets: {cpu: 0}}\n  web: {command: [cat]}\nroutes: [{to: api}]\n",
        4,
        "apps.api.autoscale.targets.cpu: must be greater than 0 (got 0)",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    max: 3\n    targets: {cpu: 50}\n    behavior:\n      scale_up:\n        period: 0s\n",
        8,
        "app.autoscale.behavior.scale_up.period: must be at least 1s (got 0s)",
    );
    assert_rejected(
        "app:\n  command: [cat]\n  autoscale:\n    max: 3\n    mode: fast\n    targets: {cpu: 50}\n",
        5,
        "app.autoscale.mode: unknown value `fast`: expected `proportional` or `threshold`",
    );
    // Every key, written out, checks clean.
    let run = check(
        "app:\n  command: [cat, '{port}']\n  autoscale:\n    min: 2\n    max: 8\n    mode: threshold\n    \
         targets: {cpu: 70, memory: 512MiB, rps_per_instance: 1000, p95_latency: 250ms, in_flight_per_instance: 8}\n    \
         tolerance: 0.1\n    scale_up_threshold: 0.8\n    scale_down_threshold: 0.3\n    step: 1\n    \
         interval: 30s\n    window: 1m\n    manual_pause: 10m\n    behavior:\n      \
         scale_up: {stabilization: 0s, max_instances: 4, max_percent: 100, period: 15s}\n      \
         scale_down: {stabilization: 5m, max_instances: 1, period: 15s}\n      cooldown: 5m\n      failure_backoff: 1m\n",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stdout().contains("scale_up_threshold: 0.8"),
        "{}",
        run.stdout()
    );
}

/// `sticky` (app, upstream group, route): the signing key is required and
/// long enough, the cookie's name, path, lifetime and `SameSite` are ones
/// a browser keeps, and only a route to a pool takes it.
#[test]
fn sticky_rules() {
    assert_rejected(
        "app:\n  command: x\n  sticky:\n    cookie: srv\n",
        3,
        "app.sticky.key: is required: the secret the cookie is signed with, at least 16 bytes",
    );
    assert_rejected(
        "app:\n  command: x\n  sticky:\n    key: short\n",
        4,
        "app.sticky.key: is 5 bytes; use at least 16",
    );
    assert_rejected(
        "apps:\n  web:\n    command: x\n    sticky:\n      key: 0123456789abcdef\n      cookie: \"a b\"\n",
        6,
        "apps.web.sticky.cookie: `a b` is not a cookie name",
    );
    assert_rejected(
        "upstreams:\n  api:\n    servers: [{url: 'http://a:1'}]\n    sticky:\n      key: 0123456789abcdef\n      path: app\n",
        6,
        "upstreams.api.sticky.path: `app` is not a cookie path",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - sticky:\n      key: 0123456789abcdef\n      ttl: 0s\n",
        5,
        "routes[0].sticky.ttl: must be greater than 0 (got 0s)",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - sticky:\n      key: 0123456789abcdef\n      same_site: none\n",
        5,
        "routes[0].sticky.same_site: `none` needs `secure: true`",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - respond: {status: 200}\n    sticky: {key: 0123456789abcdef}\n",
        4,
        "routes[0].sticky: only applies to a route that sends requests to a pool (`to`)",
    );
    assert_rejected(
        "app:\n  command: x\n  sticky:\n    key: 0123456789abcdef\n    secure: maybe\n",
        5,
        "app.sticky.secure:",
    );
    assert_rejected(
        "app:\n  command: x\n  sticky:\n    key: 0123456789abcdef\n    cookies: srv\n",
        5,
        "unknown key `cookies` in `app.sticky` (did you mean `cookie`?)",
    );
    // From the environment: an unset variable is an empty key.
    let yaml = "app:\n  command: [cat, '{port}']\n  sticky:\n    key: ${STICKY_TEST_KEY}\n";
    let run = check_with_env(yaml, &[("STICKY_TEST_KEY", "0123456789abcdef0123")]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(run.stdout().contains("sticky:"), "{}", run.stdout());
}

#[test]
fn rate_limit_rules() {
    let base = "app: {command: [cat, '{port}']}\n";
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: fast\n"),
        4,
        "rate_limits[0].rate: invalid rate `fast`: no `/` (write it like `200/min`, `10/s` or `50/10s`)",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 0/min\n"),
        4,
        "rate_limits[0].rate: invalid rate `0/min`: the count must be at least 1",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 5/fortnight\n"),
        4,
        "rate_limits[0].rate: invalid rate `5/fortnight`",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    burst: 5\n"),
        3,
        "rate_limits[0].rate: a rate like `200/min` is required",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - rate: 5/s\n"),
        3,
        "rate_limits[0].name: every rule needs a name",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - {{name: a, rate: 5/s}}\n  - name: a\n    rate: 1/s\n"),
        4,
        "rate_limits[1].name: `a` is also the name of `rate_limits[0]`; rule names must differ",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 5/s\n    key: ip\n"),
        5,
        "rate_limits[0].key: invalid key `ip` (did you mean `client_ip`?)",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 5/s\n    key: [route, route]\n"),
        5,
        "rate_limits[0].key[1]: `route` is named twice",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 5/s\n    burst: 0\n"),
        5,
        "rate_limits[0].burst: must be between 1 and 10000000 (got 0)",
    );
    assert_rejected(
        &format!("{base}routes:\n  - {{name: api, to: app}}\nrate_limits:\n  - name: a\n    rate: 5/s\n    routes: [apj]\n"),
        7,
        "rate_limits[0].routes[0]: no route is named `apj` (did you mean `api`?); named routes: api",
    );
    assert_rejected(
        &format!("{base}rate_limits:\n  - name: a\n    rate: 5/s\n    match: {{path: nope}}\n"),
        5,
        "rate_limits[0].match.path",
    );
}

#[test]
fn state_rules() {
    let base = "app: {command: [cat, '{port}']}\n";
    assert_rejected(
        &format!("{base}state:\n  url: redis://127.0.0.1:6379\n"),
        3,
        "state.url: is for `backend: redis`; set `state.backend: redis` to use it",
    );
    assert_rejected(
        &format!("{base}state:\n  backend: redis\n"),
        3,
        "state.backend: `redis` needs one of `url`, `sentinel` or `cluster`",
    );
    assert_rejected(
        &format!("{base}state:\n  backend: redis\n  url: http://x:1\n"),
        4,
        "state.url: scheme `http` is not `redis` or `rediss` (TLS)",
    );
    assert_rejected(
        &format!("{base}state:\n  backend: redis\n  url: redis://a:1\n  cluster: [redis://b:1]\n"),
        5,
        "state.cluster: only one of `url`, `sentinel` and `cluster` may be given (also: state.url)",
    );
    assert_rejected(
        &format!("{base}state:\n  backend: redis\n  sentinel:\n    master: m\n    nodes: [a]\n"),
        6,
        "state.sentinel.nodes[0]: `a` is not `host:port`",
    );
    assert_rejected(
        &format!("{base}state:\n  backend: redis\n  url: redis://a:1\n  on_error: panic\n"),
        5,
        "state.on_error: unknown value `panic`: expected `allow`, `deny` or `local`",
    );
    assert_rejected(
        &format!("{base}state:\n  command_timeout: 0s\n"),
        3,
        "state.command_timeout: must be greater than 0",
    );
    let run = check(&format!(
        "{base}state:\n  backend: redis\n  sentinel: {{master: mymaster, nodes: ['127.0.0.1:26379']}}\n"
    ));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}

#[test]
fn bad_cache_values() {
    assert_rejected(
        "app: {command: x}\ncache:\n  memory: {max_size: 1MiB, max_item_size: 2MiB}\n",
        3,
        "cache.memory.max_item_size: must not be larger than `cache.memory.max_size`",
    );
    assert_rejected(
        "app: {command: x}\ncache:\n  methods: [GET, POST]\n",
        3,
        "cache.methods[1]: the cache answers `GET` and `HEAD` only (got `POST`)",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    cache: sometimes\n",
        4,
        "routes[0].cache: expected `true`, `false` or a mapping of `cache` keys",
    );
    assert_rejected(
        "app: {command: x}\nroutes:\n  - to: app\n    cache:\n      default_ttl: 0s\n",
        5,
        "routes[0].cache.default_ttl: must be greater than 0",
    );
    assert_rejected(
        "app: {command: x}\ncache:\n  header: 'X Cache'\n",
        3,
        "cache.header: `X Cache` is not a header name",
    );
    assert_rejected(
        "app: {command: x}\ncache:\n  redis: {}\n",
        3,
        "cache.redis: needs `state.backend: redis`",
    );
    let redis = "state: {backend: redis, url: 'redis://127.0.0.1:6379'}\n";
    assert_rejected(
        &format!("app: {{command: x}}\n{redis}cache:\n  redis: {{max_item_size: 0}}\n"),
        4,
        "cache.redis.max_item_size: must be greater than 0",
    );
    assert_rejected(
        &format!("app: {{command: x}}\n{redis}cache:\n  redis: {{max_item_size: 1GiB}}\n"),
        4,
        "cache.redis.max_item_size: must be at most 512MiB",
    );
    assert_rejected(
        &format!("app: {{command: x}}\n{redis}cache:\n  redis: {{too_large: drop}}\n"),
        4,
        "cache.redis.too_large",
    );
}

#[test]
fn discovery_rules() {
    let route = "routes:\n  - to: api\n";
    assert_rejected(
        &format!("upstreams:\n  api:\n    dns: {{ name: api.test }}\n{route}"),
        3,
        "upstreams.api.dns.port: is required: A/AAAA records carry no port",
    );
    assert_rejected(
        &format!("upstreams:\n  api:\n    dns:\n      name: _http._tcp.api.test\n      srv: true\n      port: 80\n{route}"),
        6,
        "upstreams.api.dns.port: does not go with `srv: true`",
    );
    assert_rejected(
        &format!("upstreams:\n  api:\n    dns:\n      name: api.test\n      port: 80\n      interval: 1s\n      min_interval: 5s\n{route}"),
        6,
        "upstreams.api.dns.interval: is shorter than `min_interval`",
    );
    assert_rejected(
        &format!("upstreams:\n  api:\n    dns: {{ name: api.test, port: 80, server: localhost:53 }}\n{route}"),
        3,
        "upstreams.api.dns.server:",
    );
    assert_rejected(
        &format!("upstreams:\n  api:\n    file: {{ path: /x, every: 1s }}\n{route}"),
        3,
        "unknown key `every`",
    );
    assert_rejected(
        &format!("upstreams:\n  api:\n    balance: {{ algorithm: round_robin }}\n{route}"),
        2,
        "upstreams.api: is empty; list at least one `- url: http://HOST:PORT`, or find them with `dns:`, `file:` or `registry: true`",
    );
    let run = check(&format!(
        "upstreams:\n  api:\n    dns: {{ name: _http._tcp.api.test, srv: true }}\n  static:\n    file: {{ path: /etc/backends.txt }}\n{route}"
    ));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}
