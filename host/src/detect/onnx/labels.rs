//! A model's class labels: from its `names` metadata (Ultralytics and
//! YOLOv5 write a Python literal, `{0: 'person', 1: 'bicycle', ...}` or a
//! list) or from a file with one label per line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read the labels file {}: {source}. Fix: check `pipeline.onnx.labels` (a file with one label per line, or `auto`)", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the labels file {} has no labels. Fix: one label per line, line N = class N", path.display())]
    Empty { path: PathBuf },
    #[error("the labels file {} has an empty line {line} (line N is the label of class N-1). Fix: name every class", path.display())]
    BlankLine { path: PathBuf, line: usize },
    #[error(
        "{origin} names {labels} labels but the model has {classes} classes. Fix: give a labels file with exactly \
         {classes} lines (line N = class N-1), or `labels: auto`"
    )]
    CountMismatch { origin: String, labels: usize, classes: usize },
    #[error("the model's `names` metadata cannot be read ({reason}): {excerpt}. Fix: give a labels file (`pipeline.onnx.labels`)")]
    Metadata { reason: String, excerpt: String },
}

/// Reads a labels file: one label per line (surrounding spaces trimmed,
/// trailing empty lines ignored).
pub fn read_labels_file(path: &Path) -> Result<Vec<String>, LabelsError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LabelsError::Read { path: path.to_path_buf(), source })?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while labels.last().is_some_and(String::is_empty) {
        labels.pop();
    }
    if labels.is_empty() {
        return Err(LabelsError::Empty { path: path.to_path_buf() });
    }
    if let Some(blank) = labels.iter().position(String::is_empty) {
        return Err(LabelsError::BlankLine { path: path.to_path_buf(), line: blank + 1 });
    }
    Ok(labels)
}

/// Parses a `names` metadata value: a Python dict literal of int keys and
/// string values, or a list of strings (no evaluation, just the literal).
/// Missing ids in a dict get empty labels (displayed as `class_<id>`).
pub fn parse_names(text: &str) -> Result<Vec<String>, LabelsError> {
    let error = |reason: &str| LabelsError::Metadata {
        reason: reason.to_string(),
        excerpt: text.chars().take(60).collect::<String>() + if text.chars().count() > 60 { "..." } else { "" },
    };
    let mut parser = Parser { chars: text.chars().collect(), at: 0 };
    parser.skip_space();
    let labels = match parser.next() {
        Some('{') => {
            let mut pairs: Vec<(usize, String)> = Vec::new();
            loop {
                parser.skip_space();
                if parser.eat('}') {
                    break;
                }
                let key = parser.integer().map_err(|r| error(&r))?;
                parser.skip_space();
                if !parser.eat(':') {
                    return Err(error("expected `:` after a class id"));
                }
                parser.skip_space();
                let value = parser.string().map_err(|r| error(&r))?;
                if pairs.iter().any(|(k, _)| *k == key) {
                    return Err(error(&format!("class id {key} appears twice")));
                }
                pairs.push((key, value));
                parser.skip_space();
                if parser.eat(',') {
                    continue;
                }
                parser.skip_space();
                if parser.eat('}') {
                    break;
                }
                return Err(error("expected `,` or `}`"));
            }
            let count = pairs.iter().map(|(k, _)| k + 1).max().unwrap_or(0);
            // A bogus id like 100000 would allocate a huge table.
            if count > pairs.len() * 2 + 16 {
                return Err(error(&format!("class ids go up to {} for {} names", count - 1, pairs.len())));
            }
            let mut labels = vec![String::new(); count];
            for (key, value) in pairs {
                labels[key] = value;
            }
            labels
        }
        Some('[') => {
            let mut labels = Vec::new();
            loop {
                parser.skip_space();
                if parser.eat(']') {
                    break;
                }
                labels.push(parser.string().map_err(|r| error(&r))?);
                parser.skip_space();
                if parser.eat(',') {
                    continue;
                }
                parser.skip_space();
                if parser.eat(']') {
                    break;
                }
                return Err(error("expected `,` or `]`"));
            }
            labels
        }
        _ => return Err(error("expected a `{id: 'name', ...}` dict or a list of names")),
    };
    parser.skip_space();
    if parser.at != parser.chars.len() {
        return Err(error("text after the end of the literal"));
    }
    if labels.is_empty() {
        return Err(error("no names"));
    }
    Ok(labels)
}

