//! dshost's DeepStream metadata reader against NVIDIA's real DeepStream 9.0.2
//! metadata libraries (`libnvds_meta.so`, `libnvdsgst_meta.so` from the PyPI
//! wheel `nvidia-deepstream-videodecode-cu13`, fetched and cached by
//! `scripts/fetch-deepstream-libs.sh`; they need glib and GStreamer, no GPU).
//!
//! A real GStreamer pipeline attaches batch meta to every buffer with those
//! libraries the way nvstreammux and nvinfer do (`nvds_create_batch_meta`,
//! frame and object metas from the library's pools, the library's list
//! functions, `gst_buffer_add_nvds_meta` with the library's copy and release
//! functions); every other buffer is replaced by a `gst_buffer_copy`, which
//! deep-copies the metadata through the library. dshost's probe reads the
//! metadata at the pipeline's end and the frames go through the real
//! per-source strategy workers into the real `yolo_filter` component, which
//! must report exactly the objects written.
//!
//! The writer uses the byte offsets stated in `shared/design/deepstream-abi.md`
//! (numbers in this file), not dshost's `#[repr(C)]` structs, so the two are
//! checked against each other and against the fields the library writes
//! itself (list heads, counters, classifier list).
//!
//! The 5.0-8.0 layouts cannot be tested on NVIDIA binaries here (no wheel
//! ships them): `layouts_5_to_8_on_memory_laid_out_per_headers` tests them
//! on memory laid out per the header facts in deepstream-abi.md.

mod common;

