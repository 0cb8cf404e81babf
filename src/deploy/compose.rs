//! A Compose file (the Compose specification): shoal in front of the app's
//! instances, one service each (`app-1` … `app-N`, so each has a name
//! shoal's `upstreams` can list), and Redis — with three Sentinels when the
//! config's `state.sentinel` names them — when the config's state is in
//! Redis. shoal's config is written beside it and mounted read-only.

use super::config::{for_container, Apps};
use super::{header, secs, Facts, File, Options, Source};

pub fn files(src: &Source<'_>, opts: &Options) -> Result<Vec<File>, String> {
    let f = Facts::of(src.config);
    if src.config.apps.len() > 1 {
        return Err(
            "Compose: one app per file; with several `apps`, write `upstreams` yourself".into(),
        );
    }
    let instances = f.app.as_ref().map_or(0, |(_, n, _)| *n);
    let urls: Vec<String> = (1..=instances)
        .map(|i| format!("http://app-{i}:{}", opts.app_port))
        .collect();
    let apps = if instances == 0 {
        Apps::Keep
    } else {
        Apps::Upstreams(urls)
    };
    let config = for_container(src.text, src.config, apps)?;
    let head = header(src, "compose");
    let stop = secs(f.stop) + 5;
    let mut out = format!(
        "{head}# Start: SHOAL_ADMIN_TOKEN=$(openssl rand -hex 32) docker compose up -d
# `docker compose stop` gives shoal {stop}s: shutdown.delay + shutdown.grace +
# the instances' stop_timeout, then a margin.
name: shoal
services:
  shoal:
    image: {image}
    command: [\"up\", \"-c\", \"/etc/shoal/shoal.yaml\"]
    ports:
      - \"{port}:{port}\"
      # The admin API: status, metrics, scale, reload (token required).
      - \"127.0.0.1:{admin}:{admin}\"
    environment:
      SHOAL_ADMIN_TOKEN: ${{SHOAL_ADMIN_TOKEN:?set SHOAL_ADMIN_TOKEN}}
    volumes:
      - ./shoal.yaml:/etc/shoal/shoal.yaml:ro
    read_only: true
    user: \"65532:65532\"
    stop_signal: SIGTERM
    stop_grace_period: {stop}s
    restart: unless-stopped
    # `shoal status` exits non-zero when no backend is healthy.
    healthcheck:
      test: [\"CMD\", \"/usr/local/bin/shoal\", \"status\", \"-c\", \"/etc/shoal/shoal.yaml\"]
      interval: 10s
      timeout: 3s
      retries: 3
      start_period: 10s
",
        image = opts.image,
        port = f.port,
        admin = f.admin_port,
    );
    let mut depends: Vec<String> = (1..=instances).map(|i| format!("app-{i}")).collect();
    if f.redis {
        depends.push(if f.sentinel.is_some() {
            "sentinel-1".into()
        } else {
            "redis".into()
        });
    }
    if !depends.is_empty() {
        out.push_str("    depends_on:\n");
        for d in &depends {
            out.push_str(&format!("      - {d}\n"));
        }
    }
    for i in 1..=instances {
        out.push_str(&format!(
            "  app-{i}:
    image: {image}
    environment:
      PORT: \"{port}\"
      INSTANCE_ID: app-{i}
    stop_grace_period: {stop}s
    restart: unless-stopped
",
            image = opts.app_image,
            port = opts.app_port,
        ));
    }
    if f.redis {
        out.push_str(
            "  # Shared state: rate limits, sticky keys and the cache, for every shoal.
  redis:
    image: redis:7
    command: [\"redis-server\", \"--save\", \"\", \"--appendonly\", \"no\"]
    healthcheck:
      test: [\"CMD\", \"redis-cli\", \"ping\"]
      interval: 5s
      timeout: 2s
      retries: 3
",
        );
        if let Some(s) = &f.sentinel {
            for i in 1..=3 {
                out.push_str(&format!(
                    "  sentinel-{i}:
    image: redis:7
    # A quorum of 2 of 3 sentinels fails `{master}` over.
    command:
      - sh
      - -c
      - >-
        printf 'port 26379\\nsentinel resolve-hostnames yes\\nsentinel monitor {master} redis 6379 2\\nsentinel down-after-milliseconds {master} 5000\\nsentinel failover-timeout {master} 10000\\n'
        > /tmp/sentinel.conf && exec redis-sentinel /tmp/sentinel.conf
    depends_on:
      - redis
",
                    master = s.master,
                ));
            }
        }
    }
    Ok(vec![
        File {
            name: "compose.yaml".into(),
            text: out,
        },
        File {
            name: "shoal.yaml".into(),
            text: format!("{}{config}", header(src, "compose")),
        },
    ])
}
