//! Drift: has someone other than the operator changed or deleted an object it applied?
//!
//! Pure. An object's *writer fingerprint* hashes its managedFields entries for the main resource
//! (status writes are excluded: a Deployment's controller updating its status is not drift).
//! The operator records the fingerprint its own apply left; a watch reports the fingerprint it
//! sees. A difference makes the object a suspect; whether anything really changed is decided by
//! applying again (server-side apply changes nothing, and keeps the resourceVersion, when the
//! object already says what we applied).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// One object on one cluster, by API group (not version), kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// The key of an object of `api_version`/`kind`.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjKey {
            group: api_version
                .split_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a watch last saw of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Writer fingerprint; `None` once the object was deleted.
    pub fingerprint: Option<u64>,
    /// The last writer other than the operator, as managedFields tell it.
    pub writer: Option<String>,
}

impl Observed {
    /// An object seen deleted.
    pub fn gone() -> Self {
        Observed {
            fingerprint: None,
            writer: None,
        }
    }

    /// What `meta` tells, for an operator writing as `ours`.
    pub fn of(meta: &ObjectMeta, ours: &str) -> Self {
        Observed {
            fingerprint: Some(fingerprint(meta)),
            writer: last_writer(meta, ours),
        }
    }
}

/// How an object drifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Written by someone else since the operator applied it.
    Changed {
        /// Object.
        object: ObjKey,
        /// Who, from managedFields, when known.
        by: Option<String>,
    },
    /// Deleted since the operator applied it.
    Deleted {
        /// Object.
        object: ObjKey,
    },
}

impl Drift {
    /// The object concerned.
    pub fn object(&self) -> &ObjKey {
        match self {
            Drift::Changed { object, .. } | Drift::Deleted { object } => object,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Changed {
                object,
                by: Some(by),
            } => write!(f, "{object} changed by {by}"),
            Drift::Changed { object, by: None } => write!(f, "{object} changed"),
            Drift::Deleted { object } => write!(f, "{object} deleted"),
        }
    }
}

fn main_resource(e: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry) -> bool {
    e.subresource.as_deref().unwrap_or_default().is_empty()
}

/// Hash of the managedFields entries of the main resource: changes whenever anyone writes the
/// object's spec, data or metadata, and not when only its status is written.
pub fn fingerprint(meta: &ObjectMeta) -> u64 {
    let mut h = DefaultHasher::new();
    for e in meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| main_resource(e))
    {
        e.manager.hash(&mut h);
        e.operation.hash(&mut h);
        e.api_version.hash(&mut h);
        e.time.as_ref().map(|t| t.0.as_second()).hash(&mut h);
        e.fields_v1.as_ref().map(|f| f.0.to_string()).hash(&mut h);
    }
    h.finish()
}

/// The most recent writer of the main resource other than `ours`, e.g. `kubectl-edit (Update)`.
pub fn last_writer(meta: &ObjectMeta, ours: &str) -> Option<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|e| main_resource(e) && e.manager.as_deref() != Some(ours))
        .max_by_key(|e| e.time.as_ref().map(|t| t.0))
        .map(|e| {
            let who = e
                .manager
                .clone()
                .unwrap_or_else(|| "an unnamed manager".into());
            match &e.operation {
                Some(op) => format!("{who} ({op})"),
                None => who,
            }
        })
}

