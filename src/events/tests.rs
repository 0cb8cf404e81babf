use super::*;

#[test]
fn the_history_is_bounded_and_keeps_the_latest() {
    let bus = Bus::new(3);
    for i in 0..5 {
        bus.publish(Kind::Scaled, Some("app"), None, format!("e{i}"));
    }
    let (kept, _) = bus.since(0);
    let messages: Vec<_> = kept.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["e2", "e3", "e4"]);
    assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(bus.since(4).0.len(), 1);
}

#[test]
fn a_follower_sees_each_event_once() {
    let bus = Bus::new(10);
    bus.publish(Kind::InstanceStarted, None, Some("app-1"), "before".into());
    let (kept, mut rx) = bus.since(0);
    bus.publish(Kind::Healthy, None, Some("app-1"), "after".into());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message, "before");
    let live = rx.try_recv().expect("the later event");
    assert_eq!(live.message, "after");
    assert!(rx.try_recv().is_err());
}

#[test]
fn an_event_serializes_with_its_kind_in_snake_case() {
    let bus = Bus::new(1);
    bus.publish(Kind::CrashLoop, Some("web"), Some("web-2"), "x".into());
    let json = serde_json::to_value(&*bus.since(0).0[0]).unwrap();
    assert_eq!(json["kind"], "crash_loop");
    assert_eq!(json["app"], "web");
    assert_eq!(json["instance"], "web-2");
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back.kind, Kind::CrashLoop);
}
