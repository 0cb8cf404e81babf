//! The dashboard at `GET /` of the admin listener, in a real headless
//! Chromium: `tests/browser/dashboard.cjs` (playwright-core) loads it, sees
//! one row per instance, a chart move under load, a killed instance go and
//! come back, its scale button refused (401, shown) without the
//! token and obeyed with it, and saves a screenshot. `scripts/test` installs Debian's
//! chromium and playwright-core (into target/playwright) and sets
//! `SHOAL_BROWSER_TEST=1`, which makes a missing browser a failure;
//! without it the test says what is missing and passes.
//! `SHOAL_DASHBOARD_SCREENSHOT=docs/dashboard.png` writes the picture the
//! docs show.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{demo_config, get, Shoal};

const TOKEN: &str = "dashboard-token-0123456789";

fn browser() -> Result<(PathBuf, PathBuf), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let playwright = std::env::var_os("SHOAL_PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/playwright/node_modules/playwright-core"));
    if !playwright.join("package.json").exists() {
        return Err(format!(
            "no playwright-core at {} (scripts/test installs it)",
            playwright.display()
        ));
    }
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no chromium (Debian's `chromium` package; scripts/test installs it)")?;
    Ok((playwright, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let (playwright, chromium) = match browser() {
        Ok(found) => found,
        Err(missing) if std::env::var_os("SHOAL_BROWSER_TEST").is_none() => {
            eprintln!("SKIPPED the_dashboard_in_a_real_browser: {missing}");
            return;
        }
        Err(missing) => panic!("{missing}"),
    };
    let shoal = Shoal::start(&demo_config(2, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}"),
    ));
    shoal.wait_healthy(2).await;
    // The page and its files come from the binary.
    let page = get(shoal.admin, "/").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/dashboard.js"));
    assert_eq!(get(shoal.admin, "/dashboard.js").await.unwrap().status, 200);

    let screenshot = match std::env::var_os("SHOAL_DASHBOARD_SCREENSHOT") {
        Some(p) => Path::new(env!("CARGO_MANIFEST_DIR")).join(p),
        None => shoal.dir.path().join("dashboard.png"),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium)
        .env("ADMIN", format!("http://{}", shoal.admin))
        .env("PROXY", format!("http://{}", shoal.proxy))
        .env("INSTANCES", "2")
        .env("TOKEN", TOKEN)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the browser test took over 150 s")
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{text}");
    eprintln!("{text}");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
