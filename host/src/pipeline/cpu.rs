//! The CPU backend: one GStreamer pipeline per source.
//!
//! `<source> ! [decodebin] ! <analysis chain> ! appsink`
//!
//! The analysis chain delivers what the source's object stage asks for
//! (`frame::ImageRequest`):
//! - luma: `videoconvert ! video/x-raw,format=<8-bit luma first>`. For the
//!   usual decoder output (I420, NV12) `videoconvert` is a passthrough and
//!   upstream metadata (ROI metas) arrives untouched. With GPU decode (see
//!   `decode`), `nvvideoconvert ! video/x-raw,format=GRAY8,<analysis size>`
//!   comes first: only the small image the object stage reads leaves the GPU.
//! - RGB at a model's input size: `videoconvert ! videoscale !
//!   video/x-raw,format=RGB,<fit size>` on the CPU, `nvvideoconvert !
//!   video/x-raw,<fit size>` (scaled and converted on the GPU) then
//!   `videoconvert` to packed RGB with GPU decode: only model-sized frames
//!   cross to system memory.
//!
//! The appsink callback is the hand-off: it makes the compact frame header
//! with a pooled object buffer and gives it to the object stage, which
//! delivers it to the source's outlet without ever blocking a paced source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::decode::{self, DecodePath};
use super::scene::Scene;
use super::source::SourceSpec;
use super::uri::SourceUri;
use crate::config::RtspTransport;
use crate::frame::ring::RingFrame;
use crate::frame::{ImageRequest, SourceMetrics, SourceOutlet, StageFactory};

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

/// What one source's pipeline needs; survives pipeline restarts.
pub struct StageContext {
    /// Where analysed frames go (queue, counters, pacing, stop flag).
    pub outlet: SourceOutlet,
    /// Makes the object stage of each pipeline run.
    pub objects: StageFactory,
    /// Frame numbers continue across restarts.
    pub frame_counter: Arc<AtomicU64>,
    /// How compressed video is decoded (chosen once, when the source is added).
    pub decode: DecodePath,
    /// Where the pipeline scales frames down (GPU decode), at least this
    /// wide (frames kept for snapshots); 0 = the analysis size alone.
    pub min_width: u32,
    /// The GPU that decodes and converts (GPU decode), placed by the runtime.
    pub gpu: Option<u32>,
}

fn make(element: &'static str, package: &'static str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(element).build().map_err(|_| BuildError::MissingElement { element, package })
}

fn link_error(error: impl std::fmt::Display) -> BuildError {
    BuildError::Link(error.to_string())
}

const BASE: &str = "gstreamer1.0-plugins-base";
const GOOD: &str = "gstreamer1.0-plugins-good";
const DEEPSTREAM: &str = "DeepStream or the bundle of scripts/bundle-gpu.sh";