use std::ffi::{c_int, c_uint, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use dshost::alerts::Alert;
use dshost::config::ConfidenceSource;
use dshost::frame::FrameQueue;
use dshost::frame::SourceMetrics;
use dshost::frame::{CompactFrame, LabelTable, Object, UNTRACKED};
use dshost::pipeline::deepstream::probe::{MetaProbe, Route, Routes};
use dshost::pipeline::deepstream::reader::ReadError;
use dshost::pipeline::deepstream::{BatchReader, DetectionInputs, Fingerprint, MetaLayout, MetaLibrary};
use dshost::runtime::worker::{StrategySlot, Worker};
use dshost::strategy::{InstanceSettings, RecoveryPolicy, SandboxLimits, StrategyMetrics, SupervisedInstance};

/// The directory with the real libraries; fetched on first use. A failed
/// download fails the test: it must never pass without the real libraries.
fn libs_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DSHOST_DEEPSTREAM_TEST_LIBS") {
            return PathBuf::from(dir);
        }
        let script = common::repo_root().join("scripts/fetch-deepstream-libs.sh");
        let output = std::process::Command::new("bash").arg(&script).output().expect("cannot run the fetch script");
        assert!(
            output.status.success(),
            "{} failed (the real-library test needs PyPI): {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

fn meta_library() -> Arc<MetaLibrary> {
    static LIB: OnceLock<Arc<MetaLibrary>> = OnceLock::new();
    LIB.get_or_init(|| {
        // Only the fetched directory: a system DeepStream must not stand in.
        let lib = MetaLibrary::load_with(false, std::slice::from_ref(libs_dir()))
            .unwrap_or_else(|e| panic!("loading the real 9.0.2 libraries: {e}"));
        Arc::new(lib)
    })
    .clone()
}

/// The library functions a muxer/inference element calls, from the same files.
struct Writer {
    create: unsafe extern "C" fn(c_uint) -> *mut u8,
    acquire_frame: unsafe extern "C" fn(*mut u8) -> *mut u8,
    add_frame: unsafe extern "C" fn(*mut u8, *mut u8),
    acquire_obj: unsafe extern "C" fn(*mut u8) -> *mut u8,
    add_obj: unsafe extern "C" fn(*mut u8, *mut u8, *mut u8),
    acquire_classifier: unsafe extern "C" fn(*mut u8) -> *mut u8,
    add_classifier: unsafe extern "C" fn(*mut u8, *mut u8),
    copy_func: unsafe extern "C" fn(*mut c_void, *mut c_void) -> *mut c_void,
    release_func: unsafe extern "C" fn(*mut c_void, *mut c_void),
    add_meta: unsafe extern "C" fn(
        *mut gst::ffi::GstBuffer,
        *mut c_void,
        *mut c_void,
        unsafe extern "C" fn(*mut c_void, *mut c_void) -> *mut c_void,
        unsafe extern "C" fn(*mut c_void, *mut c_void),
    ) -> *mut u8,
    _libs: (libloading::Library, libloading::Library),
}

impl Writer {
    fn load() -> Writer {
        let dir = libs_dir();
        // SAFETY: NVIDIA's libraries; prototypes from nvdsmeta.h and gstnvdsmeta.h.
        unsafe {
            let core = libloading::Library::new(dir.join("libnvds_meta.so")).expect("libnvds_meta.so");
            let gst = libloading::Library::new(dir.join("libnvdsgst_meta.so")).expect("libnvdsgst_meta.so");
            macro_rules! sym {
                ($lib:expr, $name:literal) => {
                    *$lib.get($name.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", $name))
                };
            }
            Writer {
                create: sym!(core, "nvds_create_batch_meta"),
                acquire_frame: sym!(core, "nvds_acquire_frame_meta_from_pool"),
                add_frame: sym!(core, "nvds_add_frame_meta_to_batch"),
                acquire_obj: sym!(core, "nvds_acquire_obj_meta_from_pool"),
                add_obj: sym!(core, "nvds_add_obj_meta_to_frame"),
                acquire_classifier: sym!(core, "nvds_acquire_classifier_meta_from_pool"),
                add_classifier: sym!(core, "nvds_add_classifier_meta_to_object"),
                copy_func: sym!(core, "nvds_batch_meta_copy_func"),
                release_func: sym!(core, "nvds_batch_meta_release_func"),
                add_meta: sym!(gst, "gst_buffer_add_nvds_meta"),
                _libs: (core, gst),
            }
        }
    }
}

unsafe fn put<T>(base: *mut u8, offset: usize, value: T) {
    base.add(offset).cast::<T>().write_unaligned(value)
}

unsafe fn get<T: Copy>(base: *const u8, offset: usize) -> T {
    base.add(offset).cast::<T>().read_unaligned()
}

const SOURCES: u32 = 2;
const BUFFERS: u64 = 24;
const PIPELINE_W: u32 = 1280;
const PIPELINE_H: u32 = 720;

/// (label, object) for object `k` of source `s` in buffer `n`: varied
/// counts (0 to 2 per frame), classes, tracked and untracked ids.
fn expected_objects(n: u64, s: u32) -> Vec<(&'static str, Object)> {
    let count = ((n + u64::from(s)) % 3) as usize;
    (0..count)
        .map(|k| {
            let (label, class_id) = if k % 2 == 0 { ("person", 0) } else { ("car", 2) };
            let object_id =
                if k == 1 && n.is_multiple_of(4) { UNTRACKED } else { 1000 * u64::from(s) + 10 * n + k as u64 };
            let object = Object {
                left: 10.5 + n as f32,
                top: 20.25 + 10.0 * s as f32,
                width: 30.0 + k as f32,
                height: 40.75,
                confidence: 0.5 + 0.125 * k as f32 + 0.0625 * s as f32,
                class_id,
                object_id,
            };
            (label, object)
        })
        .collect()
}

/// Attaches a batch meta for buffer `n`, as nvstreammux + nvinfer would.
/// Returns the batch meta pointer.
unsafe fn attach(writer: &Writer, buffer: &mut gst::BufferRef, n: u64) -> *mut u8 {
    let batch = (writer.create)(SOURCES);
    assert!(!batch.is_null());
    // The gotcha: nvds_create_batch_meta leaves max_frames_in_batch at 0,
    // and a buffer copy then crashes. nvstreammux sets it.
    put::<c_uint>(batch, 40, SOURCES);
    let pts = buffer.pts().map(|t| t.nseconds()).unwrap_or(0);
    for s in 0..SOURCES {
        let frame = (writer.acquire_frame)(batch);
        put::<c_uint>(frame, 40, s); // pad_index
        put::<c_uint>(frame, 44, s); // batch_id
        put::<c_int>(frame, 48, n as c_int); // frame_num
        put::<u64>(frame, 56, pts); // buf_pts
        put::<c_uint>(frame, 72, s); // source_id
        put::<c_uint>(frame, 80, 320); // source_frame_width
        put::<c_uint>(frame, 84, 240);
        put::<c_uint>(frame, 160, PIPELINE_W); // pipeline_width (6.0+)
        put::<c_uint>(frame, 164, PIPELINE_H);
        for (label, object) in expected_objects(n, s) {
            let obj = (writer.acquire_obj)(batch);
            // The model numbers its classes its own way (COCO id + 40 here);
            // dshost must map obj_label@344 to the label table's id, so a
            // reader looking at the wrong label offset fails this test.
            put::<c_int>(obj, 48, 1); // unique_component_id
            put::<c_int>(obj, 52, object.class_id as c_int + 40);
            put::<u64>(obj, 56, object.object_id);
            put::<f32>(obj, 96, object.confidence);
            put::<f32>(obj, 100, 0.99); // tracker_confidence
                                        // rect_params@104 (9.x: 112 bytes), detector_bbox_info@64.
            for (i, v) in [object.left, object.top, object.width, object.height].into_iter().enumerate() {
                put::<f32>(obj, 104 + 4 * i, v);
                put::<f32>(obj, 64 + 4 * i, v);
            }
            put::<f32>(obj, 208, 12.5); // rect_params.rotation_angle (9.x)
                                        // text_params.display_text@240: the library's copy deep-copies it.
            let text = std::ffi::CString::new(label).unwrap();
            put::<*mut i8>(obj, 240, gst::glib::ffi::g_strdup(text.as_ptr()));
            // obj_label[128]@344
            let label_ptr = obj.add(344);
            std::ptr::write_bytes(label_ptr, 0, 128);
            std::ptr::copy_nonoverlapping(label.as_ptr(), label_ptr, label.len());
            put::<i64>(obj, 488, 4242); // misc_obj_info[0]
            (writer.add_obj)(frame, obj, std::ptr::null_mut());
            // A classifier meta, linked by the library at classifier_meta_list@472.
            let classifier = (writer.acquire_classifier)(batch);
            put::<c_int>(classifier, 44, 2);
            (writer.add_classifier)(obj, classifier);
            let list: *const u8 = get(obj, 472);
            assert!(!list.is_null(), "the library linked no classifier at offset 472");
            assert_eq!(get::<*mut u8>(list, 0), classifier, "classifier list head at 472 holds another pointer");
        }
        (writer.add_frame)(batch, frame);
        let count = expected_objects(n, s).len() as c_uint;
        assert_eq!(get::<c_uint>(frame, 96), count, "num_obj_meta@96 as the library counted it");
        assert_eq!(get::<*const u8>(frame, 104).is_null(), count == 0, "obj_meta_list@104");
    }
    assert_eq!(get::<c_uint>(batch, 44), SOURCES, "num_frames_in_batch@44 as the library counted it");
    let meta = (writer.add_meta)(
        buffer.as_mut_ptr(),
        batch.cast(),
        std::ptr::null_mut(),
        writer.copy_func,
        writer.release_func,
    );
    assert!(!meta.is_null());
    // As nvstreammux does: the GstMeta is a batch meta, and the batch meta
    // knows itself and its copy/release functions.
    put::<c_int>(meta, 32, 4097); // NvDsMeta.meta_type = NVDS_BATCH_GST_META
    put::<*mut u8>(batch, 0, batch); // base_meta.batch_meta
    put::<*const c_void>(batch, 24, writer.copy_func as *const c_void);
    put::<*const c_void>(batch, 32, writer.release_func as *const c_void);
    batch
}

#[test]
fn real_library_fingerprint_is_the_9x_layout() {
    let lib = meta_library();
    let fingerprint = lib.fingerprint().expect("the library made a batch meta");
    assert_eq!(fingerprint, Fingerprint { object_meta_size: 552, frame_meta_size: 232 });
    let detection = DetectionInputs { fingerprint: Some(fingerprint), ..Default::default() }.detect();
    assert_eq!(detection.layout, Some(MetaLayout::Ds9));
    assert!(detection.problems.is_empty(), "{:?}", detection.problems);
    // The crash case from deepstream-abi.md: a version file saying 8.0 next
    // to these libraries must not make dshost read them as 8.0.
    let version_file = Some((PathBuf::from("/opt/nvidia/deepstream/deepstream/version"), "Version: 8.0.0\n".into()));
    let detection = DetectionInputs { version_file, fingerprint: Some(fingerprint), ..Default::default() }.detect();
    assert_eq!(detection.layout, None);
    assert!(detection.problems.iter().any(|p| p.contains("refusing to read")), "{:?}", detection.problems);
}

/// What reached each source: the frames the worker saw, and the alerts.
struct Collected {
    frames: Vec<CompactFrame>,
    alerts: Vec<Alert>,
}

#[test]
fn strategy_receives_exactly_the_objects_written_by_the_real_library() {
    gst::init().unwrap();
    let lib = meta_library();
    let writer = Arc::new(Writer::load());
    let layout = lib.fingerprint().and_then(|f| f.layout().ok()).expect("a known layout");
    let labels = Arc::new(LabelTable::coco());
    let engine = common::engine();
    let component = engine
        .load_file("yolo_filter", &common::strategy("yolo_filter"), &SandboxLimits::default())
        .expect("yolo_filter.wasm");

    // The per-source queues and strategy workers the runtime uses.
    let routes = Arc::new(Routes::default());
    let (alert_tx, alert_rx) = std::sync::mpsc::channel::<Alert>();
    let collected: Vec<Arc<Mutex<Vec<CompactFrame>>>> = (0..SOURCES).map(|_| Arc::default()).collect();
    let mut workers = Vec::new();
    let mut queues = Vec::new();
    for s in 0..SOURCES {
        let id: Arc<str> = Arc::from(format!("cam-{s}"));
        let queue = Arc::new(FrameQueue::new(4));
        let metrics = Arc::new(SourceMetrics::default());
        let settings = InstanceSettings {
            source_id: id.clone(),
            config_json: r#"{"min_confidence": 0.0}"#.to_string(),
            labels: labels.clone(),
            limits: SandboxLimits { call_timeout: Duration::from_secs(5), ..SandboxLimits::default() },
        };
        let instance = SupervisedInstance::start(
            engine.clone(),
            component.clone(),
            settings,
            RecoveryPolicy::default(),
            Arc::new(StrategyMetrics::default()),
        )
        .expect("yolo_filter instance");
        let tapped = collected[s as usize].clone();
        let (_commands_tx, commands) = std::sync::mpsc::channel();
        let worker = Worker {
            queue: queue.clone(),
            metrics: metrics.clone(),
            slots: vec![StrategySlot { name: "yolo_filter".into(), instance }],
            alerts: alert_tx.clone(),
            run_id: 1,
            tap: Some(Box::new(move |frame: &CompactFrame| tapped.lock().unwrap().push(frame.clone()))),
            commands,
            source_id: id.to_string(),
        };
        workers.push(std::thread::spawn(move || {
            let _keep_commands_open = _commands_tx;
            worker.run()
        }));
        routes.set(
            s,
            Route {
                source_id: id,
                queue: queue.clone(),
                metrics,
                paced: false,
                stop: Arc::new(AtomicBool::new(false)),
                ring: None,
            },
        );
        queues.push(queue);
    }
    drop(alert_tx);

    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={BUFFERS} ! video/x-raw,width=320,height=240,framerate=30/1 ! identity name=attach \
         ! queue ! fakesink name=sink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let attach_pad = pipeline.by_name("attach").unwrap().static_pad("src").unwrap();
    let copies = Arc::new(Mutex::new(Vec::<(u64, usize, usize)>::new()));
    let widths_after_copy = Arc::new(Mutex::new(Vec::<c_uint>::new()));
    {
        let (writer, copies) = (writer.clone(), copies.clone());
        let pipeline_width_after_copy = widths_after_copy.clone();
        let counter = std::sync::atomic::AtomicU64::new(0);
        attach_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let original = unsafe { attach(&writer, buffer.make_mut(), n) };
            if n % 2 == 1 {
                // gst_buffer_copy: the library's copy function deep-copies the
                // batch meta; the original (and its meta) is then released.
                let before = unsafe { first_display_text(original) };
                let copy = buffer.copy();
                *buffer = copy;
                let now = unsafe { batch_of(buffer) };
                copies.lock().unwrap().push((n, original as usize, now as usize));
                let first_frame: *const u8 = unsafe { get(get::<*const u8>(now.cast_const(), 96), 0) };
                // Observed on 9.0.2: the copy leaves pipeline_width (offset 160) at 0.
                pipeline_width_after_copy.lock().unwrap().push(unsafe { get::<c_uint>(first_frame, 160) });
                let after = unsafe { first_display_text(now) };
                let texts = |v: &[(String, usize)]| {
                    let mut t: Vec<String> = v.iter().map(|(s, _)| s.clone()).collect();
                    t.sort();
                    t
                };
                assert_eq!(texts(&after), texts(&before), "display_text copied");
                assert!(after.iter().all(|(_, p)| before.iter().all(|(_, q)| p != q)), "display_text deep-copied");
            }
            gst::PadProbeReturn::Ok
        });
    }
    // The legacy muxer's output size, as the backend passes it: the real
    // library's gst_buffer_copy does not copy pipeline_width/height.
    let reader = BatchReader::new(layout, ConfidenceSource::Detector).with_output_size(Some((PIPELINE_W, PIPELINE_H)));
    let probe = MetaProbe::new(lib.clone(), reader, routes, labels.clone());
    let stats = probe.stats.clone();
    probe.install(&pipeline.by_name("sink").unwrap().static_pad("sink").unwrap()).expect("probe installed");

    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error])
        .expect("the pipeline ended");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(error) = message.view() {
        panic!("pipeline error: {} ({:?})", error.error(), error.debug());
    }
    for queue in &queues {
        queue.close();
    }
    for worker in workers {
        worker.join().unwrap();
    }
    let alerts: Vec<Alert> = alert_rx.iter().collect();
    let per_source: Vec<Collected> = (0..SOURCES)
        .map(|s| Collected {
            frames: std::mem::take(&mut *collected[s as usize].lock().unwrap()),
            alerts: alerts.iter().filter(|a| a.source == format!("cam-{s}")).cloned().collect(),
        })
        .collect();

    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.batches.load(Relaxed), BUFFERS, "every buffer carried a batch meta");
    assert_eq!(stats.without_meta.load(Relaxed) + stats.refused.load(Relaxed) + stats.unrouted_frames.load(Relaxed), 0);
    let copies = copies.lock().unwrap();
    assert_eq!(copies.len() as u64, BUFFERS / 2);
    assert!(copies.iter().all(|(_, before, after)| before != after), "each copy has its own batch meta");
    eprintln!("pipeline_width after gst_buffer_copy: {:?}", widths_after_copy.lock().unwrap());

    for (s, got) in per_source.iter().enumerate() {
        let s = s as u32;
        assert_eq!(got.frames.len() as u64, BUFFERS, "source {s}: every frame reached the worker");
        let mut expected_alerts = 0;
        for (n, frame) in got.frames.iter().enumerate() {
            let n = n as u64;
            assert_eq!(&*frame.source_id, format!("cam-{s}"));
            assert_eq!(frame.frame_number, n);
            assert_eq!(frame.pts_ns, n * 1_000_000_000 / 30);
            assert_eq!(
                (frame.width, frame.height),
                (PIPELINE_W, PIPELINE_H),
                "boxes are in the muxer space (frame {n})"
            );
            // The library's copy function does not keep the list order, so
            // objects compare as sets (ordered by width, unique per frame).
            let mut objects: Vec<Object> = frame.objects().iter().collect();
            objects.sort_by(|a, b| a.width.total_cmp(&b.width));
            let expected: Vec<Object> = expected_objects(n, s).into_iter().map(|(_, o)| o).collect();
            assert_eq!(objects, expected, "source {s} frame {n} (copied: {})", n % 2 == 1);
            for (label, object) in expected_objects(n, s) {
                expected_alerts += 1;
                let alert = got
                    .alerts
                    .iter()
                    .find(|a| a.frame == n && a.bbox.left == object.left && a.bbox.width == object.width)
                    .unwrap_or_else(|| panic!("no alert for source {s} frame {n} object {object:?}"));
                assert_eq!(&*alert.pattern, label);
                assert_eq!(alert.confidence, object.confidence);
                assert_eq!((alert.bbox.top, alert.bbox.height), (object.top, object.height));
                assert_eq!(alert.object_id, (object.object_id != UNTRACKED).then_some(object.object_id));
                assert_eq!(alert.pts_ns, n * 1_000_000_000 / 30);
            }
        }
        assert_eq!(got.alerts.len(), expected_alerts, "source {s}: one alert per object written, no more");
    }
}

