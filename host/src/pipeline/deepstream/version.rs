//! Which DeepStream is installed, and which metadata layout its libraries
//! use. Sources, in order of precedence: an explicit override (config or
//! environment), the version file under the install root, the versions of
//! the DeepStream plugins in the GStreamer registry, and the ABI fingerprint
//! (pool element sizes of a real batch meta). Disagreements are logged and
//! reported; a layout we do not know is refused, never guessed.
//!
//! Every input is a plain value ([`DetectionInputs`]), so the rules are
//! unit-tested without DeepStream; [`DetectionInputs::gather`] collects
//! them from a (configurable) install root and the GStreamer registry.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A DeepStream release, e.g. 7.1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DsVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl DsVersion {
    pub const fn new(major: u32, minor: u32, micro: u32) -> Self {
        DsVersion { major, minor, micro }
    }

    /// Parses `7.1`, `7.1.0` or `6.0.1` (surrounding text trimmed).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.trim().parse().ok()?;
        let minor = parts.next()?.trim().parse().ok()?;
        let micro = match parts.next() {
            Some(p) => p.trim().parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(DsVersion { major, minor, micro })
    }

    /// The metadata layout headers of this release declare, if we know it.
    pub fn expected_layout(&self) -> Option<MetaLayout> {
        LAYOUTS
            .iter()
            .find(|fact| {
                fact.releases.iter().any(|&(major, minor)| self.major == major && minor.is_none_or(|m| m == self.minor))
            })
            .map(|fact| fact.layout)
    }
}

impl fmt::Display for DsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// What dshost knows of one metadata layout: its name, the releases that
/// use it, and the element sizes of its object and frame metas (what the
/// ABI fingerprint of a real batch meta shows). The one table of these
/// facts; `docs/deepstream.md` says how to add a release.
pub struct LayoutFacts {
    pub layout: MetaLayout,
    pub name: &'static str,
    /// (major, minor) releases; `None` = every minor release of `major`.
    pub releases: &'static [(u32, Option<u32>)],
    /// `sizeof(NvDsObjectMeta)`, `sizeof(NvDsFrameMeta)`.
    pub sizes: (u32, u32),
}

pub const LAYOUTS: [LayoutFacts; 4] = [
    LayoutFacts { layout: MetaLayout::Ds5, name: "5.x", releases: &[(5, None)], sizes: (544, 192) },
    LayoutFacts {
        layout: MetaLayout::Ds6,
        name: "6.0-7.1",
        releases: &[(6, None), (7, Some(0)), (7, Some(1))],
        sizes: (544, 200),
    },
    LayoutFacts { layout: MetaLayout::Ds8, name: "8.0", releases: &[(8, Some(0))], sizes: (544, 232) },
    // 9.x added rotated boxes to the object meta.
    LayoutFacts { layout: MetaLayout::Ds9, name: "9.x", releases: &[(9, None)], sizes: (552, 232) },
];

/// DeepStream 4.0's sizes: recognised only to refuse them by name.
const DS4_SIZES: (u32, u32) = (488, 192);

/// The metadata struct layouts (see `abi` and [`LAYOUTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetaLayout {
    /// 5.0/5.1: object 544, frame 192.
    #[serde(rename = "5.x")]
    Ds5,
    /// 6.0 to 7.1: object 544, frame 200.
    #[serde(rename = "6.0-7.1")]
    Ds6,
    /// 8.0: object 544, frame 232.
    #[serde(rename = "8.0")]
    Ds8,
    /// 9.x: object 552 (rotated boxes), frame 232.
    #[serde(rename = "9.x")]
    Ds9,
}

impl MetaLayout {
    fn facts(&self) -> &'static LayoutFacts {
        // Every variant has its row (checked by a test).
        LAYOUTS.iter().find(|fact| fact.layout == *self).unwrap_or(&LAYOUTS[0])
    }

    pub fn name(&self) -> &'static str {
        self.facts().name
    }

    /// (object, frame) meta sizes: what the fingerprint must show.
    pub fn sizes(&self) -> (u32, u32) {
        self.facts().sizes
    }

    /// Whether `NvDsObjectMeta` has the 9.x layout (552 bytes).
    pub fn is_v9_object(&self) -> bool {
        matches!(self, MetaLayout::Ds9)
    }
}

