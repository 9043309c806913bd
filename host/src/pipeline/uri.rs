//! Source URIs: parsing, validation and redaction.
//!
//! Supported: a file path or `file://` URI, `rtsp://`/`rtsps://`,
//! `http://`/`https://`, `v4l2:///dev/videoN`, `test://PATTERN` (GStreamer's
//! videotestsrc) and `scene://` (dshost's synthetic scene with ground-truth
//! objects). Camera URLs carry passwords: [`SourceUri::redacted`] is the only
//! form that may reach a log line or a metric label.

use std::fmt;
use std::path::PathBuf;

use url::Url;

pub use crate::redact::redact_text;

/// videotestsrc patterns accepted by `test://`.
pub const TEST_PATTERNS: [&str; 25] = [
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "solid-color",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
];

/// Size and rate of generated video (`test://`, `scene://`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pace frames at `fps` like a camera (true) or produce them as fast as
    /// the pipeline takes them (false).
    pub realtime: bool,
    /// Frames to produce before the source ends; `None` = endless.
    pub frames: Option<u64>,
}

/// A parsed source URI.
#[derive(Clone, PartialEq)]
pub enum SourceUri {
    File { path: PathBuf },
    Rtsp { url: Url, user: Option<String>, password: Option<String> },
    Http { url: Url, user: Option<String>, password: Option<String> },
    V4l2 { device: PathBuf },
    Test { pattern: String, format: SyntheticFormat },
    Scene { seed: u64, format: SyntheticFormat },
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("file not found: {0} (check the path; relative paths start at the working directory)")]
    FileNotFound(String),
    #[error("`{0}` is not a valid URI: {1}")]
    Invalid(String, String),
    #[error("unsupported scheme `{0}`; use a file path, file://, rtsp://, rtsps://, http://, https://, v4l2://, test:// or scene://")]
    Scheme(String),
    #[error("unknown test pattern `{0}`; known: {known}", known = TEST_PATTERNS.join(", "))]
    Pattern(String),
    #[error("`{uri}`: {message}")]
    Parameter { uri: String, message: String },
}

impl SourceUri {
    /// Parses and checks a URI (files must exist).
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if !text.contains("://") {
            return Self::file(PathBuf::from(text), text);
        }
        let url = Url::parse(text).map_err(|e| UriError::Invalid(redact_text(text), e.to_string()))?;
        let credentials = |url: &Url| {
            let user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
            let password = url.password().map(percent_decode);
            let mut bare = url.clone();
            let _ = bare.set_username("");
            let _ = bare.set_password(None);
            (bare, user, password)
        };
        match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| UriError::Invalid(text.to_string(), "not a local file path".to_string()))?;
                Self::file(path, text)
            }
            "rtsp" | "rtsps" | "rtspt" => {
                let (url, user, password) = credentials(&url);
                Ok(SourceUri::Rtsp { url, user, password })
            }
            "http" | "https" => {
                let (url, user, password) = credentials(&url);
                Ok(SourceUri::Http { url, user, password })
            }
            "v4l2" => {
                let device = if url.path().is_empty() || url.path() == "/" {
                    PathBuf::from("/dev/video0")
                } else {
                    PathBuf::from(url.path())
                };
                Ok(SourceUri::V4l2 { device })
            }
            "test" => {
                let pattern = url.host_str().filter(|h| !h.is_empty()).unwrap_or("smpte").to_string();
                if !TEST_PATTERNS.contains(&pattern.as_str()) {
                    return Err(UriError::Pattern(pattern));
                }
                let (format, _) = synthetic_format(&url, text, &[])?;
                Ok(SourceUri::Test { pattern, format })
            }
            "scene" => {
                let (format, extra) = synthetic_format(&url, text, &["seed"])?;
                let seed = match extra.first() {
                    Some((_, value)) => value.parse().map_err(|_| UriError::Parameter {
                        uri: text.to_string(),
                        message: format!("`seed` must be an unsigned integer, got `{value}`"),
                    })?,
                    None => 1,
                };
                Ok(SourceUri::Scene { seed, format })
            }
            other => Err(UriError::Scheme(other.to_string())),
        }
    }

    fn file(path: PathBuf, text: &str) -> Result<Self, UriError> {
        if path.is_file() {
            Ok(SourceUri::File { path })
        } else {
            Err(UriError::FileNotFound(text.to_string()))
        }
    }

    /// Whether the source is live (a camera, a stream, a paced generator):
    /// live sources reconnect on end-of-stream; files end.
    pub fn is_live(&self) -> bool {
        match self {
            SourceUri::File { .. } | SourceUri::Http { .. } => false,
            SourceUri::Rtsp { .. } | SourceUri::V4l2 { .. } => true,
            SourceUri::Test { format, .. } | SourceUri::Scene { format, .. } => format.frames.is_none(),
        }
    }

    /// The URI with any password replaced by `***`: safe for logs and labels.
    pub fn redacted(&self) -> String {
        match self {
            SourceUri::File { path } => path.display().to_string(),
            SourceUri::Rtsp { url, user, password } | SourceUri::Http { url, user, password } => {
                let mut shown = url.clone();
                if let Some(user) = user {
                    let _ = shown.set_username(user);
                }
                if password.is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                shown.to_string()
            }
            SourceUri::V4l2 { device } => format!("v4l2://{}", device.display()),
            SourceUri::Test { pattern, .. } => format!("test://{pattern}"),
            SourceUri::Scene { seed, .. } => format!("scene://?seed={seed} (synthetic)"),
        }
    }
}

