//! The CPU backend: one GStreamer pipeline per source.
//!
//! `<source> ! [decodebin] ! videoconvert ! video/x-raw,format=<8-bit luma first> ! appsink`
//!
//! With GPU decode (see `decode`) the decodebin takes `nvv4l2decoder` and
//! `nvvideoconvert ! video/x-raw,format=GRAY8,<analysis size>` sits before
//! `videoconvert`: only the small image the object stage reads leaves the GPU.
//!
//! The caps ask for formats whose first plane is 8-bit luma, so for the usual
//! decoder output (I420, NV12) `videoconvert` is a passthrough and upstream
//! metadata (ROI metas) arrives untouched. The appsink callback is the object
//! stage and the hand-off: it runs the detector, encodes the compact frame
//! into a pooled buffer and pushes it into the source's queue without ever
//! blocking.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::decode::{self, DecodePath};
use super::metrics::SourceMetrics;
use super::queue::FrameQueue;
use super::scene::Scene;
use super::source::SourceSpec;
use super::uri::SourceUri;
use crate::config::{DetectorKind, MotionConfig, RtspTransport, TrackerConfig};
use crate::detect::motion::LumaPlane;
use crate::detect::{roi, Detected, IouTracker, MotionDetector};
use crate::frame::{CompactFrame, LabelTable, Object, UNTRACKED};

/// Formats whose plane 0 is 8-bit luma at full resolution.
const LUMA_FORMATS: &str = "{ I420, NV12, YV12, NV21, Y42B, Y444, GRAY8 }";

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("GStreamer element `{element}` is missing; install {package}")]
    MissingElement { element: &'static str, package: &'static str },
    #[error("cannot assemble the pipeline: {0}")]
    Link(String),
}

/// What the object stage of one source needs; survives pipeline restarts.
pub struct StageContext {
    pub source_id: Arc<str>,
    pub queue: Arc<FrameQueue>,
    pub metrics: Arc<SourceMetrics>,
    pub labels: Arc<LabelTable>,
    pub motion: MotionConfig,
    pub tracker: TrackerConfig,
    /// Frame numbers continue across restarts.
    pub frame_counter: Arc<AtomicU64>,
    /// Set when the source is being stopped.
    pub stop: Arc<AtomicBool>,
    /// How compressed video is decoded (chosen once, when the source is added).
    pub decode: DecodePath,
}

fn make(element: &'static str, package: &'static str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(element).build().map_err(|_| BuildError::MissingElement { element, package })
}

const BASE: &str = "gstreamer1.0-plugins-base";
const GOOD: &str = "gstreamer1.0-plugins-good";
const DEEPSTREAM: &str = "DeepStream or the bundle of scripts/bundle-gpu.sh";

