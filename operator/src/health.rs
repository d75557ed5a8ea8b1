//! Whether a workload has rolled out, judged from its live object the way `kubectl rollout
//! status` judges it: the controller observed the new generation, every replica is updated, no
//! old one is left, and the updated ones are available. Pure functions over JSON.

use crate::rollout::CONFIG_HASH_ANNOTATION;
use serde_json::Value;

/// The kinds whose rollout a cluster waits for.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "DaemonSet", "StatefulSet"];

/// Whether `kind` (of apiVersion `apps/v1`) is a workload a cluster waits for.
pub fn is_workload(api_version: &str, kind: &str) -> bool {
    api_version == "apps/v1" && WORKLOAD_KINDS.contains(&kind)
}

/// Whether objects of API group `group` and `kind` are workloads (any version).
pub fn is_workload_kind(group: &str, kind: &str) -> bool {
    group == "apps" && WORKLOAD_KINDS.contains(&kind)
}

/// Where one workload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Rolled out: observed, updated, available.
    Ready,
    /// Still rolling out; why, in words.
    Progressing(String),
    /// Its own controller gave up (a Deployment past its `progressDeadlineSeconds`).
    Failed(String),
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn count(v: &Value, path: &[&str]) -> i64 {
    int(v, path).unwrap_or(0)
}

