//! The class-label table: class id -> label, shared by the object stage and
//! every strategy (strategies receive it in `configure`).

/// The 80 COCO class labels, in the order YOLO-family detectors number them.
/// Used when the config names no other table, so that `person`, `bicycle` and
/// `car` are classes 0, 1 and 2 as most detectors emit them.
pub const COCO_LABELS: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Class id -> label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelTable {
    labels: Vec<String>,
}

impl Default for LabelTable {
    fn default() -> Self {
        LabelTable::coco()
    }
}

impl LabelTable {
    pub fn coco() -> Self {
        LabelTable { labels: COCO_LABELS.iter().map(|s| s.to_string()).collect() }
    }

    pub fn from_labels(labels: Vec<String>) -> Self {
        LabelTable { labels }
    }

    pub fn label(&self, class_id: u32) -> Option<&str> {
        self.labels.get(class_id as usize).map(String::as_str).filter(|l| !l.is_empty())
    }

    /// Id of `label`, if known.
    pub fn id_of(&self, label: &str) -> Option<u32> {
        self.labels.iter().position(|l| l == label).map(|i| i as u32)
    }

    /// Id of `label`, appending it to the table when new.
    pub fn intern(&mut self, label: &str) -> u32 {
        match self.id_of(label) {
            Some(id) => id,
            None => {
                self.labels.push(label.to_string());
                (self.labels.len() - 1) as u32
            }
        }
    }

    /// Sets the label of `class_id`, growing the table with unnamed classes.
    pub fn set(&mut self, class_id: u32, label: &str) {
        let index = class_id as usize;
        if index >= self.labels.len() {
            self.labels.resize(index + 1, String::new());
        }
        self.labels[index] = label.to_string();
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Label for display: the known label or `class_<id>`.
    pub fn display(&self, class_id: u32) -> String {
        self.label(class_id).map(str::to_string).unwrap_or_else(|| format!("class_{class_id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_ids_and_growth() {
        let mut table = LabelTable::coco();
        assert_eq!(table.id_of("person"), Some(0));
        assert_eq!(table.id_of("car"), Some(2));
        assert_eq!(table.intern("forklift"), 80);
        assert_eq!(table.intern("forklift"), 80);
        table.set(90, "drone");
        assert_eq!(table.label(90), Some("drone"));
        assert_eq!(table.label(85), None);
        assert_eq!(table.display(85), "class_85");
    }
}
