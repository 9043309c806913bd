//! `scene://`: a deterministic synthetic street scene. Labelled objects
//! (people, cars, bicycles) enter from either side, cross, sometimes stop for
//! a while, and leave. Each frame is rendered (grey shapes on a gradient) and
//! carries its ground truth as ROI metadata with object ids and plausible
//! confidences, so end-to-end tests can predict every alert exactly.
//!
//! It is synthetic: useful for demos and tests, not evidence about real video.

use super::uri::SyntheticFormat;

/// Classes the scene renders, with their size relative to a 720-line frame
/// and their brightness.
const CLASSES: [(&str, f32, f32, u8); 3] =
    [("person", 40.0, 110.0, 235), ("bicycle", 80.0, 70.0, 180), ("car", 190.0, 100.0, 120)];

/// Seconds of video the script covers before it repeats.
pub const SCRIPT_SECONDS: u64 = 600;

/// One object's life in the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub id: u64,
    pub label: &'static str,
    brightness: u8,
    width: f32,
    height: f32,
    spawn_frame: u64,
    /// Bottom edge, pixels.
    ground_y: f32,
    /// Pixels per frame; negative = right to left.
    speed: f32,
    /// Where it stops (x of its left edge) and for how many frames.
    stop: Option<(f32, u64)>,
    base_confidence: f32,
}

/// An object in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject {
    pub id: u64,
    pub label: &'static str,
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub confidence: f32,
    brightness: u8,
}

/// Small deterministic generator (SplitMix64): the scene must not depend on
/// a random crate's algorithm changing.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The scene's script and renderer.
pub struct Scene {
    format: SyntheticFormat,
    actors: Vec<Actor>,
    /// Frames the script covers; later frames repeat it (see [`Scene::objects`]).
    horizon: u64,
    seed: u64,
    background: Vec<u8>,
}

impl Scene {
    pub fn new(seed: u64, format: SyntheticFormat) -> Self {
        let (w, h) = (format.width as f32, format.height as f32);
        let scale = h / 720.0;
        let mut rng = SplitMix(seed);
        let mut actors = Vec::new();
        // Script 10 minutes; frames past that repeat the script.
        let horizon = u64::from(format.fps.max(1)) * SCRIPT_SECONDS;
        let mut frame = u64::from(format.fps) / 2;
        let mut id = 1;
        while frame < horizon {
            let (label, cw, ch, brightness) = CLASSES[(rng.next() % 3) as usize];
            let lane = 0.45 + 0.5 * rng.unit();
            let speed = (2.0 + 4.0 * rng.unit()) * scale * if rng.next().is_multiple_of(2) { 1.0 } else { -1.0 };
            let stop = rng
                .next()
                .is_multiple_of(4)
                .then(|| (w * (0.3 + 0.4 * rng.unit()), u64::from(format.fps) * (1 + rng.next() % 3)));
            actors.push(Actor {
                id,
                label,
                brightness,
                width: cw * scale,
                height: ch * scale,
                spawn_frame: frame,
                ground_y: h * lane,
                speed,
                stop,
                base_confidence: 0.55 + 0.4 * rng.unit(),
            });
            id += 1;
            frame += u64::from(format.fps) * (1 + rng.next() % 2) + rng.next() % u64::from(format.fps);
        }
        let background = gradient(format.width as usize, format.height as usize);
        Scene { format, actors, horizon, seed, background }
    }

    pub fn format(&self) -> SyntheticFormat {
        self.format
    }

    /// Objects visible (at least partly) in frame `n`.
    ///
    /// The script covers [`SCRIPT_SECONDS`]; frame `n` plays it again from
    /// the start, cycle after cycle, so a scene source never runs dry. Each
    /// cycle's objects get ids of their own (the script's id plus the cycle
    /// times the number of scripted actors), and the objects of the previous
    /// cycle still crossing the frame at the wrap finish their way across.
    pub fn objects(&self, n: u64) -> Vec<SceneObject> {
        let cycle = n / self.horizon;
        let mut out = Vec::new();
        if cycle > 0 {
            self.cycle_objects(cycle - 1, n - (cycle - 1) * self.horizon, n, &mut out);
        }
        self.cycle_objects(cycle, n - cycle * self.horizon, n, &mut out);
        out
    }

    /// Objects of script cycle `cycle` at frame `local` of that cycle
    /// (frame `n` of the source).
    fn cycle_objects(&self, cycle: u64, local: u64, n: u64, out: &mut Vec<SceneObject>) {
        let w = self.format.width as f32;
        let id_base = cycle.wrapping_mul(self.actors.len() as u64);
        for actor in &self.actors {
            if local < actor.spawn_frame {
                break; // actors are sorted by spawn frame
            }
            let age = (local - actor.spawn_frame) as f32;
            let start = if actor.speed > 0.0 { -actor.width } else { w };
            let mut left = start + actor.speed * age;
            if let Some((stop_x, stop_frames)) = actor.stop {
                let stop_age = (stop_x - start) / actor.speed;
                if age >= stop_age {
                    let resumed = age - stop_age - stop_frames as f32;
                    left = stop_x + actor.speed * resumed.max(0.0);
                }
            }
            if left + actor.width <= 0.0 || left >= w {
                continue;
            }
            // Confidence wobbles per frame like a real detector's.
            let id = id_base.wrapping_add(actor.id);
            let mut rng = SplitMix(self.seed ^ id.wrapping_mul(0x1000_0001) ^ n);
            let confidence = (actor.base_confidence + 0.08 * (rng.unit() - 0.5)).clamp(0.05, 0.99);
            let height = actor.height;
            out.push(SceneObject {
                id,
                label: actor.label,
                left,
                top: actor.ground_y - height,
                width: actor.width,
                height,
                confidence,
                brightness: actor.brightness,
            });
        }
    }

