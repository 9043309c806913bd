//! The `yolo_filter` strategy ported with the C, Python and JavaScript SDKs
//! (`strategies/yolo_filter_{c,py,js}`) against the Rust original: the same
//! frames and configs through all four real components on the host runtime
//! must give identical detections (pattern, confidence, box, object id,
//! level, attributes, order, compared bit for bit), and the same configs must
//! be refused with the same messages. Every language is built twice: against
//! contract `dshost:strategy@0.2.0` (packed detections, the default) and
//! against 0.1.0 (`*_v0_1`, one record per detection), and all eight builds
//! must agree with the Rust 0.2.0 one.

mod common;

use std::io::BufReader;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dshost::frame::jsonl::read_frames;
use dshost::frame::{CompactFrame, LabelTable, Object, UNTRACKED};
use dshost::strategy::GuestDetection;
use dshost::strategy::{Contract, InstanceSettings, SandboxLimits, StrategyComponent, StrategyInstance, World};

const RUST: &str = "yolo_filter";
const PORTS: [&str; 7] = [
    "yolo_filter_v0_1",
    "yolo_filter_c",
    "yolo_filter_c_v0_1",
    "yolo_filter_py",
    "yolo_filter_py_v0_1",
    "yolo_filter_js",
    "yolo_filter_js_v0_1",
];

/// The default sandbox with deadlines long enough that a loaded 2-core CI
/// machine never turns slow work into a timeout (speed is benchmarked in
/// `host/benches/languages.rs`, not tested here).
fn limits() -> SandboxLimits {
    SandboxLimits { call_timeout: Duration::from_secs(5), setup_timeout: Duration::from_secs(10), ..Default::default() }
}

fn load(name: &str) -> Arc<StrategyComponent> {
    let component = common::engine()
        .load_file(name, &common::strategy(name), &limits())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    assert_eq!(component.world, World::Stateless, "{name}");
    // Which contract a build implements is fixed by the wit/ directory it
    // was built against (scripts/build-strategies.sh).
    let built_for = if name.ends_with("_v0_1") { Contract::V0_1 } else { Contract::V0_2 };
    assert_eq!(component.contract, built_for, "{name}");
    component
}

/// Loaded once per test process: the tests run in parallel, and compiling
/// the 18 MB Python component twice at once would double the slowest step.
fn components() -> &'static [(&'static str, Arc<StrategyComponent>)] {
    static LOADED: OnceLock<Vec<(&'static str, Arc<StrategyComponent>)>> = OnceLock::new();
    LOADED.get_or_init(|| std::iter::once(RUST).chain(PORTS).map(|name| (name, load(name))).collect())
}

fn start(
    component: &Arc<StrategyComponent>,
    config: &str,
    labels: &Arc<LabelTable>,
) -> Result<StrategyInstance, String> {
    let settings = InstanceSettings {
        source_id: Arc::from("cam-1"),
        config_json: config.to_string(),
        labels: labels.clone(),
        limits: limits(),
    };
    StrategyInstance::new(&common::engine(), component.clone(), &settings).map_err(|e| e.message)
}

/// A detection with floats as bits, so equality is exact.
#[derive(Debug, PartialEq, Eq)]
struct Exact {
    pattern: String,
    confidence: u32,
    bbox: [u32; 4],
    object_id: Option<u64>,
    level: String,
    attributes: Vec<(String, String)>,
}

impl From<&GuestDetection> for Exact {
    fn from(d: &GuestDetection) -> Self {
        Exact {
            pattern: d.pattern.to_string(),
            confidence: d.confidence.to_bits(),
            bbox: [d.bbox.left, d.bbox.top, d.bbox.width, d.bbox.height].map(f32::to_bits),
            object_id: d.object_id,
            level: format!("{:?}", d.level),
            attributes: d.attributes.clone(),
        }
    }
}

/// Detections per frame.
fn run(
    name: &str,
    component: &Arc<StrategyComponent>,
    config: &str,
    labels: &Arc<LabelTable>,
    frames: &[CompactFrame],
) -> Vec<Vec<Exact>> {
    let mut instance = start(component, config, labels).unwrap_or_else(|e| panic!("{name} refused {config}: {e}"));
    frames
        .iter()
        .map(|frame| {
            let found = instance.process(frame).unwrap_or_else(|e| panic!("{name} failed on {config}: {e}"));
            found.iter().map(Exact::from).collect()
        })
        .collect()
}

fn fixture_frames(labels: &LabelTable) -> Vec<CompactFrame> {
    let file = std::fs::File::open(common::fixture("frames/street.jsonl")).expect("fixture frames");
    read_frames(BufReader::new(file)).expect("fixture frames parse").iter().map(|l| l.to_compact(labels)).collect()
}

fn frame(number: u64, width: u32, height: u32, objects: &[Object]) -> CompactFrame {
    let mut frame = CompactFrame::with_capacity(Arc::from("cam-1"), objects.len());
    frame.frame_number = number;
    frame.pts_ns = number * 40_000_000;
    frame.width = width;
    frame.height = height;
    for object in objects {
        frame.push(object);
    }
    frame
}

/// Deterministic pseudo-random numbers (64-bit LCG, top bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }
}

