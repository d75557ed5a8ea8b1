//! One cluster's act, against a scripted API (no cluster): each plan's writes, request by
//! request, and the outcome it records. The script answers by method and path, as the API
//! server would, and logs every request, so a row also proves what was *not* sent.

mod observe;

use super::act::act;
use super::observe::{Learned, Observed};
use super::within_deadline;
use crate::controller::clients::Connection;
use crate::controller::context::Context;
use crate::controller::settings::Settings;
use crate::drift::{Drift, ObjKey};
use crate::manifest::ManifestObject;
use crate::manifest::{LABEL_APPDEPLOYMENT, LABEL_MANAGED_BY, LABEL_WORKSPACE, MANAGER};
use crate::plan::Plan;
use crate::resources::{AppDeployment, AppliedObject, ClusterPhase, KommanderCluster};
use kube::Client;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A reply: status code and body; `None` from a route: the request hangs (a cluster that
/// stopped answering).
type Reply = Option<(u16, Value)>;

/// Requests seen, as `METHOD path`.
type Log = Arc<Mutex<Vec<String>>>;

/// A client whose every request `route` answers.
fn scripted(route: fn(&str, &str) -> Reply) -> (Client, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let seen = seen.clone();
        async move {
            let (method, path) = (req.method().to_string(), req.uri().path().to_string());
            seen.lock().unwrap().push(format!("{method} {path}"));
            let Some((code, body)) = route(&method, &path) else {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!("the deadline stops the wait first");
            };
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    (Client::new(service, "default"), log)
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn ours(name: &str) -> Value {
    json!({"name": name, "namespace": "ws-a", "resourceVersion": "5", "labels": {
        LABEL_MANAGED_BY: MANAGER, LABEL_WORKSPACE: "ws-a", LABEL_APPDEPLOYMENT: "app"
    }})
}

/// The API server of one cluster: ConfigMaps in ws-a; `old` is ours, `taken` another
/// AppDeployment's, `settings` does not exist until applied; `hang` never answers.
fn cluster(method: &str, path: &str) -> Reply {
    let core = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
        {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap", "verbs": ["get", "list", "watch", "patch", "delete"]},
        {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["get", "list", "watch", "patch"]}
    ]});
    let meta = |m: Value| {
        (
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": m}),
        )
    };
    let cm = "/api/v1/namespaces/ws-a/configmaps/";
    Some(match (method, path) {
        ("GET", "/api/v1") => (200, core),
        ("GET", "/api/v1/namespaces/ws-a") => meta(json!({"name": "ws-a"})),
        (_, p) if p.ends_with("/hang") => return None,
        ("GET", p) if p == format!("{cm}old") => meta(ours("old")),
        ("GET", p) if p == format!("{cm}taken") => {
            let mut m = ours("taken");
            m["labels"][LABEL_APPDEPLOYMENT] = json!("other");
            meta(m)
        }
        ("GET", p) if p.starts_with(cm) => not_found(),
        ("PATCH", p) if p.starts_with(cm) => {
            let name = &p[cm.len()..];
            let mut m = ours(name);
            m["resourceVersion"] = json!("6");
            (
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m}),
            )
        }
        ("DELETE", p) if p == format!("{cm}old") => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        _ => not_found(),
    })
}

fn config_map(name: &str) -> ManifestObject {
    ManifestObject {
        template: "t".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: name.into(),
        namespace: Some("ws-a".into()),
        body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": ours(name), "data": {"k": "v"}}),
    }
}

fn applied(name: &str) -> AppliedObject {
    config_map(name).entry()
}

