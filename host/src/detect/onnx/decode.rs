//! Output tensors to boxes: one decoder per layout (see `format`), then
//! class-wise NMS (families without NMS in the graph), then source pixels.

use super::format::{for_each_cell, Layout};
use super::nms::nms;
use super::preprocess::Transform;
use crate::detect::Detected;

/// A box in model input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
    /// The model's class index.
    pub class: u32,
}

/// A run's output does not have the shape the model was recognised with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the output of this run has shape {shape:?}, which does not hold batch item {item} of {layout:?}")]
pub struct DecodeError {
    pub shape: Vec<i64>,
    pub item: usize,
    pub layout: Layout,
}

/// Thresholds and filters of the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Boxes scoring at or below this are dropped (Ultralytics compares
    /// with `>`).
    pub confidence: f32,
    /// Class-wise NMS threshold.
    pub iou: f32,
    pub max_detections: usize,
    /// `allowed[class]`: kept classes (model indices); `None` = all.
    pub allowed: Option<Vec<bool>>,
    /// Model class index -> class id in the host's label table; `None` =
    /// the same numbers.
    pub class_ids: Option<Vec<u32>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { confidence: 0.25, iou: 0.45, max_detections: 300, allowed: None, class_ids: None }
    }
}

/// Decodes one model's outputs; holds the scratch buffers so that steady
/// state does not allocate.
#[derive(Debug)]
pub struct Decoder {
    layout: Layout,
    /// Grid cell (x, y, stride) per box, for `Layout::Grid`.
    grid: Vec<(f32, f32, f32)>,
    best: Vec<(f32, u32)>,
    candidates: Vec<Candidate>,
    nms_inside: bool,
}

