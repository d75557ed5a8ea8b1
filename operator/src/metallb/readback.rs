//! MetalLB's own verdict on the configuration, read back after an apply. MetalLB 0.16's
//! controller writes it to the `ConfigurationState` named `controller` in its namespace
//! (`status.result`: `Valid`, `Invalid` with `status.errorSummary`, or `Unknown`); 0.12 to 0.15
//! say it only in their metrics (`metallb_k8s_client_config_stale_bool`). The operator's check
//! predicts that verdict before the apply; when MetalLB disagrees, it wins and the status names
//! both. Pure: the object or the metrics page in, a verdict out.

use crate::manifest::ManifestObject;
use crate::resources::ClusterPhase;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// The ConfigurationState the controller writes.
pub const CONTROLLER_STATE: &str = "controller";

/// What MetalLB says of the configuration it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Says {
    /// No ConfigurationState (no 0.16 controller running, or not yet started).
    NotReported,
    /// It has not judged it yet.
    Unknown,
    /// Loaded.
    Valid,
    /// Refused: where MetalLB said so, and why.
    Invalid(String),
}

/// The verdict a ConfigurationState object (`None`: not there) holds.
pub fn says(state: Option<&Value>) -> Says {
    let Some(status) = state.map(|s| &s["status"]) else {
        return Says::NotReported;
    };
    match status["result"].as_str() {
        Some("Valid") => Says::Valid,
        Some("Invalid") => Says::Invalid(format!(
            "ConfigurationState {CONTROLLER_STATE}: {}",
            status["errorSummary"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("no error summary")
                .replace('\n', "; ")
        )),
        _ => Says::Unknown,
    }
}

/// What MetalLB's verdict makes of a cluster the apply left `Applied`; `None` keeps it so.
/// Right after a new configuration is applied, MetalLB may still speak of the one before, so
/// the cluster waits one more look (`Progressing`) when MetalLB can be read at all. `accepted`:
/// the change went in over the check's hold (an accepted disruption).
pub fn judge(says: &Says, just_applied: bool, accepted: bool) -> Option<(ClusterPhase, String)> {
    match says {
        Says::NotReported => None,
        _ if just_applied => Some((
            ClusterPhase::Progressing,
            "applied; waiting for MetalLB's controller to say it loaded this configuration".into(),
        )),
        Says::Invalid(why) if accepted => Some((
            ClusterPhase::Failed,
            format!(
                "MetalLB reports the configuration Invalid ({why}), after the change was accepted over the check's hold (see acceptedDisruptions)"
            ),
        )),
        Says::Invalid(why) => Some((
            ClusterPhase::Failed,
            format!(
                "MetalLB reports the configuration Invalid ({why}), though the operator's check found it valid when it was applied"
            ),
        )),
        Says::Valid | Says::Unknown => None,
    }
}

/// How long a controller whose metrics could not be read is left alone: each try costs the
/// API server's proxy and its retries, on every reconcile, when nothing answers.
pub const RETRY_AFTER_MISS: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether to read a 0.12–0.15 controller's metrics now: always right after a new config, else
/// unless the last try found nothing to read less than [`RETRY_AFTER_MISS`] ago.
pub fn worth_reading(since_miss: Option<std::time::Duration>, just_applied: bool) -> bool {
    just_applied || since_miss.is_none_or(|d| d >= RETRY_AFTER_MISS)
}

/// The gauge a 0.12–0.15 controller sets to 1 when the latest configuration failed to load
/// (it keeps running on the one before); those versions have no ConfigurationState, write no
/// Event about their configuration, and their logs cannot be read through the API without a
/// kubelet. The metric is what each of them exposes, the same in all four.
pub const STALE_METRIC: &str = "metallb_k8s_client_config_stale_bool";

/// The gauge set to 1 once a configuration has loaded (0 before the first).
pub const LOADED_METRIC: &str = "metallb_k8s_client_config_loaded_bool";

/// The largest metrics page read from a controller; a real one is a few KiB.
pub const METRICS_LIMIT: usize = 1 << 20;

/// What a 0.12–0.15 controller's metrics page (`/metrics` of pod `pod`) says.
pub fn says_metrics(pod: &str, page: &str) -> Says {
    let gauge = |name: &str| {
        page.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
    };
    match (gauge(STALE_METRIC), gauge(LOADED_METRIC)) {
        (None, _) => Says::NotReported,
        (Some(1.0), _) => Says::Invalid(format!(
            "controller pod {pod}: {STALE_METRIC} is 1, the latest configuration failed to load and it runs on the one before"
        )),
        (Some(_), Some(1.0)) => Says::Valid,
        // Nothing loaded yet: a controller just started, or one with nothing to load.
        (Some(_), _) => Says::Unknown,
    }
}

/// Where a 0.12–0.15 app's controller serves its metrics: the label selector of the rendered
/// Deployment whose pods are `app.kubernetes.io/component: controller`, and the number of its
/// container port named `monitoring` (the catalog's and upstream's name for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsTarget {
    /// `metadata.namespace` of the Deployment.
    pub namespace: String,
    /// Its `spec.selector.matchLabels`, as a label selector.
    pub selector: String,
    /// The container port.
    pub port: u16,
}

