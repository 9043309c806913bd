//! Which detector family a model is, from its output shapes (taken from a
//! real run, so symbolic dimensions are resolved) and its metadata, and how
//! its output tensor is laid out.
//!
//! Accepted layouts (`B` = batch, `nc` = classes, `N` = candidate boxes):
//! - `yolo` (Ultralytics YOLOv5u/v8/v11/v12): `[B, 4+nc, N]`, rows cx,cy,w,h
//!   then class scores already sigmoided; also its transpose `[B, N, 4+nc]`.
//! - `yolov5` (YOLOv5, YOLOv7): `[B, N, 5+nc]`: cx,cy,w,h, objectness, class
//!   scores; score = objectness x class score.
//! - `yolox`: `[B, N, 5+nc]` like yolov5; when the export left the grid out
//!   (YOLOX's default `decode_in_inference=False`), xy are cell offsets and
//!   wh log sizes per stride 8/16/32(/64), decoded here.
//! - `end2end` (NMS inside the graph): `[B, K, 6]` x1,y1,x2,y2,score,class
//!   (YOLOv10, Ultralytics `nms=True`, RT-DETR exports post-processed to
//!   that layout); `[B, K, 7]` or `[K, 7]` batch,x1,y1,x2,y2,class,score
//!   (YOLOv7 `--end2end` with ONNX Runtime NMS). Coordinates in input pixels.

use serde::Serialize;

use crate::config::OnnxFormat;

/// A supported family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Yolo,
    Yolov5,
    Yolox,
    End2end,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Yolo => "yolo",
            Family::Yolov5 => "yolov5",
            Family::Yolox => "yolox",
            Family::End2end => "end2end",
        }
    }

    fn from_setting(format: OnnxFormat) -> Option<Family> {
        match format {
            OnnxFormat::Auto => None,
            OnnxFormat::Yolo => Some(Family::Yolo),
            OnnxFormat::Yolov5 => Some(Family::Yolov5),
            OnnxFormat::Yolox => Some(Family::Yolox),
            OnnxFormat::End2end => Some(Family::End2end),
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the decoder reads one output tensor (per batch item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layout {
    /// cx,cy,w,h then `classes` sigmoided scores, no objectness.
    /// `channels_first`: `[4+nc, N]` (Ultralytics), else `[N, 4+nc]`.
    Scores { classes: usize, boxes: usize, channels_first: bool },
    /// `[N, 5+nc]`: cx,cy,w,h, objectness, class scores.
    Objectness { classes: usize, boxes: usize },
    /// `[N, 5+nc]` with xy cell offsets and log wh per grid cell of
    /// `strides` (YOLOX without decoding in the graph).
    Grid { classes: usize, boxes: usize, strides: Vec<u32> },
    /// `[K, 6]`: x1,y1,x2,y2,score,class.
    Boxes6 { rows: usize },
    /// `[K, 7]`: batch,x1,y1,x2,y2,class,score. `batched`: `[B, K, 7]`;
    /// else one `[K, 7]` for the whole batch, rows picked by the batch column.
    Boxes7 { rows: usize, batched: bool },
}

impl Layout {
    /// Class count the output tells, if it tells one.
    pub fn classes(&self) -> Option<usize> {
        match self {
            Layout::Scores { classes, .. } | Layout::Objectness { classes, .. } | Layout::Grid { classes, .. } => {
                Some(*classes)
            }
            Layout::Boxes6 { .. } | Layout::Boxes7 { .. } => None,
        }
    }
}

/// The recognised format of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recognised {
    pub family: Family,
    /// Index of the output that carries the boxes.
    pub output: usize,
    pub layout: Layout,
}

/// One output as seen in a run: name and shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputShape {
    pub name: String,
    pub shape: Vec<i64>,
}

impl std::fmt::Display for OutputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.name, self.shape)
    }
}

