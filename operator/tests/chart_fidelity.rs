//! Chart fidelity, proven against helm: random values drawn from the upstream chart's own
//! values rendered through our `render` (the catalog app) and through `helm template` of the
//! upstream chart at the same tag (helm v3.22.0, e2e/bin/helm, built from its Go module),
//! compared as data. Equal, or both refuse, modulo the intended differences below.
//!
//! Intended differences (also listed at the top of each catalog file):
//! - `app.kubernetes.io/managed-by` is the operator's, and the operator adds its ownership
//!   labels; `metadata.namespace` is set by the operator on every namespaced object.
//! - Kommander's pod labels (app, component, release) are on the pods and are the workloads'
//!   selectors.
//! - metallb-0.15.2, not ported (and refused with a message by ours, so not drawn here):
//!   frr-k8s, prometheus-operator objects, kube-rbac-proxy (secureMetricsPort).
//! - metallb-0.12.3: PodSecurityPolicy is not rendered (removed in Kubernetes 1.25): ours
//!   defaults `psp.create` to false and refuses true, helm defaults it to true, so every value
//!   set says `psp.create: false`. With `speaker.tolerateMaster` ours also tolerates the
//!   control-plane taint. prometheus-operator objects are not ported (not drawn).
//! - A ConfigMap's MetalLB `config` is compared as the YAML data MetalLB reads, not as text.
//!
//! `make test` runs 100 value sets per app (CHART_SCENARIOS).