/// The controller's metrics target among the rendered `objects`, if it has one.
pub fn metrics_target(objects: &[ManifestObject]) -> Option<MetricsTarget> {
    objects
        .iter()
        .filter(|o| o.kind == "Deployment")
        .find_map(|o| {
            let spec = &o.body["spec"];
            let template = &spec["template"];
            if template["metadata"]["labels"]["app.kubernetes.io/component"] != "controller" {
                return None;
            }
            let port = template["spec"]["containers"]
                .as_array()?
                .iter()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| p["name"] == "monitoring")?["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())?;
            let selector = spec["selector"]["matchLabels"]
                .as_object()?
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",");
            Some(MetricsTarget {
                namespace: o.namespace.clone()?,
                selector,
                port,
            })
        })
}

/// The pod whose metrics speak for the controller now: the newest that runs and is not going.
pub fn current_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .max_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_controllers_state_is_read_as_metallb_writes_it() {
        assert_eq!(says(None), Says::NotReported);
        assert_eq!(says(Some(&json!({"status": {}}))), Says::Unknown);
        assert_eq!(
            says(Some(&json!({"status": {"result": "Unknown"}}))),
            Says::Unknown
        );
        assert_eq!(
            says(Some(&json!({"status": {"result": "Valid"}}))),
            Says::Valid
        );
        let invalid = says(Some(&json!({"status": {
            "result": "Invalid",
            "errorSummary": "CIDR \"10.0.50.30/31\" in pool \"sneaky\" overlaps with already defined CIDR \"10.0.50.28/30\"\nsecond"
        }})));
        assert_eq!(
            invalid,
            Says::Invalid("ConfigurationState controller: CIDR \"10.0.50.30/31\" in pool \"sneaky\" overlaps with already defined CIDR \"10.0.50.28/30\"; second".into())
        );
        let (phase, message) = judge(&invalid, false, false).unwrap();
        assert_eq!(phase, ClusterPhase::Failed);
        assert!(
            message.starts_with(
                "MetalLB reports the configuration Invalid (ConfigurationState controller: CIDR"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("though the operator's check found it valid when it was applied")
        );
    }

    #[test]
    fn a_verdict_is_trusted_one_look_after_the_apply_and_only_an_invalid_one_fails() {
        let invalid = Says::Invalid("why".into());
        let waits = Some(ClusterPhase::Progressing);
        // (says, just applied, accepted) -> phase, or None: stays Applied.
        let table = [
            (Says::NotReported, true, false, None),
            (Says::NotReported, false, false, None),
            (Says::Valid, true, false, waits),
            (Says::Unknown, true, false, waits),
            (invalid.clone(), true, true, waits),
            (Says::Valid, false, false, None),
            (Says::Unknown, false, false, None),
            (invalid.clone(), false, false, Some(ClusterPhase::Failed)),
            (invalid.clone(), false, true, Some(ClusterPhase::Failed)),
        ];
        for (says, just, accepted, want) in table {
            let got = judge(&says, just, accepted);
            assert_eq!(
                got.as_ref().map(|g| g.0),
                want,
                "{says:?} {just} {accepted}"
            );
        }
        let accepted = judge(&invalid, false, true).unwrap().1;
        assert!(
            accepted.ends_with(
                "after the change was accepted over the check's hold (see acceptedDisruptions)"
            ),
            "{accepted}"
        );
        let waiting = judge(&Says::Valid, true, false).unwrap().1;
        assert_eq!(
            waiting,
            "applied; waiting for MetalLB's controller to say it loaded this configuration"
        );
    }

    #[test]
    fn the_stale_gauge_is_read_as_metallb_0_12_to_0_15_write_it() {
        let page = |v: &str| {
            format!(
                "# HELP {STALE_METRIC} 1 if running on a stale configuration\n# TYPE {STALE_METRIC} gauge\n{STALE_METRIC}_other 1\n{STALE_METRIC} {v}\nmetallb_k8s_client_config_loaded_bool 1\n"
            )
        };
        assert_eq!(says_metrics("c-1", &page("0")), Says::Valid);
        let fresh = format!("{STALE_METRIC} 0\n{LOADED_METRIC} 0\n");
        assert_eq!(says_metrics("c-1", &fresh), Says::Unknown);
        assert_eq!(
            says_metrics("c-1", &page("1")),
            Says::Invalid(format!(
                "controller pod c-1: {STALE_METRIC} is 1, the latest configuration failed to load and it runs on the one before"
            ))
        );
        assert_eq!(says_metrics("c-1", "up 1\n"), Says::NotReported);
        assert_eq!(
            says_metrics("c-1", &format!("{STALE_METRIC} x\n")),
            Says::NotReported
        );
    }

    fn object(kind: &str, body: Value) -> ManifestObject {
        ManifestObject {
            template: "t".into(),
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: "n".into(),
            namespace: Some("ws-a".into()),
            body,
        }
    }

    fn deployment(component: &str, port_name: &str) -> ManifestObject {
        object(
            "Deployment",
            json!({"spec": {
                "selector": {"matchLabels": {"app": "metallb", "component": component}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": component}},
                    "spec": {"containers": [{"name": "c", "ports": [
                        {"name": "other", "containerPort": 1},
                        {"name": port_name, "containerPort": 7472}
                    ]}]}
                }
            }}),
        )
    }

    #[test]
    fn the_controllers_metrics_are_found_by_its_component_and_port_name() {
        let target = metrics_target(&[
            deployment("speaker", "monitoring"),
            deployment("controller", "monitoring"),
        ]);
        assert_eq!(
            target,
            Some(MetricsTarget {
                namespace: "ws-a".into(),
                selector: "app=metallb,component=controller".into(),
                port: 7472,
            })
        );
        assert_eq!(metrics_target(&[deployment("controller", "metrics")]), None);
        assert_eq!(metrics_target(&[deployment("speaker", "monitoring")]), None);
        assert_eq!(metrics_target(&[]), None);
    }

    fn pod(name: &str, created: &str, phase: &str, going: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "deletionTimestamp": going.then_some("2026-01-01T00:00:09Z"),
            },
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_running_pod_speaks_for_the_controller() {
        let pods = [
            pod("old", "2026-01-01T00:00:00Z", "Running", false),
            pod("going", "2026-01-01T00:00:05Z", "Running", true),
            pod("new", "2026-01-01T00:00:03Z", "Running", false),
            pod("pending", "2026-01-01T00:00:07Z", "Pending", false),
        ];
        let name = |p: Option<&Pod>| p.and_then(|p| p.metadata.name.clone());
        assert_eq!(name(current_pod(&pods)), Some("new".into()));
        assert_eq!(name(current_pod(&pods[3..])), None);
    }

    #[test]
    fn a_controller_without_readable_metrics_is_tried_again_after_a_while_or_a_new_config() {
        let s = std::time::Duration::from_secs;
        // (since the last miss, just applied) -> read
        let table = [
            (None, false, true),
            (Some(s(1)), false, false),
            (Some(s(59)), false, false),
            (Some(s(60)), false, true),
            (Some(s(1)), true, true),
        ];
        for (since, just, want) in table {
            assert_eq!(worth_reading(since, just), want, "{since:?} {just}");
        }
    }
}
