//! A simple IoU tracker: gives detections without ids stable object ids by
//! matching each frame's boxes to the previous frame's tracks (greedy, best
//! overlap first, same class only).
//!
//! With `low_confidence` set it works like ByteTrack's association: boxes
//! at or above the detector's confidence are matched first; tracks left
//! over are then matched against the weak boxes (between `low_confidence`
//! and the detector's confidence), so an object that scored weakly for a
//! frame keeps its id; weak boxes never start a track. And when the model
//! did not run on a frame (it runs `detect.fps` times per second), the
//! tracks seen on the last model frame are carried with their ids.

use super::Detected;
use crate::config::TrackerConfig;

struct Track {
    id: u64,
    last: Detected,
    /// Model frames since the last match.
    missed: u32,
}

/// What the object stage has for a frame.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// The model ran: all its boxes, weak ones included when the second
    /// pass is on.
    Detections(&'a [Detected]),
    /// The model did not run on this frame: carry the tracks.
    NoModelResult,
}

pub struct IouTracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    /// Boxes at or above this start and continue tracks; below it (down to
    /// `config.low_confidence`) they only continue them.
    high_confidence: f32,
    // Scratch, reused across frames.
    candidates: Vec<(f32, usize, usize)>,
    track_taken: Vec<bool>,
}

