//! The monitoring kit in deploy/: every metric name the Grafana dashboard
//! and the Prometheus rules use is one a running shoal's `/metrics`
//! exposes, and the rules pass `promtool check rules` and their own unit
//! tests (`promtool test rules`). `scripts/test` installs promtool
//! (Debian's prometheus package) and sets `SHOAL_PROMTOOL_TEST=1`, which
//! makes a missing promtool a failure; without it that part is skipped.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::{demo_config, get, Shoal};

fn kit(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `shoal_…` names in a text (recording rules' `shoal:…` are not metrics).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("shoal_") {
        let start = i + at;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if boundary {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_uses_only_metrics_shoal_exposes() {
    // A route and a rate-limit rule, so that their metrics have samples.
    let shoal = Shoal::start(&demo_config(
        1,
        "routes:\n  - { name: all, to: app }\nrate_limits:\n  - { name: per_ip, rate: 1000/s }\n",
    ));
    shoal.wait_healthy(1).await;
    assert_eq!(get(shoal.proxy, "/").await.unwrap().status, 200);
    let text = get(shoal.admin, "/metrics").await.unwrap().body;
    let exposed: BTreeSet<String> = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect();

    let dashboard = kit("grafana/shoal-dashboard.json");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(json["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let rules = kit("prometheus/shoal-alerts.yml");
    for (file, text) in [
        ("grafana/shoal-dashboard.json", &dashboard),
        ("prometheus/shoal-alerts.yml", &rules),
    ] {
        let used = metric_names(text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exposed).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics /metrics does not expose: {unknown:?}\nexposed: {exposed:?}"
        );
    }
    // What the brief's alerts are about is there.
    for needed in [
        "shoal_backend_response_seconds_bucket",
        "shoal_rate_limit_decisions_total",
        "shoal_instances",
        "shoal_backend_up",
        "shoal_backend_responses_total",
    ] {
        assert!(
            metric_names(&rules).contains(needed),
            "{needed} in the rules"
        );
    }

    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(promtool) = promtool else {
        assert!(
            std::env::var_os("SHOAL_PROMTOOL_TEST").is_none(),
            "no promtool (Debian's prometheus package)"
        );
        eprintln!("SKIPPED promtool checks: no promtool (Debian's prometheus package)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for args in [
        ["check", "rules", "shoal-alerts.yml"],
        ["test", "rules", "shoal-alerts.test.yml"],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn metric_names_are_read_whole() {
    let names = metric_names(
        r#"rate(shoal_a_total{x="y"}[5m]) / shoal:ratio:rate5m + foo_shoal_b + shoal_c"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["shoal_a_total", "shoal_c"]
    );
}
