//! YAML in and out, over plain `serde_json::Value`s, with errors that carry line and column.
//!
//! Parsing follows YAML 1.1 scalar rules as serde-saphyr applies them by default (so `yes`/`on`
//! are booleans, as in Helm's yaml.v2), and rejects duplicate keys.

use serde_json::Value;

/// A YAML syntax or structure error, located in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct YamlError {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong, without location.
    pub message: String,
}

impl YamlError {
    fn describe(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("line {l}, column {c}: {}", self.message),
            (Some(l), None) => format!("line {l}: {}", self.message),
            _ => self.message.clone(),
        }
    }

    fn from_saphyr(e: &serde_saphyr::Error) -> Self {
        let loc = e.location();
        let mut message = e.to_string();
        // serde-saphyr appends the location itself; keep the message free of it so callers
        // can place it consistently.
        if let Some(idx) = message.find(" at line ") {
            message.truncate(idx);
        }
        YamlError {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: message.trim().to_string(),
        }
    }
}

fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.with_snippet = false;
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    o
}

/// Parse one YAML document. Empty input is `null`.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, options())
        .map_err(|e| YamlError::from_saphyr(&e))
}

/// Parse every document of a multi-document YAML stream. Empty documents come back as `null`.
pub fn parse_all(text: &str) -> Result<Vec<Value>, YamlError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_str_multiple_with_options::<Value, Vec<Value>>(text, options())
        .map_err(|e| YamlError::from_saphyr(&e))
}

/// Render a value as block YAML with sorted keys and no trailing newline (Helm's `toYaml`).
pub fn to_yaml(value: &Value) -> Result<String, String> {
    let mut s = serde_saphyr::to_string(value).map_err(|e| e.to_string())?;
    while s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_yaml_11_booleans_like_helm() {
        assert_eq!(
            parse("a: yes\nb: off").unwrap(),
            json!({"a": true, "b": false})
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_location() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.to_lowercase().contains("duplicate"), "{e}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("a:\n  b: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn multi_document_keeps_empty_documents_as_null() {
        let docs = parse_all("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.first(), Some(&json!({"a": 1})));
        assert_eq!(docs.last(), Some(&json!({"b": 2})));
    }

    #[test]
    fn to_yaml_round_trips_tricky_strings() {
        for s in [
            "yes",
            "no",
            "10",
            "1.0",
            "null",
            "~",
            "a: b",
            "x\n---\nkind: Secret",
            "",
            " lead",
            "#c",
            "-",
        ] {
            let v = json!({"k": s});
            let text = to_yaml(&v).unwrap();
            assert_eq!(parse(&text).unwrap(), v, "round trip of {s:?} via {text:?}");
        }
    }

    #[test]
    fn to_yaml_sorts_keys() {
        let text = to_yaml(&json!({"b": 1, "a": {"d": 1, "c": 2}})).unwrap();
        assert!(
            text.find("a:").unwrap() < text.find("b:").unwrap(),
            "{text}"
        );
        assert!(
            text.find("c:").unwrap() < text.find("d:").unwrap(),
            "{text}"
        );
    }
}
