//! One profile per compatible range of DeepStream releases: which elements
//! and properties the batched pipeline uses. Data, not code paths: the
//! builder reads these fields, and the golden tests pin what each profile
//! produces. Facts from `docs/deepstream.md` ("Pipeline elements by release").

use serde::Serialize;

use super::version::{DsVersion, MetaLayout};

/// How sources enter the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceElement {
    /// `uridecodebin`, then `nvvideoconvert` to NVMM memory.
    Uridecodebin,
    /// `nvurisrcbin` (first used in 6.1; reconnects RTSP itself).
    Nvurisrcbin,
}

/// The low-level tracker generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerStyle {
    /// 5.x: KLT/IOU/NvDCF libraries; KLT needs no config file.
    Legacy,
    /// 6.0+: `libnvds_nvmultiobjecttracker.so` with a YAML config.
    MultiObjectYaml,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// `5.x`, `6.0-6.3`, `6.4-7.1`, `8.0`, `9.x`.
    pub id: &'static str,
    /// First and last release (major, minor) covered.
    pub first: (u32, u32),
    pub last: (u32, u32),
    /// The metadata layout of these releases.
    pub layout: MetaLayout,
    pub source: SourceElement,
    /// The new nvstreammux can be chosen (`USE_NEW_NVSTREAMMUX=yes`; beta in 6.0, alpha before).
    pub new_streammux_available: bool,
    /// The new nvstreammux has `batched-push-timeout` (only from 6.4).
    pub new_streammux_push_timeout: bool,
    pub tracker: TrackerStyle,
    /// `ll-lib-file` under `<root>/lib`.
    pub tracker_library: &'static str,
    /// Default `ll-config-file` under `<root>`, when the release ships one.
    pub tracker_sample_config: Option<&'static str>,
    /// nvtracker still has `enable-batch-process` (gone in 6.3).
    pub tracker_batch_process: bool,
    /// Model formats nvinfer builds engines from (Caffe/UFF removed in 7.1).
    pub infer_model_formats: &'static str,
    /// What else an operator should know about this range.
    pub notes: &'static [&'static str],
}

pub const PROFILES: [Profile; 5] = [
    Profile {
        id: "5.x",
        first: (5, 0),
        last: (5, 1),
        layout: MetaLayout::Ds5,
        source: SourceElement::Uridecodebin,
        new_streammux_available: false,
        new_streammux_push_timeout: false,
        tracker: TrackerStyle::Legacy,
        tracker_library: "libnvds_mot_klt.so",
        tracker_sample_config: None,
        tracker_batch_process: true,
        infer_model_formats: "caffe, uff, onnx, etlt, engine, custom",
        notes: &["5.0.1 is assumed to match 5.0 (no header set was available)"],
    },
    Profile {
        id: "6.0-6.3",
        first: (6, 0),
        last: (6, 3),
        layout: MetaLayout::Ds6,
        // nvurisrcbin first appears in 6.1; 6.0 has only uridecodebin.
        source: SourceElement::Uridecodebin,
        new_streammux_available: true,
        new_streammux_push_timeout: false,
        tracker: TrackerStyle::MultiObjectYaml,
        tracker_library: "libnvds_nvmultiobjecttracker.so",
        tracker_sample_config: Some("samples/configs/deepstream-app/config_tracker_IOU.yml"),
        tracker_batch_process: false,
        infer_model_formats: "caffe, uff, onnx, etlt, engine, custom",
        notes: &["nvmultiurisrcbin REST paths are unversioned (/stream/add) in 6.2-6.3"],
    },
    Profile {
        id: "6.4-7.1",
        first: (6, 4),
        last: (7, 1),
        layout: MetaLayout::Ds6,
        source: SourceElement::Nvurisrcbin,
        new_streammux_available: true,
        new_streammux_push_timeout: true,
        tracker: TrackerStyle::MultiObjectYaml,
        tracker_library: "libnvds_nvmultiobjecttracker.so",
        tracker_sample_config: Some("samples/configs/deepstream-app/config_tracker_IOU.yml"),
        tracker_batch_process: false,
        infer_model_formats: "caffe, uff, onnx, etlt, engine, custom (7.1: onnx, etlt, engine, custom)",
        notes: &["7.1 removed the Caffe and UFF parsers (TensorRT 10): use ONNX or an engine"],
    },
    Profile {
        id: "8.0",
        first: (8, 0),
        last: (8, 0),
        layout: MetaLayout::Ds8,
        source: SourceElement::Nvurisrcbin,
        new_streammux_available: true,
        new_streammux_push_timeout: true,
        tracker: TrackerStyle::MultiObjectYaml,
        tracker_library: "libnvds_nvmultiobjecttracker.so",
        tracker_sample_config: Some("samples/configs/deepstream-app/config_tracker_IOU.yml"),
        tracker_batch_process: false,
        infer_model_formats: "onnx, etlt, engine, custom",
        notes: &["NvDsFrameMeta grew to 232 bytes (sensor info inline); object meta unchanged"],
    },
    Profile {
        id: "9.x",
        first: (9, 0),
        last: (9, u32::MAX),
        layout: MetaLayout::Ds9,
        source: SourceElement::Nvurisrcbin,
        new_streammux_available: true,
        new_streammux_push_timeout: true,
        tracker: TrackerStyle::MultiObjectYaml,
        tracker_library: "libnvds_nvmultiobjecttracker.so",
        tracker_sample_config: Some("samples/configs/deepstream-app/config_tracker_IOU.yml"),
        tracker_batch_process: false,
        infer_model_formats: "onnx, etlt, engine, custom",
        notes: &["NvDsObjectMeta is 552 bytes (rotated boxes): readers built for 8.0 or older crash on it"],
    },
];

