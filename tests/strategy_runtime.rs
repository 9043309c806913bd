//! The strategy runtime against real compiled components: the three example
//! strategies and the hostile fixture (`tests/guests/hostile`), whose config
//! picks a misbehaviour. Each hostile case runs next to a well-behaved
//! `yolo_filter` instance on the same engine and checks that it is untouched.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dshost::frame::{CompactFrame, LabelTable, Object, UNTRACKED};
use dshost::strategy::{
    ErrorKind, InstanceSettings, LoadError, Outcome, RecoveryPolicy, SandboxLimits, StrategyComponent,
    StrategyInstance, StrategyMetrics, SupervisedInstance, World,
};

fn load(name: &str) -> Arc<StrategyComponent> {
    common::engine()
        .load_file(name, &common::strategy(name), &SandboxLimits::default())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Test limits: the default sandbox with a deadline long enough that a
/// loaded 2-core CI machine never turns slow work into a timeout; the tests
/// about deadlines set their own.
fn limits() -> SandboxLimits {
    SandboxLimits { call_timeout: Duration::from_secs(2), ..SandboxLimits::default() }
}

fn settings(source: &str, config: &str) -> InstanceSettings {
    InstanceSettings {
        source_id: Arc::from(source),
        config_json: config.to_string(),
        labels: Arc::new(LabelTable::coco()),
        limits: limits(),
    }
}

/// Zero backoff so tests need not wait; quarantine after 3.
fn fast_policy() -> RecoveryPolicy {
    RecoveryPolicy { initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO, quarantine_after: 3 }
}

fn start(name: &str, source: &str, config: &str) -> SupervisedInstance {
    start_with(name, source, config, limits())
}

fn start_with(name: &str, source: &str, config: &str, limits: SandboxLimits) -> SupervisedInstance {
    SupervisedInstance::start(
        common::engine(),
        load(name),
        InstanceSettings { limits, ..settings(source, config) },
        fast_policy(),
        Arc::new(StrategyMetrics::default()),
    )
    .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

fn frame(number: u64, objects: &[Object]) -> CompactFrame {
    let mut frame = CompactFrame::with_capacity(Arc::from("cam-1"), objects.len());
    frame.frame_number = number;
    frame.pts_ns = number * 33_333_333;
    frame.width = 1280;
    frame.height = 720;
    for object in objects {
        frame.push(object);
    }
    frame
}

fn person(id: u64) -> Object {
    Object { left: 100.0, top: 100.0, width: 50.0, height: 120.0, confidence: 0.9, class_id: 0, object_id: id }
}

fn detections(outcome: Outcome) -> Vec<dshost::strategy::ValidDetection> {
    match outcome {
        Outcome::Processed(d) => d,
        other => panic!("expected detections, got {other:?}"),
    }
}

/// A `yolo_filter` instance that must keep working whatever its neighbour does.
struct Control(SupervisedInstance);

impl Control {
    fn new() -> Self {
        Control(start("yolo_filter", "cam-1", r#"{"classes": ["person"]}"#))
    }

    fn check(&mut self, number: u64) {
        let found = detections(self.0.process(&frame(number, &[person(1), person(2)])));
        assert_eq!(found.len(), 2, "the control strategy must be unaffected");
        assert_eq!(self.0.metrics().total_errors(), 0);
    }
}

fn failure_kind(outcome: Outcome) -> ErrorKind {
    match outcome {
        Outcome::Failed(error) => error.kind,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn yolo_filter_exact_detections() {
    let mut filter = start("yolo_filter", "cam-1", r#"{"classes": ["car"], "min_confidence": 0.6, "level": "high"}"#);
    let car = Object { class_id: 2, confidence: 0.7, ..person(5) };
    let weak_car = Object { class_id: 2, confidence: 0.5, ..person(6) };
    let untracked_car = Object { class_id: 2, object_id: UNTRACKED, ..person(0) };
    let found = detections(filter.process(&frame(1, &[person(1), car, weak_car, untracked_car])));
    assert_eq!(found.len(), 2);
    assert_eq!(&*found[0].pattern, "car");
    assert_eq!(found[0].object_id, Some(5));
    assert_eq!(found[0].confidence, 0.7);
    assert_eq!((found[0].left, found[0].top, found[0].width, found[0].height), (100.0, 100.0, 50.0, 120.0));
    assert_eq!(found[1].object_id, None);
    assert_eq!(filter.metrics().calls.load(Ordering::Relaxed), 1);
    assert_eq!(filter.component().world, World::Stateless);
    assert!(filter.component().version.starts_with("0.1.0+sha256:"));
}

#[test]
fn line_crossing_state_moves_to_a_new_instance() {
    let engine = common::engine();
    let component = load("line_crossing");
    assert_eq!(component.world, World::Stateful);
    let config = r#"{"lines": [{"name": "gate", "start": [0, 0.5], "end": [1, 0.5]}]}"#;
    let walker = |y: f32| Object { left: 600.0, top: y - 100.0, width: 40.0, height: 100.0, ..person(4) };
    let mut old = StrategyInstance::new(&engine, component.clone(), &settings("cam-1", config)).unwrap();
    let mut crossed = 0;
    for (n, y) in [200.0, 300.0, 500.0, 600.0].into_iter().enumerate() {
        crossed += old.process(&frame(n as u64, &[walker(y)])).unwrap().len();
    }
    assert_eq!(crossed, 1);
    let saved = old.save_state().unwrap().expect("stateful strategies save state");
    let mut new = StrategyInstance::new(&engine, component, &settings("cam-1", config)).unwrap();
    new.load_state(&saved).unwrap();
    let mut back = Vec::new();
    for (n, y) in [200.0, 150.0].into_iter().enumerate() {
        back.extend(new.process(&frame(10 + n as u64, &[walker(y)])).unwrap());
    }
    assert_eq!(back.len(), 1);
    let attrs: std::collections::BTreeMap<_, _> = back[0].attributes.iter().cloned().collect();
    assert_eq!(attrs["direction"], "out");
    assert_eq!(attrs["total_in"], "1", "the count from before the reload survived");
    assert_eq!(attrs["total_out"], "1");
    let refused = new.load_state(b"garbage").unwrap_err();
    assert_eq!(refused.kind, ErrorKind::GuestError);
}

#[test]
fn zone_intrusion_reports_enter_and_leave() {
    let mut zone =
        start("zone_intrusion", "cam-1", r#"{"zones": [{"name": "right", "polygon": [[0.5,0],[1,0],[1,1],[0.5,1]]}]}"#);
    let at = |x: f32| Object { left: x, ..person(3) };
    assert!(detections(zone.process(&frame(0, &[at(100.0)]))).is_empty());
    let entered = detections(zone.process(&frame(1, &[at(900.0)])));
    assert_eq!(&*entered[0].pattern, "zone_enter");
    let left = detections(zone.process(&frame(2, &[at(100.0)])));
    assert_eq!(&*left[0].pattern, "zone_leave");
    assert!(left[0].attributes.contains(&("zone".to_string(), "right".to_string())));
}

#[test]
fn infinite_loop_times_out_restarts_then_quarantines() {
    let mut control = Control::new();
    let deadline = SandboxLimits { call_timeout: Duration::from_millis(50), ..limits() };
    let mut hostile = start_with("hostile", "cam-1", r#"{"mode": "infinite_loop"}"#, deadline);
    for n in 0..3 {
        assert_eq!(failure_kind(hostile.process(&frame(n, &[person(1)]))), ErrorKind::Timeout);
        control.check(n);
    }
    assert!(hostile.is_quarantined());
    assert!(matches!(hostile.process(&frame(9, &[])), Outcome::Skipped(_)));
    let metrics = hostile.metrics();
    assert_eq!(metrics.errors(ErrorKind::Timeout), 3);
    assert_eq!(metrics.restarts.load(Ordering::Relaxed), 2, "re-instantiated after each timeout");
    assert_eq!(metrics.quarantines.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.frames_skipped.load(Ordering::Relaxed), 1);
}

#[test]
fn memory_growth_hits_the_cap() {
    let mut control = Control::new();
    // A long deadline, so that the memory cap and not the clock stops it.
    let limits = SandboxLimits { call_timeout: Duration::from_secs(5), ..SandboxLimits::default() };
    let mut hostile = start_with("hostile", "cam-1", r#"{"mode": "memory_growth"}"#, limits);
    assert_eq!(failure_kind(hostile.process(&frame(0, &[]))), ErrorKind::MemoryLimit);
    control.check(0);
}

#[test]
fn trap_on_nth_call_recovers_with_a_fresh_instance() {
    let mut control = Control::new();
    let mut hostile = start("hostile", "cam-1", r#"{"mode": "trap_on_call", "n": 3}"#);
    assert_eq!(detections(hostile.process(&frame(0, &[]))).len(), 1);
    assert_eq!(detections(hostile.process(&frame(1, &[]))).len(), 1);
    assert_eq!(failure_kind(hostile.process(&frame(2, &[]))), ErrorKind::Trap);
    control.check(2);
    // The fresh instance starts counting calls from one again.
    assert_eq!(detections(hostile.process(&frame(3, &[]))).len(), 1);
    assert_eq!(hostile.metrics().restarts.load(Ordering::Relaxed), 1);
    assert!(!hostile.is_quarantined());
}

#[test]
fn a_million_detections_is_invalid_output_and_the_instance_lives_on() {
    let mut control = Control::new();
    // With the default 64 MiB cap the guest cannot even build a million
    // detections (it traps on memory); give it room so the host's own limit
    // on detections per call is what stops it.
    let limits =
        SandboxLimits { memory_bytes: 512 << 20, call_timeout: Duration::from_secs(10), ..SandboxLimits::default() };
    let mut hostile = start_with("hostile", "cam-1", r#"{"mode": "million_detections"}"#, limits);
    match hostile.process(&frame(0, &[])) {
        Outcome::Failed(error) => {
            assert_eq!(error.kind, ErrorKind::InvalidOutput);
            assert!(error.message.contains("1000000 detections"), "{}", error.message);
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    control.check(0);
    assert_eq!(hostile.metrics().restarts.load(Ordering::Relaxed), 0, "no trap, no restart");
}

#[test]
fn bad_numbers_are_dropped_and_the_valid_detection_kept() {
    let mut hostile = start("hostile", "cam-1", r#"{"mode": "bad_numbers"}"#);
    let kept = detections(hostile.process(&frame(0, &[])));
    assert_eq!(kept.len(), 1);
    assert_eq!(&*kept[0].pattern, "valid");
    assert_eq!(hostile.metrics().invalid_detections.load(Ordering::Relaxed), 5);
}

#[test]
fn huge_strings_are_dropped() {
    let mut control = Control::new();
    let mut hostile = start("hostile", "cam-1", r#"{"mode": "huge_strings"}"#);
    let kept = detections(hostile.process(&frame(0, &[])));
    assert_eq!(kept.iter().map(|d| &*d.pattern).collect::<Vec<_>>(), vec!["valid"]);
    assert_eq!(hostile.metrics().invalid_detections.load(Ordering::Relaxed), 2);
    control.check(0);
}

#[test]
fn guest_errors_are_counted_without_restart() {
    let mut hostile = start("hostile", "cam-1", r#"{"mode": "guest_error"}"#);
    match hostile.process(&frame(4, &[])) {
        Outcome::Failed(error) => {
            assert_eq!(error.kind, ErrorKind::GuestError);
            assert_eq!(error.message, "guest error on frame 4");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    assert_eq!(hostile.metrics().restarts.load(Ordering::Relaxed), 0);
}

#[test]
fn configure_failures_are_reported_at_start() {
    let refuse = SupervisedInstance::start(
        common::engine(),
        load("hostile"),
        settings("cam-1", r#"{"mode": "configure_error"}"#),
        fast_policy(),
        Arc::new(StrategyMetrics::default()),
    );
    let error = refuse.err().expect("configure_error must fail");
    assert_eq!(error.kind, ErrorKind::Instantiate);
    assert!(error.message.contains("configure refused"), "{}", error.message);

    let spin = SupervisedInstance::start(
        common::engine(),
        load("hostile"),
        InstanceSettings {
            limits: SandboxLimits { setup_timeout: Duration::from_millis(50), ..SandboxLimits::default() },
            ..settings("cam-1", r#"{"mode": "loop_in_configure"}"#)
        },
        fast_policy(),
        Arc::new(StrategyMetrics::default()),
    );
    let error = spin.err().expect("loop_in_configure must fail");
    assert!(error.message.contains("timeout"), "{}", error.message);

    let typo = SupervisedInstance::start(
        common::engine(),
        load("yolo_filter"),
        settings("cam-1", r#"{"min_confidense": 0.3}"#),
        fast_policy(),
        Arc::new(StrategyMetrics::default()),
    );
    let error = typo.err().expect("unknown keys are refused");
    assert!(error.message.contains("unknown field `min_confidense`"), "{}", error.message);
}

#[test]
fn broken_files_are_refused_with_a_reason() {
    let engine = common::engine();
    let limits = SandboxLimits::default();
    let bytes = common::strategy_bytes("yolo_filter");
    let truncated = engine.load_bytes("t", &bytes[..bytes.len() / 2], &limits).unwrap_err();
    assert!(matches!(truncated, LoadError::Compile(_)), "{truncated}");
    let garbage = engine.load_bytes("g", b"#!/bin/sh\necho hi\n", &limits).unwrap_err();
    assert!(garbage.to_string().contains("not WebAssembly"), "{garbage}");
    let core_module = wat_core_module();
    let core = engine.load_bytes("c", &core_module, &limits).unwrap_err();
    assert!(core.to_string().contains("core WebAssembly module"), "{core}");
}

/// The smallest valid core module: magic + version 1, no sections.
fn wat_core_module() -> Vec<u8> {
    vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
}

#[test]
fn compiled_components_come_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let engine = dshost::strategy::StrategyEngine::new(dshost::strategy::EngineOptions {
        cache_dir: Some(dir.path().to_path_buf()),
    })
    .unwrap();
    let bytes = common::strategy_bytes("zone_intrusion");
    let limits = SandboxLimits::default();
    let first = engine.load_bytes("z", &bytes, &limits).unwrap();
    assert!(!first.compile.from_cache);
    let second = engine.load_bytes("z", &bytes, &limits).unwrap();
    assert!(second.compile.from_cache);
    // A corrupt artifact is discarded and rebuilt, never trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let third = engine.load_bytes("z", &bytes, &limits).unwrap();
    assert!(!third.compile.from_cache);
    assert_eq!(third.version, first.version);
}

/// Contract 0.2.0 (packed detections) and 0.1.0 (one record per detection)
/// are validated by the same rules: the hostile fixture built against each
/// (`hostile`, `hostile_v0_1`) gets the same outcome, detection for
/// detection, the same counts and the same errors.
#[test]
fn both_contract_versions_are_validated_alike() {
    let roomy =
        SandboxLimits { memory_bytes: 512 << 20, call_timeout: Duration::from_secs(10), ..SandboxLimits::default() };
    let objects = [person(1), Object { left: -400.0, ..person(2) }, Object { object_id: UNTRACKED, ..person(3) }];
    for mode in ["well_behaved", "bad_numbers", "huge_strings", "million_detections", "guest_error"] {
        let config = format!(r#"{{"mode": "{mode}"}}"#);
        let mut outcomes = Vec::new();
        for name in ["hostile", "hostile_v0_1"] {
            let mut instance = start_with(name, "cam-1", &config, roomy.clone());
            let outcome = instance.process(&frame(7, &objects));
            let metrics = instance.metrics();
            let counts =
                (metrics.detections.load(Ordering::Relaxed), metrics.invalid_detections.load(Ordering::Relaxed));
            outcomes.push((outcome, counts));
        }
        assert_eq!(outcomes[0], outcomes[1], "mode {mode}: 0.2.0 and 0.1.0 builds judged differently");
        // Each mode exercises what it is meant to (else the comparison proves little).
        let (outcome, (kept, invalid)) = &outcomes[0];
        match mode {
            // The second object lies entirely left of the frame.
            "well_behaved" => assert_eq!((*kept, *invalid), (2, 1), "{outcome:?}"),
            "bad_numbers" => assert_eq!((*kept, *invalid), (1, 5), "{outcome:?}"),
            "huge_strings" => assert_eq!((*kept, *invalid), (1, 2), "{outcome:?}"),
            "million_detections" => {
                assert!(matches!(outcome, Outcome::Failed(e) if e.kind == ErrorKind::InvalidOutput), "{outcome:?}")
            }
            _ => assert!(matches!(outcome, Outcome::Failed(e) if e.kind == ErrorKind::GuestError), "{outcome:?}"),
        }
    }
    assert_eq!(load("hostile").contract, dshost::strategy::Contract::V0_2);
    assert_eq!(load("hostile_v0_1").contract, dshost::strategy::Contract::V0_1);
}