/// Frames aimed at the edges: thresholds hit exactly and missed by one ulp,
/// untracked and huge ids, classes past the label table, boxes outside the
/// frame, bottom-centres on zone edges, frames of size zero, many objects.
fn edge_frames() -> Vec<CompactFrame> {
    let below = |v: f32| f32::from_bits(v.to_bits() - 1);
    let above = |v: f32| f32::from_bits(v.to_bits() + 1);
    let confidences = [0.0, 0.1, 0.3, below(0.5), 0.5, above(0.5), 0.66, below(0.7), 0.7, 0.81, 0.99, below(1.0), 1.0];
    let sizes = [0.0, 5.5, below(20.0), 20.0, 30.0, 80.0, 200.0, 719.0];
    // Ids up to 2^53: QuickJS hands u64 to JavaScript as a Number (see
    // sdk/js/README.md); larger ids are checked below for C and Python.
    let ids = [UNTRACKED, 0, 1, 7, 42, 65_535, 1 << 32, (1 << 53) - 1, 1 << 53];
    let mut rng = Lcg(7);
    let mut many = Vec::new();
    for _ in 0..150 {
        let width = rng.pick(&sizes);
        let height = rng.pick(&sizes);
        many.push(Object {
            left: (rng.next() % 1500) as f32 - 100.0 + rng.pick(&[0.0, 0.25, 0.5]),
            top: (rng.next() % 900) as f32 - 80.0,
            width,
            height,
            confidence: rng.pick(&confidences),
            class_id: rng.pick(&[0, 0, 0, 1, 2, 2, 3, 5, 7, 15, 79, 80, 83, 1000]),
            object_id: rng.pick(&ids),
        });
    }
    let person = |left: f32, top: f32, width: f32, id: u64| Object {
        left,
        top,
        width,
        height: 100.0,
        confidence: 0.9,
        class_id: 0,
        object_id: id,
    };
    vec![
        frame(0, 1280, 720, &[]),
        // Bottom-centres exactly on and next to the x = 0.5 edge of the right-half zone.
        frame(
            1,
            1280,
            720,
            &[
                person(620.0, 100.0, 40.0, 1),
                person(619.0, 100.0, 40.0, 2),
                person(621.0, 100.0, 40.0, UNTRACKED),
                person(1240.0, 620.0, 80.0, 3),
            ],
        ),
        frame(2, 1280, 720, &many[..50]),
        frame(3, 640, 480, &many[50..]),
        // A zero-sized frame: normalization divides by max(1, size).
        frame(4, 0, 0, &many[..20]),
        frame(5, 1920, 1080, &many),
    ]
}

const CONFIGS: &[&str] = &[
    "{}",
    "",
    r#"{"classes": ["person", 2, "car", 83, 1000]}"#,
    r#"{"classes": [0, "person"], "min_confidence": 0.7, "min_width": 20, "min_height": 19.999}"#,
    r#"{"zone": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], "pattern": "intruder", "level": "critical"}"#,
    r#"{"zone": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.4], [0.1, 0.9]], "classes": ["person", "bicycle"],
        "min_confidence": 0.3}"#,
    r#"{"min_confidence": 0, "level": "low"}"#,
    r#"{"min_confidence": 1}"#,
    r#"{"min_confidence": 0.66, "min_width": 30, "level": "high", "pattern": "wide \"one\" ✓"}"#,
    r#"{"classes": [], "pattern": null, "zone": null, "level": null, "min_width": 0.0}"#,
];

/// Configs for a label table of `person`, ``, `car`.
const SHORT_TABLE_CONFIGS: &[&str] = &[
    "{}",
    r#"{"classes": [1, "car", 5, 83], "min_confidence": 0.3}"#,
    r#"{"zone": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], "classes": ["person", 1000]}"#,
];

fn assert_same_detections(
    components: &[(&str, Arc<StrategyComponent>)],
    labels: &Arc<LabelTable>,
    frames: &[CompactFrame],
    configs: &[&str],
) {
    let mut total = 0;
    for config in configs {
        let expected = run(RUST, &components[0].1, config, labels, frames);
        let kept: usize = expected.iter().map(Vec::len).sum();
        total += kept;
        for (name, component) in &components[1..] {
            let got = run(name, component, config, labels, frames);
            for (index, (want, have)) in expected.iter().zip(&got).enumerate() {
                assert_eq!(have, want, "{name} differs from {RUST} on frame {index} with config {config}");
            }
            assert_eq!(got.len(), expected.len());
        }
    }
    // The configs must keep some objects and drop others, or the comparison
    // would prove little.
    let objects: usize = frames.iter().map(CompactFrame::object_count).sum();
    assert!(total > 0 && total < objects * configs.len(), "kept {total} of {} objects", objects * configs.len());
}