/// Builds the pipeline of one source.
pub fn build(spec: &SourceSpec, stage: &StageContext) -> Result<gst::Pipeline, BuildError> {
    let pipeline = gst::Pipeline::with_name(&format!("source-{}", spec.id));
    let convert = make("videoconvert", BASE)?;
    let filter = make("capsfilter", BASE)?;
    let caps: gst::Caps =
        format!("video/x-raw,format={LUMA_FORMATS}").parse().map_err(|e| BuildError::Link(format!("caps: {e}")))?;
    filter.set_property("caps", &caps);
    let sink = gst_app::AppSink::builder().sync(spec.realtime).max_buffers(2).enable_last_sample(false).build();
    let sink_element: gst::Element = sink.clone().upcast();
    pipeline.add_many([&convert, &filter, &sink_element]).map_err(|e| BuildError::Link(e.to_string()))?;
    gst::Element::link_many([&convert, &filter, &sink_element]).map_err(|e| BuildError::Link(e.to_string()))?;

    let uses_roi_truth = matches!(spec.uri, SourceUri::Scene { .. });
    // Source size (width << 32 | height) when the frames reaching the appsink
    // were scaled down on the GPU; 0 = they have the source's size.
    let source_size = Arc::new(AtomicU64::new(0));
    match &spec.uri {
        SourceUri::File { .. } | SourceUri::Rtsp { .. } | SourceUri::Http { .. } => {
            let target = match stage.decode {
                DecodePath::Gpu => add_gpu_converter(&pipeline, &convert, stage.motion.analysis_width, &source_size)?,
                DecodePath::Cpu | DecodePath::None => convert.clone(),
            };
            add_uridecodebin(&pipeline, spec, &target, stage.decode)?;
        }
        SourceUri::V4l2 { device } => {
            let src = make("v4l2src", GOOD)?;
            src.set_property("device", device.to_string_lossy().as_ref());
            let decode = make("decodebin", BASE)?;
            steer_decoders(&decode, DecodePath::Cpu);
            pipeline.add_many([&src, &decode]).map_err(|e| BuildError::Link(e.to_string()))?;
            src.link(&decode).map_err(|e| BuildError::Link(e.to_string()))?;
            link_video_pads(&pipeline, &decode, &convert);
        }
        SourceUri::Test { pattern, format } => {
            let src = make("videotestsrc", BASE)?;
            src.set_property_from_str("pattern", pattern);
            src.set_property("is-live", format.realtime);
            if let Some(frames) = format.frames {
                src.set_property("num-buffers", i32::try_from(frames).unwrap_or(i32::MAX));
            }
            let caps_filter = make("capsfilter", BASE)?;
            let caps: gst::Caps = format!(
                "video/x-raw,format=I420,width={},height={},framerate={}/1",
                format.width, format.height, format.fps
            )
            .parse()
            .map_err(|e| BuildError::Link(format!("caps: {e}")))?;
            caps_filter.set_property("caps", &caps);
            pipeline.add_many([&src, &caps_filter]).map_err(|e| BuildError::Link(e.to_string()))?;
            gst::Element::link_many([&src, &caps_filter, &convert]).map_err(|e| BuildError::Link(e.to_string()))?;
        }
        SourceUri::Scene { seed, format } => {
            let src = scene_source(Scene::new(*seed, *format), stage.frame_counter.load(Ordering::Relaxed))?;
            pipeline.add(&src).map_err(|e| BuildError::Link(e.to_string()))?;
            src.link(&convert).map_err(|e| BuildError::Link(e.to_string()))?;
        }
    }

    let detector = match spec.detector {
        DetectorKind::Auto if uses_roi_truth => DetectorKind::Roi,
        other => other,
    };
    let mut object_stage = ObjectStage::new(detector, stage);
    let queue = stage.queue.clone();
    let metrics = stage.metrics.clone();
    let source_id = stage.source_id.clone();
    let counter = stage.frame_counter.clone();
    let stop = stage.stop.clone();
    record_decoder(&pipeline, &stage.metrics);
    // Clock-paced sources (cameras, real-time playback) must never wait:
    // the oldest queued frame is dropped instead. Unpaced ones (files read
    // as fast as possible) wait for room, so no frame goes unanalysed.
    let paced = spec.realtime;
    // Caps change rarely; parsing them per frame would allocate per frame.
    let mut format: Option<(gst::Caps, gst_video::VideoInfo)> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let known = format.as_ref().is_some_and(|(cached, _)| cached.as_ptr() == caps.as_ptr());
                if !known {
                    let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    format = Some((caps.to_owned(), info));
                }
                let Some((_, info)) = format.as_ref() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                metrics.mark_frame();
                let number = counter.fetch_add(1, Ordering::Relaxed);
                let (width, height) = match source_size.load(Ordering::Relaxed) {
                    0 => (info.width(), info.height()),
                    packed => ((packed >> 32) as u32, packed as u32),
                };
                let mut frame = CompactFrame {
                    source_id: source_id.clone(),
                    frame_number: number,
                    pts_ns: buffer.pts().map(|t| t.nseconds()).unwrap_or(0),
                    width,
                    height,
                    objects: queue.take_buffer(),
                    captured_at: std::time::Instant::now(),
                };
                let count = object_stage.run(buffer, info, &mut frame);
                frame.captured_at = std::time::Instant::now();
                metrics.objects.fetch_add(count as u64, Ordering::Relaxed);
                if paced {
                    if queue.push(frame) {
                        metrics.dropped_backlog.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    queue.push_waiting(frame, &stop);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

fn add_uridecodebin(
    pipeline: &gst::Pipeline,
    spec: &SourceSpec,
    convert: &gst::Element,
    path: DecodePath,
) -> Result<(), BuildError> {
    let decode = make("uridecodebin", BASE)?;
    steer_decoders(&decode, path);
    let (uri, user, password) = match &spec.uri {
        SourceUri::File { path } => {
            let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let uri = gst::glib::filename_to_uri(&absolute, None)
                .map_err(|e| BuildError::Link(format!("file path: {e}")))?
                .to_string();
            (uri, None, None)
        }
        SourceUri::Rtsp { url, user, password } | SourceUri::Http { url, user, password } => {
            (url.to_string(), user.clone(), password.clone())
        }
        _ => return Err(BuildError::Link("not a URI source".to_string())),
    };
    decode.set_property("uri", &uri);
    let rtsp = spec.rtsp.clone();
    // Credentials go into the source element's properties, never into the
    // URI, so GStreamer's own logs and messages cannot leak them.
    decode.connect("source-setup", false, move |values| {
        let source = values.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        let has = |name: &str| source.find_property(name).is_some();
        if has("user-id") {
            if let Some(user) = &user {
                source.set_property("user-id", user);
            }
            if let Some(password) = &password {
                source.set_property("user-pw", password);
            }
        }
        if has("protocols") {
            source.set_property_from_str(
                "protocols",
                match rtsp.transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                },
            );
        }
        if has("latency") {
            source.set_property("latency", rtsp.latency_ms);
        }
        None
    });
    pipeline.add(&decode).map_err(|e| BuildError::Link(e.to_string()))?;
    link_video_pads(pipeline, &decode, convert);
    Ok(())
}

/// `nvvideoconvert ! capsfilter` in front of `convert`: scales the decoded
/// NVMM frame on the GPU to the analysis size and copies only that to
/// system memory. Returns the element the decoder links to.
fn add_gpu_converter(
    pipeline: &gst::Pipeline,
    convert: &gst::Element,
    analysis_width: u32,
    source_size: &Arc<AtomicU64>,
) -> Result<gst::Element, BuildError> {
    let nvconvert = make(decode::GPU_CONVERTER, DEEPSTREAM)?;
    // Area averaging ("super" sampling) for the large downscale, like the
    // motion detector's own; the default (nearest) would alias.
    set_enum_matching(&nvconvert, "interpolation-method", &["super", "bilinear"]);
    let filter = make("capsfilter", BASE)?;
    filter.set_property("caps", analysis_caps(None));
    pipeline.add_many([&nvconvert, &filter]).map_err(|e| BuildError::Link(e.to_string()))?;
    gst::Element::link_many([&nvconvert, &filter, convert]).map_err(|e| BuildError::Link(e.to_string()))?;
    let Some(sink_pad) = nvconvert.static_pad("sink") else {
        return Err(BuildError::Link(format!("{} has no sink pad", decode::GPU_CONVERTER)));
    };
    // The analysis size follows the source's, known only from its caps (and
    // it may change mid-stream): set it as each CAPS event passes, before
    // nvvideoconvert negotiates its output.
    let filter = filter.downgrade();
    let size = source_size.clone();
    sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(caps) = event.view() else {
            return gst::PadProbeReturn::Ok;
        };
        let dims =
            caps.caps().structure(0).and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)));
        if let (Some((width, height)), Some(filter)) = (dims, filter.upgrade()) {
            let (width, height) = (width.max(0) as u32, height.max(0) as u32);
            size.store(u64::from(width) << 32 | u64::from(height), Ordering::Relaxed);
            let analysis = decode::analysis_size(width, height, analysis_width);
            filter.set_property("caps", analysis_caps(Some(analysis)));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(nvconvert)
}