impl fmt::Display for MetaLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Pool element sizes read from a real batch meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    pub object_meta_size: u32,
    pub frame_meta_size: u32,
}

/// A layout the reader must not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "DeepStream metadata with object meta {object} bytes and frame meta {frame} bytes is DeepStream 4.0, \
         which dshost does not support (integer boxes, no tracker boxes); use DeepStream 5.0 or newer or `pipeline.backend: cpu`"
    )]
    Unsupported4 { object: u32, frame: u32 },
    #[error(
        "unknown DeepStream metadata layout: object meta {object} bytes, frame meta {frame} bytes (known: {}); \
         dshost refuses to read it. Use `pipeline.backend: cpu`, or a dshost release that knows this DeepStream",
        known_layouts()
    )]
    Unknown { object: u32, frame: u32 },
}

/// `5.x 544/192, 6.0-7.1 544/200, ...` for messages.
fn known_layouts() -> String {
    LAYOUTS.iter().map(|f| format!("{} {}/{}", f.name, f.sizes.0, f.sizes.1)).collect::<Vec<_>>().join(", ")
}

impl Fingerprint {
    /// The layout these sizes identify; anything else is refused.
    pub fn layout(&self) -> Result<MetaLayout, LayoutError> {
        let (object, frame) = (self.object_meta_size, self.frame_meta_size);
        if let Some(fact) = LAYOUTS.iter().find(|fact| fact.sizes == (object, frame)) {
            return Ok(fact.layout);
        }
        if (object, frame) == DS4_SIZES {
            return Err(LayoutError::Unsupported4 { object, frame });
        }
        Err(LayoutError::Unknown { object, frame })
    }
}

/// How the version was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// `pipeline.deepstream.version` (or `DSHOST_PIPELINE__DEEPSTREAM__VERSION`).
    Override,
    /// `<root>/version`.
    VersionFile,
    /// Plugin versions in the GStreamer registry.
    PluginRegistry,
    /// Only the ABI fingerprint (a layout family, not an exact release).
    Fingerprint,
}

/// The DeepStream plugins whose version follows the release ("X.Y").
/// nvvideoconvert (1.2.3) and nvv4l2decoder (1.14.0) do not.
pub const VERSIONED_ELEMENTS: [&str; 6] =
    ["nvinfer", "nvstreammux", "nvtracker", "nvdsosd", "nvmsgconv", "nvurisrcbin"];

/// Everything detection looks at.
#[derive(Debug, Clone, Default)]
pub struct DetectionInputs {
    /// Explicit version (config/environment).
    pub override_version: Option<String>,
    /// The version file and what it holds (None: absent or unreadable).
    pub version_file: Option<(PathBuf, String)>,
    /// (element, plugin version) from the GStreamer registry.
    pub plugin_versions: Vec<(String, String)>,
    /// From the loaded metadata library, when it loaded.
    pub fingerprint: Option<Fingerprint>,
}

/// What detection concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The release, when a source other than the fingerprint named one.
    pub version: Option<DsVersion>,
    pub source: Option<VersionSource>,
    /// The layout the reader may use: the fingerprint's, confirmed against
    /// the version's expected layout. None when the reader must not read.
    pub layout: Option<MetaLayout>,
    pub fingerprint: Option<Fingerprint>,
    /// Disagreements between sources, and why a layout was refused.
    pub problems: Vec<String>,
}

impl Detection {
    /// Whether any source saw DeepStream at all.
    pub fn found(&self) -> bool {
        self.version.is_some() || self.fingerprint.is_some()
    }
}

/// The version file's text (`Version: 7.1.0\nDATE: ...`).
pub fn parse_version_file(text: &str) -> Option<DsVersion> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case("version").then(|| DsVersion::parse(value)).flatten()
    })
}

impl DetectionInputs {
    /// Reads the version file under `root` and the registry (GStreamer must
    /// be initialised for the registry; without it the list stays empty).
    pub fn gather(root: &Path, override_version: Option<String>, fingerprint: Option<Fingerprint>) -> Self {
        let file = root.join("version");
        let version_file = std::fs::read_to_string(&file).ok().map(|text| (file, text));
        DetectionInputs { override_version, version_file, plugin_versions: registry_versions(), fingerprint }
    }