#[test]
fn ports_detect_exactly_what_the_rust_strategy_detects() {
    let components = components();
    let coco = Arc::new(LabelTable::coco());
    let mut frames = fixture_frames(&coco);
    frames.extend(edge_frames());
    assert_same_detections(components, &coco, &frames, CONFIGS);

    // A label table with an empty label and fewer entries than the class ids
    // seen: patterns fall back to `class_<id>`.
    let short = Arc::new(LabelTable::from_labels(vec!["person".into(), String::new(), "car".into()]));
    assert_same_detections(components, &short, &edge_frames(), SHORT_TABLE_CONFIGS);
}

#[test]
fn rust_c_and_python_builds_keep_64_bit_object_ids() {
    let components = components();
    let labels = Arc::new(LabelTable::coco());
    let ids = [(1u64 << 53) + 1, 1 << 60 | 3, u64::MAX - 1];
    let objects: Vec<Object> = ids
        .iter()
        .map(|&id| Object {
            left: 10.0,
            top: 10.0,
            width: 50.0,
            height: 50.0,
            confidence: 0.9,
            class_id: 0,
            object_id: id,
        })
        .collect();
    let frames = [frame(0, 1280, 720, &objects)];
    let expected = run(RUST, &components[0].1, "{}", &labels, &frames);
    assert_eq!(expected[0].iter().map(|d| d.object_id).collect::<Vec<_>>(), ids.map(Some).to_vec());
    // Not the JavaScript builds: QuickJS numbers are exact only to 2^53.
    for (name, component) in components[1..].iter().filter(|(name, _)| !name.contains("_js")) {
        assert_eq!(run(name, component, "{}", &labels, &frames), expected, "{name}");
    }
}

/// serde appends the position of the problem; the ports parse with their
/// language's JSON reader and cannot know it.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => &message[..at],
        _ => message,
    }
}

const BAD_CONFIGS: &[&str] = &[
    r#"{"classes": ["dragon"]}"#,
    r#"{"classes": ["person", "unicorn", 2]}"#,
    r#"{"min_confidence": 2}"#,
    r#"{"min_confidence": -0.25}"#,
    r#"{"min_confidence": 1.1}"#,
    r#"{"min_confidence": 1e20}"#,
    r#"{"min_confidence": 1.5e40}"#,
    r#"{"colour": "red"}"#,
    r#"{"classes": [0], "colour": 1, "min_confidence": "x"}"#,
    r#"{"min_confidence": "x", "colour": 1}"#,
    r#"{"zone": [[0, 0], [1, 1]]}"#,
    r#"{"zone": [[0, 0], [1, 0], [1e40, 1]]}"#,
    r#"{"zone": 5}"#,
    r#"{"zone": [5]}"#,
    r#"{"zone": [[1]]}"#,
    r#"{"zone": [["a", 1]]}"#,
    r#"{"zone": [[0, 0], [1, 1, 2]]}"#,
    r#"{"min_width": -1}"#,
    r#"{"min_height": -0.5, "min_width": 3}"#,
    r#"{"min_width": true}"#,
    r#"{"min_height": [1]}"#,
    r#"{"min_confidence": null}"#,
    r#"{"min_confidence": "a\"b"}"#,
    r#"{"pattern": ""}"#,
    r#"{"pattern": 5}"#,
    r#"{"pattern": ["a"]}"#,
    r#"{"level": "huge"}"#,
    r#"{"level": 5}"#,
    r#"{"classes": "person"}"#,
    r#"{"classes": null}"#,
    r#"{"classes": {"a": 1}}"#,
    r#"{"classes": 1.25}"#,
    r#"{"classes": [true]}"#,
    r#"{"classes": [1.5]}"#,
    r#"{"classes": [-1]}"#,
    r#"{"classes": [4294967296]}"#,
    // Semantic checks run after the whole document parsed, in the Rust order.
    r#"{"pattern": "", "min_confidence": 3, "classes": ["dragon"]}"#,
    r#"{"zone": [[0, 0]], "classes": ["dragon"]}"#,
];

#[test]
fn ports_refuse_bad_configs_with_the_rust_messages() {
    let components = components();
    let labels = Arc::new(LabelTable::coco());
    for config in BAD_CONFIGS {
        let expected = match start(&components[0].1, config, &labels) {
            Err(message) => message,
            Ok(_) => panic!("{RUST} accepted {config}"),
        };
        assert!(expected.starts_with("configure rejected the config: "), "{expected}");
        for (name, component) in &components[1..] {
            match start(component, config, &labels) {
                Err(message) => assert_eq!(
                    without_position(&message),
                    without_position(&expected),
                    "{name} and {RUST} refuse {config} differently"
                ),
                Ok(_) => panic!("{name} accepted {config}, which {RUST} refuses with: {expected}"),
            }
        }
    }
}