fn shapes_text(outputs: &[OutputShape]) -> String {
    outputs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

const SUPPORTED: &str = "yolo [B, 4+nc, N] (Ultralytics v5u/v8/v11/v12), yolov5 [B, N, 5+nc] (YOLOv5/v7), \
                         yolox [B, N, 5+nc], end2end [B, K, 6] / [B, K, 7] / [K, 7] (NMS inside)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "{file}: its outputs ({}) match no format dshost can decode (input {input_width}x{input_height}{hint}). \
         Supported: {SUPPORTED}. Fix: export a detection head in one of these layouts, or set \
         `pipeline.onnx.format` if the model is one of them",
        shapes_text(outputs)
    )]
    NoMatch { file: String, outputs: Vec<OutputShape>, input_width: u32, input_height: u32, hint: String },
    #[error(
        "{file}: `format: {family}` expects {expected}, but the outputs are {}. Fix: set `format: auto` or the \
         model's real family",
        shapes_text(outputs)
    )]
    Mismatch { file: String, family: Family, expected: &'static str, outputs: Vec<OutputShape> },
}

/// Boxes a YOLOX / YOLOv5 head predicts at `strides` for one input size
/// (one per grid cell and anchor).
pub fn grid_cells(width: u32, height: u32, strides: &[u32]) -> usize {
    strides.iter().map(|&s| ((width / s) * (height / s)) as usize).sum()
}

const STRIDES_P5: [u32; 3] = [8, 16, 32];
const STRIDES_P6: [u32; 4] = [8, 16, 32, 64];

/// What the caller knows besides the shapes.
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    pub input_width: u32,
    pub input_height: u32,
    /// Batch size of the run the shapes come from.
    pub batch: usize,
    /// Class count of the model's `names` metadata.
    pub metadata_classes: Option<usize>,
}

/// Recognises the family and layout (`format: auto`), or checks that the
/// requested family fits the outputs.
pub fn recognise(
    requested: OnnxFormat,
    outputs: &[OutputShape],
    hints: Hints,
    file: &str,
) -> Result<Recognised, FormatError> {
    let wanted = Family::from_setting(requested);
    let mut hint = String::new();
    for (index, output) in outputs.iter().enumerate() {
        match match_output(wanted, &output.shape, hints) {
            Ok(Some((family, layout))) => return Ok(Recognised { family, output: index, layout }),
            Ok(None) => {}
            Err(reason) => hint = format!("; {}: {reason}", output.name),
        }
    }
    match wanted {
        Some(family) => Err(FormatError::Mismatch {
            file: file.to_string(),
            family,
            expected: expected_shape(family),
            outputs: outputs.to_vec(),
        }),
        None => Err(FormatError::NoMatch {
            file: file.to_string(),
            outputs: outputs.to_vec(),
            input_width: hints.input_width,
            input_height: hints.input_height,
            hint,
        }),
    }
}

fn expected_shape(family: Family) -> &'static str {
    match family {
        Family::Yolo => "[B, 4+nc, N] or [B, N, 4+nc]",
        Family::Yolov5 | Family::Yolox => "[B, N, 5+nc]",
        Family::End2end => "[B, K, 6], [B, K, 7] or [K, 7]",
    }
}

