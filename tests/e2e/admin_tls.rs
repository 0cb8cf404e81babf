//! HTTPS on the admin listener (`admin.tls`): probes and the API over TLS
//! (real curl verifying against the test CA), a plain-HTTP client refused,
//! the CLI verbs over TLS with the token, each way of trusting the
//! certificate (the config's own, SHOAL_ADMIN_CA, --insecure) and none,
//! and a certificate rotated by SIGHUP.

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::tls::{curl, presented, TestCa, TlsClient};
use crate::support::{demo_config, eventually, get, shoal_cli, Shoal, SHOAL};

const TOKEN: &str = "s3cret-token-0123456789";

/// GET over HTTPS (any certificate: the tests check which one apart).
async fn get_tls(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut c = TlsClient::connect(addr, "admin.test").await?;
    let r = c.get(&addr.to_string(), path).await?;
    Ok((
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    ))
}

/// Instances up in a status document.
fn up(status: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(status).unwrap_or_default();
    v["instances"]
        .as_array()
        .map(|l| l.iter().filter(|i| i["health"] == "up").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_https_and_the_cli_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_path = ca.write(dir.path());
    let leaf = ca.leaf(&["admin.test", "127.0.0.1"], "admin leaf");
    let (cert, key) = leaf.write(dir.path(), "admin");
    let shoal = Shoal::start(&demo_config(1, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n  tls: {{ cert: \"{}\", key: \"{}\" }}",
            cert.display(),
            key.display()
        ),
    ));
    assert!(shoal.log_contains(&format!("admin listening on {} (HTTPS)", shoal.admin)));
    let admin = shoal.admin;

    // Probes and the API over TLS.
    assert_eq!(get_tls(admin, "/health").await.unwrap().0, 200);
    eventually(Duration::from_secs(30), "an instance up", || async {
        let (code, body) = get_tls(admin, "/api/v1/status").await.ok()?;
        (code == 200 && up(&body) == 1).then_some(())
    })
    .await;
    assert_eq!(presented(admin, None).await.unwrap(), leaf.der);
    // A real client verifying the chain and the name: curl.
    let c = curl(&ca_path, "admin.test", admin, "/ready", &[]).await;
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(c.stdout.contains(r#""ready": true"#), "{}", c.stdout);

    // Plain HTTP to the TLS listener gets no answer.
    assert!(get(admin, "/health").await.is_err());

    let url = format!("https://{admin}");
    let config = shoal.config_path();
    let config = config.to_str().unwrap();
    // The config's own certificate is trusted; its token is sent.
    let (code, out, err) = shoal_cli(&["status", "--admin", &url, "-c", config], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("app-1"), "{out}");
    let (code, out, err) = shoal_cli(&["scale", "2", "--admin", &url, "-c", config], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(Duration::from_secs(30), "two instances", || async {
        let (_, body) = get_tls(admin, "/api/v1/status").await.ok()?;
        (up(&body) == 2).then_some(())
    })
    .await;
    // No token: refused.
    let (code, _, err) = shoal_cli(&["scale", "1", "--admin", &url, "--insecure"], &[]).await;
    assert_ne!(code, 0);
    assert!(err.contains("unauthorized"), "{err}");
    // Trusting a CA by SHOAL_ADMIN_CA, the token from the environment.
    let ca_env = ca_path.to_str().unwrap();
    let (code, out, err) = shoal_cli(
        &["scale", "1", "--admin", &url],
        &[("SHOAL_ADMIN_CA", ca_env), ("SHOAL_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    // Trusting nothing but the system's CAs: refused, with the ways out.
    let (code, _, err) = shoal_cli(&["status", "--admin", &url], &[]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "HTTPS to the admin API at {admin} failed: certificate signed by an unknown CA"
        )) && err.contains("SHOAL_ADMIN_CA=FILE"),
        "{err}"
    );
    // Another CA's certificate is not the one: refused.
    let other = TestCa::named("another CA");
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = other.write(other_dir.path());
    let (code, _, err) = shoal_cli(
        &["status", "--admin", &url],
        &[("SHOAL_ADMIN_CA", other_ca.to_str().unwrap())],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("unknown CA"), "{err}");
    let (code, out, err) = shoal_cli(&["status", "--admin", &url, "--insecure"], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    // http:// to the TLS listener: the CLI says so.
    let (code, _, err) = shoal_cli(&["status", "--admin", &format!("http://{admin}")], &[]).await;
    assert_ne!(code, 0, "{err}");

    // A rotated certificate is served after SIGHUP.
    let next = ca.leaf(&["admin.test", "127.0.0.1"], "admin leaf 2");
    next.write(dir.path(), "admin");
    shoal.signal(Signal::SIGHUP);
    eventually(Duration::from_secs(10), "the new certificate", || async {
        (presented(admin, None).await.ok()? == next.der).then_some(())
    })
    .await;
    assert!(shoal.log_contains("admin listener: TLS certificates re-read"));
}

/// A shoal without `admin.tls` is not reached over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_admin_listener_says_so() {
    let shoal = Shoal::start(&demo_config(1, ""));
    let (code, _, err) = shoal_cli(
        &[
            "status",
            "--admin",
            &format!("https://{}", shoal.admin),
            "--insecure",
        ],
        &[],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("it does not speak TLS"), "{err}");
}

/// `shoal deploy kubernetes` with `admin.tls`: the kubelet's probes on the
/// admin port go over HTTPS.
#[test]
fn kubernetes_probes_use_https_with_admin_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca
        .leaf(&["admin.test"], "admin leaf")
        .write(dir.path(), "admin");
    let config = dir.path().join("shoal.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:8088\nadmin:\n  listen: 127.0.0.1:9099\n  tls: {{ cert: \"{}\", key: \"{}\" }}\nupstreams: [{{ url: \"http://127.0.0.1:9\" }}]\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("k8s");
    let out = std::process::Command::new(SHOAL)
        .args(["deploy", "kubernetes", "-o"])
        .arg(&out_dir)
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: String = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(all.matches("scheme: HTTPS").count(), 3, "{all}");
}
