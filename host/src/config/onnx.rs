//! Checks of `pipeline.onnx`, the per-source `detect` settings and the
//! tracker's second pass that need no model file: every problem at once,
//! with its config path. (The model itself is checked when it loads.)

use super::model::{Config, DetectorKind, OnnxLabels, OnnxProvider};

/// Problems as `(path, message)`.
pub fn validate(config: &Config) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let mut push = |path: &str, message: String| issues.push((path.to_string(), message));
    let pipeline = &config.pipeline;
    let onnx = &pipeline.onnx;
    let uses_onnx = pipeline.detector == DetectorKind::Onnx
        || config.sources.iter().any(|s| s.detector == Some(DetectorKind::Onnx));
    if uses_onnx && onnx.model.is_none() {
        push(
            "pipeline.onnx.model",
            "required with `detector: onnx`: the model file (`bash scripts/setup.sh` fetches a demo model to \
             ~/.cache/dshost/models/yolov12n.onnx)"
                .into(),
        );
    }
    if let Some(model) = &onnx.model {
        if model.as_os_str().is_empty() {
            push("pipeline.onnx.model", "must be a file path".into());
        }
    }
    if let OnnxLabels::File(path) = &onnx.labels {
        if path.as_os_str().is_empty() {
            push("pipeline.onnx.labels", "must be `auto` or a labels file (one label per line)".into());
        }
    }
    if !(onnx.confidence > 0.0 && onnx.confidence < 1.0) {
        push("pipeline.onnx.confidence", "must be within (0, 1)".into());
    }
    if !(onnx.iou > 0.0 && onnx.iou <= 1.0) {
        push("pipeline.onnx.iou", "must be within (0, 1]".into());
    }
    if onnx.max_detections == 0 || onnx.max_detections > 10_000 {
        push("pipeline.onnx.max_detections", "must be within 1..=10000".into());
    }
    for (i, class) in onnx.classes.iter().enumerate() {
        if class.trim().is_empty() {
            push(&format!("pipeline.onnx.classes[{i}]"), "must be a label (e.g. person)".into());
        }
    }
    if onnx.threads > 1024 {
        push("pipeline.onnx.threads", "must be within 0..=1024 (0 = ONNX Runtime's choice)".into());
    }
    if let Some(workers) = onnx.workers {
        if workers == 0 || workers > 64 {
            push("pipeline.onnx.workers", "must be within 1..=64 (leave it out for the default)".into());
        }
    }
    if onnx.max_batch == 0 || onnx.max_batch > 64 {
        push("pipeline.onnx.max_batch", "must be within 1..=64".into());
    }
    if onnx.max_wait_ms > 1000 {
        push("pipeline.onnx.max_wait_ms", "must be at most 1000".into());
    }
    if onnx.cuda_graph && onnx.provider == OnnxProvider::Cpu {
        push(
            "pipeline.onnx.cuda_graph",
            "needs a GPU provider (`provider: cuda`, `tensorrt` or `auto`): the CPU provider has no CUDA graphs".into(),
        );
    }
    if let Some(low) = pipeline.tracker.low_confidence {
        if !(low > 0.0 && low < onnx.confidence) {
            push(
                "pipeline.tracker.low_confidence",
                format!(
                    "must be above 0 and below `pipeline.onnx.confidence` ({}): it admits weaker boxes than the \
                     detector's threshold to continue tracks",
                    onnx.confidence
                ),
            );
        }
    }
    for (i, source) in config.sources.iter().enumerate() {
        let Some(detect) = &source.detect else { continue };
        let at = format!("sources[{i}].detect");
        if !(detect.fps.is_finite() && detect.fps > 0.0 && detect.fps <= 240.0) {
            push(&format!("{at}.fps"), "must be within (0, 240] model runs per second".into());
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectSettings, SourceConfig};

    fn paths(config: &Config) -> Vec<String> {
        validate(config).into_iter().map(|(path, _)| path).collect()
    }

    fn yaml(text: &str) -> Config {
        // Only the structure: the semantic checks of load.rs are not what
        // is tested here.
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let mut config = Config::default();
        if let Some(pipeline) = value.get("pipeline") {
            config.pipeline = serde_yaml::from_value(pipeline.clone()).unwrap();
        }
        if let Some(sources) = value.get("sources") {
            config.sources = serde_yaml::from_value(sources.clone()).unwrap();
        }
        config
    }

    #[test]
    fn the_issue_example_parses_and_is_valid() {
        let config = yaml(
            "pipeline:
  detector: onnx
  onnx:
    model: /models/yolov12n.onnx
    format: auto
    labels: auto
    confidence: 0.25
    iou: 0.45
    classes: []
    provider: auto
    threads: 0
sources:
  - id: gate
    uri: rtsp://camera/stream
    detect: {fps: 5, motion_gate: true}
",
        );
        assert!(validate(&config).is_empty(), "{:?}", validate(&config));
        assert_eq!(config.sources[0].detect, Some(DetectSettings { fps: 5.0, motion_gate: true }));
        assert_eq!(config.pipeline.onnx.labels, OnnxLabels::Auto);
        let config = yaml("pipeline:\n  onnx:\n    labels: /etc/labels.txt\n");
        assert_eq!(config.pipeline.onnx.labels, OnnxLabels::File("/etc/labels.txt".into()));
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::default();
        let onnx = &config.pipeline.onnx;
        assert_eq!((onnx.confidence, onnx.iou, onnx.max_detections), (0.25, 0.45, 300));
        assert_eq!((onnx.threads, onnx.workers, onnx.max_batch, onnx.max_wait_ms), (0, None, 4, 10));
        assert_eq!(DetectSettings::default(), DetectSettings { fps: 5.0, motion_gate: true });
        assert!(validate(&config).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut config = yaml(
            "pipeline:
  detector: onnx
  tracker:
    low_confidence: 0.0
  onnx:
    labels: ''
    confidence: 1.5
    iou: 0
    max_detections: 0
    classes: [person, ' ']
    threads: 5000
    workers: 0
    max_batch: 0
    max_wait_ms: 5000
",
        );
        config.sources.push(SourceConfig {
            detect: Some(DetectSettings { fps: 0.0, motion_gate: false }),
            device_id: None,
            ..yaml("sources: [{id: a, uri: test://ball}]").sources.remove(0)
        });
        assert_eq!(
            paths(&config),
            [
                "pipeline.onnx.model",
                "pipeline.onnx.labels",
                "pipeline.onnx.confidence",
                "pipeline.onnx.iou",
                "pipeline.onnx.max_detections",
                "pipeline.onnx.classes[1]",
                "pipeline.onnx.threads",
                "pipeline.onnx.workers",
                "pipeline.onnx.max_batch",
                "pipeline.onnx.max_wait_ms",
                "pipeline.tracker.low_confidence",
                "sources[0].detect.fps",
            ]
        );
        let messages: Vec<String> = validate(&config).into_iter().map(|(_, m)| m).collect();
        assert!(messages[0].contains("scripts/setup.sh"), "{}", messages[0]);
    }

    #[test]
    fn cuda_graphs_need_a_gpu_provider() {
        let config = yaml("pipeline:\n  onnx: {provider: cpu, cuda_graph: true}\n");
        assert_eq!(paths(&config), ["pipeline.onnx.cuda_graph"]);
        for provider in ["auto", "cuda", "tensorrt"] {
            let config = yaml(&format!("pipeline:\n  onnx: {{provider: {provider}, cuda_graph: true}}\n"));
            assert!(paths(&config).is_empty(), "{provider}: {:?}", paths(&config));
        }
        assert!(!Config::default().pipeline.onnx.cuda_graph);
    }

    #[test]
    fn a_source_selecting_onnx_needs_the_model() {
        let config = yaml("sources: [{id: a, uri: test://ball, detector: onnx}]");
        assert_eq!(paths(&config), ["pipeline.onnx.model"]);
        assert!(paths(&yaml("sources: [{id: a, uri: test://ball, detector: motion}]")).is_empty());
    }
}