/// (display_text, its pointer) of every object of the first frame that has objects.
unsafe fn first_display_text(batch: *mut u8) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut node: *const u8 = get(batch, 96);
    while !node.is_null() && found.is_empty() {
        let frame: *const u8 = get(node, 0);
        let mut objects: *const u8 = get(frame, 104);
        while !objects.is_null() {
            let obj: *const u8 = get(objects, 0);
            let text: *const i8 = get(obj, 240);
            if !text.is_null() {
                found.push((CStr::from_ptr(text).to_string_lossy().into_owned(), text as usize));
            }
            objects = get(objects, 8);
        }
        node = get(node, 8);
    }
    found
}

unsafe fn batch_of(buffer: &gst::BufferRef) -> *mut u8 {
    let lib = meta_library();
    lib.batch_meta(buffer.as_ptr() as *mut gst::ffi::GstBuffer).cast()
}

/// Memory laid out per the header facts of deepstream-abi.md §1 for each
/// layout (no NVIDIA binary of 5.0-8.0 is available here).
struct FakeBatch {
    blocks: Vec<Vec<u64>>,
    batch: *mut u8,
}

impl FakeBatch {
    fn alloc(&mut self, bytes: usize) -> *mut u8 {
        let mut block = vec![0u64; bytes.div_ceil(8)];
        let ptr = block.as_mut_ptr().cast::<u8>();
        self.blocks.push(block);
        ptr
    }