/// System-memory luma-first caps, at `size` when given.
fn analysis_caps(size: Option<(u32, u32)>) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw").field("format", gst::List::new(["GRAY8", "NV12", "I420"]));
    if let Some((width, height)) = size {
        caps = caps.field("width", width as i32).field("height", height as i32);
    }
    caps.build()
}

/// Sets an enum property to the first value whose nick or name contains one
/// of `wanted` (in order); leaves it alone when there is none.
fn set_enum_matching(element: &gst::Element, property: &str, wanted: &[&str]) {
    let Some(spec) = element.find_property(property) else {
        return;
    };
    let Some(class) = gst::glib::EnumClass::with_type(spec.value_type()) else {
        return;
    };
    for want in wanted {
        let found = class
            .values()
            .iter()
            .find(|v| v.nick().to_lowercase().contains(want) || v.name().to_lowercase().contains(want));
        if let Some(value) = found.and_then(|v| class.to_value(v.value())) {
            element.set_property_from_value(property, &value);
            return;
        }
    }
}

/// Makes a decode bin take the decoder `path` asks for (see
/// `decode::autoplug_choice`).
fn steer_decoders(bin: &gst::Element, path: DecodePath) {
    let Some(class) = gst::glib::Type::from_name("GstAutoplugSelectResult").and_then(gst::glib::EnumClass::with_type)
    else {
        tracing::warn!("GStreamer has no GstAutoplugSelectResult type; decoders are picked by rank alone");
        return;
    };
    let gpu_caps = gst::ElementFactory::find(decode::GPU_DECODER).and_then(|factory| {
        factory.static_pad_templates().iter().find(|t| t.direction() == gst::PadDirection::Sink).map(|t| t.caps())
    });
    bin.connect("autoplug-select", false, move |values| {
        let factory = values.get(3).and_then(|v| v.get::<gst::ElementFactory>().ok());
        let caps = values.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let choice = match factory {
            Some(factory) => {
                let is_video_decoder =
                    factory.has_type(gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO);
                let accepts = match (&gpu_caps, &caps) {
                    (Some(gpu), Some(caps)) => gpu.can_intersect(caps),
                    _ => false,
                };
                decode::autoplug_choice(path, factory.name().as_str(), is_video_decoder, accepts)
            }
            None => decode::Autoplug::Try,
        };
        class.to_value(choice as i32)
    });
}