/// The objects of `expected` (key -> fingerprint the operator's apply left) that `observed`
/// shows changed or deleted. Objects a watch has not seen yet are not claimed as drift.
pub fn find(expected: &HashMap<ObjKey, u64>, observed: &HashMap<ObjKey, Observed>) -> Vec<Drift> {
    let mut out: Vec<Drift> = expected
        .iter()
        .filter_map(|(key, fp)| {
            let seen = observed.get(key)?;
            match seen.fingerprint {
                None => Some(Drift::Deleted {
                    object: key.clone(),
                }),
                Some(now) if now != *fp => Some(Drift::Changed {
                    object: key.clone(),
                    by: seen.writer.clone(),
                }),
                Some(_) => None,
            }
        })
        .collect();
    out.sort_by(|a, b| a.object().cmp(b.object()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
    use k8s_openapi::jiff::Timestamp;

    fn entry(manager: &str, op: &str, sub: Option<&str>, secs: i64) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            subresource: sub.map(Into::into),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({"f:data": {}}))),
            time: Some(Time(Timestamp::from_second(secs).unwrap())),
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(entries),
            ..Default::default()
        }
    }

    fn key(name: &str) -> ObjKey {
        ObjKey::new("v1", "ConfigMap", Some("ws"), name)
    }

    #[test]
    fn a_status_write_is_not_a_writer_change_but_a_hand_edit_is() {
        let applied = meta(vec![entry("kommander-operator", "Apply", None, 100)]);
        let status = meta(vec![
            entry("kommander-operator", "Apply", None, 100),
            entry("kube-controller-manager", "Update", Some("status"), 200),
        ]);
        let edited = meta(vec![
            entry("kommander-operator", "Apply", None, 100),
            entry("kubectl-edit", "Update", None, 300),
        ]);
        assert_eq!(fingerprint(&applied), fingerprint(&status));
        assert_ne!(fingerprint(&applied), fingerprint(&edited));
        assert_eq!(last_writer(&status, "kommander-operator"), None);
        assert_eq!(
            last_writer(&edited, "kommander-operator").as_deref(),
            Some("kubectl-edit (Update)")
        );
    }

    #[test]
    fn the_latest_other_writer_is_named() {
        let m = meta(vec![
            entry("helm", "Update", None, 100),
            entry("kommander-operator", "Apply", None, 400),
            entry("kubectl-patch", "Update", None, 300),
        ]);
        assert_eq!(
            last_writer(&m, "kommander-operator").as_deref(),
            Some("kubectl-patch (Update)")
        );
    }

    #[test]
    fn find_drift_table() {
        let ours = 1u64;
        let expected: HashMap<ObjKey, u64> = [(key("a"), ours), (key("b"), ours), (key("c"), ours)]
            .into_iter()
            .collect();
        let seen = |fp: Option<u64>, by: Option<&str>| Observed {
            fingerprint: fp,
            writer: by.map(Into::into),
        };
        struct Case {
            name: &'static str,
            observed: Vec<(ObjKey, Observed)>,
            want: Vec<Drift>,
        }
        let cases = vec![
            Case {
                name: "nothing observed yet: no claim",
                observed: vec![],
                want: vec![],
            },
            Case {
                name: "all as applied",
                observed: vec![
                    (key("a"), seen(Some(ours), None)),
                    (key("b"), seen(Some(ours), None)),
                ],
                want: vec![],
            },
            Case {
                name: "one edited, one deleted",
                observed: vec![
                    (key("a"), seen(Some(2), Some("kubectl-edit (Update)"))),
                    (key("b"), seen(None, None)),
                    (key("c"), seen(Some(ours), None)),
                ],
                want: vec![
                    Drift::Changed {
                        object: key("a"),
                        by: Some("kubectl-edit (Update)".into()),
                    },
                    Drift::Deleted { object: key("b") },
                ],
            },
            Case {
                name: "objects not ours are ignored",
                observed: vec![(key("z"), seen(None, None))],
                want: vec![],
            },
        ];
        for c in cases {
            let observed: HashMap<_, _> = c.observed.into_iter().collect();
            assert_eq!(find(&expected, &observed), c.want, "{}", c.name);
        }
    }

    #[test]
    fn drift_reads_as_a_sentence() {
        let d = Drift::Changed {
            object: key("metallb"),
            by: Some("kubectl-edit (Update)".into()),
        };
        assert_eq!(
            d.to_string(),
            "ConfigMap ws/metallb changed by kubectl-edit (Update)"
        );
        let cluster_scoped = ObjKey::new("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r");
        assert_eq!(
            Drift::Deleted {
                object: cluster_scoped.clone()
            }
            .to_string(),
            "ClusterRole r deleted"
        );
        assert_eq!(cluster_scoped.group, "rbac.authorization.k8s.io");
    }
}