    fn link(&mut self, items: &[*mut u8]) -> *mut u8 {
        let nodes: Vec<*mut u8> = items.iter().map(|_| self.alloc(24)).collect();
        for (i, node) in nodes.iter().enumerate() {
            unsafe {
                put(*node, 0, items[i]);
                put(*node, 8, nodes.get(i + 1).copied().unwrap_or(std::ptr::null_mut()));
                put(*node, 16, if i > 0 { nodes[i - 1] } else { std::ptr::null_mut() });
            }
        }
        nodes.first().copied().unwrap_or(std::ptr::null_mut())
    }

    /// (object size, frame size, label offset, has pipeline size)
    fn new(layout: (usize, usize, usize, bool), frames: &[(u32, Vec<(&str, Object)>)]) -> FakeBatch {
        let (object_size, frame_size, label_at, pipeline_size) = layout;
        let mut fake = FakeBatch { blocks: Vec::new(), batch: std::ptr::null_mut() };
        unsafe {
            let frame_pool = fake.alloc(56);
            put::<c_uint>(frame_pool, 8, frame_size as c_uint);
            let obj_pool = fake.alloc(56);
            put::<c_uint>(obj_pool, 8, object_size as c_uint);
            let mut frame_ptrs = Vec::new();
            for (source, objects) in frames {
                let frame = fake.alloc(frame_size);
                put::<c_int>(frame, 48, 7);
                put::<u64>(frame, 56, 123_456_789);
                put::<c_uint>(frame, 72, *source);
                put::<c_uint>(frame, 80, 640);
                put::<c_uint>(frame, 84, 480);
                if pipeline_size {
                    put::<c_uint>(frame, 160, 1920);
                    put::<c_uint>(frame, 164, 1080);
                }
                let mut obj_ptrs = Vec::new();
                for (label, object) in objects {
                    let obj = fake.alloc(object_size);
                    put::<c_int>(obj, 52, object.class_id as c_int);
                    put::<u64>(obj, 56, object.object_id);
                    put::<f32>(obj, 96, object.confidence);
                    put::<f32>(obj, 100, 0.25);
                    for (i, v) in [object.left, object.top, object.width, object.height].into_iter().enumerate() {
                        put::<f32>(obj, 104 + 4 * i, v);
                    }
                    std::ptr::copy_nonoverlapping(label.as_ptr(), obj.add(label_at), label.len());
                    obj_ptrs.push(obj);
                }
                put::<c_uint>(frame, 96, obj_ptrs.len() as c_uint);
                let list = fake.link(&obj_ptrs);
                put::<*mut u8>(frame, 104, list);
                frame_ptrs.push(frame);
            }
            let batch = fake.alloc(192);
            put::<*mut u8>(batch, 48, frame_pool);
            put::<*mut u8>(batch, 56, obj_pool);
            put::<c_uint>(batch, 44, frame_ptrs.len() as c_uint);
            let list = fake.link(&frame_ptrs);
            put::<*mut u8>(batch, 96, list);
            fake.batch = batch;
        }
        fake
    }
}