/// Records the video decoder element the decode bin picked (summary,
/// log): proof of which decoder actually ran.
fn record_decoder(pipeline: &gst::Pipeline, metrics: &Arc<SourceMetrics>) {
    let metrics = metrics.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        let Some(factory) = element.factory() else {
            return;
        };
        if factory.has_type(gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO) {
            metrics.set_decoder(factory.name().to_string());
        }
    });
}

/// Links the first video pad of a decode bin to `convert`; other streams
/// (audio) go to a fakesink so they neither block nor fail the pipeline.
fn link_video_pads(pipeline: &gst::Pipeline, decode: &gst::Element, convert: &gst::Element) {
    let pipeline = pipeline.downgrade();
    let convert = convert.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(convert)) = (pipeline.upgrade(), convert.upgrade()) else {
            return;
        };
        let is_video = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        let Some(sink_pad) = convert.static_pad("sink") else {
            return;
        };
        if is_video && !sink_pad.is_linked() {
            if let Err(error) = pad.link(&sink_pad) {
                tracing::warn!(error = ?error, "cannot link the decoded video stream");
            }
            return;
        }
        if let Ok(fake) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
        {
            if pipeline.add(&fake).is_ok() {
                let _ = fake.sync_state_with_parent();
                if let Some(fake_pad) = fake.static_pad("sink") {
                    let _ = pad.link(&fake_pad);
                }
            }
        }
    });
}

