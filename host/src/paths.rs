//! Where dshost keeps persistent state.

use std::path::PathBuf;

/// The default data directory: `$XDG_DATA_HOME/dshost`, else
/// `~/.local/share/dshost`, else `./dshost-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("dshost");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/share/dshost");
    }
    PathBuf::from("dshost-data")
}

/// Compiled-strategy cache under a data directory.
pub fn strategy_cache_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("cache").join("strategies")
}
