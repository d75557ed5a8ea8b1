//! The shipped metallb-0.12.3 ClusterApp, rendered with the seed document's overrides.

use kommander_operator::catalog::load_app;
use kommander_operator::manifest::ManifestObject;
use kommander_operator::metallb::{self, config::SpeakerMode};
use kommander_operator::render::{
    ClusterInfo, CompiledApp, ConfigSource, Release, ResolvedRollout,
};
use kommander_operator::values;
use serde_json::{Value, json};

const CATALOG: &str = include_str!("../../manifests/catalog/metallb-0.12.3.yaml");

/// The seed's layer2 ConfigMap `values.yaml`, verbatim.
const SEED_LAYER2: &str = "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n";
/// The seed's BGP ConfigMap `values.yaml`, verbatim.
const SEED_BGP: &str = "configInline:\n  peers:\n  - my-asn: 64500\n    peer-asn: 64500\n    peer-address: 172.17.0.4\n  address-pools:\n  - name: my-ip-space\n    protocol: bgp\n    addresses:\n    - 172.40.100.0/24\n";

fn render(overrides: &str) -> Vec<ManifestObject> {
    render_as("metallb", overrides).unwrap().0
}

/// The objects and the config rollout of a release named `release`, or why the render failed.
fn render_as(
    release: &str,
    overrides: &str,
) -> Result<(Vec<ManifestObject>, ResolvedRollout), String> {
    let app = load_app("metallb-0.12.3.yaml", CATALOG).unwrap();
    assert_eq!(app.name, "metallb-0.12.3");
    let compiled = CompiledApp::compile(&app.name, &app.definition).unwrap();
    let layer = values::parse("metallb-overrides", overrides).unwrap();
    let merged = compiled.values(&[layer]);
    let release = Release {
        name: release.into(),
        namespace: "kommander".into(),
    };
    let cluster = ClusterInfo {
        name: "host-cluster".into(),
        ..Default::default()
    };
    let objects = compiled
        .render(merged.clone(), &release, &cluster)
        .map_err(|e| e.to_string())?;
    let rollout = compiled
        .config_rollout(merged, &release, &cluster)
        .map_err(|e| e.to_string())?
        .unwrap();
    Ok((objects, rollout))
}

fn find<'a>(objs: &'a [ManifestObject], kind: &str, name: &str) -> &'a ManifestObject {
    objs.iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name} in {:?}",
                objs.iter().map(|o| o.display_name()).collect::<Vec<_>>()
            )
        })
}

fn config_of(objs: &[ManifestObject]) -> Value {
    let cm = find(objs, "ConfigMap", "metallb");
    let text = cm.body["data"]["config"]
        .as_str()
        .expect("config key is a string");
    kommander_operator::yaml::parse(text).unwrap()
}

#[test]
fn seed_layer2_overrides_produce_exactly_the_seed_pool() {
    let objs = render(SEED_LAYER2);
    assert_eq!(
        config_of(&objs),
        json!({"address-pools": [{"name": "default", "protocol": "layer2", "addresses": ["10.0.50.25-10.0.50.50"]}]})
    );
    let cm = find(&objs, "ConfigMap", "metallb");
    let parsed = metallb::config::parse(
        cm.body["data"]["config"].as_str().unwrap(),
        SpeakerMode::Native,
    )
    .unwrap();
    assert_eq!(parsed.pools[0].capacity(), 26);
}

#[test]
fn seed_bgp_overrides_produce_the_seed_peer_and_pool() {
    let objs = render(SEED_BGP);
    assert_eq!(
        config_of(&objs),
        json!({
            "peers": [{"my-asn": 64500, "peer-asn": 64500, "peer-address": "172.17.0.4"}],
            "address-pools": [{"name": "my-ip-space", "protocol": "bgp", "addresses": ["172.40.100.0/24"]}]
        })
    );
    let cm = find(&objs, "ConfigMap", "metallb");
    assert!(
        metallb::config::parse(
            cm.body["data"]["config"].as_str().unwrap(),
            SpeakerMode::Native
        )
        .is_ok()
    );
}

#[test]
fn controller_pods_carry_the_labels_the_seed_selects_on() {
    let objs = render(SEED_LAYER2);
    let d = find(&objs, "Deployment", "metallb-controller");
    assert_eq!(d.namespace.as_deref(), Some("kommander"));
    let labels = &d.body["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app"], json!("metallb"));
    assert_eq!(labels["component"], json!("controller"));
    assert_eq!(labels["release"], json!("metallb"));
    assert_eq!(
        d.body["spec"]["selector"]["matchLabels"],
        json!({"app": "metallb", "component": "controller", "release": "metallb"})
    );
    let c = &d.body["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], json!("quay.io/metallb/controller:v0.12.1"));
    assert_eq!(
        c["args"],
        json!(["--port=7472", "--config=metallb", "--log-level=info"])
    );
    assert_eq!(
        d.body["spec"]["template"]["spec"]["securityContext"],
        json!({"fsGroup": 65534, "runAsNonRoot": true, "runAsUser": 65534})
    );
}

#[test]
fn speaker_daemonset_is_rendered_and_labelled() {
    let objs = render(SEED_LAYER2);
    let ds = find(&objs, "DaemonSet", "metallb-speaker");
    assert_eq!(
        ds.body["spec"]["template"]["metadata"]["labels"]["component"],
        json!("speaker")
    );
    assert_eq!(
        ds.body["spec"]["template"]["spec"]["hostNetwork"],
        json!(true)
    );
    assert_eq!(
        ds.body["spec"]["template"]["spec"]["containers"][0]["args"][1],
        json!("--config=metallb")
    );
}

