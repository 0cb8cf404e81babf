//! `shoal deploy`: the files it writes pass the independent validators of
//! each target — `kubernetes-validate --strict` (PyPI, offline schemas) for
//! the Kubernetes versions docs/DEPLOY.md names, `check-jsonschema` with
//! the Compose specification's schema (PyPI, vendored), `systemd-analyze
//! verify` — and say what the config says: probes on the admin port, a
//! stop long enough for shutdown.delay + grace + the instances'
//! stop_timeout, a container config shoal itself accepts. scripts/test
//! installs the validators and sets `SHOAL_MANIFEST_TEST=1`, which makes a
//! missing one a failure; without it those checks are skipped, said so.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

use crate::support::SHOAL;

const KUBERNETES_VERSIONS: [&str; 3] = ["1.30.0", "1.33.0", "1.37.0"];

const CONFIG: &str = "\
listen: 127.0.0.1:8088
admin:
  listen: 127.0.0.1:9099
apps:
  web:
    command: [\"/srv/web\", \"--port\", \"{port}\"]
    instances: 3
    health: { path: /healthz }
    stop_timeout: 20s
shutdown:
  delay: 3s
  grace: 25s
state:
  backend: redis
  sentinel: { master: mymaster, nodes: [\"sentinel-1:26379\"] }
";

fn deploy(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SHOAL)
        .arg("deploy")
        .args(args)
        .arg("-c")
        .arg(dir.join("shoal.yaml"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The validator `name`, or None when it is missing and may be.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SHOAL_MANIFEST_TEST").is_none(),
            "no {name} (scripts/test installs it from PyPI)"
        );
        eprintln!("SKIPPED: no {name}");
    }
    found
}

fn run(tool: &Path, args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// `shoal check` accepts a container config written out, with the token
/// the files take from a Secret or the environment.
fn shoal_accepts(config: &str, dir: &Path) {
    let path = dir.join("container.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(SHOAL)
        .args(["check", "-c"])
        .arg(&path)
        .env("SHOAL_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // The app's program is the image's, not this machine's.
    assert!(
        out.status.success() || stderr.contains("/srv/web"),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("admin.listen"), "{stderr}");
}

#[test]
fn kubernetes_manifests_validate_and_match_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shoal.yaml"), CONFIG).unwrap();
    let validator = tool("kubernetes-validate");
    for pattern in ["proxy", "entrypoint"] {
        let out = dir.path().join(pattern);
        let (code, stdout, stderr) = deploy(
            dir.path(),
            &[
                "kubernetes",
                "--pattern",
                pattern,
                "-o",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{stdout}{stderr}");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut expected = vec![
            "configmap.yaml",
            "deployment.yaml",
            "hpa.yaml",
            "pdb.yaml",
            "service.yaml",
        ];
        if pattern == "proxy" {
            expected.insert(0, "app.yaml");
        }
        assert_eq!(names, expected, "{stdout}");
        if let Some(v) = &validator {
            for version in KUBERNETES_VERSIONS {
                for f in &files {
                    let (ok, said) = run(v, &["--strict", "--quiet", "-k", version], f);
                    assert!(
                        ok && said.trim().is_empty(),
                        "{} on {version}: {said}",
                        f.display()
                    );
                }
            }
        }

        // The Deployment: probes on the admin port, a long enough stop.
        let d = &yaml_docs(&out.join("deployment.yaml"))[0];
        let spec = &d["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        let ports = c["ports"].as_sequence().unwrap();
        let port_of = |name: &str| {
            ports
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["containerPort"].as_u64().unwrap())
        };
        assert_eq!(port_of("admin"), Some(9099));
        assert_eq!(port_of("http"), Some(8088));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace >= pre_stop + 3 + 25 + 20,
            "preStop {pre_stop}s + delay 3s + grace 25s + stop_timeout 20s > {grace}s"
        );
        assert_eq!(
            spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"],
            "token"
        );

        // The ConfigMap's config: shoal accepts it; it listens everywhere.
        let cm = &yaml_docs(&out.join("configmap.yaml"))[0];
        let config = cm["data"]["shoal.yaml"].as_str().unwrap();
        let parsed: Value = serde_yaml_ng::from_str(config).unwrap();
        assert_eq!(parsed["listen"], "0.0.0.0:8088");
        assert_eq!(parsed["admin"]["listen"], "0.0.0.0:9099");
        assert_eq!(parsed["admin"]["token"], "${SHOAL_ADMIN_TOKEN}");
        match pattern {
            "proxy" => {
                assert!(parsed.get("apps").is_none());
                assert_eq!(parsed["upstreams"][0]["url"], "http://web:8080");
                let app = yaml_docs(&out.join("app.yaml"));
                assert_eq!(app[0]["spec"]["replicas"], 3);
                assert_eq!(
                    app[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                        ["httpGet"]["path"],
                    "/healthz"
                );
                assert_eq!(app[1]["kind"], "Service");
            }
            _ => assert_eq!(parsed["apps"]["web"]["instances"], 3),
        }
        shoal_accepts(config, dir.path());
    }
}

#[test]
fn compose_file_validates_and_runs_every_part() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shoal.yaml"), CONFIG).unwrap();
    let out = dir.path().join("compose");
    let (code, stdout, stderr) = deploy(dir.path(), &["compose", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    if let Some(v) = tool("check-jsonschema") {
        let (ok, said) = run(
            &v,
            &["--builtin-schema", "vendor.compose-spec"],
            &out.join("compose.yaml"),
        );
        assert!(ok, "{said}");
    }
    let c = &yaml_docs(&out.join("compose.yaml"))[0];
    let services = c["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for want in [
        "shoal",
        "app-1",
        "app-2",
        "app-3",
        "redis",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let stop = c["services"]["shoal"]["stop_grace_period"]
        .as_str()
        .unwrap();
    let stop: u64 = stop.trim_end_matches('s').parse().unwrap();
    assert!(stop >= 3 + 25 + 20, "{stop}");
    let config = std::fs::read_to_string(out.join("shoal.yaml")).unwrap();
    let parsed: Value = serde_yaml_ng::from_str(&config).unwrap();
    let urls: Vec<&str> = parsed["upstreams"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|u| u["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "http://app-1:8080",
            "http://app-2:8080",
            "http://app-3:8080"
        ]
    );
    shoal_accepts(&config, dir.path());
}

#[test]
fn systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shoal.yaml"), CONFIG).unwrap();
    let out = dir.path().join("systemd");
    let (code, stdout, stderr) = deploy(
        dir.path(),
        &["systemd", "-o", out.to_str().unwrap(), "--exe", SHOAL],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let unit = std::fs::read_to_string(out.join("shoal.service")).unwrap();
    for line in [
        "Type=notify",
        "KillMode=mixed",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop >= 3 + 25 + 20, "{stop}");
    if let Some(v) = tool("systemd-analyze") {
        let (ok, said) = run(&v, &["verify"], &out.join("shoal.service"));
        // Parse problems are only warnings there: none may be printed.
        assert!(ok && said.trim().is_empty(), "{said}");
    }
}

#[test]
fn what_cannot_be_written_is_said() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shoal.yaml"),
        "upstreams: [{ url: \"http://127.0.0.1:1\" }]\n",
    )
    .unwrap();
    let (code, _, stderr) = deploy(dir.path(), &["kubernetes", "--pattern", "entrypoint"]);
    assert_eq!(code, 78);
    assert!(stderr.contains("has no `app`"), "{stderr}");
}
