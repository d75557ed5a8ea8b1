//! Helm-style values: the app's defaults, then override layers, merged exactly as
//! `helm template -f layer1.yaml -f layer2.yaml` merges them over a chart's values.yaml.
//!
//! Helm does this in two steps, and so do we, because the steps differ on `null`:
//! 1. the `-f` files are merged into one map (`mergeMaps`): maps merge recursively, anything
//!    else (including `null`) replaces;
//! 2. that map is coalesced over the chart defaults (`coalesceValues`): a `null` deletes the
//!    key the defaults give a value (at the top level: any key the defaults have), maps merge
//!    recursively, and when a map meets a non-map the override wins. Since Helm 3.21 a nested
//!    `null` for a key without a non-null default stays `null` (3.20 deleted it too).

use crate::yaml::{self, YamlError};
use serde_json::{Map, Value};

/// A values tree: always a mapping at the top.
pub type Values = Map<String, Value>;

/// Why a values document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// The text is not valid YAML.
    #[error("{source_name}: invalid YAML at {error}")]
    Yaml {
        /// Where the text came from, e.g. `ConfigMap kommander/metallb-overrides key values.yaml`.
        source_name: String,
        /// The parse error, with line and column.
        error: YamlError,
    },
    /// The document is valid YAML but not a mapping.
    #[error("{source_name}: values must be a YAML mapping (key: value), found {found}")]
    NotAMap {
        /// Where the text came from.
        source_name: String,
        /// What was found instead, e.g. `a list`.
        found: &'static str,
    },
}

/// Parse a values document. Empty text and a document of only `null` are an empty map, as in Helm.
pub fn parse(source_name: &str, text: &str) -> Result<Values, ValuesError> {
    match yaml::parse(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Values::new()),
        Ok(other) => Err(ValuesError::NotAMap {
            source_name: source_name.to_string(),
            found: kind_of(&other),
        }),
        Err(error) => Err(ValuesError::Yaml {
            source_name: source_name.to_string(),
            error,
        }),
    }
}

/// A word for the kind of a JSON value, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Merge the override layers over the defaults, as Helm does with `-f` files.
pub fn merge(defaults: &Values, layers: &[Values]) -> Values {
    let mut user = Values::new();
    for layer in layers {
        merge_maps(&mut user, layer);
    }
    coalesce_values(user, defaults)
}

/// Helm's `mergeMaps`: `b` over `a`; maps merge recursively, every other value replaces.
fn merge_maps(a: &mut Values, b: &Values) {
    for (k, bv) in b {
        match (a.get_mut(k), bv) {
            (Some(Value::Object(am)), Value::Object(bm)) => merge_maps(am, bm),
            _ => {
                a.insert(k.clone(), bv.clone());
            }
        }
    }
}

/// Helm's `coalesceValues` at the top level of the chart: user values over chart defaults.
///
/// Unlike nested tables, a top-level `null` for a key the chart does not define survives
/// (Helm leaves it in place); a `null` for a key the chart defines deletes it.
fn coalesce_values(mut user: Values, defaults: &Values) -> Values {
    for (k, dv) in defaults {
        match user.get_mut(k) {
            Some(Value::Null) => {
                user.remove(k);
            }
            Some(Value::Object(um)) => {
                if let Value::Object(dm) = dv {
                    coalesce_tables(um, dm);
                }
                // A map over a scalar: the override wins (Helm only warns).
            }
            Some(_) => {}
            None => {
                user.insert(k.clone(), dv.clone());
            }
        }
    }
    user
}

/// Helm's `coalesceTablesFullKey` (merge = false), as of Helm 3.21: `src` (defaults) fills
/// `dst` (user). A user `null` deletes a key the defaults give a non-null value; a user `null`
/// for a key the defaults lack (or leave null) stays, as `null`.
fn coalesce_tables(dst: &mut Values, src: &Values) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            Some(Value::Null) if !sv.is_null() => {
                dst.remove(k);
            }
            Some(Value::Null) => {}
            None => {
                dst.insert(k.clone(), sv.clone());
            }
            Some(Value::Object(dm)) => {
                if let Value::Object(sm) = sv {
                    coalesce_tables(dm, sm);
                }
                // A map over a scalar: the override wins (Helm only warns).
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
