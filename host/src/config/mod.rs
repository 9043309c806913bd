//! Configuration: the YAML model, loading with every error reported at once,
//! and the embedded default.

pub mod defaults;
pub mod diff;
mod env;
pub mod load;
mod locate;
pub mod model;
pub mod onnx;
pub mod overrides;

pub use load::{check, load_file, parse_config, parse_config_with, valid_id, ConfigErrors, ConfigIssue};
pub use model::*;

/// The default config compiled into the binary (`configs/default.yaml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.yaml");

/// A strategy config that is not valid YAML.
#[derive(Debug, thiserror::Error)]
#[error("{location}invalid YAML: {message}")]
pub struct YamlError {
    pub location: String,
    pub message: String,
}

/// Converts YAML (or JSON, which is YAML) text to a JSON document. Empty
/// text gives `{}`.
pub fn yaml_to_json(text: &str) -> Result<String, YamlError> {
    if text.trim().is_empty() {
        return Ok("{}".to_string());
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| YamlError {
        location: e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default(),
        message: e.to_string(),
    })?;
    value_to_json(&value)
}

/// Converts a parsed YAML value to a JSON document.
pub fn value_to_json(value: &serde_yaml::Value) -> Result<String, YamlError> {
    let json: serde_json::Value = serde_yaml::from_value(value.clone())
        .map_err(|e| YamlError { location: String::new(), message: format!("cannot be expressed as JSON: {e}") })?;
    let json = if json.is_null() { serde_json::json!({}) } else { json };
    Ok(json.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_becomes_json() {
        let json = yaml_to_json("classes: [person, 2]\nmin_confidence: 0.4\n").unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["classes"][1], 2);
        assert_eq!(yaml_to_json("  \n").unwrap(), "{}");
        let err = yaml_to_json("a: [1, 2\n").unwrap_err();
        assert!(err.location.starts_with("line "), "{err}");
    }

    #[test]
    fn embedded_default_parses() {
        // Strategy files are checked when running; here only the structure.
        let errors = parse_config(DEFAULT_CONFIG, "default.yaml").err();
        if let Some(errors) = errors {
            assert!(errors.issues.iter().all(|i| i.path.ends_with(".path")), "{errors}");
        }
    }
}
