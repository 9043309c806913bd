//! JSON lines to a file (with size-based rotation) or to stdout (`-`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{DeliveryConfig, DeliveryError, PayloadFormat, Sink};
use crate::alerts::alert::Alert;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonlConfig {
    pub name: Option<String>,
    /// File to append to, or `-` for stdout.
    pub path: PathBuf,
    /// Rotate when the file would grow past this many MiB; 0 = never.
    pub rotate_mib: u64,
    /// Rotated files kept (`alerts.jsonl.1` is the newest).
    pub keep: u32,
    /// fsync after every line (survives power loss; slower).
    pub fsync: bool,
    pub format: PayloadFormat,
    pub delivery: DeliveryConfig,
}

impl Default for JsonlConfig {
    fn default() -> Self {
        JsonlConfig {
            name: None,
            path: PathBuf::from("alerts.jsonl"),
            rotate_mib: 0,
            keep: 5,
            fsync: false,
            format: PayloadFormat::Dshost,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl JsonlConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(("path".into(), "must name a file, or `-` for stdout".into()));
        }
        if self.rotate_mib > 0 && self.keep == 0 {
            problems.push(("keep".into(), "must be at least 1 when rotate_mib is set".into()));
        }
        problems
    }
}

enum Output {
    Stdout,
    File { file: File, size: u64 },
    Closed,
}

pub struct JsonlSink {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    fsync: bool,
    output: Output,
}

impl JsonlSink {
    pub fn new(config: &JsonlConfig) -> JsonlSink {
        let stdout = config.path == Path::new("-");
        JsonlSink {
            path: config.path.clone(),
            rotate_bytes: config.rotate_mib.saturating_mul(1024 * 1024),
            keep: config.keep,
            fsync: config.fsync,
            output: if stdout { Output::Stdout } else { Output::Closed },
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        let size = file.metadata()?.len();
        self.output = Output::File { file, size };
        Ok(())
    }

    /// `path.N` -> `path.N+1` (the oldest falls off), `path` -> `path.1`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.output = Output::Closed;
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.open()
    }

    fn write_line(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if matches!(self.output, Output::Closed) {
            self.open()?;
        }
        let line_len = payload.len() as u64 + 1;
        if let Output::File { size, .. } = &self.output {
            if self.rotate_bytes > 0 && *size > 0 && size + line_len > self.rotate_bytes {
                self.rotate()?;
            }
        }
        match &mut self.output {
            Output::Stdout => super::with_stdout(|out| {
                out.write_all(payload)?;
                out.write_all(b"\n")?;
                out.flush()
            }),
            Output::File { file, size } => {
                // One write per line: a reader never sees half a line from us.
                let mut line = Vec::with_capacity(payload.len() + 1);
                line.extend_from_slice(payload);
                line.push(b'\n');
                file.write_all(&line)?;
                if self.fsync {
                    file.sync_data()?;
                }
                *size += line_len;
                Ok(())
            }
            Output::Closed => Ok(()),
        }
    }
}

impl Sink for JsonlSink {
    fn deliver(&mut self, _alert: &Alert, payload: &[u8]) -> Result<(), DeliveryError> {
        self.write_line(payload).map_err(|error| {
            // Reopen on the next attempt: the disk may have been freed or the
            // file moved away.
            if !matches!(self.output, Output::Stdout) {
                self.output = Output::Closed;
            }
            DeliveryError::Retry(format!("cannot write {}: {error}", self.path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let config = JsonlConfig { path: path.clone(), keep: 2, ..Default::default() };
        let mut sink = JsonlSink::new(&config);
        sink.rotate_bytes = 100;
        let alert = crate::alerts::sinks::tests::alert();
        for n in 0..10 {
            let line = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(30));
            sink.deliver(&alert, line.as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // 42-byte lines, 100-byte files: two lines per file.
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).contains("\"n\":9"));
        let one = dir.path().join("alerts.jsonl.1");
        assert!(read(&one).contains("\"n\":7"));
        assert!(dir.path().join("alerts.jsonl.2").exists());
        assert!(!dir.path().join("alerts.jsonl.3").exists(), "keep: 2");
    }

    #[test]
    fn an_unwritable_path_is_a_retryable_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let config = JsonlConfig { path: blocker.join("alerts.jsonl"), ..Default::default() };
        let mut sink = JsonlSink::new(&config);
        let error = sink.deliver(&crate::alerts::sinks::tests::alert(), b"{}").unwrap_err();
        assert!(matches!(&error, DeliveryError::Retry(m) if m.contains("alerts.jsonl")), "{error}");
    }
}
