//! Class-wise non-maximum suppression (greedy, best score first), as
//! Ultralytics, YOLOv5 and YOLOX apply it after their heads.

use super::decode::Candidate;

/// Most candidates considered (Ultralytics' `max_nms`): a frame full of
/// low-confidence noise must not make NMS quadratic in 100k boxes.
pub const MAX_CANDIDATES: usize = 30_000;

fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let intersection = w * h;
    let union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - intersection;
    if union <= 0.0 {
        0.0
    } else {
        intersection / union
    }
}

/// Keeps, per class, boxes that overlap no better-scoring kept box by more
/// than `iou_threshold`; at most `max_detections`, best first. In place.
pub fn nms(candidates: &mut Vec<Candidate>, iou_threshold: f32, max_detections: usize) {
    candidates.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_CANDIDATES);
    let mut kept = 0;
    for i in 0..candidates.len() {
        if kept >= max_detections {
            break;
        }
        let candidate = candidates[i];
        let suppressed =
            candidates[..kept].iter().any(|k| k.class == candidate.class && iou(k, &candidate) > iou_threshold);
        if !suppressed {
            candidates[kept] = candidate;
            kept += 1;
        }
    }
    candidates.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x1: f32, score: f32, class: u32) -> Candidate {
        Candidate { x1, y1: 0.0, x2: x1 + 10.0, y2: 10.0, score, class }
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        // Boxes 0-10 and 2-12 overlap with IoU 8/12 = 0.667.
        let mut boxes = vec![c(2.0, 0.7, 0), c(0.0, 0.9, 0), c(2.0, 0.8, 1), c(50.0, 0.3, 0)];
        nms(&mut boxes, 0.45, 300);
        let kept: Vec<(f32, u32)> = boxes.iter().map(|b| (b.score, b.class)).collect();
        assert_eq!(kept, [(0.9, 0), (0.8, 1), (0.3, 0)]);
        let mut boxes = vec![c(2.0, 0.7, 0), c(0.0, 0.9, 0)];
        nms(&mut boxes, 0.7, 300);
        assert_eq!(boxes.len(), 2, "IoU 0.667 is below a 0.7 threshold");
    }

    #[test]
    fn caps_the_number_kept() {
        let mut boxes: Vec<Candidate> = (0..10).map(|i| c(i as f32 * 20.0, i as f32 / 10.0, 0)).collect();
        nms(&mut boxes, 0.45, 3);
        assert_eq!(boxes.iter().map(|b| b.score).collect::<Vec<_>>(), [0.9, 0.8, 0.7]);
    }
}
