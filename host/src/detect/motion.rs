//! Model-free motion detector.
//!
//! 1. Downscale the luma plane to `analysis_width` (area average) - cheap,
//!    and it suppresses sensor noise.
//! 2. Difference with the previous analysis image; pixels whose brightness
//!    changed by more than `threshold` are "moving".
//! 3. Morphological closing (`closing` dilations, then as many erosions)
//!    joins the fragments of one object.
//! 4. Connected components (4-neighbour, union-find); components smaller than
//!    `min_area` (fraction of the frame) are dropped.
//! 5. Component boxes are scaled back to source-frame pixels; confidence is
//!    the fraction of the box that moved, mapped into 0.5..=1.

use super::Detected;
use crate::config::MotionConfig;

pub struct MotionDetector {
    config: MotionConfig,
    class_id: u32,
    width: usize,
    height: usize,
    previous: Vec<u8>,
    current: Vec<u8>,
    mask: Vec<u8>,
    scratch: Vec<u8>,
    /// Intermediate rows of the separable morphology.
    rows: Vec<u8>,
    labels: Vec<u32>,
    parent: Vec<u32>,
}

/// A borrowed 8-bit luma plane.
#[derive(Debug, Clone, Copy)]
pub struct LumaPlane<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl MotionDetector {
    pub fn new(config: MotionConfig, class_id: u32) -> Self {
        MotionDetector {
            config,
            class_id,
            width: 0,
            height: 0,
            previous: Vec::new(),
            current: Vec::new(),
            mask: Vec::new(),
            scratch: Vec::new(),
            rows: Vec::new(),
            labels: Vec::new(),
            parent: Vec::new(),
        }
    }

    /// Finds moving regions relative to the previous frame. The first frame
    /// (and the first after a size change) only primes the detector.
    pub fn detect(&mut self, plane: LumaPlane<'_>) -> Vec<Detected> {
        if plane.width == 0 || plane.height == 0 || plane.data.len() < plane.stride * (plane.height - 1) + plane.width {
            return Vec::new();
        }
        let width = (self.config.analysis_width as usize).min(plane.width).max(1);
        let height = (plane.height * width / plane.width).max(1);
        let primed = self.width == width && self.height == height;
        if !primed {
            self.width = width;
            self.height = height;
            self.previous = vec![0; width * height];
            self.current = vec![0; width * height];
            self.mask = vec![0; width * height];
            self.scratch = vec![0; width * height];
            self.rows = vec![0; width * height];
            self.labels = vec![0; width * height];
        }
        downscale(plane, width, height, &mut self.current);
        if !primed {
            self.previous.copy_from_slice(&self.current);
            return Vec::new();
        }
        let threshold = self.config.threshold;
        for ((m, &c), &p) in self.mask.iter_mut().zip(&self.current).zip(&self.previous) {
            *m = u8::from(c.abs_diff(p) > threshold);
        }
        std::mem::swap(&mut self.previous, &mut self.current);
        for _ in 0..self.config.closing {
            morph(&self.mask, &mut self.scratch, &mut self.rows, width, height, true);
            std::mem::swap(&mut self.mask, &mut self.scratch);
        }
        for _ in 0..self.config.closing {
            morph(&self.mask, &mut self.scratch, &mut self.rows, width, height, false);
            std::mem::swap(&mut self.mask, &mut self.scratch);
        }
        self.components(plane.width as f32 / width as f32, plane.height as f32 / height as f32)
    }

