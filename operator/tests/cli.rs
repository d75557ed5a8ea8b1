//! The CLI against a corpus of bad inputs: each gives one clear error, a non-zero exit, no
//! panic, and prints no partial output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kommander-operator");

fn catalog() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/catalog/metallb-0.12.3.yaml")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn app_with(dir: &Path, name: &str, template: &str, defaults: &str) -> PathBuf {
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    write(
        dir,
        name,
        &format!(
            "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata:\n  name: demo-1.0.0\nspec:\n  appId: demo\n  version: 1.0.0\n  defaultValues: |\n{}  templates:\n  - name: t.yaml\n    template: |\n{}",
            indent(defaults),
            indent(template)
        ),
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Exit non-zero (not a panic's 101), no panic text, stderr starts with `error:` and says `expected`.
fn assert_clear_error(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {stdout}"
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.starts_with("error:"),
        "stderr does not start with error: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "stderr lacks {expected:?}: {stderr}"
    );
}

#[test]
fn bad_inputs_give_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good_values = write(
        d,
        "good.yaml",
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n",
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: {{values.x}}\n";
    let corpus: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "malformed values YAML",
            vec![p(&catalog()).into(), p(&write(d, "bad.yaml", "configInline:\n  address-pools: [\n")).into()],
            "bad.yaml: invalid YAML at line",
        ),
        (
            "values.yaml is a list",
            vec![p(&catalog()).into(), p(&write(d, "list.yaml", "- a\n- b\n")).into()],
            "values must be a YAML mapping (key: value), found a list",
        ),
        (
            "values.yaml is a string",
            vec![p(&catalog()).into(), p(&write(d, "str.yaml", "hello\n")).into()],
            "found a string",
        ),
        ("values file missing", vec![p(&catalog()).into(), p(&d.join("nope.yaml")).into()], "cannot read"),
        ("app file missing", vec![p(&d.join("noapp.yaml")).into(), p(&good_values).into()], "cannot read"),
        (
            "app file is not an app",
            vec![p(&write(d, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")).into(), p(&good_values).into()],
            "is a ConfigMap; expected a ClusterApp or App manifest",
        ),
        ("app file is empty", vec![p(&write(d, "empty.yaml", "")).into(), p(&good_values).into()], "has no kind"),
        (
            "app file is not YAML",
            vec![p(&write(d, "notyaml.yaml", "kind: ClusterApp\nspec: [\n")).into(), p(&good_values).into()],
            "invalid YAML at line",
        ),
        (
            "app lacks appId",
            vec![
                p(&write(d, "noid.yaml", "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata:\n  name: x\nspec:\n  version: 1\n")).into(),
                p(&good_values).into(),
            ],
            "not a valid ClusterApp",
        ),
        (
            "template syntax error",
            vec![p(&app_with(d, "syntax.yaml", "a: {{#if values.x}}\n", "x: 1")).into(), p(&good_values).into()],
            "app demo-1.0.0, template t.yaml",
        ),
        (
            "unknown helper",
            vec![p(&app_with(d, "helper.yaml", &cm.replace("{{values.x}}", "{{frobnicate values.x}}"), "x: 1")).into(), p(&good_values).into()],
            "frobnicate",
        ),
        (
            "missing value in strict mode",
            vec![p(&app_with(d, "missing.yaml", cm, "y: 1")).into(), p(&good_values).into()],
            "app demo-1.0.0, template t.yaml, line 6",
        ),
        (
            "raw interpolation",
            vec![p(&app_with(d, "raw.yaml", &cm.replace("{{values.x}}", "{{{values.x}}}"), "x: 1")).into(), p(&good_values).into()],
            "raw interpolation",
        ),
        (
            "bad defaultValues",
            vec![p(&app_with(d, "defaults.yaml", cm, "- not a map")).into(), p(&good_values).into()],
            "spec.defaultValues",
        ),
        (
            "object in a foreign namespace",
            vec![p(&app_with(d, "ns.yaml", &cm.replace("  name: c\n", "  name: c\n  namespace: kube-system\n"), "x: 1")).into(), p(&good_values).into()],
            "may only live in the workspace namespace",
        ),
        (
            "cluster-scoped kind not allowed",
            vec![p(&app_with(d, "crb.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: b\n", "")).into(), p(&good_values).into()],
            "ClusterRoleBinding b is cluster-scoped and the app does not allow it",
        ),
        (
            "duplicate object",
            vec![p(&app_with(d, "dup.yaml", &format!("{cm}---\n{cm}"), "x: 1")).into(), p(&good_values).into()],
            "is rendered twice",
        ),
        (
            "rendered output not YAML",
            vec![p(&app_with(d, "out.yaml", "apiVersion: v1\nkind: [\n", "")).into(), p(&good_values).into()],
            "rendered output is not valid YAML at line",
        ),
        (
            "required value missing",
            vec![p(&app_with(d, "req.yaml", &cm.replace("{{values.x}}", "{{required \"x is needed\" values.x}}"), "x: ~")).into(), p(&good_values).into()],
            "x is needed",
        ),
    ];
    for (what, files, expected) in &corpus {
        for sub in ["render", "check"] {
            let out = run(&[sub, "--app", &files[0], "--values", &files[1]]);
            assert_clear_error(&out, expected);
            assert!(
                out.stdout.is_empty(),
                "{what} ({sub}): printed partial output: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[test]
fn check_lists_every_metallb_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let values = write(
        dir.path(),
        "v.yaml",
        "configInline:\n  address-pools:\n  - name: default\n    protocol: Layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n  - name: second\n    protocol: layer2\n    addresses:\n    - 10.0.50.0/24\n",
    );
    let out = run(&["check", "--app", p(&catalog()), "--values", p(&values)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ConfigMap kommander/metallb key config is not a valid MetalLB 0.12 config (2 problem(s)):"), "{stderr}");
    assert!(
        stderr.contains("address pool #1 \"default\": protocol \"Layer2\" is unknown"),
        "{stderr}"
    );
    // Both mistakes at once: pool 1's addresses count for overlaps though pool 1 is refused.
    assert!(
        stderr.contains("address pool #2 \"second\": addresses \"10.0.50.0/24\" (10.0.50.0/24) overlap 10.0.50.25/32 of pool \"default\""),
        "{stderr}"
    );
}

#[test]
fn check_accepts_the_seed_and_reports_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let values = write(
        dir.path(),
        "v.yaml",
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n",
    );
    let out = run(&["check", "--app", p(&catalog()), "--values", p(&values)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pool \"default\" (layer2): 10.0.50.25-10.0.50.50 -> 26 addresses"),
        "{stdout}"
    );
}

#[test]
fn layered_values_files_merge_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.yaml",
        "configInline:\n  address-pools:\n  - name: a\n    protocol: layer2\n    addresses: [10.1.0.0/24]\ncontroller:\n  logLevel: debug\n",
    );
    let b = write(
        dir.path(),
        "b.yaml",
        "configInline:\n  address-pools:\n  - name: b\n    protocol: layer2\n    addresses: [10.2.0.0/24]\n",
    );
    let out = run(&[
        "render",
        "--app",
        p(&catalog()),
        "-f",
        p(&a),
        "-f",
        p(&b),
        "-n",
        "ws1",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("- 10.2.0.0/24") && !stdout.contains("10.1.0.0/24"),
        "lists are replaced whole: {stdout}"
    );
    assert!(
        stdout.contains("--log-level=debug"),
        "earlier layers still apply"
    );
    assert!(stdout.contains("namespace: ws1"));
}

#[test]
fn help_teaches_with_examples() {
    for sub in ["render", "check"] {
        let out = run(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example:"),
            "{sub} --help has no example"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["render", "--app", "x", "--cluster-label", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not KEY=VALUE"));
}

#[test]
fn check_covers_the_resource_configured_apps() {
    let dir = tempfile::tempdir().unwrap();
    let values = write(
        dir.path(),
        "v.yaml",
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n",
    );
    for (app, release) in [("metallb-0.13.5", "0.13"), ("metallb-0.15.2", "0.15")] {
        let catalog = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../manifests/catalog/{app}.yaml"));
        let out = run(&["check", "--app", p(&catalog), "--values", p(&values)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{app}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("valid MetalLB {release} resources: 1 pool(s)"))
                && stdout.contains(
                    "IPAddressPool default (layer2): 10.0.50.25-10.0.50.50 -> 26 addresses"
                ),
            "{app}: {stdout}"
        );
    }
}