impl IouTracker {
    pub fn new(config: TrackerConfig) -> Self {
        IouTracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
            high_confidence: 0.0,
            candidates: Vec::new(),
            track_taken: Vec::new(),
        }
    }

    /// A tracker with the second (low-confidence) pass when
    /// `config.low_confidence` is set: `high_confidence` is the detector's
    /// own threshold (`pipeline.onnx.confidence`).
    pub fn with_detector_confidence(config: TrackerConfig, high_confidence: f32) -> Self {
        IouTracker { high_confidence, ..IouTracker::new(config) }
    }

    /// The lowest score the detector must report for the second pass
    /// (`None` when it is off).
    pub fn low_confidence(&self) -> Option<f32> {
        self.config.low_confidence
    }

    /// Assigns ids to `detections` that have none, in place (one pass over
    /// every box; what the motion and ROI stages use).
    pub fn update(&mut self, detections: &mut [Detected]) {
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        let mut detection_taken = vec![false; detections.len()];
        self.associate(detections, &mut detection_taken, |_| true);
        self.finish(detections, &detection_taken, |_| true);
    }

    /// Tracks one frame and writes what the frame shows into `out` (cleared
    /// first): the model's boxes with ids, weak boxes that continued a track
    /// (second pass), or, when the model did not run, the boxes of the
    /// tracks seen on the last model frame.
    pub fn observe(&mut self, observation: Observation<'_>, out: &mut Vec<Detected>) {
        out.clear();
        let detections = match observation {
            Observation::NoModelResult => {
                // Carried boxes are what was seen last; tracks are not aged
                // (`max_missed_frames` counts model frames).
                out.extend(self.tracks.iter().filter(|t| t.missed == 0).map(|t| t.last));
                return;
            }
            Observation::Detections(detections) => detections,
        };
        let Some(low) = self.config.low_confidence else {
            out.extend_from_slice(detections);
            self.update(out);
            return;
        };
        let high = self.high_confidence;
        out.extend(detections.iter().filter(|d| d.confidence >= low));
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        let mut detection_taken = vec![false; out.len()];
        // First pass: strong boxes; second: weak boxes against what is left.
        self.associate(out, &mut detection_taken, |d| d.confidence >= high);
        self.associate(out, &mut detection_taken, |d| d.confidence < high);
        self.finish(out, &detection_taken, |d| d.confidence >= high);
        // Unmatched weak boxes are noise: they are not shown.
        let mut index = 0;
        out.retain(|d| {
            let keep = detection_taken[index] || d.confidence >= high || d.object_id.is_some();
            index += 1;
            keep
        });
    }

    /// Greedy IoU matching of the boxes `eligible` selects (and not taken)
    /// against tracks not taken.
    fn associate(
        &mut self,
        detections: &mut [Detected],
        detection_taken: &mut [bool],
        eligible: impl Fn(&Detected) -> bool,
    ) {
        self.candidates.clear();
        for (d, detection) in detections.iter().enumerate() {
            if detection.object_id.is_some() || detection_taken[d] || !eligible(detection) {
                continue;
            }
            for (t, track) in self.tracks.iter().enumerate() {
                if self.track_taken[t] || track.last.class_id != detection.class_id {
                    continue;
                }
                let iou = track.last.iou(detection);
                if iou >= self.config.iou_threshold {
                    self.candidates.push((iou, d, t));
                }
            }
        }
        self.candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(_, d, t) in &self.candidates {
            if detection_taken[d] || self.track_taken[t] {
                continue;
            }
            detection_taken[d] = true;
            self.track_taken[t] = true;
            detections[d].object_id = Some(self.tracks[t].id);
            self.tracks[t].last = detections[d];
            self.tracks[t].missed = 0;
        }
    }

    /// Ages unmatched tracks, drops expired ones, and starts tracks for the
    /// unmatched boxes `may_start` allows.
    fn finish(&mut self, detections: &mut [Detected], detection_taken: &[bool], may_start: impl Fn(&Detected) -> bool) {
        for (t, track) in self.tracks.iter_mut().enumerate() {
            if !self.track_taken[t] {
                track.missed += 1;
            }
        }
        let max_missed = self.config.max_missed_frames;
        self.tracks.retain(|track| track.missed <= max_missed);
        for (d, detection) in detections.iter_mut().enumerate() {
            if detection.object_id.is_none() && !detection_taken[d] && may_start(detection) {
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

    fn scored(left: f32, confidence: f32) -> Detected {
        Detected { confidence, ..boxed(left, 0) }
    }

    fn config(low_confidence: Option<f32>) -> TrackerConfig {
        TrackerConfig { enabled: true, iou_threshold: 0.3, max_missed_frames: 1, low_confidence }
    }

    #[test]
    fn keeps_ids_across_frames_and_expires_tracks() {
        let mut tracker = IouTracker::new(config(None));
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

    #[test]
    fn without_the_second_pass_observe_is_update() {
        let mut a = IouTracker::new(config(None));
        let mut b = IouTracker::with_detector_confidence(config(None), 0.5);
        let frames = [vec![boxed(0.0, 0), scored(100.0, 0.2)], vec![scored(3.0, 0.1), boxed(104.0, 0)]];
        let mut out = Vec::new();
        for frame in &frames {
            let mut updated = frame.clone();
            a.update(&mut updated);
            b.observe(Observation::Detections(frame), &mut out);
            assert_eq!(out, updated);
        }
    }

    #[test]
    fn a_weak_frame_keeps_the_id_and_weak_boxes_start_nothing() {
        let mut tracker = IouTracker::with_detector_confidence(config(Some(0.1)), 0.5);
        let mut out = Vec::new();
        tracker.observe(Observation::Detections(&[scored(0.0, 0.8)]), &mut out);
        assert_eq!(out[0].object_id, Some(1));
        // The person scores 0.3 this frame (below the detector's 0.5): the
        // second pass continues track 1. A weak box elsewhere (0.2) and one
        // below `low_confidence` (0.05) are dropped.
        tracker
            .observe(Observation::Detections(&[scored(3.0, 0.3), scored(200.0, 0.2), scored(400.0, 0.05)]), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].left, out[0].object_id), (3.0, Some(1)));
        tracker.observe(Observation::Detections(&[scored(6.0, 0.9)]), &mut out);
        assert_eq!(out[0].object_id, Some(1), "the id survived the weak frame");
        // A strong box is matched before a weak one competing for the track.
        tracker.observe(Observation::Detections(&[scored(6.0, 0.2), scored(8.0, 0.7)]), &mut out);
        let strong = out.iter().find(|d| d.confidence == 0.7).unwrap();
        assert_eq!(strong.object_id, Some(1));
        assert_eq!(out.len(), 1, "the weak duplicate matched nothing and is dropped");
    }

    #[test]
    fn without_the_second_pass_a_weak_frame_loses_the_id() {
        // The same frames through a detector thresholded at 0.5 and the
        // one-pass tracker: the weak frame has no box, and with
        // max_missed_frames = 0 the track is gone.
        let mut tracker = IouTracker::new(TrackerConfig { max_missed_frames: 0, ..config(None) });
        let mut out = Vec::new();
        tracker.observe(Observation::Detections(&[scored(0.0, 0.8)]), &mut out);
        tracker.observe(Observation::Detections(&[]), &mut out);
        tracker.observe(Observation::Detections(&[scored(6.0, 0.9)]), &mut out);
        assert_eq!(out[0].object_id, Some(2));
    }

    #[test]
    fn frames_without_a_model_result_carry_the_last_boxes() {
        let mut tracker = IouTracker::with_detector_confidence(config(Some(0.1)), 0.5);
        let mut out = Vec::new();
        tracker.observe(Observation::Detections(&[scored(0.0, 0.8), scored(100.0, 0.9)]), &mut out);
        let seen = out.clone();
        for _ in 0..5 {
            tracker.observe(Observation::NoModelResult, &mut out);
            assert_eq!(out, seen, "carried unchanged, ids included");
        }
        // Carrying does not age tracks: with max_missed_frames = 1, five
        // carried frames later the next model frame still matches.
        tracker.observe(Observation::Detections(&[scored(2.0, 0.8)]), &mut out);
        assert_eq!(out[0].object_id, Some(1));
        // Track 2 missed this model frame: it is not carried as seen.
        tracker.observe(Observation::NoModelResult, &mut out);
        assert_eq!(out.iter().map(|d| d.object_id).collect::<Vec<_>>(), [Some(1)]);
    }
}