use kommander_e2e::{Rng, root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

/// Set `path` (dotted) in `values` to `v`.
fn set(values: &mut Value, path: &str, v: Value) {
    let mut cur = values;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    cur[parts[parts.len() - 1]] = v;
}

/// MetalLB's log levels.
fn log_levels() -> Vec<Value> {
    ["all", "debug", "info", "warn", "error", "none"]
        .into_iter()
        .map(Value::from)
        .collect()
}

fn pull_policies() -> Vec<Value> {
    vec![Value::Null, json!("Always"), json!("IfNotPresent")]
}

/// Knobs of the v0.15.2 chart's values.yaml and the values each may take.
fn knobs_v015() -> Vec<(&'static str, Vec<Value>)> {
    let levels = log_levels();
    let tags = vec![Value::Null, json!(""), json!("v0.15.1")];
    let policies = pull_policies();
    let b = vec![json!(true), json!(false)];
    let mut k: Vec<(&'static str, Vec<Value>)> = vec![
        ("controller.logLevel", levels.clone()),
        ("speaker.logLevel", levels),
        ("controller.image.tag", tags.clone()),
        ("speaker.image.tag", tags.clone()),
        ("speaker.frr.image.tag", vec![Value::Null, json!("9.1.1")]),
        ("controller.image.pullPolicy", policies.clone()),
        ("speaker.image.pullPolicy", policies.clone()),
        ("speaker.frr.image.pullPolicy", policies),
        ("rbac.create", b.clone()),
        ("controller.enabled", b.clone()),
        ("speaker.enabled", b.clone()),
        ("speaker.frr.enabled", b.clone()),
        ("speaker.memberlist.enabled", b.clone()),
        (
            "speaker.memberlist.mlBindAddrOverride",
            vec![json!(""), json!("10.0.0.1")],
        ),
        ("speaker.excludeInterfaces.enabled", b.clone()),
        ("speaker.ignoreExcludeLB", b.clone()),
        ("speaker.wanConfig", b.clone()),
        ("speaker.tolerateMaster", b.clone()),
        ("prometheus.scrapeAnnotations", b.clone()),
        ("prometheus.metricsPort", vec![json!(7472), json!(9100)]),
        (
            "imagePullSecrets",
            vec![json!([]), json!([{"name": "regcred"}])],
        ),
        ("loadBalancerClass", vec![json!(""), json!("metallb")]),
        ("crds.enabled", b.clone()),
        (
            "crds.validationFailurePolicy",
            vec![json!("Fail"), json!("Ignore")],
        ),
        ("nameOverride", vec![json!(""), json!("mlb")]),
        ("fullnameOverride", vec![json!(""), json!("edge")]),
        (
            "controller.strategy",
            vec![
                json!({"type": "RollingUpdate"}),
                json!({"type": "Recreate"}),
            ],
        ),
        (
            "speaker.updateStrategy",
            vec![
                json!({"type": "RollingUpdate"}),
                json!({"type": "OnDelete"}),
            ],
        ),
        (
            "controller.webhookMode",
            vec![Value::Null, json!("disabled")],
        ),
        (
            "controller.tlsMinVersion",
            vec![json!("VersionTLS12"), json!("VersionTLS13"), json!("")],
        ),
        (
            "controller.tlsCipherSuites",
            vec![json!(""), json!("TLS_AES_128_GCM_SHA256")],
        ),
        (
            "controller.command",
            vec![Value::Null, json!("/controller")],
        ),
        ("speaker.command", vec![Value::Null, json!("/speaker")]),
        (
            "controller.extraContainers",
            vec![json!([]), json!([{"name": "side", "image": "busybox"}])],
        ),
        (
            "speaker.extraContainers",
            vec![json!([]), json!([{"name": "side", "image": "busybox"}])],
        ),
        (
            "speaker.securityContext",
            vec![json!({}), json!({"runAsUser": 0})],
        ),
        (
            "controller.securityContext",
            vec![
                json!({}),
                json!({"runAsNonRoot": true, "runAsUser": 65534, "fsGroup": 65534}),
            ],
        ),
        ("speaker.startupProbe.enabled", b.clone()),
    ];
    for who in ["controller", "speaker"] {
        k.extend(component_knobs(who));
        k.push((
            leak(format!("{who}.labels")),
            vec![json!({}), json!({"team": "net"})],
        ));
        k.push((
            leak(format!("{who}.runtimeClassName")),
            vec![json!(""), json!("gvisor")],
        ));
    }
    k.push((
        "speaker.nodeSelector",
        vec![json!({}), json!({"disk": "ssd"})],
    ));
    k.push((
        "controller.nodeSelector",
        vec![json!({}), json!({"disk": "ssd"})],
    ));
    k
}

const OPERATOR_LABELS: &[&str] = &[
    "app.kubernetes.io/managed-by",
    "apps.kommander.d2iq.io/appdeployment",
    "apps.kommander.d2iq.io/workspace",
];

/// One rendered object with the intended differences taken out; `ours` when it is our render.
fn normalize(mut o: Value, chart: &Chart, ours: bool) -> Value {
    if let Some(text) = o.pointer("/data/config").and_then(Value::as_str) {
        let data = kommander_operator::yaml::parse_all(text).unwrap_or_default();
        o["data"]["config"] = json!(data);
    }
    if ours
        && chart.tolerates_control_plane
        && let Some(t) = o
            .pointer_mut("/spec/template/spec/tolerations")
            .and_then(Value::as_array_mut)
    {
        t.retain(|t| t["key"] != "node-role.kubernetes.io/control-plane");
    }
    if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("namespace");
        if let Some(labels) = md.get_mut("labels").and_then(Value::as_object_mut) {
            for l in OPERATOR_LABELS {
                labels.remove(*l);
            }
            if labels.is_empty() {
                md.remove("labels");
            }
        }
    }
    let kind = o["kind"].as_str().unwrap_or_default().to_string();
    if kind == "Deployment" || kind == "DaemonSet" {
        if let Some(labels) = o
            .pointer_mut("/spec/template/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for l in ["app", "component", "release"] {
                labels.remove(l);
            }
        }
        o["spec"]["selector"] = json!("(Kommander's pod labels)");
    }
    o
}

fn objects(text: &str, chart: &Chart, ours: bool) -> Result<BTreeMap<String, Value>, String> {
    let docs = kommander_operator::yaml::parse_all(text).map_err(|e| e.to_string())?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let key = format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, normalize(d, chart, ours))
        })
        .collect())
}

