//! A simple IoU tracker: gives detections without ids stable object ids by
//! matching each frame's boxes to the previous frame's tracks (greedy, best
//! overlap first, same class only).

use super::Detected;
use crate::config::TrackerConfig;

struct Track {
    id: u64,
    last: Detected,
    missed: u32,
}

pub struct IouTracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl IouTracker {
    pub fn new(config: TrackerConfig) -> Self {
        IouTracker { config, tracks: Vec::new(), next_id: 1 }
    }

    /// Assigns ids to `detections` that have none, in place.
    pub fn update(&mut self, detections: &mut [Detected]) {
        let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
        for (d, detection) in detections.iter().enumerate() {
            if detection.object_id.is_some() {
                continue;
            }
            for (t, track) in self.tracks.iter().enumerate() {
                if track.last.class_id != detection.class_id {
                    continue;
                }
                let iou = track.last.iou(detection);
                if iou >= self.config.iou_threshold {
                    candidates.push((iou, d, t));
                }
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut detection_taken = vec![false; detections.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, d, t) in candidates {
            if detection_taken[d] || track_taken[t] {
                continue;
            }
            detection_taken[d] = true;
            track_taken[t] = true;
            detections[d].object_id = Some(self.tracks[t].id);
            self.tracks[t].last = detections[d];
            self.tracks[t].missed = 0;
        }
        for (t, track) in self.tracks.iter_mut().enumerate() {
            if !track_taken[t] {
                track.missed += 1;
            }
        }
        let max_missed = self.config.max_missed_frames;
        self.tracks.retain(|track| track.missed <= max_missed);
        for (d, detection) in detections.iter_mut().enumerate() {
            if detection.object_id.is_none() && !detection_taken[d] {
                let id = self.next_id;
                self.next_id += 1;
                detection.object_id = Some(id);
                self.tracks.push(Track { id, last: *detection, missed: 0 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(left: f32, class_id: u32) -> Detected {
        Detected { left, top: 10.0, width: 20.0, height: 20.0, confidence: 0.9, class_id, object_id: None }
    }

    #[test]
    fn keeps_ids_across_frames_and_expires_tracks() {
        let mut tracker = IouTracker::new(TrackerConfig { enabled: true, iou_threshold: 0.3, max_missed_frames: 1 });
        let mut first = [boxed(0.0, 0), boxed(100.0, 0)];
        tracker.update(&mut first);
        assert_eq!((first[0].object_id, first[1].object_id), (Some(1), Some(2)));
        let mut second = [boxed(103.0, 0), boxed(2.0, 0), boxed(2.0, 5)];
        tracker.update(&mut second);
        assert_eq!(second.map(|d| d.object_id), [Some(2), Some(1), Some(3)], "class 5 never matches class 0");
        tracker.update(&mut []);
        tracker.update(&mut []);
        let mut later = [boxed(2.0, 0)];
        tracker.update(&mut later);
        assert_eq!(later[0].object_id, Some(4), "expired tracks are not revived");
        let mut upstream = [Detected { object_id: Some(77), ..boxed(2.0, 0) }];
        tracker.update(&mut upstream);
        assert_eq!(upstream[0].object_id, Some(77), "upstream ids are kept");
    }
}
