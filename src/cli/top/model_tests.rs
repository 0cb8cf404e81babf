use shoal_config::{Algorithm, UpstreamProtocol};

use super::*;
use crate::events::Kind;

fn instance(app: &str, slot: u32, health: &str) -> status::Instance {
    status::Instance {
        id: format!("{app}-{slot}"),
        app: app.into(),
        slot,
        generation: 1,
        pid: Some(1000 + slot),
        port: 40000 + slot as u16,
        state: ProcState::Running,
        health: health.into(),
        last_check: None,
        ejections: 0,
        restarts: slot - 1,
        in_flight: 0,
        requests: 100,
        connections_opened: 1,
        protocol: UpstreamProtocol::Http1,
        rss_bytes: 24 * 1024 * 1024 + 512 * 1024,
        cpu_percent: Some(3.25),
        requests_per_sec: Some(40.0),
        errors_per_sec: Some(2.0),
        p95_ms: Some(4.2),
        uptime_secs: Some(10.0),
        last_exit: None,
        failure: None,
    }
}

fn app(name: &str, n: u32) -> status::App {
    status::App {
        name: name.into(),
        instances: n as usize,
        target: n,
        generation: 1,
        running_generations: vec![1],
        last_rollout: None,
        operation: None,
        min: None,
        max: None,
        autoscale: None,
    }
}

fn status(apps: &[(&str, u32)]) -> Status {
    let list: Vec<status::App> = apps.iter().map(|(n, c)| app(n, *c)).collect();
    Status {
        version: "0.1.0".into(),
        uptime_secs: 5.0,
        shutting_down: false,
        listen: Some("127.0.0.1:8080".into()),
        listeners: Vec::new(),
        balance: Algorithm::RoundRobin,
        retries: 2,
        app: list.first().cloned(),
        instances: apps
            .iter()
            .flat_map(|(n, c)| (1..=*c).map(move |s| instance(n, s, "up")))
            .collect(),
        apps: list,
        upstreams: Vec::new(),
        replica: Default::default(),
        peers: Vec::new(),
    }
}

fn event(id: u64) -> Event {
    Event {
        id,
        at: 1_700_000_000.0 + id as f64,
        kind: Kind::InstanceStarted,
        app: Some("app".into()),
        instance: Some("app-1".into()),
        message: format!("event {id}"),
    }
}

fn snapshot(status: Status, events: Vec<Event>) -> Snapshot {
    Snapshot {
        status,
        fleet: None,
        events,
        events_restarted: false,
    }
}

#[test]
fn one_row_per_instance_with_its_numbers() {
    let mut m = Model::new("127.0.0.1:9090".into());
    let mut s = status(&[("app", 2)]);
    s.instances[1].health = "down".into();
    s.instances[1].cpu_percent = None;
    s.instances[1].p95_ms = None;
    m.update(snapshot(s, vec![]));
    let apps = m.apps();
    assert_eq!(apps.len(), 1);
    let rows = &apps[0].rows;
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(
        (
            r.id.as_str(),
            r.state.as_str(),
            r.health.as_str(),
            r.pid.as_str()
        ),
        ("app-1", "running", "up", "1001")
    );
    assert_eq!(
        (
            r.cpu.as_str(),
            r.rss.as_str(),
            r.rps.as_str(),
            r.p95.as_str(),
            r.restarts.as_str()
        ),
        ("3.2", "24.5M", "40.0", "4.2ms", "0")
    );
    assert!(r.healthy);
    assert_eq!((rows[1].cpu.as_str(), rows[1].p95.as_str()), ("-", "-"));
    assert!(!rows[1].healthy);
}

#[test]
fn fleet_totals_from_the_sample_or_the_instances() {
    let mut m = Model::new("a".into());
    assert_eq!(m.fleet(), None);
    let mut s = status(&[("app", 3)]);
    s.instances[2].health = "down".into();
    // On its way out: not counted as one of the fleet's backends.
    let mut leaving = instance("app", 4, "up");
    leaving.state = ProcState::Draining;
    s.instances.push(leaving);
    m.update(snapshot(s.clone(), vec![]));
    let f = m.fleet().unwrap();
    assert_eq!((f.up, f.total), (2, 3));
    // 4 × 40 req/s, 4 × 2 errors/s.
    assert_eq!(f.requests_per_sec, 160.0);
    assert_eq!(f.error_rate, Some(0.05));
    assert_eq!(f.p95_ms, None);
    m.update(Snapshot {
        fleet: Some(Traffic {
            requests_per_sec: 99.0,
            error_rate: 0.5,
            p95_ms: Some(8.0),
        }),
        ..snapshot(s, vec![])
    });
    let f = m.fleet().unwrap();
    assert_eq!(
        (f.requests_per_sec, f.error_rate, f.p95_ms),
        (99.0, Some(0.5), Some(8.0))
    );
}

fn second(requests_per_sec: f64, error_rate: f64, p95_ms: Option<f64>) -> Sample {
    Sample {
        at: 0.0,
        requests_per_sec,
        error_rate,
        p50_ms: None,
        p95_ms,
        p99_ms: None,
        in_flight: 0,
        in_rotation: 1,
        backends: 1,
    }
}