/// An appsrc that renders the synthetic scene, starting at frame `first`.
fn scene_source(scene: Scene, first: u64) -> Result<gst::Element, BuildError> {
    let format = scene.format();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, format.width, format.height)
        .fps(gst::Fraction::new(format.fps as i32, 1))
        .build()
        .map_err(|e| BuildError::Link(format!("scene format: {e}")))?;
    let caps = info.to_caps().map_err(|e| BuildError::Link(format!("scene caps: {e}")))?;
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(format.realtime).build();
    let frame_ns = 1_000_000_000 / u64::from(format.fps);
    let mut next = first;
    let end = format.frames;
    let mut pixels = Vec::new();
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |appsrc, _| {
                if end.is_some_and(|end| next >= end) {
                    let _ = appsrc.end_of_stream();
                    return;
                }
                let objects = scene.render(next, &mut pixels);
                let mut buffer = gst::Buffer::from_slice(pixels.clone());
                if let Some(buffer) = buffer.get_mut() {
                    buffer.set_pts(gst::ClockTime::from_nseconds(next * frame_ns));
                    buffer.set_duration(gst::ClockTime::from_nseconds(frame_ns));
                    for (object, rect) in objects {
                        roi::attach_roi(buffer, object.label, rect, f64::from(object.confidence), object.id);
                    }
                }
                next += 1;
                let _ = appsrc.push_buffer(buffer);
            })
            .build(),
    );
    Ok(src.upcast())
}

/// Detector + tracker state of one source.
struct ObjectStage {
    kind: DetectorKind,
    /// Set once a frame carried ROI metadata (for `auto`).
    seen_roi: bool,
    motion: MotionDetector,
    tracker: Option<IouTracker>,
    labels: LabelTable,
    source_id: Arc<str>,
    found: Vec<Detected>,
}

impl ObjectStage {
    fn new(kind: DetectorKind, stage: &StageContext) -> Self {
        let mut labels = (*stage.labels).clone();
        let motion_class = labels.intern("motion");
        ObjectStage {
            kind,
            seen_roi: false,
            motion: MotionDetector::new(stage.motion.clone(), motion_class),
            tracker: stage.tracker.enabled.then(|| IouTracker::new(stage.tracker.clone())),
            labels,
            source_id: stage.source_id.clone(),
            found: Vec::new(),
        }
    }

    /// Finds the frame's objects and encodes them into `frame`. `info` is
    /// the buffer's format; `frame` carries the source's size, larger when
    /// the GPU scaled the frame down for analysis.
    fn run(&mut self, buffer: &gst::BufferRef, info: &gst_video::VideoInfo, frame: &mut CompactFrame) -> usize {
        self.found.clear();
        let read_roi = matches!(self.kind, DetectorKind::Roi | DetectorKind::Auto);
        if read_roi {
            let grew = roi::read_rois(buffer, &mut self.labels, &mut self.found);
            if grew {
                tracing::warn!(
                    source = %self.source_id,
                    labels = ?self.labels.labels().iter().rev().take(3).collect::<Vec<_>>(),
                    "ROI metadata names labels missing from `pipeline.labels`; they get new class ids on this source only"
                );
            }
            self.seen_roi |= !self.found.is_empty();
        }
        let run_motion = match self.kind {
            DetectorKind::Motion => true,
            DetectorKind::Auto => !self.seen_roi,
            DetectorKind::Roi | DetectorKind::None => false,
        };
        if run_motion {
            if let Ok(video) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info) {
                if let Ok(data) = video.plane_data(0) {
                    let plane = LumaPlane {
                        data,
                        width: info.width() as usize,
                        height: info.height() as usize,
                        stride: info.stride()[0].max(0) as usize,
                    };
                    let first = self.found.len();
                    self.found.extend(self.motion.detect(plane));
                    if (frame.width, frame.height) != (info.width(), info.height()) {
                        let sx = frame.width as f32 / info.width().max(1) as f32;
                        let sy = frame.height as f32 / info.height().max(1) as f32;
                        for object in &mut self.found[first..] {
                            object.left *= sx;
                            object.width *= sx;
                            object.top *= sy;
                            object.height *= sy;
                        }
                    }
                }
            }
        }
        if let Some(tracker) = &mut self.tracker {
            tracker.update(&mut self.found);
        }
        for object in &self.found {
            frame.push(&Object {
                left: object.left,
                top: object.top,
                width: object.width,
                height: object.height,
                confidence: object.confidence,
                class_id: object.class_id,
                object_id: object.object_id.unwrap_or(UNTRACKED),
            });
        }
        self.found.len()
    }
}