#[test]
fn layouts_5_to_8_on_memory_laid_out_per_headers() {
    // Not NVIDIA binaries: memory laid out per the header facts of
    // deepstream-abi.md §1 (sizes, label offset 336 before 9.0 and 344 in 9.x,
    // pipeline size from 6.0).
    let layouts = [
        (MetaLayout::Ds5, (544, 192, 336, false)),
        (MetaLayout::Ds6, (544, 200, 336, true)),
        (MetaLayout::Ds8, (544, 232, 336, true)),
        (MetaLayout::Ds9, (552, 232, 344, true)),
    ];
    let object = |k: u32| Object {
        left: 1.5 + k as f32,
        top: 2.5,
        width: 3.5,
        height: 4.5,
        confidence: 0.75,
        class_id: if k == 0 { 0 } else { 2 },
        object_id: 100 + u64::from(k),
    };
    // A label the table knows overrides the numeric class id.
    let frames = vec![
        (0, vec![("person", object(0)), ("car", object(1))]),
        (3, vec![("car", Object { class_id: 17, ..object(2) })]),
    ];
    let labels = LabelTable::coco();
    for (layout, facts) in layouts {
        let fake = FakeBatch::new(facts, &frames);
        let mut got = Vec::new();
        let read = unsafe {
            BatchReader::new(layout, ConfidenceSource::Detector)
                .read(fake.batch.cast(), &labels, |info, objects| got.push((*info, objects.to_vec())))
        };
        assert_eq!(read, Ok(2), "{layout}");
        let expected_size = if facts.3 { (1920, 1080) } else { (640, 480) };
        // The muxer size given to the reader stands in where the meta has none.
        let mut sized = Vec::new();
        unsafe {
            BatchReader::new(layout, ConfidenceSource::Detector)
                .with_output_size(Some((800, 600)))
                .read(fake.batch.cast(), &labels, |info, _| sized.push((info.width, info.height)))
                .unwrap();
        }
        let expected_sized = if facts.3 { (1920, 1080) } else { (800, 600) };
        assert_eq!(sized, vec![expected_sized; 2], "{layout}");
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.source_id, got[1].0.source_id), (0, 3), "{layout}");
        for (info, _) in &got {
            assert_eq!((info.width, info.height), expected_size, "{layout}");
            assert_eq!((info.frame_num, info.pts_ns), (7, 123_456_789), "{layout}");
        }
        assert_eq!(got[0].1, vec![object(0), object(1)], "{layout}");
        assert_eq!(got[1].1, vec![Object { class_id: 2, ..object(2) }], "{layout}: label `car` gives class 2");

        // The tracker's confidence where configured.
        let mut tracked = Vec::new();
        unsafe {
            BatchReader::new(layout, ConfidenceSource::Tracker)
                .read(fake.batch.cast(), &labels, |_, objects| tracked.extend(objects.iter().map(|o| o.confidence)))
                .unwrap();
        }
        assert_eq!(tracked, vec![0.25; 3], "{layout}");

        // Every other reader refuses this memory instead of misreading it.
        for (other, _) in layouts.iter().filter(|(other, _)| *other != layout) {
            let refused = unsafe {
                BatchReader::new(*other, ConfidenceSource::Detector).read(fake.batch.cast(), &labels, |_, _| {})
            };
            assert!(
                matches!(refused, Err(ReadError::LayoutChanged { .. })),
                "{other} reader on {layout} memory: {refused:?}"
            );
        }
    }
}