    /// Applies the precedence rules; logs every disagreement.
    pub fn detect(&self) -> Detection {
        let mut problems = Vec::new();
        let mut candidates: Vec<(VersionSource, DsVersion, String)> = Vec::new();
        if let Some(text) = &self.override_version {
            match DsVersion::parse(text) {
                Some(v) => candidates.push((VersionSource::Override, v, format!("override `{text}`"))),
                None => problems.push(format!(
                    "the DeepStream version override `{text}` is not a version like 7.1 or 9.0.2; ignored"
                )),
            }
        }
        if let Some((path, text)) = &self.version_file {
            match parse_version_file(text) {
                Some(v) => candidates.push((VersionSource::VersionFile, v, path.display().to_string())),
                None => problems.push(format!("{} has no `Version: X.Y.Z` line; ignored", path.display())),
            }
        }
        let mut registry: Option<(DsVersion, String)> = None;
        for (element, text) in &self.plugin_versions {
            if !VERSIONED_ELEMENTS.contains(&element.as_str()) {
                continue;
            }
            let Some(v) = DsVersion::parse(text) else { continue };
            match &registry {
                None => registry = Some((v, element.clone())),
                Some((first, first_element)) if (first.major, first.minor) != (v.major, v.minor) => {
                    problems.push(format!(
                        "GStreamer plugins disagree: {first_element} is {first}, {element} is {v} (mixed DeepStream installs?)"
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some((v, element)) = &registry {
            candidates.push((VersionSource::PluginRegistry, *v, format!("plugin {element}")));
        }
        // Version sources must agree on major.minor; the first one wins.
        if let Some((_, first, first_name)) = candidates.first() {
            for (_, other, name) in &candidates[1..] {
                if (first.major, first.minor) != (other.major, other.minor) {
                    problems.push(format!("{first_name} says DeepStream {first}, but {name} says {other}"));
                }
            }
        }
        let chosen = candidates.first().map(|(source, v, _)| (*source, *v));

        let mut layout = None;
        match (chosen, self.fingerprint) {
            (_, Some(fingerprint)) => match fingerprint.layout() {
                Err(error) => problems.push(error.to_string()),
                Ok(found) => match chosen.map(|(_, v)| (v, v.expected_layout())) {
                    Some((v, Some(expected))) if expected != found => problems.push(format!(
                        "DeepStream {v} uses the {expected} metadata layout, but the loaded metadata library has the \
                         {found} layout (object {} / frame {} bytes); refusing to read metadata. Make the library \
                         path and the version agree",
                        fingerprint.object_meta_size, fingerprint.frame_meta_size
                    )),
                    Some((v, None)) => problems.push(format!(
                        "DeepStream {v} is not a release dshost knows (5.x to 9.x); refusing to read metadata"
                    )),
                    _ => layout = Some(found),
                },
            },
            (Some((_, v)), None) => {
                if v.expected_layout().is_none() {
                    problems.push(format!("DeepStream {v} is not a release dshost knows (5.x to 9.x)"));
                }
                problems.push(
                    "the DeepStream metadata libraries (libnvds_meta.so, libnvdsgst_meta.so) could not be loaded, so \
                     the layout cannot be confirmed"
                        .to_string(),
                );
            }
            (None, None) => {}
        }
        for problem in &problems {
            tracing::warn!(problem = %problem, "DeepStream detection");
        }
        let (source, version) = match chosen {
            Some((s, v)) => (Some(s), Some(v)),
            None if layout.is_some() => (Some(VersionSource::Fingerprint), None),
            None => (None, None),
        };
        Detection { version, source, layout, fingerprint: self.fingerprint, problems }
    }
}

/// (element, plugin version) for every DeepStream element in the registry.
pub fn registry_versions() -> Vec<(String, String)> {
    use gstreamer::prelude::*;
    if !gstreamer::INITIALIZED.load(std::sync::atomic::Ordering::SeqCst) {
        return Vec::new();
    }
    VERSIONED_ELEMENTS
        .iter()
        .filter_map(|name| {
            let factory = gstreamer::ElementFactory::find(name)?;
            let plugin = factory.plugin()?;
            Some((name.to_string(), plugin.version().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS9: Fingerprint = Fingerprint { object_meta_size: 552, frame_meta_size: 232 };
    const DS8: Fingerprint = Fingerprint { object_meta_size: 544, frame_meta_size: 232 };

    fn file(version: &str) -> Option<(PathBuf, String)> {
        Some((
            PathBuf::from("/opt/nvidia/deepstream/deepstream/version"),
            format!("Version: {version}\nDATE: Fri Oct  4 14:25:35 UTC 2024\n"),
        ))
    }

    #[test]
    fn parses_versions() {
        assert_eq!(DsVersion::parse("7.1"), Some(DsVersion::new(7, 1, 0)));
        assert_eq!(DsVersion::parse(" 6.0.1 "), Some(DsVersion::new(6, 0, 1)));
        assert_eq!(DsVersion::parse("5.0.0"), Some(DsVersion::new(5, 0, 0)));
        assert_eq!(DsVersion::parse("seven"), None);
        assert_eq!(DsVersion::parse("1.2.3.4"), None);
        assert_eq!(
            parse_version_file("Version: 7.1.0\nDATE: Fri Oct  4 14:25:35 UTC 2024"),
            Some(DsVersion::new(7, 1, 0))
        );
        assert_eq!(parse_version_file("garbage"), None);
    }

    #[test]
    fn every_layout_has_one_row() {
        for layout in [MetaLayout::Ds5, MetaLayout::Ds6, MetaLayout::Ds8, MetaLayout::Ds9] {
            assert_eq!(LAYOUTS.iter().filter(|f| f.layout == layout).count(), 1, "{layout:?}");
        }
        let message = Fingerprint { object_meta_size: 1, frame_meta_size: 2 }.layout().unwrap_err().to_string();
        assert!(message.contains("known: 5.x 544/192, 6.0-7.1 544/200, 8.0 544/232, 9.x 552/232"), "{message}");
        assert_eq!(DsVersion::new(7, 1, 0).expected_layout(), Some(MetaLayout::Ds6));
        assert_eq!(DsVersion::new(7, 2, 0).expected_layout(), None);
        assert_eq!(DsVersion::new(9, 1, 0).expected_layout(), Some(MetaLayout::Ds9));
        assert_eq!(DsVersion::new(8, 1, 0).expected_layout(), None);
    }

    #[test]
    fn fingerprints() {
        assert_eq!(DS9.layout(), Ok(MetaLayout::Ds9));
        assert_eq!(DS8.layout(), Ok(MetaLayout::Ds8));
        assert_eq!(Fingerprint { object_meta_size: 544, frame_meta_size: 200 }.layout(), Ok(MetaLayout::Ds6));
        assert_eq!(Fingerprint { object_meta_size: 544, frame_meta_size: 192 }.layout(), Ok(MetaLayout::Ds5));
        assert!(matches!(
            Fingerprint { object_meta_size: 488, frame_meta_size: 192 }.layout(),
            Err(LayoutError::Unsupported4 { .. })
        ));
        let unknown = Fingerprint { object_meta_size: 560, frame_meta_size: 240 }.layout().unwrap_err();
        assert!(unknown.to_string().contains("560") && unknown.to_string().contains("refuses"), "{unknown}");
        for layout in [MetaLayout::Ds5, MetaLayout::Ds6, MetaLayout::Ds8, MetaLayout::Ds9] {
            let (object, frame) = layout.sizes();
            assert_eq!(Fingerprint { object_meta_size: object, frame_meta_size: frame }.layout(), Ok(layout));
        }
    }

    #[test]
    fn nothing_found() {
        let d = DetectionInputs::default().detect();
        assert_eq!((d.version, d.source, d.layout), (None, None, None));
        assert!(!d.found() && d.problems.is_empty());
    }

    #[test]
    fn override_wins_and_disagreement_is_reported() {
        let inputs = DetectionInputs {
            override_version: Some("9.0".into()),
            version_file: file("8.0.0"),
            plugin_versions: vec![],
            fingerprint: Some(DS9),
        };
        let d = inputs.detect();
        assert_eq!(d.version, Some(DsVersion::new(9, 0, 0)));
        assert_eq!(d.source, Some(VersionSource::Override));
        assert_eq!(d.layout, Some(MetaLayout::Ds9));
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(d.problems[0].contains("says DeepStream 9.0.0") && d.problems[0].contains("8.0.0"));
    }

    #[test]
    fn bad_override_is_ignored_with_a_problem() {
        let inputs = DetectionInputs {
            override_version: Some("latest".into()),
            version_file: file("7.1.0"),
            ..Default::default()
        };
        let d = inputs.detect();
        assert_eq!(d.version, Some(DsVersion::new(7, 1, 0)));
        assert_eq!(d.source, Some(VersionSource::VersionFile));
        assert!(d.problems.iter().any(|p| p.contains("`latest`")));
        // No library: the layout stays unconfirmed and is not guessed.
        assert_eq!(d.layout, None);
        assert!(d.problems.iter().any(|p| p.contains("could not be loaded")));
    }

    #[test]
    fn unreadable_version_file() {
        let inputs = DetectionInputs {
            version_file: Some((PathBuf::from("/x/version"), "nonsense".into())),
            fingerprint: Some(DS8),
            ..Default::default()
        };
        let d = inputs.detect();
        assert_eq!(d.source, Some(VersionSource::Fingerprint));
        assert_eq!(d.version, None);
        assert_eq!(d.layout, Some(MetaLayout::Ds8));
        assert!(d.problems[0].contains("/x/version"));
    }

    #[test]
    fn registry_versions_are_used_and_compared() {
        let inputs = DetectionInputs {
            plugin_versions: vec![
                ("nvvideoconvert".into(), "1.2.3".into()),
                ("nvinfer".into(), "7.1".into()),
                ("nvstreammux".into(), "7.0".into()),
            ],
            fingerprint: Some(Fingerprint { object_meta_size: 544, frame_meta_size: 200 }),
            ..Default::default()
        };
        let d = inputs.detect();
        assert_eq!(d.version, Some(DsVersion::new(7, 1, 0)));
        assert_eq!(d.source, Some(VersionSource::PluginRegistry));
        assert_eq!(d.layout, Some(MetaLayout::Ds6));
        assert_eq!(d.problems.len(), 1);
        assert!(d.problems[0].contains("nvinfer is 7.1.0, nvstreammux is 7.0.0"), "{:?}", d.problems);
    }

    #[test]
    fn fingerprint_contradicting_the_version_is_refused() {
        // The crash case from docs/deepstream.md: an 8.0 reader on 9.x libraries.
        let inputs = DetectionInputs { version_file: file("8.0.0"), fingerprint: Some(DS9), ..Default::default() };
        let d = inputs.detect();
        assert_eq!(d.version, Some(DsVersion::new(8, 0, 0)));
        assert_eq!(d.layout, None);
        assert!(d.problems[0].contains("refusing to read"), "{:?}", d.problems);
    }

    #[test]
    fn unknown_release_and_unknown_layout_are_refused() {
        let d = DetectionInputs { version_file: file("10.0.0"), fingerprint: Some(DS9), ..Default::default() }.detect();
        assert_eq!(d.layout, None);
        assert!(d.problems[0].contains("not a release dshost knows"));
        let d = DetectionInputs {
            fingerprint: Some(Fingerprint { object_meta_size: 600, frame_meta_size: 240 }),
            ..Default::default()
        }
        .detect();
        assert_eq!(d.layout, None);
        assert!(d.found());
        assert!(d.problems[0].contains("unknown DeepStream metadata layout"));
    }

    #[test]
    fn gather_reads_the_version_file_under_an_injected_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("version"), "Version: 6.3.0\nDATE: x\n").unwrap();
        let inputs = DetectionInputs::gather(dir.path(), None, None);
        assert_eq!(inputs.version_file.as_ref().map(|(p, _)| p.clone()), Some(dir.path().join("version")));
        assert_eq!(inputs.detect().version, Some(DsVersion::new(6, 3, 0)));
        let empty = tempfile::tempdir().unwrap();
        assert!(DetectionInputs::gather(empty.path(), None, None).version_file.is_none());
    }
}