/// Builds the pipeline of one source.
pub fn build(spec: &SourceSpec, stage: &StageContext) -> Result<gst::Pipeline, BuildError> {
    let pipeline = gst::Pipeline::with_name(&format!("source-{}", spec.id));
    let objects = (stage.objects)();
    let request = objects.image();
    // The sample callback runs the stage; the end-of-stream callback lets it
    // deliver what it still holds. Both on this pipeline's streaming thread.
    let objects = Arc::new(std::sync::Mutex::new(objects));
    let at_eos = objects.clone();
    let sink = gst_app::AppSink::builder().sync(spec.realtime).max_buffers(2).enable_last_sample(false).build();
    let sink_element: gst::Element = sink.clone().upcast();
    pipeline.add(&sink_element).map_err(link_error)?;
    // Source size (width << 32 | height) when the frames reaching the appsink
    // were scaled for analysis; 0 = they have the source's size.
    let source_size = Arc::new(AtomicU64::new(0));
    let gpu = matches!(stage.decode, DecodePath::Gpu) && decode::decodes(&spec.uri);
    let head = add_analysis_chain(&pipeline, &sink_element, request, gpu, &source_size, stage.min_width)?;
    if let Some(gpu_id) = stage.gpu.filter(|_| gpu) {
        for element in pipeline.iterate_recurse().into_iter().flatten() {
            let converter = element.factory().is_some_and(|f| f.name() == decode::GPU_CONVERTER);
            if converter && element.find_property("gpu-id").is_some() {
                element.set_property("gpu-id", gpu_id);
            }
        }
    }
    match &spec.uri {
        SourceUri::File { .. } | SourceUri::Rtsp { .. } | SourceUri::Http { .. } => {
            add_uridecodebin(&pipeline, spec, &head, stage.decode)?;
        }
        SourceUri::V4l2 { device } => {
            let src = make("v4l2src", GOOD)?;
            src.set_property("device", device.to_string_lossy().as_ref());
            let decode = make("decodebin", BASE)?;
            steer_decoders(&decode, DecodePath::Cpu);
            pipeline.add_many([&src, &decode]).map_err(link_error)?;
            src.link(&decode).map_err(link_error)?;
            link_video_pads(&pipeline, &decode, &head);
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
            pipeline.add_many([&src, &caps_filter]).map_err(link_error)?;
            gst::Element::link_many([&src, &caps_filter, &head]).map_err(link_error)?;
        }
        SourceUri::Scene { seed, format } => {
            let src = scene_source(Scene::new(*seed, *format), stage.frame_counter.load(Ordering::Relaxed))?;
            pipeline.add(&src).map_err(link_error)?;
            src.link(&head).map_err(link_error)?;
        }
    }

    let outlet = stage.outlet.clone();
    let counter = stage.frame_counter.clone();
    record_decoder(&pipeline, &stage.outlet.metrics, stage.gpu);
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
                outlet.metrics.mark_frame();
                let number = counter.fetch_add(1, Ordering::Relaxed);
                let (width, height) = match source_size.load(Ordering::Relaxed) {
                    0 => (info.width(), info.height()),
                    packed => ((packed >> 32) as u32, packed as u32),
                };
                let pts = buffer.pts().map(|t| t.nseconds()).unwrap_or(0);
                if let Some(ring) = &outlet.ring {
                    // A reference to the decoder's memory on the CPU path;
                    // the GPU path's buffers come from nvvideoconvert's small
                    // pool, which holding them would starve: copied (small).
                    let kept = if gpu { buffer.copy_deep().ok() } else { Some(buffer.to_owned()) };
                    if let Some(kept) = kept {
                        ring.push(RingFrame {
                            frame_number: number,
                            pts_ns: pts,
                            buffer: kept,
                            info: info.clone(),
                            source_size: (width, height),
                        });
                    }
                }
                let frame = outlet.new_frame(number, pts, width, height);
                let mut objects = objects.lock().unwrap_or_else(|p| p.into_inner());
                objects.process(buffer, info, frame, &outlet);
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| at_eos.lock().unwrap_or_else(|p| p.into_inner()).finish())
            .build(),
    );
    Ok(pipeline)
}

/// Adds the elements between the decoder and `sink` that turn decoded video
/// into the image `request` asks for. Returns the first of them (where the
/// decoder or the raw source links). `gpu`: the decoder outputs NVMM
/// frames, so the scaling runs on the GPU (`nvvideoconvert`).
fn add_analysis_chain(
    pipeline: &gst::Pipeline,
    sink: &gst::Element,
    request: ImageRequest,
    gpu: bool,
    source_size: &Arc<AtomicU64>,
    min_width: u32,
) -> Result<gst::Element, BuildError> {
    let convert = make("videoconvert", BASE)?;
    let filter = make("capsfilter", BASE)?;
    pipeline.add_many([&convert, &filter]).map_err(link_error)?;
    let mut chain = vec![convert.clone()];
    match request {
        ImageRequest::Luma { .. } => {
            let caps: gst::Caps = format!("video/x-raw,format={LUMA_FORMATS}")
                .parse()
                .map_err(|e| BuildError::Link(format!("caps: {e}")))?;
            filter.set_property("caps", &caps);
        }
        ImageRequest::Rgb { .. } => {
            filter.set_property("caps", gst::Caps::builder("video/x-raw").field("format", "RGB").build());
            if !gpu {
                // Scale on the CPU to the model's fit size, set from the
                // source's caps as they pass.
                let scale = make("videoscale", BASE)?;
                pipeline.add(&scale).map_err(link_error)?;
                chain.push(scale);
                let sized = make("capsfilter", BASE)?;
                pipeline.add(&sized).map_err(link_error)?;
                size_from_caps(&convert, &sized, request, source_size, "RGB", 0)?;
                chain.push(sized);
            }
        }
    }
    chain.push(filter);
    chain.push(sink.clone());
    gst::Element::link_many(chain.iter()).map_err(link_error)?;
    if gpu {
        return add_gpu_converter(pipeline, &convert, request, source_size, min_width);
    }
    Ok(convert)
}

