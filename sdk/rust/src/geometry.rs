//! Zone and line helpers. Coordinates are whatever space the caller uses
//! consistently; strategies usually convert pixels to normalized 0..1 frame
//! coordinates first with [`normalize`].

/// A point `(x, y)`.
pub type Point = (f32, f32);

/// Converts a pixel point to normalized 0..1 frame coordinates.
pub fn normalize(point: Point, frame_width: u32, frame_height: u32) -> Point {
    let w = frame_width.max(1) as f32;
    let h = frame_height.max(1) as f32;
    (point.0 / w, point.1 / h)
}

/// A simple polygon (at least three vertices, implicitly closed).
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    vertices: Vec<Point>,
}

impl Polygon {
    /// Builds a polygon; fails with a readable message when it has fewer than
    /// three vertices or a non-finite coordinate.
    pub fn new(vertices: Vec<Point>) -> Result<Self, String> {
        if vertices.len() < 3 {
            return Err(format!("a polygon needs at least 3 points, got {}", vertices.len()));
        }
        if vertices.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return Err("polygon coordinates must be finite numbers".to_string());
        }
        Ok(Polygon { vertices })
    }

    pub fn vertices(&self) -> &[Point] {
        &self.vertices
    }

    /// Whether `point` lies inside (even-odd rule; points on an edge may go
    /// either way, which is irrelevant for pixel-sized boxes).
    pub fn contains(&self, point: Point) -> bool {
        let (px, py) = point;
        let mut inside = false;
        let n = self.vertices.len();
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = self.vertices[i];
            let (xj, yj) = self.vertices[j];
            if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// A directed line segment from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: Point,
    pub end: Point,
}

impl Segment {
    pub fn new(start: Point, end: Point) -> Result<Self, String> {
        let finite = [start.0, start.1, end.0, end.1].iter().all(|v| v.is_finite());
        if !finite {
            return Err("line coordinates must be finite numbers".to_string());
        }
        if start == end {
            return Err("a line needs two distinct points".to_string());
        }
        Ok(Segment { start, end })
    }

    /// Signed distance of `point` from the infinite line through the segment,
    /// in the units of the coordinates. Positive is on the right-hand side
    /// when walking from `start` to `end` as seen on screen (y grows
    /// downwards): for a left-to-right line, positive is below it.
    pub fn signed_distance(&self, point: Point) -> f32 {
        let (dx, dy) = (self.end.0 - self.start.0, self.end.1 - self.start.1);
        let length = (dx * dx + dy * dy).sqrt();
        (dx * (point.1 - self.start.1) - dy * (point.0 - self.start.0)) / length
    }

    /// Position of the point's projection along the segment: 0 at `start`,
    /// 1 at `end`, outside 0..=1 beyond the ends.
    pub fn projection(&self, point: Point) -> f32 {
        let (dx, dy) = (self.end.0 - self.start.0, self.end.1 - self.start.1);
        ((point.0 - self.start.0) * dx + (point.1 - self.start.1) * dy) / (dx * dx + dy * dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_contains_points_inside_only() {
        let square = Polygon::new(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).unwrap();
        assert!(square.contains((0.5, 0.5)));
        assert!(!square.contains((1.5, 0.5)));
        let concave = Polygon::new(vec![(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (1.0, 1.0), (0.0, 2.0)]).unwrap();
        assert!(!concave.contains((1.0, 1.8)));
        assert!(concave.contains((0.5, 1.0)));
        assert!(Polygon::new(vec![(0.0, 0.0), (1.0, 1.0)]).is_err());
    }

    #[test]
    fn segment_sides_and_projection() {
        let line = Segment::new((0.0, 0.5), (1.0, 0.5)).unwrap();
        assert!(line.signed_distance((0.5, 0.2)) < 0.0);
        assert!(line.signed_distance((0.5, 0.8)) > 0.0);
        assert!((line.signed_distance((0.5, 0.8)) - 0.3).abs() < 1e-6);
        assert!((line.projection((0.25, 0.9)) - 0.25).abs() < 1e-6);
        assert!(Segment::new((0.1, 0.1), (0.1, 0.1)).is_err());
    }
}