/// `dshost probe --json` with `envs` (LD_LIBRARY_PATH is cleared first).
fn probe_json(envs: &[(&str, &std::ffi::OsStr)]) -> serde_json::Value {
    let mut command = std::process::Command::new(common::dshost_bin());
    command.args(["probe", "--json"]).env_remove("LD_LIBRARY_PATH");
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command.output().expect("dshost probe");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("probe JSON")
}

#[test]
fn probe_without_deepstream_reports_none_and_the_cpu_backend() {
    let empty = tempfile::tempdir().unwrap();
    let report = probe_json(&[("DSHOST_PIPELINE__DEEPSTREAM__ROOT", empty.path().as_os_str())]);
    let ds = &report["deepstream"];
    assert_eq!(ds["found"], false, "{report:#}");
    assert!(ds["metadata_layout"].is_null() && ds["version"].is_null() && ds["profile"].is_null());
    assert_eq!(ds["metadata_library"]["loaded"], false);
    assert_eq!(report["backend"]["auto"]["backend"], "cpu");
    assert!(report["backend"]["auto"]["reason"].as_str().unwrap().contains("libnvds_meta.so"));
    assert!(report["gstreamer"]["version"].as_str().unwrap().starts_with("GStreamer 1."));
    assert!(report.get("gpu_decode").is_some(), "the place for GPU decode detection");
}

