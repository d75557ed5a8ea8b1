//! One cluster's observe, against a scripted API: what it reads for each kind of app and
//! cluster (and, by the request log, what it does not), and how a failed read stops the
//! cluster. Observe never writes: no row sends anything but GET.

use super::super::inputs::Prepared;
use super::super::observe::observe;
use super::{Log, Reply, context, not_found, scripted};
use crate::render::{ConfigSource, ResolvedRollout};
use crate::resources::{AppDeployment, ClusterPhase, KommanderCluster, SafetyCheck};
use crate::rollout::{self, RuntimeConfig};
use serde_json::{Value, json};

const LAYER2: &str =
    "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.50.0/24\n";
const BGP: &str = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\naddress-pools:\n- name: default\n  protocol: bgp\n  addresses:\n  - 10.0.50.0/24\n";

fn list(kind: &str) -> (u16, Value) {
    (
        200,
        json!({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": []}),
    )
}

/// The management cluster (the `kommander` workspace): MetalLB 0.12 not installed yet, IPVS
/// without strictARP, no kubeadm record, no nodes or Services.
fn management(method: &str, path: &str) -> Reply {
    assert_eq!(method, "GET", "observe sent {method} {path}");
    Some(match path {
        "/api/v1/services" => list("ServiceList"),
        "/api/v1/nodes" => list("NodeList"),
        "/api/v1/namespaces/kube-system/configmaps/kube-proxy" => (
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                   "data": {"config.conf": "mode: ipvs\nipvs:\n  strictARP: false\n"}}),
        ),
        _ => not_found(),
    })
}

/// The same cluster, whose API fails every list of Services.
fn failing(method: &str, path: &str) -> Reply {
    if path == "/api/v1/services" {
        return Some((
            500,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd is down"}),
        ));
    }
    management(method, path)
}

fn prepared(config: Option<&str>) -> Prepared {
    let rollout = config.map(|_| ResolvedRollout {
        source: ConfigSource::ConfigMap {
            name: "config".into(),
            key: Some("config".into()),
        },
        restart: Vec::new(),
        safety_check: Some(SafetyCheck::MetallbV012),
    });
    let desired = config.map(|text| RuntimeConfig {
        source: "kommander/config".into(),
        text: text.into(),
        hash: rollout::config_hash(text),
        defaults: Default::default(),
    });
    Prepared {
        objects: Vec::new(),
        rollout,
        desired,
        hooks: Vec::new(),
        render_hash: "r1".into(),
    }
}

fn resources(spec: Value, status: Value) -> (AppDeployment, KommanderCluster) {
    let ad = serde_json::from_value(json!({
        "apiVersion": "apps.kommander.d2iq.io/v1alpha2", "kind": "AppDeployment",
        "metadata": {"name": "metallb", "namespace": "kommander", "uid": "u1"},
        "spec": {"appRef": {"name": "metallb-0.12.3", "kind": "ClusterApp"}}
    }))
    .unwrap();
    let kc = serde_json::from_value(json!({
        "apiVersion": "kommander.mesosphere.io/v1beta1", "kind": "KommanderCluster",
        "metadata": {"name": "host-cluster", "namespace": "kommander"},
        "spec": spec, "status": status
    }))
    .unwrap();
    (ad, kc)
}

/// The reads of a MetalLB 0.12 live state, in order.
const LIVE: &[&str] = &[
    "GET /api/v1/namespaces/kommander/configmaps/config",
    "GET /api/v1/services",
    "GET /api/v1/namespaces/kube-system/configmaps/kubeadm-config",
    "GET /api/v1/namespaces/kube-system/configmaps/kube-proxy",
    "GET /api/v1/nodes",
];

/// kube-proxy's reads for the strictARP step.
const KUBE_PROXY: &[&str] = &[
    "GET /api/v1/namespaces/kube-system/configmaps/kube-proxy",
    "GET /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy",
];