impl Profile {
    /// The profile covering `version`, if dshost knows the release.
    pub fn for_version(version: DsVersion) -> Option<&'static Profile> {
        let key = (version.major, version.minor);
        PROFILES.iter().find(|p| p.first <= key && key <= p.last)
    }

    /// The profile of a layout, where only one profile has it (a version
    /// range that spans two profiles, like 6.0-7.1, needs the version).
    pub fn for_layout(layout: MetaLayout) -> Option<&'static Profile> {
        let mut matching = PROFILES.iter().filter(|p| p.layout == layout);
        let first = matching.next()?;
        matching.next().is_none().then_some(first)
    }

    pub fn by_id(id: &str) -> Option<&'static Profile> {
        PROFILES.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_release_has_one_profile_with_its_layout() {
        for (major, minor) in
            [(5, 0), (5, 1), (6, 0), (6, 1), (6, 2), (6, 3), (6, 4), (7, 0), (7, 1), (8, 0), (9, 0), (9, 1)]
        {
            let version = DsVersion::new(major, minor, 0);
            let profile = Profile::for_version(version).unwrap_or_else(|| panic!("no profile for {version}"));
            assert_eq!(Some(profile.layout), version.expected_layout(), "{version}");
        }
        assert_eq!(Profile::for_version(DsVersion::new(4, 0, 2)), None);
        assert_eq!(Profile::for_version(DsVersion::new(7, 2, 0)), None);
        assert_eq!(Profile::for_version(DsVersion::new(10, 0, 0)), None);
        assert_eq!(Profile::for_version(DsVersion::new(6, 3, 0)).map(|p| p.id), Some("6.0-6.3"));
        assert_eq!(Profile::for_version(DsVersion::new(6, 4, 0)).map(|p| p.id), Some("6.4-7.1"));
    }

    #[test]
    fn layouts_name_a_profile_only_when_unambiguous() {
        assert_eq!(Profile::for_layout(MetaLayout::Ds9).map(|p| p.id), Some("9.x"));
        assert_eq!(Profile::for_layout(MetaLayout::Ds8).map(|p| p.id), Some("8.0"));
        assert_eq!(Profile::for_layout(MetaLayout::Ds5).map(|p| p.id), Some("5.x"));
        assert_eq!(Profile::for_layout(MetaLayout::Ds6), None);
    }
}
