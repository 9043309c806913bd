//! Guest side: generated bindings, the strategy traits and export macros.
//!
//! One contract version per build: `dshost:strategy@0.2.0` (`process`
//! returns packed detections, which [`pack`] builds from the list a strategy
//! returns), or 0.1.0 with the crate feature `contract-0-1`. The author-facing
//! API is the same for both.

/// Bindings generated from `wit/` (or `wit/0.1.0/`) by wit-bindgen. Most
/// authors never touch these; the traits and macros below wrap them.
#[doc(hidden)]
pub mod bindings {
    pub use dshost_sdk_bindings as stateful;
    #[cfg(not(feature = "contract-0-1"))]
    pub mod stateless {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "dshost:strategy/strategy",
            pub_export_macro: true,
            export_macro_name: "__export_stateless_bindings",
            default_bindings_module: "dshost_sdk::bindings::stateless",
            with: {
                "dshost:strategy/types@0.2.0": dshost_sdk_bindings::dshost::strategy::types,
                "dshost:strategy/host@0.2.0": dshost_sdk_bindings::dshost::strategy::host,
            },
        });
    }
    #[cfg(feature = "contract-0-1")]
    pub mod stateless {
        wit_bindgen::generate!({
            path: "../../wit/0.1.0",
            world: "dshost:strategy/strategy",
            pub_export_macro: true,
            export_macro_name: "__export_stateless_bindings",
            default_bindings_module: "dshost_sdk::bindings::stateless",
            with: {
                "dshost:strategy/types@0.1.0": dshost_sdk_bindings::dshost::strategy::types,
                "dshost:strategy/host@0.1.0": dshost_sdk_bindings::dshost::strategy::host,
            },
        });
    }
}

pub use dshost_sdk_bindings::dshost::strategy::host::LogLevel;
#[cfg(not(feature = "contract-0-1"))]
#[doc(hidden)]
pub use dshost_sdk_bindings::dshost::strategy::types::{Attribute, PackedDetections};
pub use dshost_sdk_bindings::dshost::strategy::types::{
    Bbox, Detection, FrameHeader, HostContext, Level, StrategyInfo,
};

/// What the `process` export returns in this build's contract version.
#[cfg(not(feature = "contract-0-1"))]
#[doc(hidden)]
pub type __Processed = PackedDetections;
#[cfg(feature = "contract-0-1")]
#[doc(hidden)]
pub type __Processed = Vec<Detection>;

use crate::layout::Object;

/// A strategy. The host creates one instance per source by calling
/// [`Strategy::configure`], then calls [`Strategy::process`] for every frame.
pub trait Strategy: Sized + 'static {
    /// Name, version and what the strategy consumes.
    fn describe() -> StrategyInfo;

    /// Builds the instance from the strategy's JSON config (see
    /// [`parse_config`]) and the host context.
    fn configure(config: &str, context: &HostContext) -> Result<Self, String>;

    /// Processes one frame's objects.
    fn process(&mut self, frame: &FrameHeader, objects: crate::Objects<'_>) -> Result<Vec<Detection>, String>;
}

/// A strategy whose state survives hot reload: the host calls `save_state`
/// on the old version and `load_state` on the new one after `configure`.
pub trait StatefulStrategy: Strategy {
    fn save_state(&self) -> Vec<u8>;
    fn load_state(&mut self, state: &[u8]) -> Result<(), String>;
}

/// Builds a [`StrategyInfo`] with no class filter and no tracking need;
/// adjust the fields for more.
pub fn info(name: &str, version: &str, description: &str) -> StrategyInfo {
    StrategyInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
        classes: Vec::new(),
        needs_tracking: false,
    }
}

/// Parses a JSON config into `T`, with an error naming the line, column and
/// problem (serde's message names the key).
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() { "{}" } else { config };
    serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))
}

/// The class id of `label` in the host's label table; the error names the
/// label and lists the known ones.
pub fn class_id(context: &HostContext, label: &str) -> Result<u32, String> {
    context
        .class_labels
        .iter()
        .position(|known| known == label)
        .map(|id| id as u32)
        .ok_or_else(|| format!("unknown label `{label}`; the host knows: {}", context.class_labels.join(", ")))
}

/// Class ids of several labels (see [`class_id`]).
pub fn class_ids(context: &HostContext, labels: &[String]) -> Result<Vec<u32>, String> {
    labels.iter().map(|label| class_id(context, label)).collect()
}

/// Looks up the label of a class id in the host's label table.
pub fn label_of(context: &HostContext, class_id: u32) -> Option<&str> {
    context.class_labels.get(class_id as usize).map(String::as_str)
}

