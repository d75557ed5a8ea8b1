//! Helm's engine in the operator, proven against helm: upstream charts rendered by
//! `kommander-operator render --chart` (the `kommander-helm-render` helper, Helm v3.22.0's
//! engine) and by `helm template` (helm v3.22.0, e2e/bin/helm), with random values drawn from
//! each chart's own values.yaml, several Kubernetes versions and API version sets, and several
//! release names. Both print the same bytes, or both refuse with the same message.
//!
//! The charts come from the Go module proxy, pinned: MetalLB v0.12.1, v0.15.2 and v0.16.2
//! (`charts/metallb`, with the crds and frr-k8s subcharts) and ingress-nginx (`charts/ingress-nginx`,
//! which has hooks). `make test` runs HELM_SCENARIOS (default 40) value sets per chart.

use kommander_e2e::helm_repo::{UPSTREAM_CHARTS as CHARTS, module_dir, package};
use kommander_e2e::{Rng, root};
use kommander_operator::yaml;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const KUBE_VERSIONS: &[&str] = &["v1.29.0", "v1.31.2", "v1.34.4", "1.20.15"];
const EXTRA_API_VERSIONS: &[&str] = &[
    "monitoring.coreos.com/v1",
    "policy/v1beta1/PodSecurityPolicy",
    "autoscaling.k8s.io/v1/VerticalPodAutoscaler",
    "keda.sh/v1alpha1",
];

fn helm() -> PathBuf {
    root().join("e2e/bin/helm")
}

fn helper() -> PathBuf {
    root().join("e2e/bin/kommander-helm-render")
}

/// Every leaf of the values (a scalar, an empty map or list), by its path.
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(k.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push((path.clone(), v.clone())),
    }
}

/// Another value for a leaf: a flipped bool, a nearby number, another string, or null (which
/// deletes the chart's default).
fn mutate(v: &Value, rng: &mut Rng) -> Value {
    if rng.below(12) == 0 {
        return Value::Null;
    }
    match v {
        Value::Bool(b) => json!(!b),
        Value::Number(n) => json!(n.as_i64().unwrap_or(1) + rng.below(3) as i64 + 1),
        Value::String(s) if s.is_empty() => json!(rng.pick(&["x", "edge", "10.0.0.1"])),
        Value::String(_) => json!(rng.pick(&["", "other", "v1.2.3"])),
        Value::Array(a) if a.is_empty() => json!([{"name": "extra"}]),
        Value::Object(_) => json!({"added": "yes"}),
        _ => json!([]),
    }
}