    /// Labels 4-connected components and returns their boxes in source pixels.
    fn components(&mut self, scale_x: f32, scale_y: f32) -> Vec<Detected> {
        let (width, height) = (self.width, self.height);
        self.parent.clear();
        self.parent.push(0);
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                if self.mask[i] == 0 {
                    self.labels[i] = 0;
                    continue;
                }
                let left = if x > 0 { self.labels[i - 1] } else { 0 };
                let up = if y > 0 { self.labels[i - width] } else { 0 };
                self.labels[i] = match (left, up) {
                    (0, 0) => {
                        let label = self.parent.len() as u32;
                        self.parent.push(label);
                        label
                    }
                    (a, 0) | (0, a) => a,
                    (a, b) => {
                        let (ra, rb) = (find(&mut self.parent, a), find(&mut self.parent, b));
                        if ra != rb {
                            self.parent[ra.max(rb) as usize] = ra.min(rb);
                        }
                        ra.min(rb)
                    }
                };
            }
        }
        // Bounding box and pixel count per root label.
        let mut boxes: Vec<Option<ComponentBox>> = vec![None; self.parent.len()];
        for y in 0..height {
            for x in 0..width {
                let label = self.labels[y * width + x];
                if label == 0 {
                    continue;
                }
                let root = find(&mut self.parent, label) as usize;
                let entry = boxes[root].get_or_insert((x, y, x, y, 0));
                entry.0 = entry.0.min(x);
                entry.1 = entry.1.min(y);
                entry.2 = entry.2.max(x);
                entry.3 = entry.3.max(y);
                entry.4 += 1;
            }
        }
        let min_pixels = (self.config.min_area * (width * height) as f32).max(1.0);
        boxes
            .into_iter()
            .flatten()
            .filter(|&(.., count)| count as f32 >= min_pixels)
            .map(|(x0, y0, x1, y1, count)| {
                let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
                let fill = count as f32 / (w * h) as f32;
                Detected {
                    left: x0 as f32 * scale_x,
                    top: y0 as f32 * scale_y,
                    width: w as f32 * scale_x,
                    height: h as f32 * scale_y,
                    confidence: (0.5 + fill / 2.0).min(1.0),
                    class_id: self.class_id,
                    object_id: None,
                }
            })
            .collect()
    }
}

/// x0, y0, x1, y1 (inclusive) and pixel count of a component.
type ComponentBox = (usize, usize, usize, usize, usize);

fn find(parent: &mut [u32], mut label: u32) -> u32 {
    while parent[label as usize] != label {
        let grand = parent[parent[label as usize] as usize];
        parent[label as usize] = grand;
        label = grand;
    }
    label
}

/// Downscales a luma plane. Small blocks are averaged whole; large blocks
/// (a 1080p frame into 160 columns is 12x12) average a 4x4 grid of samples
/// spread over the block: enough to suppress sensor noise at a tenth of the
/// memory reads of a full average.
fn downscale(plane: LumaPlane<'_>, width: usize, height: usize, out: &mut [u8]) {
    for oy in 0..height {
        let y0 = oy * plane.height / height;
        let y1 = ((oy + 1) * plane.height / height).max(y0 + 1);
        let ys = sample_points(y0, y1);
        for ox in 0..width {
            let x0 = ox * plane.width / width;
            let x1 = ((ox + 1) * plane.width / width).max(x0 + 1);
            let xs = sample_points(x0, x1);
            let mut sum = 0u32;
            let mut count = 0u32;
            for &y in ys.as_slice() {
                let row = &plane.data[y * plane.stride..];
                for &x in xs.as_slice() {
                    sum += u32::from(row[x]);
                    count += 1;
                }
            }
            out[oy * width + ox] = (sum / count.max(1)) as u8;
        }
    }
}

/// Up to four sample coordinates spread over `start..end`.
#[derive(Clone, Copy)]
struct Samples {
    points: [usize; 4],
    len: usize,
}

impl Samples {
    fn as_slice(&self) -> &[usize] {
        &self.points[..self.len]
    }
}

fn sample_points(start: usize, end: usize) -> Samples {
    let span = end - start;
    if span <= 4 {
        let mut points = [start; 4];
        for (i, p) in points.iter_mut().enumerate().take(span) {
            *p = start + i;
        }
        return Samples { points, len: span };
    }
    let step = span / 4;
    Samples {
        points: [start + step / 2, start + step / 2 + step, start + step / 2 + 2 * step, start + step / 2 + 3 * step],
        len: 4,
    }
}

