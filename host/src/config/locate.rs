//! Maps config paths (`sources[1].rtsp.latency_ms`) to line numbers, so
//! errors found after deserialization still point into the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Path -> 1-based line of the key (or sequence item) that starts it.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes `text`; unparsable text gives an empty index.
    pub fn build(text: &str) -> Self {
        let mut walker = Walker::default();
        let _ = Parser::new_from_str(text).load(&mut walker, false);
        LineIndex { lines: walker.lines }
    }

    /// Line of `path`, or of its nearest indexed ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    /// Called when a node starts; returns the node's own path and whether
    /// it is a mapping key (keys are not values).
    fn node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { path, key }) => match key.take() {
                None => {
                    // This node is a key.
                    let name = scalar.unwrap_or("?").to_string();
                    self.lines.insert(join(path, &name), mark.line());
                    *key = Some(name);
                    None
                }
                Some(name) => Some(join(path, &name)),
            },
            Some(Frame::Sequence { path, index }) => {
                let own = format!("{path}[{index}]");
                *index += 1;
                self.lines.insert(own.clone(), mark.line());
                Some(own)
            }
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                let _ = self.node_path(Some(&value), mark);
            }
            Event::Alias(_) => {
                let _ = self.node_path(None, mark);
            }
            Event::MappingStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_paths() {
        let text =
            "sources:\n  - id: a\n    uri: x\n  - id: b\n    rtsp:\n      latency_ms: 5\npipeline:\n  queue_depth: 3\n";
        let index = LineIndex::build(text);
        assert_eq!(index.line_of("sources"), Some(1));
        assert_eq!(index.line_of("sources[0]"), Some(2));
        assert_eq!(index.line_of("sources[0].uri"), Some(3));
        assert_eq!(index.line_of("sources[1].rtsp.latency_ms"), Some(6));
        assert_eq!(index.line_of("pipeline.queue_depth"), Some(8));
        assert_eq!(index.line_of("pipeline.nothing.here"), Some(7));
    }
}
