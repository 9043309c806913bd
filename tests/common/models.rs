//! The ONNX Runtime library, the demo model, the clip and the photos, as
//! `scripts/fetch-models.sh` fetches them (pinned, checksummed, cached).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Paths printed by scripts/fetch-models.sh.
pub struct Assets {
    pub ort_lib: PathBuf,
    pub model: PathBuf,
    pub vtest: PathBuf,
    pub photos: PathBuf,
    pub python: PathBuf,
}

pub fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let script = super::repo_root().join("scripts/fetch-models.sh");
        let output = std::process::Command::new("bash").arg(&script).output().expect("cannot run fetch-models.sh");
        assert!(
            output.status.success(),
            "{} failed (the ONNX tests need PyPI, crates.io and the Debian archive once): {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let vars: HashMap<String, PathBuf> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), PathBuf::from(v))))
            .collect();
        let get = |key: &str| vars.get(key).cloned().unwrap_or_else(|| panic!("fetch-models.sh printed no {key}"));
        Assets {
            ort_lib: get("DSHOST_ORT_LIB"),
            model: get("DSHOST_DEMO_MODEL"),
            vtest: get("DSHOST_VTEST"),
            photos: get("DSHOST_PHOTOS"),
            python: get("DSHOST_ONNX_PYTHON"),
        }
    })
}