impl Decoder {
    pub fn new(layout: Layout, input_width: u32, input_height: u32) -> Self {
        let mut grid = Vec::new();
        if let Layout::Grid { strides, .. } = &layout {
            for_each_cell(input_width, input_height, strides, |_, gx, gy, s| {
                grid.push((gx as f32, gy as f32, s as f32));
            });
        }
        let nms_inside = matches!(layout, Layout::Boxes6 { .. } | Layout::Boxes7 { .. });
        Decoder { layout, grid, best: Vec::new(), candidates: Vec::new(), nms_inside }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Floats per batch item a head of fixed size writes; `None` for NMS
    /// outputs, whose row count may change from run to run.
    fn fixed_item_len(&self) -> Option<usize> {
        match &self.layout {
            Layout::Scores { classes, boxes, .. } => Some((4 + classes) * boxes),
            Layout::Objectness { classes, boxes } | Layout::Grid { classes, boxes, .. } => Some((5 + classes) * boxes),
            Layout::Boxes6 { .. } | Layout::Boxes7 { .. } => None,
        }
    }

    /// Boxes of batch item `item` in source pixels, appended to `out`.
    /// `output` and `shape` are the whole output tensor of the run.
    pub fn decode(
        &mut self,
        output: &[f32],
        shape: &[i64],
        item: usize,
        transform: &Transform,
        options: &DecodeOptions,
        out: &mut Vec<Detected>,
    ) -> Result<(), DecodeError> {
        let unbatched = matches!(self.layout, Layout::Boxes7 { batched: false, .. });
        let data = if unbatched {
            output
        } else {
            let batch = shape.first().copied().unwrap_or(0).max(0) as usize;
            let len = output.len().checked_div(batch).unwrap_or(0);
            if item >= batch || self.fixed_item_len().is_some_and(|expected| expected != len) {
                return Err(DecodeError { shape: shape.to_vec(), item, layout: self.layout.clone() });
            }
            &output[item * len..(item + 1) * len]
        };
        self.candidates.clear();
        self.collect(data, item, options.confidence);
        if let Some(allowed) = &options.allowed {
            self.candidates.retain(|c| allowed.get(c.class as usize).copied().unwrap_or(false));
        }
        if self.nms_inside {
            self.candidates.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
            self.candidates.truncate(options.max_detections);
        } else {
            nms(&mut self.candidates, options.iou, options.max_detections);
        }
        for c in &self.candidates {
            let [x1, y1, x2, y2] = transform.to_source(c.x1, c.y1, c.x2, c.y2);
            if x2 <= x1 || y2 <= y1 {
                continue;
            }
            let class_id = match &options.class_ids {
                Some(ids) => match ids.get(c.class as usize) {
                    Some(&id) => id,
                    None => continue,
                },
                None => c.class,
            };
            out.push(Detected {
                left: x1,
                top: y1,
                width: x2 - x1,
                height: y2 - y1,
                confidence: c.score,
                class_id,
                object_id: None,
            });
        }
        Ok(())
    }

    fn collect(&mut self, data: &[f32], item: usize, confidence: f32) {
        let candidates = &mut self.candidates;
        let push = |candidates: &mut Vec<Candidate>, cx: f32, cy: f32, w: f32, h: f32, score: f32, class: u32| {
            if cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite() {
                candidates.push(Candidate {
                    x1: cx - w / 2.0,
                    y1: cy - h / 2.0,
                    x2: cx + w / 2.0,
                    y2: cy + h / 2.0,
                    score,
                    class,
                });
            }
        };
        match &self.layout {
            &Layout::Scores { classes, boxes, channels_first: true } => {
                // Row-major over classes: walk each class row once and keep
                // the best per box, instead of striding across rows per box.
                let best = &mut self.best;
                best.clear();
                best.resize(boxes, (f32::NEG_INFINITY, 0));
                for class in 0..classes {
                    let row = &data[(4 + class) * boxes..(5 + class) * boxes];
                    for (slot, &score) in best.iter_mut().zip(row) {
                        if score > slot.0 {
                            *slot = (score, class as u32);
                        }
                    }
                }
                for (j, &(score, class)) in best.iter().enumerate() {
                    if score > confidence {
                        push(
                            candidates,
                            data[j],
                            data[boxes + j],
                            data[2 * boxes + j],
                            data[3 * boxes + j],
                            score,
                            class,
                        );
                    }
                }
            }
            &Layout::Scores { classes, channels_first: false, .. } => {
                for row in data.chunks_exact(4 + classes) {
                    let (class, score) = argmax(&row[4..]);
                    if score > confidence {
                        push(candidates, row[0], row[1], row[2], row[3], score, class);
                    }
                }
            }
            &Layout::Objectness { classes, .. } => {
                for row in data.chunks_exact(5 + classes) {
                    let objectness = row[4];
                    if objectness <= confidence {
                        continue;
                    }
                    let (class, score) = argmax(&row[5..]);
                    let score = score * objectness;
                    if score > confidence {
                        push(candidates, row[0], row[1], row[2], row[3], score, class);
                    }
                }
            }
            &Layout::Grid { classes, .. } => {
                for (row, &(gx, gy, stride)) in data.chunks_exact(5 + classes).zip(&self.grid) {
                    let objectness = row[4];
                    if objectness <= confidence {
                        continue;
                    }
                    let (class, score) = argmax(&row[5..]);
                    let score = score * objectness;
                    if score > confidence {
                        // YOLOX's decode_outputs: xy = (xy + grid) * stride,
                        // wh = exp(wh) * stride.
                        let (cx, cy) = ((row[0] + gx) * stride, (row[1] + gy) * stride);
                        let (w, h) = (row[2].exp() * stride, row[3].exp() * stride);
                        push(candidates, cx, cy, w, h, score, class);
                    }
                }
            }
            Layout::Boxes6 { .. } => {
                for row in data.chunks_exact(6) {
                    if let Some(c) = end2end_box(row[0], row[1], row[2], row[3], row[4], row[5], confidence) {
                        candidates.push(c);
                    }
                }
            }
            &Layout::Boxes7 { batched, .. } => {
                for row in data.chunks_exact(7) {
                    if !batched && row[0] as usize != item {
                        continue;
                    }
                    if let Some(c) = end2end_box(row[1], row[2], row[3], row[4], row[6], row[5], confidence) {
                        candidates.push(c);
                    }
                }
            }
        }
    }
}

fn argmax(scores: &[f32]) -> (u32, f32) {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (class, &score) in scores.iter().enumerate() {
        if score > best.1 {
            best = (class as u32, score);
        }
    }
    best
}

fn end2end_box(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class: f32, confidence: f32) -> Option<Candidate> {
    // Padding rows of fixed-size NMS outputs are zeros (or -1 classes).
    if score.is_nan() || score <= confidence || class.is_nan() || class < 0.0 || !class.is_finite() {
        return None;
    }
    if ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
        return None;
    }
    Some(Candidate { x1, y1, x2, y2, score, class: class.round() as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(w: u32, h: u32) -> Transform {
        Transform { scale_x: 1.0, scale_y: 1.0, pad_x: 0.0, pad_y: 0.0, source_width: w, source_height: h }
    }

    /// Decodes item `item` of a batch of `item + 1` (or of the one item
    /// when `item` is 0 and the data holds one item).
    fn decode(layout: Layout, data: &[f32], item: usize, options: &DecodeOptions) -> Vec<Detected> {
        decode_batch(layout, data, item + 1, item, options)
    }

    fn decode_batch(layout: Layout, data: &[f32], batch: usize, item: usize, options: &DecodeOptions) -> Vec<Detected> {
        let mut decoder = Decoder::new(layout.clone(), 64, 64);
        let mut out = Vec::new();
        let shape: Vec<i64> = match layout {
            Layout::Boxes7 { batched: false, .. } => vec![data.len() as i64 / 7, 7],
            _ => vec![batch as i64, (data.len() / batch) as i64],
        };
        decoder.decode(data, &shape, item, &identity(64, 64), options, &mut out).unwrap();
        out
    }

    #[test]
    fn a_run_of_the_wrong_size_is_an_error() {
        let mut decoder = Decoder::new(Layout::Scores { classes: 1, boxes: 2, channels_first: true }, 64, 64);
        let mut out = Vec::new();
        let error = decoder
            .decode(&[0.0; 12], &[1, 6, 2], 0, &identity(64, 64), &DecodeOptions::default(), &mut out)
            .unwrap_err();
        assert_eq!(error.shape, [1, 6, 2]);
        assert!(decoder
            .decode(&[0.0; 10], &[1, 5, 2], 1, &identity(64, 64), &DecodeOptions::default(), &mut out)
            .is_err());
    }

    fn ltwh(d: &Detected) -> (f32, f32, f32, f32, u32) {
        (d.left, d.top, d.width, d.height, d.class_id)
    }

    #[test]
    fn channels_first_scores() {
        // 2 classes, 3 boxes: rows cx, cy, w, h, score0, score1.
        #[rustfmt::skip]
        let data = [
            10.0, 30.0, 11.0,
            10.0, 30.0, 10.0,
            4.0, 8.0, 4.0,
            6.0, 8.0, 6.0,
            0.9, 0.1, 0.3,
            0.2, 0.6, 0.85,
        ];
        let layout = Layout::Scores { classes: 2, boxes: 3, channels_first: true };
        let found = decode(layout.clone(), &data, 0, &DecodeOptions::default());
        // Box 2 (class 1, 0.85) and box 0 (class 0, 0.9) overlap heavily
        // but differ in class: both stay. Box 1 is class 1 at 0.6.
        let got: Vec<_> = found.iter().map(ltwh).collect();
        assert_eq!(got, [(8.0, 7.0, 4.0, 6.0, 0), (9.0, 7.0, 4.0, 6.0, 1), (26.0, 26.0, 8.0, 8.0, 1)]);
        assert_eq!(found[0].confidence, 0.9);
        let only_0 = DecodeOptions { allowed: Some(vec![true, false]), ..Default::default() };
        assert_eq!(decode(layout.clone(), &data, 0, &only_0).len(), 1);
        let high = DecodeOptions { confidence: 0.86, ..Default::default() };
        assert_eq!(decode(layout, &data, 0, &high).len(), 1);
    }

    #[test]
    fn objectness_multiplies_and_batches_are_separate() {
        // Item 1 of a batch of 2; 1 class: cx, cy, w, h, obj, cls.
        let item0 = [0.0f32; 12];
        let item1 = [20.0, 20.0, 10.0, 10.0, 0.8, 0.5, 40.0, 40.0, 10.0, 10.0, 0.9, 0.2];
        let data: Vec<f32> = item0.iter().chain(&item1).copied().collect();
        let layout = Layout::Objectness { classes: 1, boxes: 2 };
        let found = decode(layout.clone(), &data, 1, &DecodeOptions::default());
        // 0.8 * 0.5 = 0.4 kept; 0.9 * 0.2 = 0.18 below 0.25.
        assert_eq!(found.len(), 1);
        assert_eq!(ltwh(&found[0]), (15.0, 15.0, 10.0, 10.0, 0));
        assert!((found[0].confidence - 0.4).abs() < 1e-6);
        assert!(decode_batch(layout, &data, 2, 0, &DecodeOptions::default()).is_empty());
    }

    #[test]
    fn end2end_rows_skip_padding_and_keep_overlaps() {
        #[rustfmt::skip]
        let six = [
            1.0, 2.0, 11.0, 22.0, 0.9, 3.0,
            1.0, 2.0, 11.0, 22.0, 0.8, 3.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let found = decode(Layout::Boxes6 { rows: 3 }, &six, 0, &DecodeOptions::default());
        // NMS is the graph's job: overlapping rows are both kept.
        assert_eq!(found.iter().map(ltwh).collect::<Vec<_>>(), [(1.0, 2.0, 10.0, 20.0, 3); 2]);
        // batch, x1, y1, x2, y2, class, score; rows of item 1 only.
        #[rustfmt::skip]
        let seven = [
            0.0, 5.0, 5.0, 9.0, 9.0, 2.0, 0.7,
            1.0, 1.0, 1.0, 3.0, 5.0, 4.0, 0.6,
        ];
        let layout = Layout::Boxes7 { rows: 2, batched: false };
        let found = decode(layout, &seven, 1, &DecodeOptions::default());
        assert_eq!(found.iter().map(ltwh).collect::<Vec<_>>(), [(1.0, 1.0, 2.0, 4.0, 4)]);
    }

    #[test]
    fn class_ids_map_to_the_host_table() {
        let data = [10.0, 10.0, 4.0, 4.0, 0.1, 0.9];
        let layout = Layout::Scores { classes: 2, boxes: 1, channels_first: false };
        let options = DecodeOptions { class_ids: Some(vec![7, 12]), ..Default::default() };
        assert_eq!(decode(layout, &data, 0, &options)[0].class_id, 12);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let data = [f32::NAN, 10.0, 4.0, 4.0, 0.9, 10.0, 10.0, 4.0, 4.0, f32::NAN];
        let layout = Layout::Scores { classes: 1, boxes: 2, channels_first: false };
        assert!(decode(layout, &data, 0, &DecodeOptions::default()).is_empty());
    }
}
