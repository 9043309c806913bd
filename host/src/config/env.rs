//! `DSHOST_`-prefixed environment overrides for scalar settings.
//!
//! Only variables with a `__` are overrides (every setting lives inside a
//! section), so unrelated `DSHOST_*` variables are left alone; a `__`
//! variable naming an unknown section is an error, which catches typos.
//!
//! `DSHOST_<SECTION>__<KEY>[__<KEY>...]=VALUE` sets the scalar at that path,
//! lower-cased, with `__` between levels; the value is read as YAML (so
//! `32`, `true` and `0.5` keep their types). Examples:
//! `DSHOST_PIPELINE__QUEUE_DEPTH=32`, `DSHOST_RECOVERY__WATCHDOG_SECONDS=10`,
//! `DSHOST_MONITORING__HTTP__TOKEN=...`. Lists (sources, strategies) cannot
//! be addressed. `DSHOST_DATA_DIR` and `DSHOST_LOG_FORMAT` belong to the
//! command line and are not config paths.

use serde_yaml::Value;

const PREFIX: &str = "DSHOST_";
const COMMAND_LINE: [&str; 2] = ["DSHOST_DATA_DIR", "DSHOST_LOG_FORMAT"];

/// Applies the overrides in `vars` to the config root; returns problems as
/// (path, message).
pub fn apply_overrides(root: &mut Value, vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut overrides: Vec<(String, String)> = vars
        .filter(|(k, _)| k.starts_with(PREFIX) && k.contains("__") && !COMMAND_LINE.contains(&k.as_str()))
        .collect();
    overrides.sort();
    for (name, text) in overrides {
        let path: Vec<String> = name[PREFIX.len()..].split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push((name.clone(), format!("environment variable `{name}`: empty path segment")));
            continue;
        }
        let value: Value = serde_yaml::from_str(&text).unwrap_or(Value::String(text.clone()));
        if matches!(value, Value::Sequence(_) | Value::Mapping(_)) {
            problems.push((path.join("."), format!("environment variable `{name}` must hold a single value")));
            continue;
        }
        let mut node = &mut *root;
        let mut failed = false;
        for (depth, key) in path.iter().enumerate() {
            let Value::Mapping(map) = node else {
                problems.push((
                    path[..depth].join("."),
                    format!("environment variable `{name}` addresses inside a non-mapping value"),
                ));
                failed = true;
                break;
            };
            let key = Value::String(key.clone());
            if depth + 1 == path.len() {
                map.insert(key, value.clone());
                break;
            }
            node = map.entry(key).or_insert_with(|| Value::Mapping(Default::default()));
        }
        if !failed {
            tracing::info!(variable = %name, path = %path.join("."), "config setting overridden from the environment");
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_scalars_with_types() {
        let mut root: Value = serde_yaml::from_str("pipeline:\n  queue_depth: 4\n").unwrap();
        let vars = vec![
            ("DSHOST_PIPELINE__QUEUE_DEPTH".to_string(), "32".to_string()),
            ("DSHOST_MONITORING__HTTP__TOKEN".to_string(), "s3cret".to_string()),
            ("DSHOST_DATA_DIR".to_string(), "/x".to_string()),
            ("OTHER".to_string(), "1".to_string()),
            ("DSHOST_BENCH_FRAMES".to_string(), "300".to_string()),
        ];
        assert!(apply_overrides(&mut root, vars.into_iter()).is_empty());
        assert_eq!(root["pipeline"]["queue_depth"], Value::Number(32.into()));
        assert_eq!(root["monitoring"]["http"]["token"], Value::String("s3cret".into()));
        assert!(root.get("data_dir").is_none());
        assert!(root.get("bench_frames").is_none(), "variables without `__` are not overrides");
    }

    #[test]
    fn refuses_lists_and_bad_paths() {
        let mut root: Value = serde_yaml::from_str("sources: []\n").unwrap();
        let problems = apply_overrides(
            &mut root,
            vec![
                ("DSHOST_SOURCES__ID".to_string(), "x".to_string()),
                ("DSHOST_PIPELINE__LABELS".to_string(), "[a, b]".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