fn set(values: &mut Value, path: &[String], v: Value) {
    let mut cur = values;
    for p in &path[..path.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.clone())
            .or_insert_with(|| json!({}));
        if !cur.is_object() {
            *cur = json!({});
        }
    }
    cur[path[path.len() - 1].as_str()] = v;
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Outcome {
    let o = cmd.output().expect("runs");
    Outcome {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Helm's message for a failure (`Error: ...`, without helm's --debug hint), as lines. Helm
/// lists schema problems in map order, which changes from run to run (helm against itself
/// too): those lines compare as a sorted list.
fn helm_message(stderr: &str) -> Vec<String> {
    let m = stderr
        .trim()
        .strip_prefix("Error: ")
        .unwrap_or(stderr.trim());
    message_lines(m.split("\n\nUse --debug flag").next().unwrap_or(m))
}

/// Ours: `error: <chart>: <Helm's message>`.
fn our_message(stderr: &str, chart: &Path) -> Vec<String> {
    let prefix = format!("error: {}: ", chart.display());
    message_lines(stderr.trim().strip_prefix(&prefix).unwrap_or(stderr.trim()))
}

fn message_lines(m: &str) -> Vec<String> {
    let mut lines: Vec<String> = m.lines().map(str::to_string).collect();
    if m.starts_with("values don't meet the specifications of the schema") {
        lines.sort();
    }
    lines
}

fn renders_like_helm(name: &str, module: &str, folder: &str, seed: u64) {
    let count: u64 = std::env::var("HELM_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let chart_dir = module_dir(module).unwrap().join(folder);
    let tgz = package(&chart_dir, dir.path()).unwrap();
    let defaults =
        yaml::parse_all(&std::fs::read_to_string(chart_dir.join("values.yaml")).unwrap())
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
    let mut all = Vec::new();
    leaves(&defaults, &mut Vec::new(), &mut all);
    let mut rng = Rng(seed);
    let (mut same, mut both_refuse, mut differ) = (0, 0, Vec::new());
    for n in 0..count {
        // Scenario 0 is the chart's defaults; the others change each leaf with probability
        // 1/rate, the rate drawn per scenario: few changes render, many are often refused.
        let mut values = json!({});
        let rate = rng.pick(&[60, 25, 8]);
        if n > 0 {
            for (path, v) in &all {
                if !path.is_empty() && rng.below(rate) == 0 {
                    set(&mut values, path, mutate(v, &mut rng));
                }
            }
        }
        let file = dir.path().join(format!("values-{n}.yaml"));
        std::fs::write(&file, serde_json::to_string_pretty(&values).unwrap()).unwrap();
        let release = rng.pick(&["metallb", "edge", "release-name", "ingress"]);
        let namespace = rng.pick(&["ws-a", "kommander"]);
        let kube = rng.pick(KUBE_VERSIONS);
        let mut api_args = Vec::new();
        for a in EXTRA_API_VERSIONS {
            if rng.below(2) == 0 {
                api_args.extend(["--api-versions".to_string(), a.to_string()]);
            }
        }
        let common = |cmd: &mut Command| {
            cmd.args([
                "-n",
                namespace,
                "--kube-version",
                kube,
                "--include-crds",
                "-f",
            ])
            .arg(&file)
            .args(&api_args);
        };
        let mut h = Command::new(helm());
        h.args(["template", release]).arg(&tgz);
        common(&mut h);
        let h = run(&mut h);
        let mut o = Command::new(env!("CARGO_BIN_EXE_kommander-operator"));
        o.env("KOMMANDER_HELM_RENDER", helper())
            .args(["render", "--name", release, "--chart"])
            .arg(&tgz);
        common(&mut o);
        let o = run(&mut o);
        let label = format!(
            "{name} scenario {n} (release {release}, kube {kube}, {api_args:?}, values {values})"
        );
        match (h.ok, o.ok) {
            (true, true) if h.stdout == o.stdout => same += 1,
            (true, true) => differ.push(format!(
                "{label}: the output differs\n{}",
                first_difference(&h.stdout, &o.stdout)
            )),
            (false, false) if helm_message(&h.stderr) == our_message(&o.stderr, &tgz) => {
                both_refuse += 1
            }
            _ => differ.push(format!(
                "{label}: helm ok={}, ours ok={}\n  helm: {}\n  ours: {}",
                h.ok,
                o.ok,
                h.stderr.trim(),
                o.stderr.trim()
            )),
        }
    }
    println!(
        "helm engine {name} vs helm template v3.22.0: {count} value sets, {same} byte-identical, {both_refuse} refused alike, {} differ",
        differ.len()
    );
    assert!(same > 0, "{name}: no value set rendered at all");
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}

/// The first line where two texts differ, with its number.
fn first_difference(helm: &str, ours: &str) -> String {
    let (mut h, mut o) = (helm.lines(), ours.lines());
    for n in 1.. {
        match (h.next(), o.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => return "  (only line endings differ)".into(),
            (a, b) => return format!("  line {n}:\n  helm: {a:?}\n  ours: {b:?}"),
        }
    }
    unreachable!()
}

#[test]
fn e2e_helm_engine_renders_metallb_0_12_1_like_helm() {
    let (name, module, folder) = CHARTS[0];
    renders_like_helm(name, module, folder, 12);
}

#[test]
fn e2e_helm_engine_renders_metallb_0_15_2_like_helm() {
    let (name, module, folder) = CHARTS[1];
    renders_like_helm(name, module, folder, 15);
}

#[test]
fn e2e_helm_engine_renders_metallb_0_16_2_like_helm() {
    let (name, module, folder) = CHARTS[2];
    renders_like_helm(name, module, folder, 16);
}

#[test]
fn e2e_helm_engine_renders_ingress_nginx_like_helm() {
    let (name, module, folder) = CHARTS[3];
    renders_like_helm(name, module, folder, 4);
}

/// A chart of one template, packaged by helm.
fn one_template_chart(dir: &Path, template: &str) -> Vec<u8> {
    let src = dir.join("bounded");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: bounded\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(src.join("templates/t.yaml"), template).unwrap();
    std::fs::read(package(&src, dir).unwrap()).unwrap()
}

fn bounded_render(
    template: &str,
) -> Result<kommander_operator::chart::ChartRender, kommander_operator::chart::ChartError> {
    use kommander_operator::chart::engine::{HelmEngine, Limits};
    use kommander_operator::chart::{Capabilities, ChartRelease, ChartRequest};
    let dir = tempfile::tempdir().unwrap();
    let request = ChartRequest {
        chart: one_template_chart(dir.path(), template).into(),
        value_layers: vec![],
        release: ChartRelease {
            name: "r".into(),
            namespace: "ws".into(),
            revision: 1,
            is_upgrade: false,
        },
        capabilities: Capabilities {
            kube_version: "v1.34.4".into(),
            api_versions: vec!["v1".into()],
            helm_defaults: false,
        },
    };
    let limits = Limits {
        deadline: std::time::Duration::from_secs(3),
        memory_bytes: 128 << 20,
        output_bytes: 1 << 20,
    };
    HelmEngine::new(helper(), limits).render(&request)
}

#[test]
fn e2e_helm_engine_stops_a_chart_at_each_bound_and_names_it() {
    use kommander_operator::chart::Category;
    // Fine: a small ConfigMap renders, so the bounds below are what stop the others.
    let ok = bounded_render(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    assert_eq!(ok.manifests.len(), 1);

    let started = std::time::Instant::now();
    let looping =
        bounded_render("{{- range until 100000 }}{{- range until 100000 }}{{- end }}{{- end }}")
            .unwrap_err();
    assert_eq!(looping.category(), Category::Refused, "{looping}");
    assert!(
        looping.to_string().starts_with("the render deadline of 3s"),
        "{looping}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "not stopped at the deadline: {:?}",
        started.elapsed()
    );

    let hungry = bounded_render("{{- $s := \"xxxxxxxx\" }}{{- range until 40 }}{{- $s = printf \"%s%s\" $s $s }}{{- end }}{{ len $s }}").unwrap_err();
    assert_eq!(hungry.category(), Category::Refused, "{hungry}");
    assert!(
        hungry.to_string().starts_with("the render memory bound"),
        "{hungry}"
    );

    let big = bounded_render("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{{- range until 30000 }}\n  k{{ . }}: \"0123456789012345678901234567890123456789\"\n{{- end }}\n").unwrap_err();
    assert_eq!(big.category(), Category::Refused, "{big}");
    assert!(
        big.to_string().starts_with("the render output bound"),
        "{big}"
    );
}

/// `render --app` of a chart app offline: its archive from `--chart`, checked against the pin;
/// Helm's objects placed and labelled, then the app's own template from Helm's values.
#[test]
fn e2e_helm_engine_renders_a_chart_app_offline_and_checks_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (_, module, folder) = CHARTS[2];
    let tgz = package(&module_dir(module).unwrap().join(folder), dir.path()).unwrap();
    let digest = format!(
        "sha256:{}",
        kommander_operator::chart::source::sha256_hex(&std::fs::read(&tgz).unwrap())
    );
    let app = |digest: &str| {
        format!(
            "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: metallb-0.16.2}}\nspec:\n  appId: metallb\n  version: 0.16.2\n  defaultValues: |\n    controller:\n      logLevel: warn\n  chart: {{repository: \"https://metallb.github.io/metallb\", name: metallb, version: 0.16.2, digest: \"{digest}\"}}\n  clusterScopedKinds: [CustomResourceDefinition, ClusterRole, ClusterRoleBinding, ValidatingWebhookConfiguration]\n  templates:\n  - name: level.yaml\n    template: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: level\n      data:\n        level: {{{{values.controller.logLevel}}}}\n"
        )
    };
    let file = dir.path().join("app.yaml");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "controller:\n  logLevel: debug\n").unwrap();
    let render = || {
        run(Command::new(env!("CARGO_BIN_EXE_kommander-operator"))
            .env("KOMMANDER_HELM_RENDER", helper())
            .args(["render", "-n", "ws", "--name", "metallb", "--app"])
            .arg(&file)
            .arg("--chart")
            .arg(&tgz)
            .arg("-f")
            .arg(&values))
    };
    std::fs::write(&file, app(&digest)).unwrap();
    let out = render();
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("--log-level=debug"),
        "the override reached Helm"
    );
    assert!(
        out.stdout.contains("# Source: metallb-0.16.2/level.yaml"),
        "the overlay is rendered"
    );
    assert!(
        out.stdout.contains("level: debug"),
        "the overlay sees Helm's values"
    );
    assert!(
        out.stdout
            .contains("app.kubernetes.io/managed-by: kommander-operator")
    );
    std::fs::write(&file, app(&format!("sha256:{}", "ab".repeat(32)))).unwrap();
    let out = render();
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains(&format!("the chart's sha256 is {}", &digest[7..])),
        "{}",
        out.stderr
    );
}

/// The catalog's metallb-0.16.2 offline, with nothing but its file: the chart it carries is
/// rendered by Helm's engine (no --chart, no repository), the guide's layer2 overrides pass
/// the 0.16 check, and a broken config is refused with the problems named.
#[test]
fn e2e_helm_engine_checks_the_catalogs_metallb_0_16_2_offline() {
    let root = root();
    let check = |values: &str| {
        run(Command::new(env!("CARGO_BIN_EXE_kommander-operator"))
            .env("KOMMANDER_HELM_RENDER", helper())
            .args(["check", "--app"])
            .arg(root.join("manifests/catalog/metallb-0.16.2.yaml"))
            .arg("--values")
            .arg(root.join(format!("examples/metallb-{values}-values.yaml"))))
    };
    let out = check("layer2");
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("valid MetalLB 0.16 resources: 1 pool(s)")
            && out
                .stdout
                .contains("IPAddressPool default (layer2): 10.0.50.25-10.0.50.50 -> 26 addresses"),
        "{}",
        out.stdout
    );
    let out = check("broken");
    assert!(!out.ok);
    assert!(
        out.stderr.contains("protocol \"Layer2\" is unknown"),
        "{}",
        out.stderr
    );
}