    /// Renders frame `n` as I420 into `out` (resized as needed) and returns
    /// its objects, clipped to the frame, in integer pixels.
    pub fn render(&self, n: u64, out: &mut Vec<u8>) -> Vec<(SceneObject, (u32, u32, u32, u32))> {
        let (w, h) = (self.format.width as usize, self.format.height as usize);
        let chroma = (w / 2) * (h / 2);
        out.resize(w * h + 2 * chroma, 128);
        out[..w * h].copy_from_slice(&self.background);
        out[w * h..].fill(128);
        let mut visible = Vec::new();
        for object in self.objects(n) {
            let x0 = object.left.max(0.0).round() as usize;
            let y0 = object.top.max(0.0).round() as usize;
            let x1 = ((object.left + object.width).round() as usize).min(w);
            let y1 = ((object.top + object.height).round() as usize).min(h);
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            for row in y0..y1 {
                out[row * w + x0..row * w + x1].fill(object.brightness);
            }
            visible.push((object, (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)));
        }
        visible
    }
}

/// A soft vertical gradient: sky to road.
fn gradient(width: usize, height: usize) -> Vec<u8> {
    let mut plane = vec![0u8; width * height];
    for (y, row) in plane.chunks_exact_mut(width).enumerate() {
        row.fill((60 + 60 * y / height.max(1)) as u8);
    }
    plane
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> SyntheticFormat {
        SyntheticFormat { width: 1280, height: 720, fps: 30, realtime: false, frames: None }
    }

    #[test]
    fn deterministic_per_seed() {
        let a = Scene::new(7, format());
        let b = Scene::new(7, format());
        let c = Scene::new(8, format());
        assert_eq!(a.objects(300), b.objects(300));
        assert_ne!(a.objects(300), c.objects(300));
    }

    #[test]
    fn objects_enter_cross_and_leave_with_all_classes() {
        let scene = Scene::new(1, format());
        let mut labels = std::collections::BTreeSet::new();
        let mut seen_frames = std::collections::BTreeMap::<u64, (u64, u64)>::new();
        for n in 0..3000 {
            for o in scene.objects(n) {
                labels.insert(o.label);
                assert!((0.0..=1.0).contains(&o.confidence));
                let entry = seen_frames.entry(o.id).or_insert((n, n));
                entry.1 = n;
            }
        }
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert!(seen_frames.len() > 20);
        // Objects leave: most first-seen objects are gone again later.
        let gone = seen_frames.values().filter(|(_, last)| *last < 2999).count();
        assert!(gone > seen_frames.len() / 2);
        assert!(scene.actors.iter().any(|a| a.stop.is_some()), "some objects stop");
    }

    #[test]
    fn the_script_repeats_past_its_horizon_with_fresh_ids() {
        let fps = 15;
        let scene = Scene::new(4, SyntheticFormat { fps, ..format() });
        let horizon = u64::from(fps) * SCRIPT_SECONDS;
        assert_eq!(scene.horizon, horizon);
        let actors = scene.actors.len() as u64;
        // 30 minutes (three cycles): every minute of video has objects.
        for minute in 0..30 {
            let start = minute * 60 * u64::from(fps);
            let seen = (start..start + 60 * u64::from(fps)).map(|n| scene.objects(n).len()).sum::<usize>();
            assert!(seen > 0, "no objects in minute {minute}");
        }
        // Cycle 2 replays cycle 0 frame for frame (the script's positions),
        // with ids shifted by two cycles' worth of actors.
        let mut compared = 0;
        for local in (0..horizon).step_by(97) {
            let first: Vec<_> = scene.objects(local).into_iter().filter(|o| o.id <= actors).collect();
            let third: Vec<_> = scene.objects(2 * horizon + local).into_iter().filter(|o| o.id > 2 * actors).collect();
            assert_eq!(first.len(), third.len(), "frame {local}");
            for (a, b) in first.iter().zip(&third) {
                assert_eq!((b.id, b.label, b.left, b.top), (a.id + 2 * actors, a.label, a.left, a.top));
            }
            compared += first.len();
        }
        assert!(compared > 100, "compared {compared} objects");
    }

    #[test]
    fn objects_crossing_at_the_wrap_finish_their_way() {
        let scene = Scene::new(1, format());
        let horizon = scene.horizon;
        // Objects of the first cycle still on screen at its last frame are
        // there one frame later (same id), not cut off by the wrap.
        let last = scene.objects(horizon - 1);
        let next = scene.objects(horizon);
        let carried = last.iter().filter(|o| next.iter().any(|n| n.id == o.id)).count();
        assert!(carried > 0, "none of {last:?} carried into {next:?}");
        assert!(last.iter().all(|o| o.id <= scene.actors.len() as u64), "cycle 0 ids");
    }

    #[test]
    fn render_paints_the_objects() {
        let scene = Scene::new(3, format());
        let mut buffer = Vec::new();
        let n = (0..600).find(|&n| !scene.objects(n).is_empty()).unwrap();
        let visible = scene.render(n, &mut buffer);
        assert_eq!(buffer.len(), 1280 * 720 * 3 / 2);
        let (object, (x, y, w, _)) = visible[0];
        let pixel = buffer[(y as usize) * 1280 + (x + w / 2) as usize];
        assert_eq!(pixel, object.brightness);
    }
}
