//! Snapshots: every alert that passes the throttle gets a JPEG of the frame
//! its detection came from (taken from the source's frame ring), with the
//! box, label and confidence drawn, and a tight crop of the object.
//!
//! Encoding runs on a small pool of its own threads, never on a streaming
//! thread, a strategy worker or the dispatcher: when the pool's bounded
//! queue is full the snapshot is skipped and counted, and the alert goes on
//! without one. Sinks that carry the picture wait for it (bounded) on their
//! own threads. Scaling and colour conversion use GStreamer's own
//! `VideoConverter` (the code `videoconvert`/`videoscale` run); JPEG
//! encoding uses the `jpeg-encoder` crate (pure Rust, no system library, the
//! encoder the `image` crate uses); label text uses the public-domain 8x8
//! bitmap font of the `font8x8` crate.
//!
//! Files live under `<data-dir>/snapshots/<id[..2]>/<id>.jpg` (and
//! `<id>-crop.jpg`), named by the alert id, so a redelivered alert names the
//! same file. They go when the journal's retention removes their alert, and
//! the oldest go first beyond `max_mib`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::alert::AlertBox;
use crate::frame::ring::RingFrame;

/// `alerts.snapshots` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Take a snapshot for every alert that passes the throttle; default true.
    pub enabled: bool,
    /// Width of the full-frame picture (never scaled up); default 640.
    pub max_width: u32,
    /// JPEG quality, 1-100; default 80.
    pub quality: u8,
    /// Also write a tight crop of the object (at the frame's own
    /// resolution, at most `max_width` wide); default true.
    pub crop: bool,
    /// Memory each source's ring of recent frames may hold, MiB; default 32.
    pub ring_mib: u64,
    /// Most frames a ring holds; default 90 (3 s at 30 fps).
    pub ring_frames: usize,
    /// Disk the snapshots may use; the oldest go first beyond it; default 1024.
    pub max_mib: u64,
    /// Encoder threads; default 1.
    pub workers: usize,
    /// Snapshots waiting for an encoder; beyond it they are skipped; default 32.
    pub queue: usize,
    /// How long a sink that carries pictures waits for one, milliseconds; default 2000.
    pub wait_ms: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            enabled: true,
            max_width: 640,
            quality: 80,
            crop: true,
            ring_mib: 32,
            ring_frames: 90,
            max_mib: 1024,
            workers: 1,
            queue: 32,
            wait_ms: 2000,
        }
    }
}

impl SnapshotConfig {
    /// (field, problem) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(16..=7680).contains(&self.max_width) {
            problems.push(("max_width".into(), "must be within 16..=7680".into()));
        }
        if !(1..=100).contains(&self.quality) {
            problems.push(("quality".into(), "must be within 1..=100".into()));
        }
        if self.ring_mib == 0 || self.ring_frames == 0 {
            problems.push(("ring_mib".into(), "`ring_mib` and `ring_frames` must be at least 1".into()));
        }
        if self.workers == 0 || self.workers > 16 || self.queue == 0 {
            problems.push(("workers".into(), "`workers` must be within 1..=16 and `queue` at least 1".into()));
        }
        if self.max_mib == 0 {
            problems.push(("max_mib".into(), "must be at least 1".into()));
        }
        problems
    }
}

/// A snapshot as the alert JSON carries it (`snapshot`, optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The full-frame JPEG.
    pub path: String,
    /// SHA-256 of that file, hex.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// The crop's JPEG, when crops are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<String>,
}

/// Where the snapshot of alert `id` lives under `dir` (full frame, crop).
/// `None` for an id that is not an alert id (hex), so a request cannot name
/// another file.
pub fn paths(dir: &Path, id: &str) -> Option<(PathBuf, PathBuf)> {
    if id.len() < 8 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let folder = dir.join(&id[..2]);
    Some((folder.join(format!("{id}.jpg")), folder.join(format!("{id}-crop.jpg"))))
}