#[test]
fn probe_with_the_real_libraries_reports_the_9x_layout() {
    let empty = tempfile::tempdir().unwrap();
    let report = probe_json(&[
        ("LD_LIBRARY_PATH", libs_dir().as_os_str()),
        ("DSHOST_PIPELINE__DEEPSTREAM__ROOT", empty.path().as_os_str()),
    ]);
    let ds = &report["deepstream"];
    assert_eq!(ds["found"], true, "{report:#}");
    assert_eq!(ds["metadata_library"]["loaded"], true);
    assert_eq!(ds["fingerprint"]["object_meta_size"], 552);
    assert_eq!(ds["fingerprint"]["frame_meta_size"], 232);
    assert_eq!(ds["metadata_layout"], "9.x");
    assert_eq!(ds["detected_by"], "fingerprint");
    assert_eq!(ds["profile"], "9.x");
    // The libraries alone are not DeepStream: no muxer, no inference.
    assert_eq!(report["backend"]["auto"]["backend"], "cpu");
    assert!(report["backend"]["auto"]["reason"].as_str().unwrap().contains("`nvstreammux`"), "{report:#}");
}

#[test]
fn probe_refuses_a_version_file_that_contradicts_the_library() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("version"), "Version: 8.0.0\nDATE: Tue Jun 10 00:00:00 UTC 2025\n").unwrap();
    let report = probe_json(&[
        ("LD_LIBRARY_PATH", libs_dir().as_os_str()),
        ("DSHOST_PIPELINE__DEEPSTREAM__ROOT", root.path().as_os_str()),
    ]);
    let ds = &report["deepstream"];
    assert_eq!(ds["version"], "8.0.0", "{report:#}");
    assert_eq!(ds["detected_by"], "version_file");
    assert!(ds["metadata_layout"].is_null(), "an 8.0 reader must never read 9.x metadata: {report:#}");
    assert!(ds["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("refusing to read")));

    // An override that agrees with the library wins over the file, and the
    // disagreement is reported.
    let report = probe_json(&[
        ("LD_LIBRARY_PATH", libs_dir().as_os_str()),
        ("DSHOST_PIPELINE__DEEPSTREAM__ROOT", root.path().as_os_str()),
        ("DSHOST_PIPELINE__DEEPSTREAM__VERSION", std::ffi::OsStr::new("9.0")),
    ]);
    let ds = &report["deepstream"];
    assert_eq!((ds["version"].as_str(), ds["detected_by"].as_str()), (Some("9.0.0"), Some("override")));
    assert_eq!(ds["metadata_layout"], "9.x");
    assert!(ds["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("8.0.0")));
}

#[test]
fn backend_deepstream_where_it_is_missing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ds.yaml");
    // Without an nvinfer config the file is refused before anything runs.
    std::fs::write(
        &config,
        "sources:\n  - id: cam-1\n    uri: test://ball?frames=5\npipeline:\n  backend: deepstream\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::dshost_bin()).arg("validate-config").arg(&config).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`pipeline.deepstream.infer_config`") && stderr.contains(":4:"), "{stderr}");
    std::fs::write(
        &config,
        "sources:\n  - id: cam-1\n    uri: test://ball?frames=5\npipeline:\n  backend: deepstream\n  deepstream:\n    \
         infer_config: /etc/dshost/pgie.txt\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::dshost_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("LD_LIBRARY_PATH", libs_dir())
        .env("DSHOST_PIPELINE__DEEPSTREAM__ROOT", dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["`pipeline.backend: deepstream`", "`nvstreammux`", "`nvinfer`", "`cam-1`", "dshost probe"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
    // `auto` runs the same config on the CPU and says why.
    let auto = std::fs::read_to_string(&config).unwrap().replace("backend: deepstream", "backend: auto");
    std::fs::write(&config, auto).unwrap();
    let output = std::process::Command::new(common::dshost_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("LD_LIBRARY_PATH", libs_dir())
        .env("DSHOST_PIPELINE__DEEPSTREAM__ROOT", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("backend: cpu") && stderr.contains("`nvstreammux`"), "{stderr}");
    assert!(stderr.contains("summary cam-1: 5 frames decoded"), "{stderr}");
}