/// The rollout of `obj` (a Deployment, DaemonSet or StatefulSet as read from the cluster).
/// `config_hash`: the runtime-config hash its pod template must carry (a restart target).
pub fn assess(obj: &Value, config_hash: Option<&str>) -> Health {
    let generation = count(obj, &["metadata", "generation"]);
    let observed = count(obj, &["status", "observedGeneration"]);
    if observed < generation {
        return Health::Progressing(format!(
            "generation {generation} not yet observed by its controller (at {observed})"
        ));
    }
    if let Some(want) = config_hash {
        let have = obj["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
            .as_str()
            .unwrap_or("none");
        if have != want {
            return Health::Progressing(format!(
                "pod template carries config hash {have}, not {want}"
            ));
        }
    }
    match obj["kind"].as_str().unwrap_or_default() {
        "Deployment" => deployment(obj),
        "DaemonSet" => daemon_set(obj),
        "StatefulSet" => stateful_set(obj),
        _ => Health::Ready,
    }
}

fn deployment(obj: &Value) -> Health {
    let deadline_exceeded = obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if deadline_exceeded {
        return Health::Failed("exceeded its progress deadline".into());
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let updated = count(obj, &["status", "updatedReplicas"]);
    let total = count(obj, &["status", "replicas"]);
    let available = count(obj, &["status", "availableReplicas"]);
    if updated < want {
        return Health::Progressing(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Health::Progressing(format!(
            "{} old replica(s) pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Health::Progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Health::Ready
}

fn daemon_set(obj: &Value) -> Health {
    if obj["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Health::Ready;
    }
    let want = count(obj, &["status", "desiredNumberScheduled"]);
    let updated = count(obj, &["status", "updatedNumberScheduled"]);
    let available = count(obj, &["status", "numberAvailable"]);
    if updated < want {
        return Health::Progressing(format!("{updated} of {want} pods updated"));
    }
    if available < want {
        return Health::Progressing(format!("{available} of {want} updated pods available"));
    }
    Health::Ready
}

fn stateful_set(obj: &Value) -> Health {
    if obj["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Health::Ready;
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let ready = count(obj, &["status", "readyReplicas"]);
    if ready < want {
        return Health::Progressing(format!("{ready} of {want} replicas ready"));
    }
    let partition = count(
        obj,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    );
    let updated = count(obj, &["status", "updatedReplicas"]);
    if partition > 0 {
        return if updated < want - partition {
            Health::Progressing(format!(
                "{updated} of {} replicas updated",
                want - partition
            ))
        } else {
            Health::Ready
        };
    }
    if obj["status"]["updateRevision"] != obj["status"]["currentRevision"] {
        return Health::Progressing(format!("{updated} of {want} replicas updated"));
    }
    Health::Ready
}

/// Why a pod is not ready, in words, from its status: a container waiting (ImagePullBackOff,
/// CrashLoopBackOff…) or terminated with an error, or the pod unschedulable. `None` when the
/// pod gives no reason (it may simply be starting).
pub fn pod_reason(pod: &Value) -> Option<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let statuses = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][k].as_array().into_iter().flatten());
    for c in statuses {
        let container = c["name"].as_str().unwrap_or("?");
        let state = &c["state"];
        let (how, s) = if state["waiting"].is_object() {
            ("waiting", &state["waiting"])
        } else if state["terminated"].is_object() && state["terminated"]["exitCode"] != 0 {
            ("terminated", &state["terminated"])
        } else {
            continue;
        };
        let Some(reason) = s["reason"].as_str().filter(|r| *r != "ContainerCreating") else {
            continue;
        };
        let detail = s["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Some(format!(
            "pod {name}: container {container} {how}: {reason}{detail}"
        ));
    }
    let unschedulable = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")?;
    Some(format!(
        "pod {name}: not scheduled: {}{}",
        unschedulable["reason"].as_str().unwrap_or("Unschedulable"),
        unschedulable["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    ))
}

/// How a cluster's message starts when its workloads did not roll out.
const NOT_ROLLED_OUT: &str = "not rolled out within the progress deadline";
const ROLLOUT_FAILED: &str = "rollout failed: ";

/// A cluster's rollout from its workloads' (each named, e.g. `Deployment ns/web`), `elapsed`
/// seconds after it took this revision, with `deadline` seconds to go; `failed_before`: it was
/// already Failed at this revision. `Ready` only when every workload is.
pub fn verdict(
    workloads: &[(String, Health)],
    elapsed: i64,
    deadline: i64,
    failed_before: bool,
) -> Health {
    let mut failed = Vec::new();
    let mut progressing = Vec::new();
    for (name, h) in workloads {
        match h {
            Health::Ready => {}
            Health::Failed(why) => failed.push(format!("{name}: {why}")),
            Health::Progressing(why) => progressing.push(format!("{name}: {why}")),
        }
    }
    if !failed.is_empty() {
        failed.extend(progressing);
        return Health::Failed(format!("{ROLLOUT_FAILED}{}", failed.join("; ")));
    }
    if progressing.is_empty() {
        return Health::Ready;
    }
    if failed_before || elapsed >= deadline {
        return Health::Failed(format!(
            "{NOT_ROLLED_OUT} of {deadline}s: {}",
            progressing.join("; ")
        ));
    }
    Health::Progressing(format!("rolling out: {}", progressing.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "generation": generation},
               "spec": spec, "status": status})
    }

    #[test]
    fn a_deployment_is_ready_when_observed_updated_and_available() {
        let cases = [
            (
                "new generation not observed",
                deployment(
                    2,
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Health::Progressing(
                    "generation 2 not yet observed by its controller (at 1)".into(),
                ),
            ),
            (
                "half updated",
                deployment(
                    2,
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
                ),
                Health::Progressing("1 of 2 replicas updated".into()),
            ),
            (
                "old replica left",
                deployment(
                    2,
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Health::Progressing("1 old replica(s) pending termination".into()),
            ),
            (
                "updated but not available",
                deployment(
                    2,
                    json!({}),
                    json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}),
                ),
                Health::Progressing("0 of 1 updated replicas available".into()),
            ),
            (
                "past its own deadline",
                deployment(
                    2,
                    json!({}),
                    json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                ),
                Health::Failed("exceeded its progress deadline".into()),
            ),
            (
                "rolled out",
                deployment(
                    3,
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                Health::Ready,
            ),
            (
                "scaled to zero",
                deployment(1, json!({"replicas": 0}), json!({"observedGeneration": 1})),
                Health::Ready,
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(assess(&obj, None), want, "{what}");
        }
    }

    #[test]
    fn a_restart_target_must_carry_the_new_config_hash() {
        let mut obj = deployment(
            1,
            json!({"template": {"metadata": {"annotations": {CONFIG_HASH_ANNOTATION: "old"}}}}),
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
        );
        assert_eq!(
            assess(&obj, Some("new")),
            Health::Progressing("pod template carries config hash old, not new".into())
        );
        assert_eq!(assess(&obj, None), Health::Ready);
        obj["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] = json!("new");
        assert_eq!(assess(&obj, Some("new")), Health::Ready);
    }

    #[test]
    fn daemon_sets_and_stateful_sets() {
        let ds = |status: Value| json!({"kind": "DaemonSet", "metadata": {"generation": 1}, "spec": {}, "status": status});
        let cases = [
            (
                ds(
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3}),
                ),
                Health::Progressing("2 of 3 pods updated".into()),
            ),
            (
                ds(
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}),
                ),
                Health::Progressing("1 of 3 updated pods available".into()),
            ),
            (
                ds(
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}),
                ),
                Health::Ready,
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(assess(&obj, None), want, "{obj}");
        }
        let sts = |spec: Value, status: Value| json!({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": spec, "status": status});
        let cases = [
            (
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "a"}),
                ),
                Health::Progressing("2 of 3 replicas ready".into()),
            ),
            (
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}),
                ),
                Health::Progressing("1 of 3 replicas updated".into()),
            ),
            (
                sts(
                    json!({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}),
                    json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}),
                ),
                Health::Ready,
            ),
            (
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"}),
                ),
                Health::Ready,
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(assess(&obj, None), want, "{obj}");
        }
    }

    #[test]
    fn a_pod_names_why_it_is_not_ready() {
        let waiting = json!({"metadata": {"name": "web-1"}, "status": {"containerStatuses": [
            {"name": "side", "state": {"running": {}}},
            {"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}});
        assert_eq!(
            pod_reason(&waiting).as_deref(),
            Some(
                "pod web-1: container web waiting: ImagePullBackOff: Back-off pulling image \"x\""
            )
        );
        let crashed = json!({"metadata": {"name": "web-2"}, "status": {"containerStatuses": [
            {"name": "web", "state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}});
        assert_eq!(
            pod_reason(&crashed).as_deref(),
            Some("pod web-2: container web terminated: Error")
        );
        let unscheduled = json!({"metadata": {"name": "web-3"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]}});
        assert_eq!(
            pod_reason(&unscheduled).as_deref(),
            Some("pod web-3: not scheduled: Unschedulable: 0/2 nodes are available")
        );
        let starting = json!({"metadata": {"name": "web-4"}, "status": {"containerStatuses": [
            {"name": "web", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_reason(&starting), None);
    }

    #[test]
    fn a_cluster_is_ready_when_every_workload_is_and_fails_past_its_deadline() {
        let ready = ("Deployment ns/a".to_string(), Health::Ready);
        let slow = (
            "DaemonSet ns/b".to_string(),
            Health::Progressing("1 of 2 pods updated".into()),
        );
        let dead = (
            "Deployment ns/c".to_string(),
            Health::Failed("exceeded its progress deadline".into()),
        );
        let cases = [
            (vec![ready.clone()], 0, false, Health::Ready),
            (vec![], 0, false, Health::Ready),
            (
                vec![ready.clone(), slow.clone()],
                59,
                false,
                Health::Progressing("rolling out: DaemonSet ns/b: 1 of 2 pods updated".into()),
            ),
            (
                vec![ready.clone(), slow.clone()],
                60,
                false,
                Health::Failed(
                    "not rolled out within the progress deadline of 60s: DaemonSet ns/b: 1 of 2 pods updated"
                        .into(),
                ),
            ),
            (
                vec![slow.clone()],
                0,
                true,
                Health::Failed(
                    "not rolled out within the progress deadline of 60s: DaemonSet ns/b: 1 of 2 pods updated"
                        .into(),
                ),
            ),
            (
                vec![slow.clone(), dead.clone()],
                0,
                false,
                Health::Failed(
                    "rollout failed: Deployment ns/c: exceeded its progress deadline; DaemonSet ns/b: 1 of 2 pods updated"
                        .into(),
                ),
            ),
            (vec![ready], 0, true, Health::Ready),
        ];
        for (workloads, elapsed, failed_before, want) in cases {
            let got = verdict(&workloads, elapsed, 60, failed_before);
            assert_eq!(got, want, "{workloads:?}");
        }
    }
}