/// Removes the snapshot files of alert `id` (journal retention).
pub fn remove(dir: &Path, id: &str) {
    if let Some((full, crop)) = paths(dir, id) {
        let _ = std::fs::remove_file(full);
        let _ = std::fs::remove_file(crop);
    }
}

enum SlotState {
    Pending,
    Done(Snapshot),
    Skipped,
}

/// The snapshot of one alert, filled by an encoder when it is done.
pub struct SnapshotSlot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

impl SnapshotSlot {
    fn new() -> Arc<Self> {
        Arc::new(SnapshotSlot { state: Mutex::new(SlotState::Pending), ready: Condvar::new() })
    }

    fn set(&self, state: SlotState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.ready.notify_all();
    }

    /// The outcome without waiting: `None` while the encoder is still at
    /// it, `Some(None)` when it was skipped or failed.
    pub fn try_get(&self) -> Option<Option<Snapshot>> {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            SlotState::Pending => None,
            SlotState::Done(snapshot) => Some(Some(snapshot.clone())),
            SlotState::Skipped => Some(None),
        }
    }

    /// The snapshot, waiting up to `timeout` for it; `None` when it was
    /// skipped, failed or is late.
    pub fn wait(&self, timeout: Duration) -> Option<Snapshot> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |s| matches!(s, SlotState::Pending))
            .unwrap_or_else(|p| p.into_inner());
        match &*state {
            SlotState::Done(snapshot) => Some(snapshot.clone()),
            SlotState::Pending | SlotState::Skipped => None,
        }
    }
}

/// Snapshot counters (the `dshost_snapshots_total{result}` metric).
#[derive(Debug, Default)]
pub struct SnapshotStats {
    pub written: AtomicU64,
    /// The encoders were busy (queue full).
    pub skipped_busy: AtomicU64,
    /// The alert's frame had already left the source's ring (or the source
    /// keeps none, e.g. the DeepStream backend).
    pub skipped_no_frame: AtomicU64,
    pub failed: AtomicU64,
    /// Files removed to stay under `max_mib`.
    pub evicted: AtomicU64,
}

/// What an encoder needs for one alert.
pub struct SnapshotJob {
    pub seq: Option<i64>,
    pub alert_id: String,
    pub frame: Arc<RingFrame>,
    pub bbox: AlertBox,
    pub label: Arc<str>,
    pub confidence: f32,
}