/// `Ok(None)`: not this output; `Err`: close to a format but refused, with
/// the reason for the error message.
fn match_output(wanted: Option<Family>, shape: &[i64], hints: Hints) -> Result<Option<(Family, Layout)>, String> {
    // Shapes come from a run, so they are concrete; an NMS output may hold
    // zero rows on the grey probe image.
    if shape.iter().any(|&d| d < 0) {
        return Ok(None);
    }
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let (w, h) = (hints.input_width, hints.input_height);
    let p5 = grid_cells(w, h, &STRIDES_P5);
    let p6 = grid_cells(w, h, &STRIDES_P6);
    let grid_strides = |n: usize| -> Option<Vec<u32>> {
        if n == p5 {
            Some(STRIDES_P5.to_vec())
        } else if n == p6 {
            Some(STRIDES_P6.to_vec())
        } else {
            None
        }
    };
    match dims.as_slice() {
        [k, 7] if matches!(wanted, None | Some(Family::End2end)) => {
            Ok(Some((Family::End2end, Layout::Boxes7 { rows: *k, batched: false })))
        }
        [k, 6] if hints.batch == 1 && matches!(wanted, None | Some(Family::End2end)) => {
            Ok(Some((Family::End2end, Layout::Boxes6 { rows: *k })))
        }
        &[b, d1, d2] if b == hints.batch => {
            match wanted {
                Some(Family::Yolo) if d1 >= 5 && d1 < d2 => {
                    Ok(Some((Family::Yolo, Layout::Scores { classes: d1 - 4, boxes: d2, channels_first: true })))
                }
                Some(Family::Yolo) if d2 >= 5 && d1 > d2 => {
                    Ok(Some((Family::Yolo, Layout::Scores { classes: d2 - 4, boxes: d1, channels_first: false })))
                }
                Some(Family::Yolov5) if d2 >= 6 && d1 > d2 => {
                    Ok(Some((Family::Yolov5, Layout::Objectness { classes: d2 - 5, boxes: d1 })))
                }
                // Grid or decoded is settled by looking at a run's values
                // (see `yolox_needs_grid`); the layout here assumes decoded.
                Some(Family::Yolox) if d2 >= 6 && d1 > d2 => {
                    Ok(Some((Family::Yolox, Layout::Objectness { classes: d2 - 5, boxes: d1 })))
                }
                Some(Family::End2end) if d2 == 6 => Ok(Some((Family::End2end, Layout::Boxes6 { rows: d1 }))),
                Some(Family::End2end) if d2 == 7 => {
                    Ok(Some((Family::End2end, Layout::Boxes7 { rows: d1, batched: true })))
                }
                Some(_) => Ok(None),
                None => recognise_rank3(d1, d2, hints.metadata_classes, grid_strides),
            }
        }
        _ => Ok(None),
    }
}

fn recognise_rank3(
    d1: usize,
    d2: usize,
    metadata_classes: Option<usize>,
    grid_strides: impl Fn(usize) -> Option<Vec<u32>>,
) -> Result<Option<(Family, Layout)>, String> {
    if d1 == 0 {
        // An NMS output with no box this run.
        return Ok(match d2 {
            6 => Some((Family::End2end, Layout::Boxes6 { rows: 0 })),
            7 => Some((Family::End2end, Layout::Boxes7 { rows: 0, batched: true })),
            _ => None,
        });
    }
    if d1 < d2 && d1 >= 5 && grid_strides(d2).is_some() {
        // [B, 4+nc, N]: Ultralytics' channels-first head, one box per grid
        // cell (8400 at 640x640).
        let classes = d1 - 4;
        if let Some(named) = metadata_classes {
            if named != classes {
                return Err(format!(
                    "{d1} rows are 4 + {classes} classes but the metadata names {named} classes \
                     (a segmentation or pose head? only detection heads are decoded)"
                ));
            }
        }
        return Ok(Some((Family::Yolo, Layout::Scores { classes, boxes: d2, channels_first: true })));
    }
    if d1 < d2 {
        return Ok(match d2 {
            6 => Some((Family::End2end, Layout::Boxes6 { rows: d1 })),
            7 => Some((Family::End2end, Layout::Boxes7 { rows: d1, batched: true })),
            _ => None,
        });
    }
    // [B, N, C] with more boxes than columns.
    let (boxes, columns) = (d1, d2);
    if boxes % 3 == 0 && grid_strides(boxes / 3).is_some() && columns >= 6 {
        // Three anchors per cell: YOLOv5 / YOLOv7.
        return Ok(Some((Family::Yolov5, Layout::Objectness { classes: columns - 5, boxes })));
    }
    if grid_strides(boxes).is_some() && columns >= 6 {
        // One box per cell: anchor-free. Ultralytics' head transposed when
        // the metadata's class count says there is no objectness column,
        // else YOLOX (which writes no metadata).
        if metadata_classes == Some(columns - 4) {
            return Ok(Some((Family::Yolo, Layout::Scores { classes: columns - 4, boxes, channels_first: false })));
        }
        return Ok(Some((Family::Yolox, Layout::Objectness { classes: columns - 5, boxes })));
    }
    match columns {
        6 => Ok(Some((Family::End2end, Layout::Boxes6 { rows: boxes }))),
        7 => Ok(Some((Family::End2end, Layout::Boxes7 { rows: boxes, batched: true }))),
        _ => Ok(None),
    }
}