fn context(client: Client) -> Context {
    let settings = Settings {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        lease_namespace: "kommander-system".into(),
        lease_name: "kommander-operator".into(),
        identity: "test".into(),
        no_leader_election: true,
        host_namespace: "kommander".into(),
        kubeconfig_policy: Default::default(),
        cluster_deadline: Duration::from_millis(300),
        detach_timeout: Duration::from_secs(1),
        chart_ca: Vec::new(),
        chart_credentials_namespace: "kommander-system".into(),
        helm_render: None,
    };
    let (clusters, _) = kube::runtime::reflector::store();
    let (workspaces, _) = kube::runtime::reflector::store();
    Context::new(client, Arc::default(), &settings, clusters, workspaces)
}

fn observed(client: Client, objects: &[&str]) -> Observed {
    Observed {
        conn: Connection {
            client,
            server: "https://scripted".into(),
            id: 7,
        },
        key: ("ws-a".into(), "attached-1".into()),
        objects: objects.iter().map(|n| config_map(n)).collect(),
        rollout: None,
        desired: None,
        hooks: Vec::new(),
        render_hash: "r1".into(),
        unchanged: false,
        drift: Vec::new(),
        live: None,
        kube_proxy: None,
        services_seen: 0,
        recorded_disruptions: Vec::new(),
        learned: Learned {
            fresh: false,
            watch_services: false,
            not_drift: Vec::new(),
            network: None,
        },
    }
}

fn resources() -> (AppDeployment, KommanderCluster) {
    let ad = serde_json::from_value(json!({
        "apiVersion": "apps.kommander.d2iq.io/v1alpha2", "kind": "AppDeployment",
        "metadata": {"name": "app", "namespace": "ws-a", "uid": "u1"},
        "spec": {"appRef": {"name": "x", "kind": "ClusterApp"}}
    }))
    .unwrap();
    let kc = serde_json::from_value(json!({
        "apiVersion": "kommander.mesosphere.io/v1beta1", "kind": "KommanderCluster",
        "metadata": {"name": "attached-1", "namespace": "ws-a"}, "spec": {}
    }))
    .unwrap();
    (ad, kc)
}

fn prev_with(inventory: &[&str]) -> crate::resources::ClusterRolloutStatus {
    let mut c: crate::resources::ClusterRolloutStatus =
        serde_json::from_value(json!({"name": "attached-1", "phase": "Applied"})).unwrap();
    c.applied_objects = inventory.iter().map(|n| applied(n)).collect();
    c
}

fn changed(name: &str) -> Drift {
    Drift::Changed {
        object: ObjKey::new("v1", "ConfigMap", Some("ws-a"), name),
        by: Some("kubectl-edit".into()),
    }
}

fn apply(restoring: Vec<Drift>) -> Plan {
    Plan::Apply {
        disrupted: Vec::new(),
        restoring,
    }
}

/// A row: the plan, the rendered objects, what was applied before; the phase, the inventory
/// recorded, the requests sent (in order) and a fragment of the message.
struct Row {
    name: &'static str,
    plan: Plan,
    objects: &'static [&'static str],
    before: &'static [&'static str],
    phase: ClusterPhase,
    inventory: &'static [&'static str],
    requests: &'static [&'static str],
    message: &'static str,
}

