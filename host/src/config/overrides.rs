//! The command line's changes to a config (`--source`, `--strategy`,
//! `--alerts-jsonl`), applied to the file at startup and again to every
//! re-read of it. Sources and strategies are changed before the config is
//! checked, so they get the same checks as the file; the `--alerts-jsonl`
//! sink is added after (its name, `jsonl:<path>`, is the journal's name for
//! it and not one a config file may use).

use std::path::{Path, PathBuf};

use super::load::{parse_config_with, ConfigErrors, ConfigIssue};
use super::model::{Config, SourceConfig, StrategyConfig};
use crate::alerts::sinks::jsonl::JsonlConfig;
use crate::alerts::SinkConfig;

#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    /// Replace the config's sources (ids `source-1`, `source-2`, ...).
    pub sources: Vec<String>,
    /// Replace the config's strategy list; an entry with the same name
    /// supplies its settings.
    pub strategies: Vec<PathBuf>,
    /// A JSON-lines alert sink on this file (`-` = stdout).
    pub alerts_jsonl: Option<String>,
    /// `--model`: the ONNX detector's model.
    pub model: Option<PathBuf>,
    /// Drop the config's strategies (commands that run none, e.g. `record`).
    pub no_strategies: bool,
}

impl CommandLine {
    /// Replaces the sources, strategies and model (before the checks).
    pub fn apply(&self, config: &mut Config) {
        if let Some(model) = &self.model {
            config.pipeline.onnx.model = Some(model.clone());
        }
        if self.no_strategies {
            config.strategies.clear();
            config.alerts.strategies.clear();
        }
        if !self.sources.is_empty() {
            config.sources = self
                .sources
                .iter()
                .enumerate()
                .map(|(i, uri)| SourceConfig {
                    id: format!("source-{}", i + 1),
                    uri: uri.clone(),
                    loop_file: false,
                    realtime: false,
                    rtsp: Default::default(),
                    detector: None,
                    decoder: None,
                    detect: None,
                    device_id: None,
                })
                .collect();
            // Strategies pinned to the replaced sources would point nowhere.
            for strategy in &mut config.strategies {
                strategy.sources.clear();
            }
        }
        if !self.strategies.is_empty() {
            let configured = std::mem::take(&mut config.strategies);
            config.strategies = self
                .strategies
                .iter()
                .map(|path| {
                    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    match configured.iter().find(|s| s.resolved_name() == name) {
                        Some(entry) => StrategyConfig { path: path.clone(), ..entry.clone() },
                        None => StrategyConfig {
                            name: Some(name),
                            path: path.clone(),
                            config: serde_yaml::Value::Null,
                            sources: Vec::new(),
                            limits: Default::default(),
                        },
                    }
                })
                .collect();
        }
    }
}

/// The sinks of a run: the config's, plus `--alerts-jsonl` (`-` = stdout);
/// readable lines on stdout when nothing else is configured.
pub fn compose_sinks(configured: &[SinkConfig], alerts_jsonl: Option<&str>) -> Vec<SinkConfig> {
    let mut sinks = configured.to_vec();
    if let Some(target) = alerts_jsonl {
        if target == "-" {
            // JSON lines own stdout now; readable lines would corrupt them.
            sinks.retain(|sink| !matches!(sink, SinkConfig::Console(_)));
        }
        // Named by its target, so a journal shared by runs with different
        // files does not send one file's pending alerts to another.
        let name = if target == "-" { "jsonl-stdout".to_string() } else { format!("jsonl:{target}") };
        sinks.push(SinkConfig::Jsonl(JsonlConfig {
            name: Some(name),
            path: PathBuf::from(target),
            ..Default::default()
        }));
        if target != "-" && configured.is_empty() {
            sinks.insert(0, SinkConfig::Console(Default::default()));
        }
    } else if sinks.is_empty() {
        sinks.push(SinkConfig::Console(Default::default()));
    }
    sinks
}

/// Loads the config (a file, or the embedded default) with `overrides`
/// applied, reporting every error at once.
pub fn load(path: Option<&Path>, overrides: &CommandLine) -> Result<Config, ConfigErrors> {
    let (text, origin) = match path {
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
                origin: origin.clone(),
                issues: vec![ConfigIssue {
                    path: String::new(),
                    line: None,
                    message: format!("cannot read the file: {e}"),
                }],
            })?;
            (text, origin)
        }
        None => (super::DEFAULT_CONFIG.to_string(), "<embedded default config>".to_string()),
    };
    let mut config = parse_config_with(&text, &origin, |config| overrides.apply(config))?;
    config.alerts.sinks = compose_sinks(&config.alerts.sinks, overrides.alerts_jsonl.as_deref());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_jsonl_joins_the_sinks() {
        assert_eq!(compose_sinks(&[], None).iter().map(SinkConfig::name).collect::<Vec<_>>(), ["console"]);
        assert_eq!(compose_sinks(&[], Some("-")).iter().map(SinkConfig::name).collect::<Vec<_>>(), ["jsonl-stdout"]);
        assert_eq!(
            compose_sinks(&[], Some("/tmp/a.jsonl")).iter().map(SinkConfig::name).collect::<Vec<_>>(),
            ["console", "jsonl:/tmp/a.jsonl"]
        );
        // Readable lines would corrupt JSON lines on stdout.
        let console = [SinkConfig::Console(Default::default())];
        assert_eq!(
            compose_sinks(&console, Some("-")).iter().map(SinkConfig::name).collect::<Vec<_>>(),
            ["jsonl-stdout"]
        );
    }
}