/// Where two values differ, as `path: ours != helm` lines.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(u, v, &p, out),
                    (u, v) => out.push(format!("{p}: ours {u:?} != helm {v:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(u, v, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: ours {a} != helm {b}")),
        _ => {}
    }
}

fn chart_dir(tag: &str) -> String {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go runs");
    format!(
        "{}/go.universe.tf/metallb@{tag}/charts/metallb",
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

/// One catalog app and the upstream chart it ports.
struct Chart {
    /// The catalog file under manifests/catalog.
    app: &'static str,
    /// The upstream tag of go.universe.tf/metallb whose charts/metallb it ports.
    tag: &'static str,
    knobs: Vec<(&'static str, Vec<Value>)>,
    /// Values every value set starts from (an intended difference in the defaults).
    base: Value,
    /// Ours adds the control-plane toleration the chart lacks.
    tolerates_control_plane: bool,
}

#[test]
fn e2e_chart_metallb_0_15_2_renders_like_helm() {
    renders_like_helm(
        &Chart {
            app: "metallb-0.15.2.yaml",
            tag: "v0.15.2",
            knobs: knobs_v015(),
            base: json!({}),
            tolerates_control_plane: false,
        },
        0xC0FF_EE12_3456_789A,
    );
}

#[test]
fn e2e_chart_metallb_0_12_3_renders_like_helm() {
    renders_like_helm(
        &Chart {
            app: "metallb-0.12.3.yaml",
            tag: "v0.12.1",
            knobs: knobs_v012(),
            base: json!({"psp": {"create": false}}),
            tolerates_control_plane: true,
        },
        0x0BAD_5EED_0012_0003,
    );
}

#[test]
fn e2e_chart_metallb_0_13_5_renders_like_helm() {
    renders_like_helm(
        &Chart {
            app: "metallb-0.13.5.yaml",
            tag: "v0.13.5",
            knobs: knobs_v013(),
            base: json!({}),
            tolerates_control_plane: false,
        },
        0x5EED_0013_0005_C0DE,
    );
}

/// Knobs of the v0.13.5 chart: those of v0.15.2 it has too, and its own. Not drawn:
/// `crds.validationFailurePolicy` (the chart hard-codes Fail; ours makes it a value).
fn knobs_v013() -> Vec<(&'static str, Vec<Value>)> {
    const NOT_IN_V013: &[&str] = &[
        "controller.labels",
        "speaker.labels",
        "controller.tlsMinVersion",
        "controller.tlsCipherSuites",
        "controller.extraContainers",
        "speaker.extraContainers",
        "speaker.securityContext",
        "speaker.startupProbe",
        "speaker.excludeInterfaces",
        "speaker.ignoreExcludeLB",
        "speaker.wanConfig",
        "speaker.memberlist.mlBindAddrOverride",
        "crds.validationFailurePolicy",
    ];
    let mut k: Vec<(&'static str, Vec<Value>)> = knobs_v015()
        .into_iter()
        .filter(|(path, _)| !NOT_IN_V013.iter().any(|n| path.starts_with(n)))
        .collect();
    k.push((
        "speaker.memberlist.mlBindPort",
        vec![json!(7946), json!(7000)],
    ));
    k.push(("speaker.frr.metricsPort", vec![json!(7473), json!(7600)]));
    k.push((
        "controller.logLevel",
        vec![json!("verbose"), json!("debug")],
    ));
    k
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Knobs every chart version has for `who` (controller or speaker).
fn component_knobs(who: &str) -> Vec<(&'static str, Vec<Value>)> {
    let b = vec![json!(true), json!(false)];
    vec![
        (leak(format!("{who}.serviceAccount.create")), b.clone()),
        (
            leak(format!("{who}.serviceAccount.name")),
            vec![json!(""), json!(format!("{who}-sa"))],
        ),
        (
            leak(format!("{who}.serviceAccount.annotations")),
            vec![json!({}), json!({"iam": "role"})],
        ),
        (
            leak(format!("{who}.podAnnotations")),
            vec![json!({}), json!({"x.io/y": "z"})],
        ),
        (
            leak(format!("{who}.tolerations")),
            vec![json!([]), json!([{"key": "k", "operator": "Exists"}])],
        ),
        (
            leak(format!("{who}.affinity")),
            vec![
                json!({}),
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}),
            ],
        ),
        (
            leak(format!("{who}.resources")),
            vec![json!({}), json!({"limits": {"cpu": "100m"}})],
        ),
        (
            leak(format!("{who}.priorityClassName")),
            vec![json!(""), json!("high")],
        ),
        (leak(format!("{who}.livenessProbe.enabled")), b.clone()),
        (leak(format!("{who}.readinessProbe.enabled")), b),
    ]
}

/// Knobs of the v0.12.1 chart's values.yaml and the values each may take.
fn knobs_v012() -> Vec<(&'static str, Vec<Value>)> {
    // And one the chart's schema refuses.
    let levels: Vec<Value> = log_levels().into_iter().chain([json!("verbose")]).collect();
    let tags = vec![Value::Null, json!(""), json!("v0.12.0")];
    let policies = pull_policies();
    let b = vec![json!(true), json!(false)];
    let seed = json!({"address-pools": [{"name": "default", "protocol": "layer2", "addresses": ["10.0.50.25-10.0.50.50"]}]});
    let bgp = json!({"peers": [{"peer-address": "10.0.0.1", "peer-asn": 64501, "my-asn": 64500, "password": "s3cret"}], "address-pools": [{"name": "bgp", "protocol": "bgp", "addresses": ["192.168.10.0/24"], "auto-assign": false}]});
    let mut k: Vec<(&'static str, Vec<Value>)> = vec![
        ("configInline", vec![json!({}), seed, bgp]),
        ("existingConfigMap", vec![json!(""), json!("site-config")]),
        ("controller.logLevel", levels.clone()),
        ("speaker.logLevel", levels),
        ("controller.image.tag", tags.clone()),
        ("speaker.image.tag", tags),
        (
            "speaker.frr.image.tag",
            vec![Value::Null, json!(""), json!("7.5.1")],
        ),
        ("controller.image.pullPolicy", policies.clone()),
        ("speaker.image.pullPolicy", policies.clone()),
        ("speaker.frr.image.pullPolicy", policies),
        (
            "speaker.frr.logLevel",
            vec![json!("informational"), json!("debugging"), json!("loud")],
        ),
        ("rbac.create", b.clone()),
        ("controller.enabled", b.clone()),
        ("speaker.enabled", b.clone()),
        ("speaker.frr.enabled", b.clone()),
        ("speaker.memberlist.enabled", b.clone()),
        (
            "speaker.memberlist.mlBindPort",
            vec![json!(7946), json!(7000)],
        ),
        ("speaker.secretName", vec![json!(""), json!("ml-key")]),
        ("speaker.runtimeClassName", vec![json!(""), json!("gvisor")]),
        ("speaker.tolerateMaster", b.clone()),
        ("prometheus.scrapeAnnotations", b.clone()),
        ("prometheus.metricsPort", vec![json!(7472), json!(9100)]),
        (
            "imagePullSecrets",
            vec![json!([]), json!([{"name": "regcred"}])],
        ),
        ("nameOverride", vec![json!(""), json!("mlb")]),
        ("fullnameOverride", vec![json!(""), json!("edge")]),
        (
            "controller.securityContext",
            vec![
                json!({}),
                json!({"runAsNonRoot": true, "runAsUser": 65534, "fsGroup": 65534}),
            ],
        ),
    ];
    for who in ["controller", "speaker"] {
        k.extend(component_knobs(who));
        k.push((
            leak(format!("{who}.nodeSelector")),
            vec![json!({}), json!({"disk": "ssd"})],
        ));
        k.push((
            leak(format!("{who}.readinessProbe.periodSeconds")),
            vec![json!(10), json!("10s")],
        ));
    }
    k
}

/// Renders `count` value sets (CHART_SCENARIOS) through ours and helm and compares them.
fn renders_like_helm(c: &Chart, seed: u64) {
    let count: u64 = std::env::var("CHART_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let helm = root().join("e2e/bin/helm");
    let ours = env!("CARGO_BIN_EXE_kommander-operator");
    let chart = chart_dir(c.tag);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let (mut same, mut both_refuse, mut differ) = (0, 0, Vec::new());
    for n in 0..count {
        let mut values = c.base.clone();
        // Scenario 0 is the defaults; the others set each knob with probability 1/3.
        if n > 0 {
            for (path, options) in &c.knobs {
                if rng.next_u64().is_multiple_of(3) {
                    set(&mut values, path, rng.pick(options));
                }
            }
        }
        let release = rng.pick(&["metallb", "lb", "my-metallb", "edge-lb"]);
        let file = dir.path().join(format!("values-{n}.yaml"));
        std::fs::write(&file, serde_json::to_string_pretty(&values).unwrap()).unwrap();
        let run = |cmd: &mut Command| {
            let o = cmd.output().expect("runs");
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (h_ok, h_out, h_err) = run(Command::new(&helm)
            .args(["template", release, &chart, "-n", "ws", "-f"])
            .arg(&file));
        let (o_ok, o_out, o_err) = run(Command::new(ours)
            .args(["render", "--app"])
            .arg(root().join("manifests/catalog").join(c.app))
            .args(["-n", "ws", "--name", release, "-f"])
            .arg(&file));
        let label = format!("scenario {n} (release {release}, values {values})");
        match (h_ok, o_ok) {
            (false, false) => {
                // Both refuse for the same values: every path ours names, helm names too, and
                // every leaf helm names, ours names.
                let paths = |t: &str| -> std::collections::BTreeSet<String> {
                    t.split("at '")
                        .skip(1)
                        .filter_map(|r| r.split_once('\'').map(|(p, _)| p.to_string()))
                        .collect()
                };
                let (h, o) = (paths(&h_err), paths(&o_err));
                let leaves: std::collections::BTreeSet<&String> = h
                    .iter()
                    .filter(|p| !h.iter().any(|q| q != *p && q.starts_with(&format!("{p}/"))))
                    .collect();
                // Or a template's `fail`: ours fails with the same message.
                let failed_alike = h_err
                    .split_once("execution error at (")
                    .and_then(|(_, r)| r.split_once("): "))
                    .and_then(|(_, message)| message.lines().next())
                    .is_some_and(|message| o_err.contains(message.trim()));
                let schema_alike =
                    !o.is_empty() && o.is_subset(&h) && leaves.iter().all(|p| o.contains(*p));
                if failed_alike || schema_alike {
                    both_refuse += 1;
                } else {
                    differ.push(format!(
                        "{label}: both refuse, for different reasons\n  helm: {}\n  ours: {}",
                        h_err.trim(),
                        o_err.trim()
                    ));
                }
            }
            (true, true) => {
                let (h, o) = (
                    objects(&h_out, c, false).unwrap(),
                    objects(&o_out, c, true).unwrap(),
                );
                let mut lines = Vec::new();
                for key in h
                    .keys()
                    .chain(o.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    match (o.get(key), h.get(key)) {
                        (Some(a), Some(b)) => {
                            let mut d = Vec::new();
                            diff(a, b, key, &mut d);
                            lines.extend(d);
                        }
                        (Some(_), None) => lines.push(format!("{key}: only ours")),
                        (None, Some(_)) => lines.push(format!("{key}: only helm")),
                        (None, None) => {}
                    }
                }
                if lines.is_empty() {
                    same += 1;
                } else {
                    differ.push(format!("{label}:\n  {}", lines.join("\n  ")));
                }
            }
            (h_ok, _) => differ.push(format!(
                "{label}: helm ok={h_ok}, ours ok={o_ok}\n  helm: {}\n  ours: {}",
                h_err.trim(),
                o_err.trim()
            )),
        }
    }
    println!(
        "chart fidelity {} vs helm v3.22.0 on the chart at {}: {count} value sets, {same} rendered the same, {both_refuse} refused by both, {} differ",
        c.app.trim_end_matches(".yaml"),
        c.tag,
        differ.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}
