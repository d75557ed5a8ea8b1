//! Kubernetes label selectors, evaluated over plain label maps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// A selector that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Unknown operator.
    #[error(
        "matchExpressions[{index}]: operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
    )]
    Operator {
        /// Position.
        index: usize,
        /// As written.
        operator: String,
    },
    /// In/NotIn without values, or Exists/DoesNotExist with values.
    #[error("matchExpressions[{index}]: operator {operator} on {key:?} {rule}")]
    Values {
        /// Position.
        index: usize,
        /// Key.
        key: String,
        /// Operator.
        operator: String,
        /// What is wrong.
        rule: &'static str,
    },
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let mut ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    for (index, e) in selector.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_deref().unwrap_or_default();
        let has = labels.get(&e.key);
        let needs_values = |rule| SelectorError::Values {
            index,
            key: e.key.clone(),
            operator: e.operator.clone(),
            rule,
        };
        let holds = match e.operator.as_str() {
            "In" if values.is_empty() => return Err(needs_values("needs at least one value")),
            "NotIn" if values.is_empty() => return Err(needs_values("needs at least one value")),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(needs_values("takes no values"));
            }
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => !has.is_some_and(|v| values.contains(v)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            other => {
                return Err(SelectorError::Operator {
                    index,
                    operator: other.to_string(),
                });
            }
        };
        ok = ok && holds;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    #[test]
    fn empty_selector_matches_all() {
        assert!(matches(&LabelSelector::default(), &labels(&[])).unwrap());
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("env", "prod"), ("dc", "a")])),
            ..Default::default()
        };
        assert!(matches(&sel, &labels(&[("env", "prod"), ("dc", "a"), ("x", "y")])).unwrap());
        assert!(!matches(&sel, &labels(&[("env", "prod")])).unwrap());
    }

    #[test]
    fn expressions() {
        let l = labels(&[("env", "prod")]);
        let m = |e| {
            matches(
                &LabelSelector {
                    match_expressions: Some(vec![e]),
                    ..Default::default()
                },
                &l,
            )
            .unwrap()
        };
        assert!(m(expr("env", "In", &["prod", "dev"])));
        assert!(!m(expr("env", "NotIn", &["prod"])));
        assert!(m(expr("dc", "NotIn", &["a"])));
        assert!(m(expr("env", "Exists", &[])));
        assert!(!m(expr("env", "DoesNotExist", &[])));
        assert!(m(expr("dc", "DoesNotExist", &[])));
    }

    #[test]
    fn invalid_expressions_are_errors() {
        let l = labels(&[]);
        let e = |x| {
            matches(
                &LabelSelector {
                    match_expressions: Some(vec![x]),
                    ..Default::default()
                },
                &l,
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            e(expr("env", "Equals", &["a"])),
            "matchExpressions[0]: operator \"Equals\" is not one of In, NotIn, Exists, DoesNotExist"
        );
        assert_eq!(
            e(expr("env", "In", &[])),
            "matchExpressions[0]: operator In on \"env\" needs at least one value"
        );
        assert_eq!(
            e(expr("env", "Exists", &["a"])),
            "matchExpressions[0]: operator Exists on \"env\" takes no values"
        );
    }
}