/// Starts a detection named `pattern`; finish it with [`DetectionBuilder::build`].
pub fn detect(pattern: impl Into<String>) -> DetectionBuilder {
    DetectionBuilder {
        detection: Detection {
            pattern: pattern.into(),
            confidence: 1.0,
            bbox: Bbox { left: 0.0, top: 0.0, width: 0.0, height: 0.0 },
            object_id: None,
            level: Level::Medium,
            attributes: Vec::new(),
        },
    }
}

/// Builder for [`Detection`]s.
#[derive(Debug, Clone)]
pub struct DetectionBuilder {
    detection: Detection,
}

impl DetectionBuilder {
    /// Copies box, confidence and object id from an object.
    pub fn from_object(mut self, object: &Object) -> Self {
        self.detection.bbox = Bbox { left: object.left, top: object.top, width: object.width, height: object.height };
        self.detection.confidence = object.confidence;
        self.detection.object_id = object.track_id();
        self
    }

    pub fn confidence(mut self, confidence: f32) -> Self {
        self.detection.confidence = confidence;
        self
    }

    pub fn bbox(mut self, left: f32, top: f32, width: f32, height: f32) -> Self {
        self.detection.bbox = Bbox { left, top, width, height };
        self
    }

    pub fn object_id(mut self, object_id: Option<u64>) -> Self {
        self.detection.object_id = object_id;
        self
    }

    pub fn level(mut self, level: Level) -> Self {
        self.detection.level = level;
        self
    }

    pub fn attribute(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.detection.attributes.push((key.into(), value.to_string()));
        self
    }

    pub fn build(self) -> Detection {
        self.detection
    }
}

/// Writes a line to the host log (rate-limited by the host). Outside a
/// component (native unit tests) it prints to stderr.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    dshost_sdk_bindings::dshost::strategy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Exports a [`Strategy`] as a component of the `strategy` world
/// (`dshost:strategy@0.2.0`; 0.1.0 with the crate feature `contract-0-1`).
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        const _: () = {
            $crate::__strategy_instance!($strategy, $crate::bindings::stateless::exports::dshost::strategy::handler::Guest);
            // Only components export the contract's symbols; native builds
            // (unit tests) would fail to link names like `dshost:strategy/...`.
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::stateless::__export_stateless_bindings!(DshostStrategyExport with_types_in $crate::bindings::stateless);
        };
    };
}

/// Exports a [`StatefulStrategy`] as a component of the `stateful-strategy`
/// world (`dshost:strategy@0.2.0`; 0.1.0 with the crate feature `contract-0-1`).
#[macro_export]
macro_rules! export_stateful_strategy {
    ($strategy:ty) => {
        const _: () = {
            $crate::__strategy_instance!($strategy, $crate::bindings::stateful::exports::dshost::strategy::handler::Guest);
            $crate::__strategy_state!($strategy, $crate::bindings::stateful::exports::dshost::strategy::state::Guest);
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::stateful::__export_stateful_bindings!(DshostStrategyExport with_types_in $crate::bindings::stateful);
        };
    };
}

/// The `state` implementation of `export_stateful_strategy!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __strategy_state {
    ($strategy:ty, $guest:path) => {
        impl $guest for DshostStrategyExport {
            fn save_state() -> ::std::vec::Vec<u8> {
                INSTANCE.with(|slot| {
                    slot.borrow().as_ref().map(<$strategy as $crate::StatefulStrategy>::save_state).unwrap_or_default()
                })
            }
            fn load_state(state: ::std::vec::Vec<u8>) -> ::core::result::Result<(), ::std::string::String> {
                INSTANCE.with(|slot| match slot.borrow_mut().as_mut() {
                    ::core::option::Option::Some(instance) => {
                        <$strategy as $crate::StatefulStrategy>::load_state(instance, &state)
                    }
                    ::core::option::Option::None => {
                        ::core::result::Result::Err("load-state called before configure".to_string())
                    }
                })
            }
        }
    };
}