struct Row {
    name: &'static str,
    route: fn(&str, &str) -> Reply,
    config: Option<&'static str>,
    spec: Value,
    status: Value,
    /// `Ok`: whether the live state and kube-proxy were read; `Err`: the phase and a fragment
    /// of the message.
    want: Result<(bool, bool), (ClusterPhase, &'static str)>,
    requests: Vec<&'static str>,
}

fn requests(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn each_cluster_is_read_for_what_its_decision_needs_and_no_more() {
    let strict = json!({"kubeProxy": {"setStrictARP": true}});
    let table = [
        Row {
            name: "an app without a runtime config: nothing read",
            route: management,
            config: None,
            spec: json!({}),
            status: json!({}),
            want: Ok((false, false)),
            requests: vec![],
        },
        Row {
            name: "a MetalLB config: the live state, not kube-proxy (not asked to set it)",
            route: management,
            config: Some(LAYER2),
            spec: json!({}),
            status: json!({}),
            want: Ok((true, false)),
            requests: LIVE.to_vec(),
        },
        Row {
            name: "a layer2 config where strictARP may be set: kube-proxy too",
            route: management,
            config: Some(LAYER2),
            spec: strict.clone(),
            status: json!({}),
            want: Ok((true, true)),
            requests: [LIVE, KUBE_PROXY].concat(),
        },
        Row {
            name: "a BGP config needs no strictARP: kube-proxy not read",
            route: management,
            config: Some(BGP),
            spec: strict.clone(),
            status: json!({}),
            want: Ok((true, false)),
            requests: LIVE.to_vec(),
        },
        Row {
            name: "a cluster reported unreachable is not tried",
            route: management,
            config: Some(LAYER2),
            spec: json!({}),
            status: json!({"phase": "Unreachable", "conditions": [{"type": "Ready", "status": "False",
                "reason": "Unreachable", "message": "connection refused", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            want: Err((
                ClusterPhase::Unreachable,
                "cluster is unreachable: connection refused",
            )),
            requests: vec![],
        },
        Row {
            name: "the API fails a read: unreachable, the rest not read",
            route: failing,
            config: Some(LAYER2),
            spec: strict.clone(),
            status: json!({}),
            want: Err((ClusterPhase::Unreachable, "etcd is down")),
            requests: LIVE[..2].to_vec(),
        },
        Row {
            name: "a declared network that is no CIDR: invalid, the KommanderCluster's fault",
            route: management,
            config: Some(LAYER2),
            spec: json!({"network": {"podSubnet": "10.0.0.0/33"}}),
            status: json!({}),
            want: Err((ClusterPhase::Invalid, "spec.network.podSubnet")),
            requests: LIVE[..3].to_vec(),
        },
    ];
    for row in table {
        let (client, log) = scripted(row.route);
        let ctx = context(client);
        let (ad, kc) = resources(row.spec, row.status);
        let got = observe(&ctx, &ad, "kommander", &kc, None, prepared(row.config)).await;
        match (got, row.want) {
            (Ok(o), Ok((live, kube_proxy))) => {
                assert_eq!(o.live.is_some(), live, "{}: live read", row.name);
                assert_eq!(
                    o.kube_proxy.is_some(),
                    kube_proxy,
                    "{}: kube-proxy",
                    row.name
                );
                assert!(o.learned.fresh, "{}: a first connection", row.name);
            }
            (Err(stop), Err((phase, fragment))) => {
                assert_eq!(stop.phase, phase, "{}: {}", row.name, stop.message);
                assert!(
                    stop.message.contains(fragment),
                    "{}: {:?} lacks {fragment:?}",
                    row.name,
                    stop.message
                );
            }
            (got, want) => panic!(
                "{}: got {:?}, want {want:?}",
                row.name,
                got.map(|o| (o.live.is_some(), o.kube_proxy.is_some()))
            ),
        }
        assert_eq!(requests(&log), row.requests, "{}: requests", row.name);
    }
}