/// Checks that `labels` names exactly `classes` classes (when the output
/// shape tells the class count).
pub fn check_count(labels: &[String], classes: Option<usize>, origin: &str) -> Result<(), LabelsError> {
    match classes {
        Some(classes) if classes != labels.len() => {
            Err(LabelsError::CountMismatch { origin: origin.to_string(), labels: labels.len(), classes })
        }
        _ => Ok(()),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.at).copied();
        self.at += 1;
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        digits.parse().map_err(|_| format!("expected a class id at character {}", start + 1))
    }

    /// A Python string literal in single or double quotes, with the usual
    /// backslash escapes.
    fn string(&mut self) -> Result<String, String> {
        let position = self.at + 1;
        let quote = match self.next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(format!("expected a quoted name at character {position}")),
        };
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(format!("unterminated string starting at character {position}")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('x') => out.push(self.hex(2)?),
                    Some('u') => out.push(self.hex(4)?),
                    Some('U') => out.push(self.hex(8)?),
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    Some(c) => {
                        // Python keeps unknown escapes as written.
                        out.push('\\');
                        out.push(c);
                    }
                    None => return Err(format!("unterminated string starting at character {position}")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Result<char, String> {
        let start = self.at;
        let text: String = self.chars.get(start..start + digits).unwrap_or_default().iter().collect();
        self.at += digits;
        u32::from_str_radix(&text, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad escape at character {}", start + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_dict_literal() {
        let labels = parse_names("{0: 'person', 1: 'bicycle', 2: 'car', 9: 'traffic light'}").unwrap();
        assert_eq!(labels.len(), 10);
        assert_eq!(&labels[..3], ["person", "bicycle", "car"]);
        assert_eq!(labels[9], "traffic light");
        assert_eq!(labels[5], "", "missing ids are unnamed");
    }

    #[test]
    fn quotes_escapes_lists_and_spacing() {
        let labels = parse_names(r#" {0:"driver's seat",1: 'a \'b\' \\ c', 2 : 'caf\xe9',3:'\u00fc'} "#).unwrap();
        assert_eq!(labels, ["driver's seat", "a 'b' \\ c", "café", "ü"]);
        assert_eq!(parse_names("['person', \"car\",]").unwrap(), ["person", "car"]);
    }

    #[test]
    fn malformed_literals_are_refused_with_an_excerpt() {
        for bad in [
            "",
            "person, car",
            "{0: person}",
            "{0: 'a', 0: 'b'}",
            "{0: 'a' 1: 'b'}",
            "{0: 'a'",
            "{'a': 'b'}",
            "{0: 'a'} trailing",
            "{100000: 'a'}",
            "{}",
            "['unterminated]",
        ] {
            let error = parse_names(bad).unwrap_err();
            assert!(matches!(error, LabelsError::Metadata { .. }), "{bad}: {error}");
            assert!(error.to_string().contains("pipeline.onnx.labels"), "{error}");
        }
    }

    #[test]
    fn labels_file_and_count_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "person\n  forklift \nhelmet\n\n").unwrap();
        let labels = read_labels_file(&path).unwrap();
        assert_eq!(labels, ["person", "forklift", "helmet"]);
        let error = check_count(&labels, Some(80), &format!("the labels file {}", path.display())).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("names 3 labels but the model has 80 classes"), "{text}");
        assert!(text.contains(&path.display().to_string()) && text.contains("exactly 80 lines"), "{text}");
        assert!(check_count(&labels, Some(3), "x").is_ok());
        assert!(check_count(&labels, None, "x").is_ok(), "end-to-end outputs do not tell the class count");

        std::fs::write(&path, "a\n\nb\n").unwrap();
        assert!(matches!(read_labels_file(&path), Err(LabelsError::BlankLine { line: 2, .. })));
        std::fs::write(&path, "\n\n").unwrap();
        assert!(matches!(read_labels_file(&path), Err(LabelsError::Empty { .. })));
        let missing = dir.path().join("missing.txt");
        let error = read_labels_file(&missing).unwrap_err();
        assert!(error.to_string().contains("missing.txt"), "{error}");
    }
}