#[tokio::test]
async fn each_plan_writes_what_it_says_and_nothing_else() {
    let table = [
        Row {
            name: "keep: nothing sent",
            plan: Plan::Keep,
            objects: &["settings"],
            before: &["settings"],
            phase: ClusterPhase::Applied,
            inventory: &["settings"],
            requests: &[],
            message: "",
        },
        Row {
            name: "hold: nothing sent, the Service named",
            plan: Plan::Hold {
                breaks: vec!["default/web holds 10.0.0.5".into()],
                restoring: Vec::new(),
            },
            objects: &["settings"],
            before: &["settings"],
            phase: ClusterPhase::Blocked,
            inventory: &["settings"],
            requests: &[],
            message: "default/web holds 10.0.0.5",
        },
        Row {
            name: "invalid: nothing sent",
            plan: Plan::Invalid(vec!["pool overlaps".into()]),
            objects: &["settings"],
            before: &["settings"],
            phase: ClusterPhase::Invalid,
            inventory: &["settings"],
            requests: &[],
            message: "invalid, nothing applied: pool overlaps",
        },
        Row {
            name: "report: nothing sent",
            plan: Plan::Report(vec![changed("settings")]),
            objects: &["settings"],
            before: &["settings"],
            phase: ClusterPhase::Drifted,
            inventory: &["settings"],
            requests: &[],
            message: "",
        },
        Row {
            name: "apply with prune: check, write, then delete what is no longer rendered",
            plan: apply(Vec::new()),
            objects: &["settings"],
            before: &["old"],
            phase: ClusterPhase::Applied,
            inventory: &["settings"],
            requests: &[
                "GET /api/v1",
                "GET /api/v1/namespaces/ws-a/configmaps/settings",
                "GET /api/v1/namespaces/ws-a",
                "PATCH /api/v1/namespaces/ws-a/configmaps/settings",
                "GET /api/v1/namespaces/ws-a/configmaps/old",
                "DELETE /api/v1/namespaces/ws-a/configmaps/old",
            ],
            message: "1 objects applied, 1 pruned",
        },
        Row {
            name: "drift put back: the changed object is written again and named",
            plan: apply(vec![changed("settings")]),
            objects: &["settings"],
            before: &["settings"],
            phase: ClusterPhase::Applied,
            inventory: &["settings"],
            requests: &[
                "GET /api/v1",
                "GET /api/v1/namespaces/ws-a/configmaps/settings",
                "GET /api/v1/namespaces/ws-a",
                "PATCH /api/v1/namespaces/ws-a/configmaps/settings",
            ],
            message: "put back what was changed on the cluster: ConfigMap ws-a/settings",
        },
        Row {
            name: "conflict: another owner's object stops the apply before any write",
            plan: apply(Vec::new()),
            objects: &["settings", "taken"],
            before: &[],
            phase: ClusterPhase::Conflict,
            inventory: &[],
            requests: &[
                "GET /api/v1",
                "GET /api/v1/namespaces/ws-a/configmaps/settings",
                "GET /api/v1/namespaces/ws-a/configmaps/taken",
            ],
            message: "owned by AppDeployment ws-a/other",
        },
    ];
    for row in table {
        let (client, log) = scripted(cluster);
        let ctx = context(client.clone());
        let (ad, kc) = resources();
        let prev = prev_with(row.before);
        let obs = observed(client, row.objects);
        let o = act(&ctx, &ad, &kc, Some(&prev), &obs, row.plan).await;
        let sent = log.lock().unwrap().clone();
        assert_eq!(o.phase, row.phase, "{}: {}", row.name, o.message);
        assert_eq!(sent, row.requests, "{}", row.name);
        let inventory: Vec<AppliedObject> = row.inventory.iter().map(|n| applied(n)).collect();
        assert_eq!(o.applied_objects, inventory, "{}", row.name);
        assert!(
            o.message.contains(row.message),
            "{}: {}",
            row.name,
            o.message
        );
    }
}

#[tokio::test]
async fn a_cluster_that_stops_answering_ends_unreachable_at_the_deadline() {
    let (client, log) = scripted(cluster);
    let ctx = context(client.clone());
    let (ad, kc) = resources();
    let prev = prev_with(&["settings"]);
    let obs = observed(client, &["hang"]);
    let deploy = act(&ctx, &ad, &kc, Some(&prev), &obs, apply(Vec::new()));
    let o = within_deadline(&ctx, &kc, Some(&prev), deploy).await;
    assert_eq!(o.phase, ClusterPhase::Unreachable, "{}", o.message);
    assert!(o.message.contains("per-cluster deadline"), "{}", o.message);
    assert_eq!(
        o.applied_objects, prev.applied_objects,
        "the inventory is kept"
    );
    assert_eq!(
        log.lock().unwrap().last().map(String::as_str),
        Some("GET /api/v1/namespaces/ws-a/configmaps/hang")
    );
}