struct Queued {
    job: SnapshotJob,
    slot: Arc<SnapshotSlot>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the frame cannot be read: {0}")]
    Frame(String),
    #[error("cannot convert the frame: {0}")]
    Convert(String),
    #[error("cannot encode the JPEG: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The encoder threads.
pub struct SnapshotPool {
    sender: Option<SyncSender<Queued>>,
    workers: Vec<JoinHandle<()>>,
    pub stats: Arc<SnapshotStats>,
    dir: PathBuf,
}

impl SnapshotPool {
    /// Starts the encoders writing under `dir`; each finished snapshot of a
    /// journaled alert is also sent to `done` (for the journal).
    pub fn start(
        config: &SnapshotConfig,
        dir: PathBuf,
        done: Sender<(i64, Snapshot)>,
        stats: Arc<SnapshotStats>,
    ) -> std::io::Result<SnapshotPool> {
        std::fs::create_dir_all(&dir)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Queued>(config.queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let store = Arc::new(Mutex::new(Store::scan(&dir, config.max_mib.saturating_mul(1 << 20))));
        let mut workers = Vec::new();
        for n in 0..config.workers.max(1) {
            let encoder = Encoder {
                config: config.clone(),
                dir: dir.clone(),
                receiver: receiver.clone(),
                done: done.clone(),
                stats: stats.clone(),
                store: store.clone(),
            };
            workers.push(std::thread::Builder::new().name(format!("snapshot-{n}")).spawn(move || encoder.run())?);
        }
        Ok(SnapshotPool { sender: Some(sender), workers, stats, dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues a snapshot; `None` (counted) when the encoders are busy.
    /// Never waits.
    pub fn submit(&self, job: SnapshotJob) -> Option<Arc<SnapshotSlot>> {
        let slot = SnapshotSlot::new();
        let sender = self.sender.as_ref()?;
        match sender.try_send(Queued { job, slot: slot.clone() }) {
            Ok(()) => Some(slot),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.stats.skipped_busy.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("snapshot encoders are busy: snapshots are skipped (alerts go on without them)");
                }
                None
            }
        }
    }
}

impl Drop for SnapshotPool {
    fn drop(&mut self) {
        // Closing the queue lets the encoders finish what is queued and end.
        self.sender.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The files on disk, oldest first, for the size cap. One entry per file,
/// up to `max_mib` of them (about 190,000 at the default cap with small
/// pictures), so a file is named compactly: an alert's picture by its id's
/// 16 bytes (a 48-byte entry with no allocation of its own; heaptrack
/// measured about 100 bytes a file with `PathBuf` keys), anything else found
/// by the scan by its path.
struct Store {
    dir: PathBuf,
    files: BTreeMap<(SystemTime, StoredName), u64>,
    bytes: u64,
    max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum StoredName {
    /// `<id[..2]>/<id>.jpg` or `<id>-crop.jpg` for a 32-digit hex id.
    Alert {
        id: [u8; 16],
        crop: bool,
    },
    Other(Box<Path>),
}

impl StoredName {
    fn of(dir: &Path, path: &Path) -> StoredName {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (stem, crop) = match name.strip_suffix("-crop.jpg") {
            Some(stem) => (stem, true),
            None => (name.strip_suffix(".jpg").unwrap_or_default(), false),
        };
        let mut id = [0u8; 16];
        let parsed = stem.len() == 32
            && id.iter_mut().enumerate().all(|(i, byte)| {
                u8::from_str_radix(stem.get(2 * i..2 * i + 2).unwrap_or("zz"), 16).map(|b| *byte = b).is_ok()
            });
        let name = StoredName::Alert { id, crop };
        // Only when the name maps back to exactly this path.
        if parsed && name.path(dir) == path {
            name
        } else {
            StoredName::Other(path.into())
        }
    }

    fn path(&self, dir: &Path) -> PathBuf {
        match self {
            StoredName::Alert { id, crop } => {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                let suffix = if *crop { "-crop.jpg" } else { ".jpg" };
                dir.join(&hex[..2]).join(format!("{hex}{suffix}"))
            }
            StoredName::Other(path) => path.to_path_buf(),
        }
    }
}

impl Store {
    fn scan(dir: &Path, max_bytes: u64) -> Store {
        let mut store = Store { dir: dir.to_path_buf(), files: BTreeMap::new(), bytes: 0, max_bytes };
        for folder in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(folder.path()).into_iter().flatten().flatten() {
                if let Ok(meta) = file.metadata() {
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    store.bytes += meta.len();
                    store.files.insert((modified, StoredName::of(dir, &file.path())), meta.len());
                }
            }
        }
        store
    }

    /// Records a new file; returns how many old files were removed.
    fn add(&mut self, path: PathBuf, size: u64) -> u64 {
        self.bytes += size;
        self.files.insert((SystemTime::now(), StoredName::of(&self.dir, &path)), size);
        let mut evicted = 0;
        while self.bytes > self.max_bytes && self.files.len() > 1 {
            let Some(((_, oldest), size)) = self.files.pop_first() else { break };
            // A file the journal's retention removed first is already gone.
            let _ = std::fs::remove_file(oldest.path(&self.dir));
            self.bytes = self.bytes.saturating_sub(size);
            evicted += 1;
        }
        evicted
    }
}

struct Encoder {
    config: SnapshotConfig,
    dir: PathBuf,
    receiver: Arc<Mutex<Receiver<Queued>>>,
    done: Sender<(i64, Snapshot)>,
    stats: Arc<SnapshotStats>,
    store: Arc<Mutex<Store>>,
}

impl Encoder {
    fn run(self) {
        loop {
            let next = self.receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(Queued { job, slot }) = next else { return };
            match self.write(&job) {
                Ok(snapshot) => {
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                    if let Some(seq) = job.seq {
                        let _ = self.done.send((seq, snapshot.clone()));
                    }
                    slot.set(SlotState::Done(snapshot));
                }
                Err(error) => {
                    if self.stats.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::error!(alert = %job.alert_id, error = %error, "cannot write a snapshot; the alert goes on without one");
                    }
                    slot.set(SlotState::Skipped);
                }
            }
        }
    }

    fn write(&self, job: &SnapshotJob) -> Result<Snapshot, SnapshotError> {
        let (full_path, crop_path) = paths(&self.dir, &job.alert_id)
            .ok_or_else(|| SnapshotError::Frame(format!("`{}` is not an alert id", job.alert_id)))?;
        let picture = render(job, &self.config)?;
        let sha256: String = Sha256::digest(&picture.jpeg).iter().map(|b| format!("{b:02x}")).collect();
        write_atomically(&full_path, &picture.jpeg)?;
        let mut files = vec![(full_path.clone(), picture.jpeg.len() as u64)];
        let crop = match &picture.crop {
            Some(crop) => {
                write_atomically(&crop_path, crop)?;
                files.push((crop_path.clone(), crop.len() as u64));
                Some(crop_path.display().to_string())
            }
            None => None,
        };
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        for (path, size) in files {
            let evicted = store.add(path, size);
            self.stats.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        Ok(Snapshot {
            path: full_path.display().to_string(),
            sha256,
            width: picture.width,
            height: picture.height,
            crop,
        })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let error = |source| SnapshotError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, bytes).map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

/// The encoded pictures of one alert.
pub struct Picture {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub crop: Option<Vec<u8>>,
}

/// Packed RGB pixels.
struct Rgb {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

/// Converts (a region of) `frame` to packed RGB at `width` x `height`.
fn convert(
    frame: &RingFrame,
    region: Option<(i32, i32, i32, i32)>,
    width: u32,
    height: u32,
) -> Result<Rgb, SnapshotError> {
    let input = gst_video::VideoFrame::from_buffer_readable(frame.buffer.clone(), &frame.info)
        .map_err(|_| SnapshotError::Frame("cannot map the frame for reading".into()))?;
    // Same frame rate: the converter refuses to convert rates.
    let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(frame.info.fps())
        .build()
        .map_err(|e| SnapshotError::Convert(e.to_string()))?;
    let mut config = gst_video::VideoConverterConfig::new();
    if let Some((x, y, w, h)) = region {
        config.set_src_x(x);
        config.set_src_y(y);
        config.set_src_width(Some(w));
        config.set_src_height(Some(h));
    }
    let converter = gst_video::VideoConverter::new(&frame.info, &out_info, Some(config))
        .map_err(|e| SnapshotError::Convert(e.to_string()))?;
    let buffer = gst::Buffer::with_size(out_info.size()).map_err(|e| SnapshotError::Convert(e.to_string()))?;
    let mut output = gst_video::VideoFrame::from_buffer_writable(buffer, &out_info)
        .map_err(|_| SnapshotError::Convert("cannot map the output frame".into()))?;
    converter.frame(&input, &mut output);
    let stride = output.plane_stride()[0].max(0) as usize;
    let data = output.plane_data(0).map_err(|e| SnapshotError::Convert(e.to_string()))?;
    let row = width as usize * 3;
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok(Rgb { pixels, width, height })
}

fn even(v: f64) -> u32 {
    ((v.round() as u32) & !1).max(2)
}

/// Draws the picture and the crop of one alert.
pub fn render(job: &SnapshotJob, config: &SnapshotConfig) -> Result<Picture, SnapshotError> {
    let frame = &job.frame;
    let (fw, fh) = (frame.info.width(), frame.info.height());
    let (sw, sh) = (frame.source_size.0.max(1), frame.source_size.1.max(1));
    let width = even(f64::from(config.max_width.min(sw.max(fw))));
    let height = even(f64::from(width) * f64::from(sh) / f64::from(sw));
    let mut picture = convert(frame, None, width, height)?;
    // The box is in source pixels.
    let (sx, sy) = (f64::from(width) / f64::from(sw), f64::from(height) / f64::from(sh));
    let b = job.bbox;
    let rect = (
        (f64::from(b.left) * sx) as i64,
        (f64::from(b.top) * sy) as i64,
        (f64::from(b.left + b.width) * sx) as i64,
        (f64::from(b.top + b.height) * sy) as i64,
    );
    let thickness = (width / 320).clamp(1, 4) as i64;
    draw_rect(&mut picture, rect, thickness, [255, 64, 32]);
    let text = format!("{} {:.2}", job.label, job.confidence);
    draw_label(&mut picture, rect.0, rect.1, &text);
    let jpeg = jpeg(&picture, config.quality)?;
    let crop = if config.crop {
        // The object with a fifth of its size around it, from the frame at
        // its own resolution.
        let (fx, fy) = (f64::from(fw) / f64::from(sw), f64::from(fh) / f64::from(sh));
        let margin_x = f64::from(b.width) * 0.2;
        let margin_y = f64::from(b.height) * 0.2;
        let x0 = ((f64::from(b.left) - margin_x) * fx).clamp(0.0, f64::from(fw.saturating_sub(2)));
        let y0 = ((f64::from(b.top) - margin_y) * fy).clamp(0.0, f64::from(fh.saturating_sub(2)));
        let x1 = ((f64::from(b.left + b.width) + margin_x) * fx).clamp(x0 + 2.0, f64::from(fw));
        let y1 = ((f64::from(b.top + b.height) + margin_y) * fy).clamp(y0 + 2.0, f64::from(fh));
        let (cw, ch) = (x1 - x0, y1 - y0);
        let scale = (f64::from(config.max_width) / cw).min(1.0);
        let region = (x0 as i32, y0 as i32, cw as i32, ch as i32);
        let crop = convert(frame, Some(region), even(cw * scale), even(ch * scale))?;
        Some(jpeg_of(&crop, config.quality)?)
    } else {
        None
    };
    Ok(Picture { jpeg, width, height, crop })
}

fn jpeg(picture: &Rgb, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    jpeg_of(picture, quality)
}

/// A small JPEG of `frame` (the console's live thumbnails), `width` wide.
pub fn thumbnail(frame: &RingFrame, width: u32, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    let (sw, sh) = (frame.source_size.0.max(1), frame.source_size.1.max(1));
    let width = even(f64::from(width.min(frame.info.width().max(2))));
    let height = even(f64::from(width) * f64::from(sh) / f64::from(sw));
    jpeg_of(&convert(frame, None, width, height)?, quality)
}

fn jpeg_of(picture: &Rgb, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::with_capacity(picture.pixels.len() / 8);
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    let (w, h) = (picture.width.min(u32::from(u16::MAX)) as u16, picture.height.min(u32::from(u16::MAX)) as u16);
    encoder.encode(&picture.pixels, w, h, jpeg_encoder::ColorType::Rgb)?;
    Ok(out)
}

fn put(picture: &mut Rgb, x: i64, y: i64, colour: [u8; 3]) {
    if x < 0 || y < 0 || x >= i64::from(picture.width) || y >= i64::from(picture.height) {
        return;
    }
    let at = (y as usize * picture.width as usize + x as usize) * 3;
    picture.pixels[at..at + 3].copy_from_slice(&colour);
}

fn draw_rect(picture: &mut Rgb, (x0, y0, x1, y1): (i64, i64, i64, i64), thickness: i64, colour: [u8; 3]) {
    for t in 0..thickness {
        for x in x0..=x1 {
            put(picture, x, y0 + t, colour);
            put(picture, x, y1 - t, colour);
        }
        for y in y0..=y1 {
            put(picture, x0 + t, y, colour);
            put(picture, x1 - t, y, colour);
        }
    }
}

/// `text` in the 8x8 font on a dark band above (or, at the top edge, inside)
/// the box's top-left corner.
fn draw_label(picture: &mut Rgb, x: i64, y: i64, text: &str) {
    use font8x8::UnicodeFonts;
    let scale: i64 = if picture.width >= 960 { 2 } else { 1 };
    let glyph = 8 * scale;
    let top = if y >= glyph + 2 { y - glyph - 2 } else { y + 2 };
    let width = text.chars().count() as i64 * glyph + 4;
    for dy in 0..glyph + 2 {
        for dx in 0..width {
            put(picture, x + dx, top + dy, [24, 24, 24]);
        }
    }
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = font8x8::BASIC_FONTS.get(c) else { continue };
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let px = x + 2 + i as i64 * glyph + col * scale + sx;
                            let py = top + 1 + row as i64 * scale + sy;
                            put(picture, px, py, [255, 255, 255]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 320x180 I420 frame: a grey background with a white rectangle at
    /// (100, 40)-(160, 140) in source pixels of a 640x360 source.
    fn frame() -> RingFrame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 320, 180)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        {
            let buffer = buffer.get_mut().unwrap();
            let mut video = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info).unwrap();
            let stride = video.plane_stride()[0] as usize;
            let luma = video.plane_data_mut(0).unwrap();
            for y in 0..180 {
                for x in 0..320 {
                    luma[y * stride + x] = if (50..80).contains(&x) && (20..70).contains(&y) { 235 } else { 100 };
                }
            }
            for plane in 1..3 {
                video.plane_data_mut(plane).unwrap().fill(128);
            }
        }
        RingFrame { frame_number: 7, pts_ns: 0, buffer, info, source_size: (640, 360) }
    }

    #[test]
    fn a_slot_tells_pending_from_skipped_without_waiting() {
        let slot = SnapshotSlot::new();
        assert_eq!(slot.try_get(), None);
        slot.set(SlotState::Skipped);
        assert_eq!(slot.try_get(), Some(None));
        let done = SnapshotSlot::new();
        let snapshot = Snapshot { path: "a.jpg".into(), sha256: "00".into(), width: 2, height: 2, crop: None };
        done.set(SlotState::Done(snapshot.clone()));
        assert_eq!(done.try_get(), Some(Some(snapshot)));
    }

    fn job() -> SnapshotJob {
        SnapshotJob {
            seq: Some(1),
            alert_id: "0123456789abcdef0123456789abcdef".into(),
            frame: Arc::new(frame()),
            bbox: AlertBox { left: 100.0, top: 40.0, width: 60.0, height: 100.0 },
            label: "person".into(),
            confidence: 0.8,
        }
    }

    #[test]
    fn pictures_are_jpegs_of_the_right_size_with_the_box_drawn() {
        let config = SnapshotConfig { max_width: 640, ..SnapshotConfig::default() };
        let picture = render(&job(), &config).unwrap();
        assert_eq!((picture.width, picture.height), (640, 360), "the source's size, capped at max_width");
        assert_eq!(&picture.jpeg[..2], &[0xFF, 0xD8], "JPEG start of image");
        assert_eq!(&picture.jpeg[picture.jpeg.len() - 2..], &[0xFF, 0xD9], "JPEG end of image");
        let crop = picture.crop.unwrap();
        assert_eq!(&crop[..2], &[0xFF, 0xD8]);
        // Decoded by GStreamer's own JPEG decoder, independently of us.
        let (w, h, pixels) = decode_jpeg(&picture.jpeg);
        assert_eq!((w, h), (640, 360));
        let at = |x: usize, y: usize| &pixels[(y * w + x) * 3..(y * w + x) * 3 + 3];
        // The box edge is drawn in orange-red over the grey background.
        let edge = at(130, 140);
        assert!(edge[0] > 200 && edge[1] < 120 && edge[2] < 100, "box edge {edge:?}");
        // Inside the box, the white object; outside, the grey background.
        assert!(at(130, 90).iter().all(|&c| c > 200), "object {:?}", at(130, 90));
        assert!(at(400, 300).iter().all(|&c| (80..130).contains(&c)), "background {:?}", at(400, 300));
        let (cw, ch, _) = decode_jpeg(&crop);
        // 60x100 source pixels plus 20 % on each side, at the frame's
        // half resolution: 42 x 70 (even).
        assert_eq!((cw, ch), (42, 70));
    }

    /// `jpegdec` from gst-plugins-good decodes `jpeg` to packed RGB.
    fn decode_jpeg(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        use gstreamer::prelude::*;
        use gstreamer_app as gst_app;
        let pipeline = gst::parse::launch(
            "appsrc name=src caps=image/jpeg ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec())).unwrap();
        src.end_of_stream().unwrap();
        let sample = sink.pull_sample().unwrap();
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap();
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).unwrap();
        let (w, h) = (info.width() as usize, info.height() as usize);
        let mut pixels = Vec::new();
        for y in 0..h {
            pixels.extend_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        pipeline.set_state(gst::State::Null).unwrap();
        (w, h, pixels)
    }

    #[test]
    fn the_pool_writes_files_named_by_the_alert_and_fills_the_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let stats = Arc::new(SnapshotStats::default());
        let pool =
            SnapshotPool::start(&SnapshotConfig::default(), dir.path().to_path_buf(), done, stats.clone()).unwrap();
        let slot = pool.submit(job()).unwrap();
        let snapshot = slot.wait(Duration::from_secs(10)).unwrap();
        let (full, crop) = paths(dir.path(), "0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(snapshot.path, full.display().to_string());
        assert_eq!(snapshot.crop, Some(crop.display().to_string()));
        let bytes = std::fs::read(&full).unwrap();
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(snapshot.sha256, digest);
        assert_eq!(finished.recv_timeout(Duration::from_secs(5)).unwrap().0, 1);
        assert_eq!(stats.written.load(Ordering::Relaxed), 1);
        remove(dir.path(), "0123456789abcdef0123456789abcdef");
        assert!(!full.exists() && !crop.exists());
        assert!(paths(dir.path(), "../../etc/passwd").is_none());
    }

    #[test]
    fn alert_pictures_are_named_by_their_id_and_map_back_to_their_paths() {
        let dir = Path::new("/data/snapshots");
        let (full, crop) = paths(dir, "b187e609db631a8ad0c8a42e382ea77d").unwrap();
        for path in [&full, &crop] {
            let name = StoredName::of(dir, path);
            assert!(matches!(name, StoredName::Alert { .. }), "{path:?} -> {name:?}");
            assert_eq!(&name.path(dir), path);
        }
        assert_ne!(StoredName::of(dir, &full), StoredName::of(dir, &crop));
        // Short ids, upper-case hex, foreign files and files in the wrong
        // folder keep their path.
        for odd in [
            "/data/snapshots/ab/abcdef01.jpg",
            "/data/snapshots/B1/B187E609DB631A8AD0C8A42E382EA77D.jpg",
            "/data/snapshots/b1/notes.txt",
            "/data/snapshots/zz/b187e609db631a8ad0c8a42e382ea77d.jpg",
        ] {
            let name = StoredName::of(dir, Path::new(odd));
            assert!(matches!(name, StoredName::Other(_)), "{odd} -> {name:?}");
            assert_eq!(name.path(dir), Path::new(odd));
        }
    }

    #[test]
    fn the_oldest_files_go_beyond_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::scan(dir.path(), 250);
        let mut evicted = 0;
        for n in 0..5 {
            let path = dir.path().join(format!("{n}.jpg"));
            std::fs::write(&path, [0u8; 100]).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            evicted += store.add(path, 100);
        }
        assert_eq!(evicted, 3);
        let left: Vec<String> = {
            let mut names: Vec<String> =
                std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };
        assert_eq!(left, ["3.jpg", "4.jpg"]);
    }
}
