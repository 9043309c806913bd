//! A source as the pipeline runs it: id, parsed URI and per-source settings.

use std::sync::Arc;

use super::uri::{SourceUri, UriError};
use crate::config::{DecoderKind, DetectSettings, DetectorKind, RtspConfig, SourceConfig};

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub id: Arc<str>,
    pub uri: SourceUri,
    pub loop_file: bool,
    /// Frames arrive paced by a clock (cameras, real-time playback): a full
    /// queue drops the oldest frame. Otherwise (files read as fast as
    /// possible) the pipeline waits for the strategies.
    pub realtime: bool,
    pub rtsp: RtspConfig,
    pub detector: DetectorKind,
    /// The source's own decoder choice; `None` = `pipeline.decoder`.
    pub decoder: Option<DecoderKind>,
    /// How often the inference stage runs the model on this source.
    pub detect: DetectSettings,
    /// The GPU the source is pinned to, if any.
    pub device_id: Option<u32>,
}

impl SourceSpec {
    pub fn from_config(config: &SourceConfig, default_detector: DetectorKind) -> Result<Self, UriError> {
        let uri = SourceUri::parse(&config.uri)?;
        let realtime = match &uri {
            SourceUri::Test { format, .. } | SourceUri::Scene { format, .. } => format.realtime,
            SourceUri::Rtsp { .. } | SourceUri::V4l2 { .. } => true,
            SourceUri::File { .. } | SourceUri::Http { .. } => config.realtime,
        };
        Ok(SourceSpec {
            id: Arc::from(config.id.as_str()),
            uri,
            loop_file: config.loop_file,
            realtime,
            rtsp: config.rtsp.clone(),
            detector: config.detector.unwrap_or(default_detector),
            decoder: config.decoder,
            detect: config.detect.clone().unwrap_or_default(),
            device_id: config.device_id,
        })
    }

    /// Live sources reconnect after end-of-stream; files end (or loop).
    pub fn is_live(&self) -> bool {
        self.uri.is_live()
    }
}