#[test]
fn the_fleets_traffic_over_the_last_seconds() {
    assert_eq!(Traffic::of(&[]), None);
    let mut samples = vec![second(1000.0, 1.0, Some(900.0))];
    // The five newest: 10, 0, 30, 0, 60 req/s.
    for (rps, p95) in [
        (10.0, 1.0),
        (0.0, 0.0),
        (30.0, 2.0),
        (0.0, 0.0),
        (60.0, 4.0),
    ] {
        samples.push(second(
            rps,
            if rps > 0.0 { 0.1 } else { 0.0 },
            (rps > 0.0).then_some(p95),
        ));
    }
    let t = Traffic::of(&samples).unwrap();
    assert_eq!(t.requests_per_sec, 20.0);
    assert!((t.error_rate - 0.1).abs() < 1e-9);
    // (10 × 1 + 30 × 2 + 60 × 4) / 100
    assert!((t.p95_ms.unwrap() - 3.1).abs() < 1e-9);
    let quiet = Traffic::of(&[second(0.0, 0.0, None)]).unwrap();
    assert_eq!((quiet.error_rate, quiet.p95_ms), (0.0, None));
}

#[test]
fn several_apps_each_with_their_own_instances_and_a_selection() {
    let mut m = Model::new("a".into());
    m.update(snapshot(status(&[("web", 2), ("api", 3)]), vec![]));
    let apps = m.apps();
    assert_eq!(
        apps.iter()
            .map(|a| (a.name.as_str(), a.rows.len()))
            .collect::<Vec<_>>(),
        [("web", 2), ("api", 3)]
    );
    assert!(apps[1].rows.iter().all(|r| r.id.starts_with("api-")));
    m.select_previous();
    assert_eq!(m.selected, 0);
    m.select_next();
    m.select_next();
    assert_eq!(m.selected, 1);
    m.ask_scale(1);
    assert_eq!(
        m.asking,
        Some(Ask::Scale {
            app: "api".into(),
            from: 3,
            to: 4
        })
    );
    // An app gone: the selection follows.
    m.update(snapshot(status(&[("web", 2)]), vec![]));
    assert_eq!(m.selected, 0);
}

#[test]
fn a_change_is_asked_then_confirmed_or_cancelled() {
    let mut m = Model::new("a".into());
    m.ask_scale(1);
    assert_eq!(m.asking, None);
    assert_eq!(
        m.notice,
        Some(Notice::Failed(
            "nothing to scale yet: the admin API has not answered".into()
        ))
    );
    m.update(snapshot(status(&[("app", 1)]), vec![]));
    m.ask_scale(-1);
    assert_eq!(
        m.asking.as_ref().map(Ask::what).as_deref(),
        Some("scale app to 0")
    );
    assert!(m
        .asking
        .as_ref()
        .unwrap()
        .question()
        .contains("from 1 to 0"));
    assert_eq!(m.answer(false), None);
    assert_eq!(
        m.notice,
        Some(Notice::Cancelled("scale app to 0: cancelled".into()))
    );
    m.update(snapshot(
        Status {
            apps: vec![app("app", 0)],
            ..status(&[("app", 0)])
        },
        vec![],
    ));
    m.ask_scale(-1);
    assert_eq!(m.asking, None, "nothing below zero");
    m.ask_reload();
    assert_eq!(m.answer(true), Some(Ask::Reload { app: "app".into() }));
    assert_eq!(m.notice, Some(Notice::Running("reload app…".into())));
    assert_eq!(m.answer(true), None, "asked once");
}

#[test]
fn events_are_kept_newest_last_and_bounded() {
    let mut m = Model::new("a".into());
    let s = status(&[("app", 1)]);
    m.update(snapshot(s.clone(), (1..=40).map(event).collect()));
    m.update(snapshot(s.clone(), (41..=60).map(event).collect()));
    assert_eq!(m.events.len(), EVENTS_KEPT);
    assert_eq!(m.events.front().unwrap().id, 11);
    assert_eq!(m.events.back().unwrap().id, 60);
    m.update(Snapshot {
        events_restarted: true,
        ..snapshot(s, vec![event(1)])
    });
    assert_eq!(m.events.len(), 1);
}

#[test]
fn a_failed_poll_is_said_and_the_last_numbers_stay() {
    let mut m = Model::new("a".into());
    m.update(snapshot(status(&[("app", 2)]), vec![]));
    m.failed("no shoal answers".into());
    m.failed("no shoal answers".into());
    assert_eq!(m.failed_polls, 2);
    assert_eq!(m.apps()[0].rows.len(), 2);
    m.update(snapshot(status(&[("app", 2)]), vec![]));
    assert_eq!((m.trouble.as_deref(), m.failed_polls), (None, 0));
}

#[test]
fn numbers_are_short() {
    assert_eq!(percent(0.0), "0.0");
    assert_eq!(percent(12.345), "12.3");
    assert_eq!(percent(199.6), "200");
    assert_eq!(bytes(812 * 1024), "812K");
    assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5M");
    assert_eq!(bytes(1288490189), "1.20G");
    assert_eq!(rate(0.0), "0");
    assert_eq!(rate(0.44), "0.4");
    assert_eq!(rate(1234.4), "1234");
    assert_eq!(millis(0.84), "0.8ms");
    assert_eq!(millis(12.4), "12ms");
    assert_eq!(millis(1250.0), "1.25s");
    assert_eq!(share(0.0), "0.0%");
    assert_eq!(share(0.0004), "<0.1%");
    assert_eq!(share(0.015), "1.5%");
}