impl fmt::Debug for SourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(v) = text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Extra = Vec<(String, String)>;

/// Reads `width`, `height`, `fps`, `realtime`, `frames` (and the `extra`
/// names) from the query string; anything else is an error.
fn synthetic_format(url: &Url, text: &str, extra_names: &[&str]) -> Result<(SyntheticFormat, Extra), UriError> {
    let mut format = SyntheticFormat { width: 1280, height: 720, fps: 30, realtime: true, frames: None };
    let mut extra = Vec::new();
    let error = |message: String| UriError::Parameter { uri: text.to_string(), message };
    for (key, value) in url.query_pairs() {
        let number = || -> Result<u64, UriError> {
            value.parse::<u64>().map_err(|_| error(format!("`{key}` must be a whole number, got `{value}`")))
        };
        match key.as_ref() {
            "width" => format.width = number()?.clamp(16, 7680) as u32,
            "height" => format.height = number()?.clamp(16, 4320) as u32,
            "fps" => format.fps = number()?.clamp(1, 240) as u32,
            "frames" => format.frames = Some(number()?),
            "realtime" => {
                format.realtime = match value.as_ref() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return Err(error(format!("`realtime` must be true or false, got `{value}`"))),
                }
            }
            name if extra_names.contains(&name) => extra.push((name.to_string(), value.to_string())),
            name => {
                let mut known = vec!["width", "height", "fps", "frames", "realtime"];
                known.extend_from_slice(extra_names);
                return Err(error(format!("unknown parameter `{name}` (known: {})", known.join(", "))));
            }
        }
    }
    Ok((format, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_credentials_are_split_and_redacted() {
        let uri = SourceUri::parse("rtsp://admin:s%40cret@10.0.0.5:554/stream1").unwrap();
        match &uri {
            SourceUri::Rtsp { url, user, password } => {
                assert_eq!(url.as_str(), "rtsp://10.0.0.5:554/stream1");
                assert_eq!(user.as_deref(), Some("admin"));
                assert_eq!(password.as_deref(), Some("s@cret"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(uri.redacted(), "rtsp://admin:***@10.0.0.5:554/stream1");
        assert!(!format!("{uri:?}").contains("cret"));
        assert!(uri.is_live());
    }

    #[test]
    fn synthetic_sources() {
        let scene = SourceUri::parse("scene://?seed=7&width=640&height=360&realtime=false&frames=90").unwrap();
        let SourceUri::Scene { seed, format } = scene else { panic!() };
        assert_eq!(seed, 7);
        assert_eq!((format.width, format.height, format.realtime, format.frames), (640, 360, false, Some(90)));
        assert!(
            matches!(SourceUri::parse("test://ball").unwrap(), SourceUri::Test { ref pattern, .. } if pattern == "ball")
        );
        assert_eq!(SourceUri::parse("test://plaid"), Err(UriError::Pattern("plaid".into())));
        assert!(matches!(SourceUri::parse("scene://?colour=red"), Err(UriError::Parameter { .. })));
    }

    #[test]
    fn files_and_bad_uris() {
        assert!(matches!(SourceUri::parse("/no/such/file.mp4"), Err(UriError::FileNotFound(_))));
        assert!(matches!(SourceUri::parse("gopher://x"), Err(UriError::Scheme(s)) if s == "gopher"));
        let this_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(matches!(SourceUri::parse(this_file), Ok(SourceUri::File { .. })));
        assert!(matches!(SourceUri::parse(&format!("file://{this_file}")), Ok(SourceUri::File { .. })));
        assert_eq!(SourceUri::parse("v4l2:///dev/video2").unwrap().redacted(), "v4l2:///dev/video2");
    }

    #[test]
    fn redacts_unparsable_text() {
        assert_eq!(redact_text("rtsp://u:pw@host:99999999/x"), "rtsp://u:***@host:99999999/x");
        assert_eq!(redact_text("rtsp://host/x"), "rtsp://host/x");
    }
}