/// One 3x3 dilation (`grow`) or erosion step on a 0/1 mask, done as a
/// horizontal then a vertical 3-tap pass (a 3x3 max/min is separable):
/// 6 reads per pixel instead of 9, no bounds checks inside rows. Outside the
/// image counts as 0.
fn morph(input: &[u8], output: &mut [u8], rows: &mut [u8], width: usize, height: usize, grow: bool) {
    let pick = |a: u8, b: u8| if grow { a.max(b) } else { a.min(b) };
    for (row_in, row_out) in input.chunks_exact(width).zip(rows.chunks_exact_mut(width)) {
        for x in 0..width {
            let left = if x > 0 { row_in[x - 1] } else { 0 };
            let right = if x + 1 < width { row_in[x + 1] } else { 0 };
            row_out[x] = pick(pick(left, row_in[x]), right);
        }
    }
    for y in 0..height {
        let current = &rows[y * width..(y + 1) * width];
        let out = &mut output[y * width..(y + 1) * width];
        match (y.checked_sub(1), (y + 1 < height).then_some(y + 1)) {
            (Some(up), Some(down)) => {
                let (above, below) = (&rows[up * width..(up + 1) * width], &rows[down * width..(down + 1) * width]);
                for x in 0..width {
                    out[x] = pick(pick(above[x], current[x]), below[x]);
                }
            }
            // First or last row: the missing neighbour row is 0.
            (Some(other), None) | (None, Some(other)) => {
                let neighbour = &rows[other * width..(other + 1) * width];
                for x in 0..width {
                    out[x] = pick(pick(neighbour[x], current[x]), 0);
                }
            }
            (None, None) => {
                for x in 0..width {
                    out[x] = pick(current[x], 0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook 3x3 version, as the reference for the separable one.
    fn morph_reference(input: &[u8], width: usize, height: usize, grow: bool) -> Vec<u8> {
        let mut output = vec![0; width * height];
        for y in 0..height {
            for x in 0..width {
                let (mut any, mut all) = (false, true);
                for dy in -1i32..=1 {
                    for dx in -1i32..=1 {
                        let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                        let inside = nx >= 0 && ny >= 0 && nx < width as i32 && ny < height as i32;
                        let v = inside && input[ny as usize * width + nx as usize] != 0;
                        any |= v;
                        all &= v;
                    }
                }
                output[y * width + x] = u8::from(if grow { any } else { all });
            }
        }
        output
    }

    #[test]
    fn separable_morphology_matches_the_reference() {
        let (width, height) = (23, 17);
        let mut state = 12345u32;
        let mask: Vec<u8> = (0..width * height)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                u8::from(!(state >> 16).is_multiple_of(3))
            })
            .collect();
        for grow in [true, false] {
            let (mut out, mut rows) = (vec![0; width * height], vec![0; width * height]);
            morph(&mask, &mut out, &mut rows, width, height, grow);
            assert_eq!(out, morph_reference(&mask, width, height, grow), "grow={grow}");
        }
    }

    fn frame_with_square(x: usize, y: usize) -> Vec<u8> {
        let (w, h) = (320, 240);
        let mut data = vec![30u8; w * h];
        for row in y..y + 40 {
            for col in x..x + 40 {
                data[row * w + col] = 220;
            }
        }
        data
    }

    #[test]
    fn finds_a_moving_square_where_it_is() {
        let config = MotionConfig { analysis_width: 160, threshold: 25, closing: 1, min_area: 0.001 };
        let mut detector = MotionDetector::new(config, 80);
        fn plane(data: &[u8]) -> LumaPlane<'_> {
            LumaPlane { data, width: 320, height: 240, stride: 320 }
        }
        let a = frame_with_square(40, 40);
        assert!(detector.detect(plane(&a)).is_empty(), "first frame primes");
        let b = frame_with_square(200, 120);
        let found = detector.detect(plane(&b));
        // Both where the square left and where it arrived changed.
        assert_eq!(found.len(), 2, "{found:?}");
        let arrived = found.iter().find(|d| d.left > 150.0).unwrap();
        assert!((arrived.left - 200.0).abs() <= 6.0 && (arrived.top - 120.0).abs() <= 6.0, "{arrived:?}");
        assert!((arrived.width - 40.0).abs() <= 8.0, "{arrived:?}");
        assert_eq!(arrived.class_id, 80);
        let still = detector.detect(plane(&b));
        assert!(still.is_empty(), "no motion, no objects");
    }
}