/// Sets `filter`'s caps to the analysis size of `request` each time a CAPS
/// event passes `element`'s sink pad (the source's size is known only from
/// its caps, and may change mid-stream), before the scaler negotiates, and
/// records the source size for the frame headers.
fn size_from_caps(
    element: &gst::Element,
    filter: &gst::Element,
    request: ImageRequest,
    source_size: &Arc<AtomicU64>,
    format: &'static str,
    min_width: u32,
) -> Result<(), BuildError> {
    let Some(sink_pad) = element.static_pad("sink") else {
        return Err(BuildError::Link(format!("{} has no sink pad", element.name())));
    };
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
            let (w, h) = analysis_size(request, width, height, min_width);
            filter.set_property("caps", sized_caps(format, w, h));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// The size of the analysis image for a `width` x `height` source; a
/// scaled-down luma image is at least `min_width` wide (within the source's).
pub fn analysis_size(request: ImageRequest, width: u32, height: u32, min_width: u32) -> (u32, u32) {
    match request {
        ImageRequest::Luma { analysis_width } => {
            decode::analysis_size(width, height, analysis_width.max(min_width.div_ceil(2)))
        }
        ImageRequest::Rgb { width: w, height: h, keep_aspect: false } => (w.max(2), h.max(2)),
        ImageRequest::Rgb { width: w, height: h, keep_aspect: true } => fit_size(width, height, w, h),
    }
}

/// The largest size with `width:height`'s aspect ratio inside `max_w` x
/// `max_h` (scaling up as well as down, as a letterbox does), even sizes.
pub fn fit_size(width: u32, height: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (max_w.max(2), max_h.max(2));
    }
    let scale = (f64::from(max_w) / f64::from(width)).min(f64::from(max_h) / f64::from(height));
    let even = |v: f64, max: u32| ((v.round() as u32).min(max) & !1).max(2);
    (even(f64::from(width) * scale, max_w), even(f64::from(height) * scale, max_h))
}

/// System-memory caps of `format` (a GStreamer format name or a list in
/// braces) at `width` x `height`.
fn sized_caps(format: &str, width: u32, height: u32) -> gst::Caps {
    let builder = gst::Caps::builder("video/x-raw");
    let builder = if format.starts_with('{') {
        let formats: Vec<&str> =
            format.trim_matches(|c| c == '{' || c == '}').split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
        builder.field("format", gst::List::new(formats))
    } else {
        builder.field("format", format)
    };
    builder.field("width", width as i32).field("height", height as i32).build()
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
/// NVMM frame on the GPU to the analysis size (and, for RGB, converts the
/// colours there) and copies only that to system memory. Returns the
/// element the decoder links to.
fn add_gpu_converter(
    pipeline: &gst::Pipeline,
    convert: &gst::Element,
    request: ImageRequest,
    source_size: &Arc<AtomicU64>,
    min_width: u32,
) -> Result<gst::Element, BuildError> {
    let nvconvert = make(decode::GPU_CONVERTER, DEEPSTREAM)?;
    // Area averaging ("super" sampling) for the large downscale, like the
    // motion detector's own; the default (nearest) would alias.
    set_enum_matching(&nvconvert, "interpolation-method", &["super", "bilinear"]);
    let filter = make("capsfilter", BASE)?;
    // What nvvideoconvert can write to system memory that `convert` turns
    // into the request's format cheaply (a passthrough for GRAY8 and RGB).
    // NV12 first: colour for snapshots at little more than GRAY8's size.
    let formats = match request {
        ImageRequest::Luma { .. } => "{ NV12, I420, GRAY8 }",
        ImageRequest::Rgb { .. } => "{ RGB, RGBA, BGRx, RGBx }",
    };
    let caps: gst::Caps =
        format!("video/x-raw,format={formats}").parse().map_err(|e| BuildError::Link(format!("caps: {e}")))?;
    filter.set_property("caps", &caps);
    pipeline.add_many([&nvconvert, &filter]).map_err(link_error)?;
    gst::Element::link_many([&nvconvert, &filter, convert]).map_err(link_error)?;
    size_from_caps(&nvconvert, &filter, request, source_size, formats, min_width)?;
    Ok(nvconvert)
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
fn record_decoder(pipeline: &gst::Pipeline, metrics: &Arc<SourceMetrics>, gpu: Option<u32>) {
    let metrics = metrics.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        let Some(factory) = element.factory() else {
            return;
        };
        // NVIDIA's elements run on the source's GPU (decode and conversion
        // on the same one, so frames never cross between GPUs).
        if let Some(gpu) = gpu {
            let name = factory.name();
            if (name == decode::GPU_DECODER || name == decode::GPU_CONVERTER)
                && element.find_property("gpu-id").is_some()
            {
                element.set_property("gpu-id", gpu);
            }
        }
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
                        crate::frame::roi::attach_roi(
                            buffer,
                            object.label,
                            rect,
                            f64::from(object.confidence),
                            object.id,
                        );
                    }
                }
                next += 1;
                let _ = appsrc.push_buffer(buffer);
            })
            .build(),
    );
    Ok(src.upcast())
}