/// The per-instance slot and the `handler` implementation shared by both
/// export macros (names resolve at the caller: `INSTANCE`,
/// `DshostStrategyExport`).
#[doc(hidden)]
#[macro_export]
macro_rules! __strategy_instance {
    ($strategy:ty, $guest:path) => {
        ::std::thread_local! {
            static INSTANCE: ::core::cell::RefCell<::core::option::Option<$strategy>> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }
        #[allow(dead_code)]
        struct DshostStrategyExport;
        impl $guest for DshostStrategyExport {
            fn describe() -> $crate::StrategyInfo {
                <$strategy as $crate::Strategy>::describe()
            }
            fn configure(
                config: ::std::string::String,
                context: $crate::HostContext,
            ) -> ::core::result::Result<(), ::std::string::String> {
                let instance = <$strategy as $crate::Strategy>::configure(&config, &context)?;
                INSTANCE.with(|slot| *slot.borrow_mut() = ::core::option::Option::Some(instance));
                ::core::result::Result::Ok(())
            }
            fn process(
                frame: $crate::FrameHeader,
                objects: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<$crate::__Processed, ::std::string::String> {
                $crate::__process_export::<$strategy>(&INSTANCE, &frame, &objects)
            }
        }
    };
}

#[doc(hidden)]
pub fn __process<S: Strategy>(
    instance: &'static std::thread::LocalKey<core::cell::RefCell<Option<S>>>,
    frame: &FrameHeader,
    objects: &[u8],
) -> Result<Vec<Detection>, String> {
    let objects = crate::Objects::new(objects).map_err(|e| e.to_string())?;
    instance.with(|slot| match slot.borrow_mut().as_mut() {
        Some(strategy) => strategy.process(frame, objects),
        None => Err("process called before configure".to_string()),
    })
}

/// `process` as this build's contract version exports it: packed (0.2.0).
#[cfg(not(feature = "contract-0-1"))]
#[doc(hidden)]
pub fn __process_export<S: Strategy>(
    instance: &'static std::thread::LocalKey<core::cell::RefCell<Option<S>>>,
    frame: &FrameHeader,
    objects: &[u8],
) -> Result<__Processed, String> {
    __process(instance, frame, objects).and_then(pack)
}

/// `process` as this build's contract version exports it: a list (0.1.0).
#[cfg(feature = "contract-0-1")]
#[doc(hidden)]
pub fn __process_export<S: Strategy>(
    instance: &'static std::thread::LocalKey<core::cell::RefCell<Option<S>>>,
    frame: &FrameHeader,
    objects: &[u8],
) -> Result<__Processed, String> {
    __process(instance, frame, objects)
}

/// Packs detections into contract 0.2.0's `packed-detections`: one record
/// each, every distinct pattern once, attributes tagged with their record.
/// Fails only past 65536 distinct patterns in one frame (a u16 index).
#[cfg(not(feature = "contract-0-1"))]
pub fn pack(detections: Vec<Detection>) -> Result<PackedDetections, String> {
    use crate::packed::{PackedRecord, FLAG_OBJECT_ID, PACKED_RECORD_SIZE};
    // Sized once and written in place: a call per record to grow the
    // buffer costs more than the record itself.
    let mut records = vec![0u8; detections.len() * PACKED_RECORD_SIZE];
    let mut patterns: Vec<String> = Vec::new();
    let mut attributes = Vec::new();
    // Most frames repeat one or a few patterns: try the last one first.
    let mut last = 0usize;
    let (slots, _) = records.as_chunks_mut::<PACKED_RECORD_SIZE>();
    for ((at, detection), slot) in detections.into_iter().enumerate().zip(slots.iter_mut()) {
        let Detection { pattern, confidence, bbox, object_id, level, attributes: attrs } = detection;
        let index = if patterns.get(last).is_some_and(|p| same(p, &pattern)) {
            last
        } else if let Some(index) = patterns.iter().position(|p| same(p, &pattern)) {
            index
        } else {
            patterns.push(pattern);
            patterns.len() - 1
        };
        last = index;
        let Ok(pattern) = u16::try_from(index) else {
            return Err(format!("more than {} distinct patterns in one frame", u32::from(u16::MAX) + 1));
        };
        PackedRecord {
            left: bbox.left,
            top: bbox.top,
            width: bbox.width,
            height: bbox.height,
            confidence,
            pattern,
            level: level as u8,
            flags: if object_id.is_some() { FLAG_OBJECT_ID } else { 0 },
            object_id: object_id.unwrap_or(0),
        }
        .write(slot);
        if !attrs.is_empty() {
            attributes.extend(attrs.into_iter().map(|(key, value)| Attribute { detection: at as u32, key, value }));
        }
    }
    Ok(PackedDetections { records, patterns, attributes })
}

/// String equality without a `memcmp` call: patterns are short, and in
/// WebAssembly the generic byte loop of wasi-libc's `memcmp` cost more than
/// the rest of packing a record (measured under callgrind).
#[cfg(not(feature = "contract-0-1"))]
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| c.iter().fold(0u64, |w, &byte| (w << 8) | u64::from(byte));
    for (c, d) in (&mut x).zip(&mut y) {
        if word(c) != word(d) {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(c, d)| c == d)
}