#[test]
fn the_full_object_set() {
    let objs = render(SEED_LAYER2);
    let mut names: Vec<String> = objs.iter().map(|o| o.display_name()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "ClusterRole metallb:controller",
            "ClusterRole metallb:speaker",
            "ClusterRoleBinding metallb:controller",
            "ClusterRoleBinding metallb:speaker",
            "ConfigMap kommander/metallb",
            "DaemonSet kommander/metallb-speaker",
            "Deployment kommander/metallb-controller",
            "Role kommander/metallb-config-watcher",
            "Role kommander/metallb-controller",
            "Role kommander/metallb-pod-lister",
            "RoleBinding kommander/metallb-config-watcher",
            "RoleBinding kommander/metallb-controller",
            "RoleBinding kommander/metallb-pod-lister",
            "ServiceAccount kommander/metallb-controller",
            "ServiceAccount kommander/metallb-speaker",
        ]
    );
    assert!(objs.iter().all(|o| !o.kind.contains("PodSecurityPolicy")));
}

#[test]
fn no_config_inline_means_no_configmap() {
    let objs = render("");
    assert!(objs.iter().all(|o| o.kind != "ConfigMap"));
}

#[test]
fn chart_knobs_work() {
    let objs = render(
        "controller:\n  resources:\n    limits:\n      cpu: 100m\n  tolerations:\n  - key: dedicated\n    operator: Exists\n  podAnnotations:\n    a: b\nspeaker:\n  memberlist:\n    enabled: false\n  tolerateMaster: false\nprometheus:\n  scrapeAnnotations: true\n",
    );
    let d = find(&objs, "Deployment", "metallb-controller");
    let spec = &d.body["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["resources"],
        json!({"limits": {"cpu": "100m"}})
    );
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
    assert_eq!(
        d.body["spec"]["template"]["metadata"]["annotations"],
        json!({"a": "b", "prometheus.io/scrape": "true", "prometheus.io/port": "7472"})
    );
    assert!(
        objs.iter()
            .all(|o| o.name != "metallb-controller" || o.kind != "Role"),
        "memberlist Role is gone"
    );
    let ds = find(&objs, "DaemonSet", "metallb-speaker");
    assert_eq!(ds.body["spec"]["template"]["spec"].get("tolerations"), None);
}

/// The gaps a comparison with helm found in the first port, each as helm renders it.
#[test]
fn service_account_create_false_uses_default_like_helm() {
    let objs = render("controller:\n  serviceAccount:\n    create: false\n");
    let d = find(&objs, "Deployment", "metallb-controller");
    assert_eq!(
        d.body["spec"]["template"]["spec"]["serviceAccountName"],
        json!("default")
    );
    assert!(
        objs.iter()
            .all(|o| o.kind != "ServiceAccount" || o.name != "metallb-controller")
    );
}

#[test]
fn an_empty_or_null_image_tag_falls_back_to_the_app_version() {
    for tag in ["\"\"", "null"] {
        let objs = render(&format!("controller:\n  image:\n    tag: {tag}\n"));
        let d = find(&objs, "Deployment", "metallb-controller");
        assert_eq!(
            d.body["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("quay.io/metallb/controller:v0.12.1"),
            "tag {tag}"
        );
    }
}

#[test]
fn names_follow_the_release_and_overrides_and_the_rollout_follows_them() {
    let (objs, rollout) = render_as("lb", SEED_LAYER2).unwrap();
    find(&objs, "Deployment", "lb-metallb-controller");
    find(&objs, "ConfigMap", "lb-metallb");
    assert_eq!(rollout.restart[0].name, "lb-metallb-controller");
    assert!(
        matches!(&rollout.source, ConfigSource::ConfigMap { name, .. } if name == "lb-metallb")
    );

    let (objs, rollout) =
        render_as("metallb", &format!("{SEED_LAYER2}fullnameOverride: edge\n")).unwrap();
    let d = find(&objs, "Deployment", "edge-controller");
    assert_eq!(
        d.body["spec"]["template"]["spec"]["containers"][0]["args"][1],
        json!("--config=edge")
    );
    find(&objs, "ConfigMap", "edge");
    assert_eq!(rollout.restart[0].name, "edge-controller");
    assert!(matches!(&rollout.source, ConfigSource::ConfigMap { name, .. } if name == "edge"));
}

#[test]
fn existing_config_map_is_read_not_rendered() {
    let (objs, rollout) = render_as("metallb", "existingConfigMap: site-config\n").unwrap();
    assert!(objs.iter().all(|o| o.kind != "ConfigMap"));
    let ds = find(&objs, "DaemonSet", "metallb-speaker");
    assert_eq!(
        ds.body["spec"]["template"]["spec"]["containers"][0]["args"][1],
        json!("--config=site-config")
    );
    assert!(
        matches!(&rollout.source, ConfigSource::ConfigMap { name, .. } if name == "site-config")
    );
}

#[test]
fn speaker_secret_name_and_runtime_class_are_honoured() {
    let objs = render("speaker:\n  secretName: ml-key\n  runtimeClassName: gvisor\n");
    let ds = find(&objs, "DaemonSet", "metallb-speaker");
    let spec = &ds.body["spec"]["template"]["spec"];
    assert_eq!(spec["runtimeClassName"], json!("gvisor"));
    let env = spec["containers"][0]["env"].as_array().unwrap();
    let key = env
        .iter()
        .find(|e| e["name"] == "METALLB_ML_SECRET_KEY")
        .unwrap();
    assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], json!("ml-key"));
}

#[test]
fn the_chart_schema_is_applied() {
    let err = render_as("metallb", "controller:\n  logLevel: verbose\n").unwrap_err();
    assert!(err.contains("/controller/logLevel"), "{err}");
    let err = render_as("metallb", "psp:\n  create: true\n").unwrap_err();
    assert!(err.contains("PodSecurityPolicy was removed"), "{err}");
}
