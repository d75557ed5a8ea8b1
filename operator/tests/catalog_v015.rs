//! The shipped metallb-0.15.2 ClusterApp: the seed's `configInline` and MetalLB's own
//! resource shapes, as values, become the same resources; the gate reads them back.

use kommander_operator::catalog::load_app;
use kommander_operator::checks;
use kommander_operator::manifest::ManifestObject;
use kommander_operator::render::{ClusterInfo, CompiledApp, Release};
use kommander_operator::rollout::{self, LiveState};
use kommander_operator::values;

const CATALOG: &str = include_str!("../../manifests/catalog/metallb-0.15.2.yaml");

fn render(overrides: &str) -> Result<(CompiledApp, Vec<ManifestObject>), String> {
    let app = load_app("metallb-0.15.2.yaml", CATALOG).unwrap();
    let compiled = CompiledApp::compile(&app.name, &app.definition).unwrap();
    let layer = values::parse("metallb-overrides", overrides).unwrap();
    let merged = compiled.values(&[layer]);
    let objects = compiled
        .render(
            merged,
            &Release {
                name: "metallb".into(),
                namespace: "ws".into(),
            },
            &ClusterInfo {
                name: "attached-1".into(),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    Ok((compiled, objects))
}

fn config(overrides: &str) -> String {
    let (compiled, objects) = render(overrides).unwrap();
    let plan = compiled
        .config_rollout(
            Default::default(),
            &Release {
                name: "metallb".into(),
                namespace: "ws".into(),
            },
            &ClusterInfo::default(),
        )
        .unwrap()
        .unwrap();
    rollout::runtime_config(&objects, &plan).unwrap().text
}

const SEED_LAYER2: &str = "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n";

const NATIVE: &str = "ipAddressPools:\n- name: default\n  spec:\n    addresses:\n    - 10.0.50.25-10.0.50.50\nl2Advertisements:\n- name: default\n  spec:\n    ipAddressPools: [default]\n";

#[test]
fn the_seed_and_the_native_shape_are_the_same_resources() {
    assert_eq!(config(SEED_LAYER2), config(NATIVE));
    let (_, objects) = render(NATIVE).unwrap();
    let pool = objects
        .iter()
        .find(|o| o.kind == "IPAddressPool")
        .expect("a pool");
    assert_eq!(pool.namespace.as_deref(), Some("ws"));
    assert_eq!(pool.body["spec"]["addresses"][0], "10.0.50.25-10.0.50.50");
}

#[test]
fn the_gate_reads_what_was_rendered() {
    let text = config(NATIVE);
    let rules = checks::adapter(kommander_operator::resources::SafetyCheck::MetallbV015).rules();
    assert!(rules.validate(&text, &LiveState::default()).is_empty());
    let bad = config(
        "ipAddressPools:\n- name: a\n  spec:\n    addresses: [10.0.50.0/24]\n- name: b\n  spec:\n    addresses: [10.0.50.128/25]\n",
    );
    assert_eq!(
        rules.validate(&bad, &LiveState::default()),
        vec![
            "IPAddressPool/b spec.addresses[0]: 10.0.50.128/25 overlaps 10.0.50.0/24 of IPAddressPool/a"
        ]
    );
}

#[test]
fn a_peer_password_lands_in_a_secret_never_in_the_peer() {
    let (_, objects) = render("configInline:\n  peers:\n  - my-asn: 64500\n    peer-asn: 64501\n    peer-address: 172.17.0.4\n    password: s3cret\n  address-pools:\n  - name: bgp\n    protocol: bgp\n    addresses: [172.40.100.0/24]\n").unwrap();
    let peer = objects.iter().find(|o| o.kind == "BGPPeer").unwrap();
    assert_eq!(peer.name, "peer-172-17-0-4-64501");
    assert!(peer.body["spec"].get("password").is_none());
    let secret = objects
        .iter()
        .find(|o| o.kind == "Secret" && o.name == "peer-172-17-0-4-64501-password")
        .unwrap();
    assert_eq!(secret.body["type"], "kubernetes.io/basic-auth");
    let text = config(
        "configInline:\n  peers:\n  - my-asn: 64500\n    peer-asn: 64501\n    peer-address: 172.17.0.4\n    password: s3cret\n",
    );
    assert!(
        !text.contains("s3cret") && !text.contains("czNjcmV0"),
        "{text}"
    );
}

#[test]
fn what_the_port_leaves_out_is_refused_by_name() {
    for (values, says) in [
        (
            "prometheus:\n  podMonitor:\n    enabled: true\n",
            "prometheus-operator objects are not part of this catalog app",
        ),
        (
            "frrk8s:\n  enabled: true\nspeaker:\n  frr:\n    enabled: false\n",
            "the frr-k8s backend is not part of this catalog app",
        ),
        (
            "controller:\n  logLevel: verbose\n",
            "at '/controller/logLevel'",
        ),
    ] {
        let e = render(values).unwrap_err();
        assert!(e.contains(says), "{values}: {e}");
    }
}
