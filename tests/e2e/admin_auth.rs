//! The admin API's token (`admin.token`): scale and reload need it as a
//! bearer token, with `admin.read: token` reads do too, probes never; the
//! CLI sends the config's token (or `SHOAL_ADMIN_TOKEN`).

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{demo_config, request, Shoal, SHOAL};

const TOKEN: &str = "s3cret-token-0123456789";

async fn call(shoal: &Shoal, method: &str, path: &str, token: Option<&str>) -> u16 {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", shoal.admin.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if method == "POST" {
        r#"{"instances": 1}"#
    } else {
        ""
    };
    request(shoal.admin, req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_reload_need_the_token() {
    let shoal = Shoal::start(&demo_config(1, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}"),
    ));
    shoal.wait_healthy(1).await;
    // Reads and probes stay open by default.
    assert_eq!(call(&shoal, "GET", "/api/v1/status", None).await, 200);
    assert_eq!(call(&shoal, "GET", "/health", None).await, 200);
    // Operations need the token.
    assert_eq!(call(&shoal, "POST", "/api/v1/scale", None).await, 401);
    assert_eq!(
        call(
            &shoal,
            "POST",
            "/api/v1/scale",
            Some("s3cret-token-012345678")
        )
        .await,
        401
    );
    assert_eq!(call(&shoal, "POST", "/api/v1/reload", None).await, 401);
    assert_eq!(
        call(&shoal, "POST", "/api/v1/scale", Some(TOKEN)).await,
        200
    );

    // The CLI sends the config's token (the address given apart: the
    // config's is port 0); with a wrong one, refused.
    let admin = format!("http://{}", shoal.admin);
    let out = std::process::Command::new(SHOAL)
        .args(["scale", "2", "--admin", &admin, "-c"])
        .arg(shoal.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(SHOAL)
        .args(["scale", "1", "--admin", &format!("http://{}", shoal.admin)])
        .env("SHOAL_ADMIN_TOKEN", "not-the-token-at-all")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(SHOAL)
        .args(["scale", "1", "--admin", &format!("http://{}", shoal.admin)])
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_the_token_with_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let shoal = Shoal::start(&demo_config(1, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\n  read: token",
            file.display()
        ),
    ));
    // `wait_healthy` reads the status without a token: poll `/ready`.
    crate::support::eventually(std::time::Duration::from_secs(30), "ready", || async {
        (call(&shoal, "GET", "/ready", None).await == 200).then_some(())
    })
    .await;
    assert_eq!(call(&shoal, "GET", "/api/v1/status", None).await, 401);
    assert_eq!(call(&shoal, "GET", "/metrics", None).await, 401);
    assert_eq!(call(&shoal, "GET", "/metrics", Some(TOKEN)).await, 200);
    // Probes are for load balancers and orchestrators: always open.
    assert_eq!(call(&shoal, "GET", "/health", None).await, 200);
    assert_eq!(call(&shoal, "GET", "/ready", None).await, 200);
}