/// For a YOLOX output `[N, 5+nc]` (one batch item, from a run on a grey
/// image): true when xy are grid-cell offsets (the grid must be applied
/// here), false when the graph decoded them to pixels already. Decoded
/// centres sit near their cell's centre; raw offsets are small numbers
/// unrelated to the cell's position, so their distance to the cell centres
/// is about half the image.
pub fn yolox_needs_grid(data: &[f32], columns: usize, width: u32, height: u32, strides: &[u32]) -> bool {
    let mut distance = 0.0f64;
    let mut spread = 0.0f64;
    let mut count = 0usize;
    for_each_cell(width, height, strides, |index, gx, gy, stride| {
        let Some(row) = data.get(index * columns..index * columns + 2) else { return };
        let (cx, cy) = ((gx as f64 + 0.5) * stride as f64, (gy as f64 + 0.5) * stride as f64);
        distance += (row[0] as f64 - cx).abs() + (row[1] as f64 - cy).abs();
        spread += cx + cy;
        count += 1;
    });
    count > 0 && distance > spread / 2.0
}

/// Calls `f(index, gx, gy, stride)` for every grid cell in YOLOX's output
/// order (stride by stride, row by row).
pub fn for_each_cell(width: u32, height: u32, strides: &[u32], mut f: impl FnMut(usize, u32, u32, u32)) {
    let mut index = 0;
    for &stride in strides {
        for gy in 0..height / stride {
            for gx in 0..width / stride {
                f(index, gx, gy, stride);
                index += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(shape: &[i64]) -> Vec<OutputShape> {
        vec![OutputShape { name: "output0".into(), shape: shape.to_vec() }]
    }

    fn hints(metadata_classes: Option<usize>) -> Hints {
        Hints { input_width: 640, input_height: 640, batch: 1, metadata_classes }
    }

    fn auto(shape: &[i64], metadata: Option<usize>) -> Result<Recognised, FormatError> {
        recognise(OnnxFormat::Auto, &out(shape), hints(metadata), "m.onnx")
    }

    #[test]
    fn grid_counts_match_the_published_heads() {
        // 8400 boxes for YOLOv8/YOLOX at 640, 25200 for YOLOv5 (3 anchors).
        assert_eq!(grid_cells(640, 640, &STRIDES_P5), 8400);
        assert_eq!(grid_cells(416, 416, &STRIDES_P5), 3549);
        assert_eq!(grid_cells(1280, 1280, &STRIDES_P6), 34000);
    }

    #[test]
    fn recognises_each_family_from_shapes() {
        let r = auto(&[1, 84, 8400], Some(80)).unwrap();
        assert_eq!(r.family, Family::Yolo);
        assert_eq!(r.layout, Layout::Scores { classes: 80, boxes: 8400, channels_first: true });
        let r = auto(&[1, 8400, 84], Some(80)).unwrap();
        assert_eq!(r.layout, Layout::Scores { classes: 80, boxes: 8400, channels_first: false });
        let r = auto(&[1, 25200, 85], None).unwrap();
        assert_eq!((r.family, r.layout.classes()), (Family::Yolov5, Some(80)));
        // YOLOv5 with one class has six columns: the anchor count decides.
        assert_eq!(auto(&[1, 25200, 6], None).unwrap().family, Family::Yolov5);
        let r = auto(&[1, 8400, 85], None).unwrap();
        assert_eq!((r.family, r.layout.classes()), (Family::Yolox, Some(80)));
        let r = auto(&[1, 300, 6], None).unwrap();
        assert_eq!((r.family, r.layout), (Family::End2end, Layout::Boxes6 { rows: 300 }));
        // Few NMS rows: still NMS output, not a 2-class Ultralytics head.
        assert_eq!(auto(&[1, 5, 6], None).unwrap().layout, Layout::Boxes6 { rows: 5 });
        let r = auto(&[100, 7], None).unwrap();
        assert_eq!(r.layout, Layout::Boxes7 { rows: 100, batched: false });
        let r = auto(&[1, 100, 7], None).unwrap();
        assert_eq!(r.layout, Layout::Boxes7 { rows: 100, batched: true });
        // NMS outputs with a dynamic row count may be empty on the probe run.
        assert_eq!(auto(&[1, 0, 6], None).unwrap().layout, Layout::Boxes6 { rows: 0 });
        assert_eq!(auto(&[0, 7], None).unwrap().layout, Layout::Boxes7 { rows: 0, batched: false });
    }

    #[test]
    fn picks_the_first_output_that_matches() {
        let outputs = vec![
            OutputShape { name: "num_dets".into(), shape: vec![1, 1] },
            OutputShape { name: "dets".into(), shape: vec![1, 84, 8400] },
        ];
        let r = recognise(OnnxFormat::Auto, &outputs, hints(None), "m.onnx").unwrap();
        assert_eq!(r.output, 1);
    }

    #[test]
    fn refuses_unknown_shapes_naming_them() {
        let error = auto(&[1, 10], None).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("output0 [1, 10]") && text.contains("m.onnx") && text.contains("640x640"), "{text}");
        assert!(text.contains("pipeline.onnx.format"), "{text}");
        // A segmentation head: 4 + 80 + 32 mask coefficients.
        let text = auto(&[1, 116, 8400], Some(80)).unwrap_err().to_string();
        assert!(text.contains("segmentation or pose"), "{text}");
        assert!(auto(&[1, 3000, 40], None).is_err(), "neither a grid nor NMS output");
        assert!(auto(&[1, 84, 8000], None).is_err(), "8000 boxes are no grid of a 640x640 input");
        assert!(auto(&[2, 84, 8400], None).is_err(), "the batch must be the run's");
    }

    #[test]
    fn explicit_format_must_fit() {
        let r = recognise(OnnxFormat::Yolov5, &out(&[1, 1000, 12]), hints(None), "m.onnx").unwrap();
        assert_eq!(r.layout, Layout::Objectness { classes: 7, boxes: 1000 });
        let error = recognise(OnnxFormat::Yolov5, &out(&[1, 84, 8400]), hints(None), "m.onnx").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("format: yolov5") && text.contains("[B, N, 5+nc]") && text.contains("[1, 84, 8400]"));
        assert!(recognise(OnnxFormat::End2end, &out(&[1, 84, 8400]), hints(None), "m").is_err());
    }

    #[test]
    fn tells_yolox_grid_offsets_from_decoded_pixels() {
        let (w, h) = (64, 64);
        let mut raw = Vec::new();
        let mut decoded = Vec::new();
        for_each_cell(w, h, &STRIDES_P5, |_, gx, gy, s| {
            raw.extend_from_slice(&[0.4, 0.6, 0.1, -0.2, 0.01, 0.02]);
            let (cx, cy) = ((gx as f32 + 0.5) * s as f32, (gy as f32 + 0.5) * s as f32);
            decoded.extend_from_slice(&[cx + 1.5, cy - 2.0, 20.0, 30.0, 0.01, 0.02]);
        });
        assert!(yolox_needs_grid(&raw, 6, w, h, &STRIDES_P5));
        assert!(!yolox_needs_grid(&decoded, 6, w, h, &STRIDES_P5));
    }
}
