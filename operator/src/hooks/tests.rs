use super::*;
use serde_json::json;

fn hook(kind: &str, name: &str, events: &[&str], weight: i64, policies: &[&str]) -> HookObject {
    HookObject {
        object: ManifestObject {
            template: "t".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: Some("ws".into()),
            body: json!({}),
        },
        events: events.iter().map(|e| e.to_string()).collect(),
        weight,
        delete_policies: policies.iter().map(|p| p.to_string()).collect(),
    }
}

fn names(hooks: &[&HookObject]) -> Vec<String> {
    hooks.iter().map(|h| h.object.name.clone()).collect()
}

#[test]
fn an_event_runs_its_hooks_by_weight_then_name_keeping_kind_order() {
    let hooks = [
        hook(
            "ServiceAccount",
            "sa",
            &["pre-install", "post-install"],
            0,
            &[],
        ),
        hook("Role", "b-role", &["pre-install"], 0, &[]),
        hook("Role", "a-role", &["pre-install"], 0, &[]),
        hook("Job", "create", &["pre-install", "pre-upgrade"], -5, &[]),
        hook("Job", "patch", &["post-install"], 0, &[]),
        hook("Pod", "smoke", &["test"], -10, &[]),
    ];
    assert_eq!(
        names(&ordered(&hooks, "pre-install")),
        ["create", "a-role", "b-role", "sa"]
    );
    assert_eq!(names(&ordered(&hooks, "post-install")), ["patch", "sa"]);
    assert_eq!(names(&ordered(&hooks, "pre-upgrade")), ["create"]);
    assert!(ordered(&hooks, "post-upgrade").is_empty());
    assert_eq!(event(Stage::Pre, false), "pre-install");
    assert_eq!(event(Stage::Post, true), "post-upgrade");
}

fn object(kind: &str, revision: &str, status: Value) -> Value {
    json!({"kind": kind, "metadata": {"annotations": {RUN_ANNOTATION: revision}}, "status": status})
}

#[test]
fn a_hooks_object_is_classified_by_revision_kind_and_status() {
    let cases = [
        (None, Live::Absent),
        (Some(object("Job", "old", json!({}))), Live::Stale),
        (
            Some(json!({"kind": "Job", "metadata": {"deletionTimestamp": "x"}})),
            Live::Deleting,
        ),
        (Some(object("Job", "r1", json!({}))), Live::Running),
        (
            Some(object(
                "Job",
                "r1",
                json!({"conditions": [{"type": "Complete", "status": "True"}]}),
            )),
            Live::Succeeded,
        ),
        (
            Some(object(
                "Job",
                "r1",
                json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
            )),
            Live::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            ),
        ),
        (
            Some(object("Pod", "r1", json!({"phase": "Running"}))),
            Live::Running,
        ),
        (
            Some(object("Pod", "r1", json!({"phase": "Succeeded"}))),
            Live::Succeeded,
        ),
        (
            Some(object("Pod", "r1", json!({"phase": "Failed"}))),
            Live::Failed("the pod failed".into()),
        ),
        (
            Some(object("ConfigMap", "r1", json!(null))),
            Live::Succeeded,
        ),
    ];
    for (o, want) in cases {
        let kind = o.as_ref().and_then(|o| o["kind"].as_str()).unwrap_or("Job");
        assert_eq!(live(kind, o.as_ref(), "r1"), want, "{o:?}");
    }
}

#[test]
fn hooks_run_one_by_one_and_are_deleted_by_their_policies() {
    let hooks = [
        hook(
            "ServiceAccount",
            "sa",
            &["pre-install"],
            -1,
            &["before-hook-creation", "hook-succeeded"],
        ),
        hook("Job", "create", &["pre-install"], 0, &[]),
        hook(
            "Job",
            "migrate",
            &["pre-install"],
            1,
            &["hook-succeeded", "hook-failed"],
        ),
    ];
    let ordered = ordered(&hooks, "pre-install");
    use Live::*;
    let cases: Vec<(Vec<Live>, Step)> = vec![
        (vec![Absent, Absent, Absent], Step::Create(0)),
        (vec![Succeeded, Absent, Absent], Step::Create(1)),
        // The default policy is before-hook-creation: an old run's object goes first.
        (vec![Succeeded, Stale, Absent], Step::Delete(1)),
        (vec![Succeeded, Deleting, Absent], Step::Wait(1)),
        (vec![Succeeded, Running, Absent], Step::Wait(1)),
        // migrate does not say before-hook-creation: an object in its way fails the event.
        (
            vec![Succeeded, Succeeded, Stale],
            Step::Failed {
                hook: 2,
                message: "an object of that name exists and the hook's delete policy does not include before-hook-creation".into(),
                delete: vec![0],
            },
        ),
        (
            vec![Succeeded, Succeeded, Failed("BackoffLimitExceeded".into())],
            Step::Failed {
                hook: 2,
                message: "BackoffLimitExceeded".into(),
                delete: vec![0, 2],
            },
        ),
        (
            vec![Succeeded, Succeeded, Succeeded],
            Step::Done { delete: vec![2, 0] },
        ),
    ];
    for (states, want) in cases {
        assert_eq!(next(&ordered, &states), want, "{states:?}");
    }
}

#[test]
fn a_crd_hook_is_never_deleted() {
    let hooks = [hook(
        "CustomResourceDefinition",
        "x",
        &["pre-install"],
        0,
        &["hook-succeeded"],
    )];
    let ordered = ordered(&hooks, "pre-install");
    assert_eq!(
        next(&ordered, &[Live::Succeeded]),
        Step::Done { delete: vec![] }
    );
}

#[test]
fn a_hook_is_created_marked_with_its_revision_and_a_job_kept_until_read() {
    let mut job = hook("Job", "create", &["pre-install"], 0, &[]);
    job.object.body = json!({"kind": "Job", "metadata": {"name": "create"},
                             "spec": {"ttlSecondsAfterFinished": 0, "backoffLimit": 1}});
    let created = job.to_create("r1");
    assert_eq!(
        created.body["metadata"]["annotations"][RUN_ANNOTATION],
        "r1"
    );
    assert_eq!(created.body["spec"], json!({"backoffLimit": 1}));
    let mut cm = hook("ConfigMap", "c", &["pre-install"], 0, &[]);
    cm.object.body = json!({"kind": "ConfigMap", "spec": {"ttlSecondsAfterFinished": 0}});
    assert_eq!(
        cm.to_create("r1").body["spec"]["ttlSecondsAfterFinished"],
        0
    );
}
