//! Reading a config's mappings field by field: the fields each level knows (others are refused
//! by name), typed values with their locations, and the report problems go to.

use super::model::{ConfigError, Location, Problem};
use crate::values::kind_of;
use serde_json::{Map, Value};

pub(super) const TOP_FIELDS: &[&str] =
    &["peers", "bgp-communities", "address-pools", "bfd-profiles"];
pub(super) const POOL_FIELDS: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];
pub(super) const ADV_FIELDS: &[&str] = &[
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
];
pub(super) const PEER_FIELDS: &[&str] = &[
    "my-asn",
    "peer-asn",
    "peer-address",
    "source-address",
    "peer-port",
    "hold-time",
    "keepalive-time",
    "router-id",
    "node-selectors",
    "password",
    "bfd-profile",
    "ebgp-multihop",
];
pub(super) const SELECTOR_FIELDS: &[&str] = &["match-labels", "match-expressions"];
pub(super) const EXPR_FIELDS: &[&str] = &["key", "operator", "values"];
pub(super) const BFD_FIELDS: &[&str] = &[
    "name",
    "receive-interval",
    "transmit-interval",
    "detect-multiplier",
    "echo-interval",
    "echo-mode",
    "passive-mode",
    "minimum-ttl",
];

/// Strict field access over a YAML mapping, with yaml.v2's scalar rules, collecting problems.
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    pub(super) errors: Vec<Problem>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(
        map: &'a Map<String, Value>,
        prefix: &str,
        allowed: &'static [&'static str],
    ) -> Self {
        let mut errors = Vec::new();
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.push(Problem::UnknownField {
                    field: format!("{prefix}{k}"),
                    allowed,
                });
            }
        }
        Fields {
            map,
            prefix: prefix.to_string(),
            errors,
        }
    }

    pub(super) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) fn wrong(&mut self, key: &str, expected: &'static str, v: &Value) {
        self.errors.push(Problem::WrongType {
            field: self.name(key),
            expected,
            found: kind_of(v),
        });
    }

    /// yaml.v2 puts any scalar's text into a string field; null is "".
    pub(super) fn string(&mut self, key: &str) -> String {
        match self.map.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Bool(_) | Value::Number(_))) => v.to_string(),
            Some(v) => {
                self.wrong(key, "a string", v);
                String::new()
            }
        }
    }

    pub(super) fn opt_int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.map.get(key)?;
        let n = match v {
            Value::Null => return None,
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            None if !matches!(v, Value::Number(_)) => {
                self.wrong(key, "a whole number", v);
                None
            }
            // A whole number out of range, or a number that is not whole.
            _ => {
                self.errors.push(Problem::OutOfRange {
                    field: self.name(key),
                    value: v.to_string(),
                    min,
                    max,
                });
                None
            }
        }
    }

    pub(super) fn opt_u32(&mut self, key: &str) -> Option<u32> {
        self.opt_int(key, 0, i64::from(u32::MAX)).map(|n| n as u32)
    }

    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.wrong(key, "true or false", v);
                None
            }
        }
    }

    pub(super) fn list(&mut self, key: &str) -> &'a [Value] {
        match self.map.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(v) => {
                self.wrong(key, "a list", v);
                &[]
            }
        }
    }

    pub(super) fn strings(&mut self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, v) in self.list(key).iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Null => out.push(String::new()),
                Value::Bool(_) | Value::Number(_) => out.push(v.to_string()),
                other => self.errors.push(Problem::WrongType {
                    field: format!("{}{key}[{i}]", self.prefix),
                    expected: "a string",
                    found: kind_of(other),
                }),
            }
        }
        out
    }

    pub(super) fn map(&mut self, key: &str) -> Option<&'a Map<String, Value>> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(v) => {
                self.wrong(key, "a mapping", v);
                None
            }
        }
    }
}

/// Collects problems with their locations.
#[derive(Default)]
pub(super) struct Report(pub(super) Vec<ConfigError>);

impl Report {
    pub(super) fn add(&mut self, location: &Location, problem: Problem) {
        self.0.push(ConfigError {
            location: location.clone(),
            problem,
        });
    }
    /// A list entry as a mapping; a problem at `location` (and `None`) when it is not.
    pub(super) fn entry<'a>(
        &mut self,
        v: &'a Value,
        location: &Location,
    ) -> Option<&'a Map<String, Value>> {
        match as_map(v, "the entry") {
            Ok(m) => Some(m),
            Err(p) => {
                self.add(location, p);
                None
            }
        }
    }

    pub(super) fn extend(&mut self, location: &Location, problems: Vec<Problem>) {
        for p in problems {
            self.add(location, p);
        }
    }
}

/// `entry` as a mapping, or a problem.
pub(super) fn as_map<'a>(
    v: &'a Value,
    what: &'static str,
) -> Result<&'a Map<String, Value>, Problem> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(Problem::WrongType {
            field: what.to_string(),
            expected: "a mapping",
            found: kind_of(other),
        }),
    }
}

pub(super) fn name_hint(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|n| match n {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(n.to_string()),
        _ => None,
    })
}
