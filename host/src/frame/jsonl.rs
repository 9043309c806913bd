//! The frames JSON-lines format: one frame per line, what `dshost record`
//! writes and `dshost strategy test` replays.
//!
//! `{"source":"cam-1","frame":12,"pts_ns":400000000,"width":1280,"height":720,
//!   "objects":[{"class_id":0,"label":"person","confidence":0.92,"left":100,
//!   "top":50,"width":40,"height":120,"object_id":7}]}`

use std::io::BufRead;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CompactFrame, LabelTable, Object, UNTRACKED};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameLine {
    pub source: String,
    pub frame: u64,
    #[serde(default)]
    pub pts_ns: u64,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub objects: Vec<ObjectLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLine {
    #[serde(default)]
    pub class_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub confidence: f32,
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    /// Absent or null for untracked objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<u64>,
}

/// A frames file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    #[error("cannot read frames: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
}

/// Reads every frame line; blank lines are skipped.
pub fn read_frames(reader: impl BufRead) -> Result<Vec<FrameLine>, FramesError> {
    let mut frames = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let frame: FrameLine =
            serde_json::from_str(&line).map_err(|e| FramesError::Parse { line: index + 1, message: e.to_string() })?;
        if frame.objects.iter().all(|o| o.class_id.is_some() || o.label.is_some()) {
            frames.push(frame);
        } else {
            return Err(FramesError::Parse {
                line: index + 1,
                message: "every object needs a `class_id` or a `label`".to_string(),
            });
        }
    }
    Ok(frames)
}

/// Adds the labels named in `frames` to `table`: an object with both id and
/// label names that id; one with a label only gets the label's id (interned).
pub fn learn_labels(frames: &[FrameLine], table: &mut LabelTable) {
    for object in frames.iter().flat_map(|f| &f.objects) {
        match (object.class_id, &object.label) {
            (Some(id), Some(label)) if table.label(id) != Some(label.as_str()) => table.set(id, label),
            (None, Some(label)) => {
                table.intern(label);
            }
            _ => {}
        }
    }
}

impl FrameLine {
    /// Encodes this line as a compact frame, resolving labels in `table`.
    pub fn to_compact(&self, table: &LabelTable) -> CompactFrame {
        let mut frame = CompactFrame::with_capacity(Arc::from(self.source.as_str()), self.objects.len());
        frame.frame_number = self.frame;
        frame.pts_ns = self.pts_ns;
        frame.width = self.width;
        frame.height = self.height;
        for object in &self.objects {
            let class_id =
                object.class_id.or_else(|| object.label.as_deref().and_then(|l| table.id_of(l))).unwrap_or(u32::MAX);
            frame.push(&Object {
                left: object.left,
                top: object.top,
                width: object.width,
                height: object.height,
                confidence: object.confidence,
                class_id,
                object_id: object.object_id.unwrap_or(UNTRACKED),
            });
        }
        frame
    }

    /// The line for a compact frame (what `record` writes).
    pub fn from_compact(frame: &CompactFrame, table: &LabelTable) -> FrameLine {
        FrameLine {
            source: frame.source_id.to_string(),
            frame: frame.frame_number,
            pts_ns: frame.pts_ns,
            width: frame.width,
            height: frame.height,
            objects: frame
                .objects()
                .iter()
                .map(|o| ObjectLine {
                    class_id: Some(o.class_id),
                    label: table.label(o.class_id).map(str::to_string),
                    confidence: o.confidence,
                    left: o.left,
                    top: o.top,
                    width: o.width,
                    height: o.height,
                    object_id: o.track_id(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"source":"cam-1","frame":12,"pts_ns":400000000,"width":1280,"height":720,"objects":[{"class_id":0,"label":"person","confidence":0.92,"left":100,"top":50,"width":40,"height":120,"object_id":7},{"label":"forklift","confidence":0.5,"left":1,"top":2,"width":3,"height":4}]}"#;

    #[test]
    fn parses_the_documented_line_and_round_trips() {
        let frames = read_frames(LINE.as_bytes()).unwrap();
        let mut table = LabelTable::coco();
        learn_labels(&frames, &mut table);
        let compact = frames[0].to_compact(&table);
        assert_eq!(compact.object_count(), 2);
        let objects: Vec<_> = compact.objects().iter().collect();
        assert_eq!(objects[0].object_id, 7);
        assert_eq!(objects[1].class_id, table.id_of("forklift").unwrap());
        assert_eq!(objects[1].object_id, UNTRACKED);
        let back = FrameLine::from_compact(&compact, &table);
        assert_eq!(back.objects[0].label.as_deref(), Some("person"));
        assert_eq!(back.objects[1].object_id, None);
    }

    #[test]
    fn errors_name_the_line() {
        let text = format!("{LINE}\n\n{{\"source\": 1}}\n");
        match read_frames(text.as_bytes()) {
            Err(FramesError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
