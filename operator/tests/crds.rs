//! `crds/` matches the Rust types, and the load-balancing guide's YAML and commands
//! (`examples/seed-*`) are accepted unchanged.

use k8s_openapi::api::core::v1::ConfigMap;
use kommander_operator::crdgen;
use kommander_operator::resources::{AppDeployment, AppKind};
use kommander_operator::{catalog, metallb, render, rollout, values, yaml};
use serde_json::Value;
use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn crds_directory_is_up_to_date() {
    let mut stale = Vec::new();
    for crd in crdgen::all() {
        let path = repo_root().join("crds").join(crdgen::file_name(&crd));
        let want = crdgen::to_yaml(&crd).unwrap();
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "out of date (run `make crds`): {stale:?}");
    // manifests/ installs them through crds/Kustomization: every CRD must be listed there.
    let kustomization = std::fs::read_to_string(repo_root().join("crds/Kustomization")).unwrap();
    for crd in crdgen::all() {
        assert!(
            kustomization.contains(&format!("- {}", crdgen::file_name(&crd))),
            "crds/Kustomization lacks {}",
            crdgen::file_name(&crd)
        );
    }
}

#[test]
fn operator_rbac_has_no_wildcards() {
    let text = std::fs::read_to_string(repo_root().join("manifests/operator/rbac.yaml")).unwrap();
    let docs = yaml::parse_all(&text).unwrap();
    let mut rules = 0;
    for doc in docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
    {
        for rule in doc["rules"].as_array().unwrap() {
            rules += 1;
            for field in ["apiGroups", "resources", "verbs"] {
                let values = rule[field].as_array().unwrap();
                assert!(!values.is_empty(), "{rule} has no {field}");
                assert!(
                    values.iter().all(|v| v != "*"),
                    "wildcard in {field}: {rule}"
                );
            }
            // bind/escalate let a holder grant rights it does not have: only by name.
            let verbs = rule["verbs"].as_array().unwrap();
            if verbs.iter().any(|v| v == "bind" || v == "escalate") {
                assert!(
                    rule["resourceNames"]
                        .as_array()
                        .is_some_and(|n| !n.is_empty()),
                    "bind/escalate without resourceNames: {rule}"
                );
            }
        }
    }
    assert!(rules >= 10, "only {rules} rules read");
}

#[test]
fn appdeployment_is_stored_as_v1alpha2_and_served_as_v1alpha3() {
    let crd = crdgen::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "AppDeployment")
        .unwrap();
    let versions: Vec<(String, bool, bool)> = crd
        .spec
        .versions
        .iter()
        .map(|v| (v.name.clone(), v.served, v.storage))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("v1alpha2".into(), true, true),
            ("v1alpha3".into(), true, false)
        ]
    );
    assert_eq!(crd.spec.versions[0].schema, crd.spec.versions[1].schema);
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, vec!["App", "Clusters", "Step", "Status", "Age"]);
    assert!(
        crd.spec
            .versions
            .iter()
            .all(|v| v.subresources.as_ref().is_some_and(|s| s.status.is_some()))
    );
}

/// Every property of every schema has a description, so `kubectl explain` explains.
#[test]
fn every_field_is_described() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>, seen: &mut usize) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                *seen += 1;
                let p = format!("{path}.{k}");
                // metadata and apiVersion/kind are Kubernetes' own.
                let exempt =
                    path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                if !exempt && v.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(&p, v, missing, seen);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing, seen);
        }
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for crd in crdgen::all() {
        for v in &crd.spec.versions {
            let schema =
                serde_json::to_value(&v.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
            walk(
                &format!("{}/{}", crd.spec.names.kind, v.name),
                &schema,
                &mut missing,
                &mut seen,
            );
        }
    }
    // LabelSelector internals come from Kubernetes' own types and are documented there.
    missing.retain(|p| !p.contains("Selector.match"));
    assert!(
        seen > 100,
        "only {seen} fields walked: the schemas were not read"
    );
    assert!(
        missing.is_empty(),
        "fields without description: {missing:#?}"
    );
}

/// The guide's fixtures under `examples/`. They are the YAML and `kubectl` lines of D2iQ
/// Kommander's public "Load Balancing" page (DKP 2.x docs, "On-premises" with MetalLB), copied
/// verbatim so that a reader can compare them: `seed-layer2.yaml` (the layer2 ConfigMap and the
/// AppDeployment), `seed-bgp.yaml` (the BGP ConfigMap) and `seed-commands.sh` (the commands).
fn example(name: &str) -> String {
    let path = repo_root().join("examples").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the guide's fixture {} is needed: {e}", path.display()))
}

/// The guide's two YAML examples, with ${WORKSPACE_NAMESPACE} set as the guide tells.
fn seed_yaml_blocks() -> Vec<String> {
    ["seed-layer2.yaml", "seed-bgp.yaml"]
        .iter()
        .map(|f| example(f).replace("${WORKSPACE_NAMESPACE}", "kommander"))
        .collect()
}

/// The overrides the offline examples (`make demo-offline`) use are the guide's, not a copy that
/// drifted: each `metallb-*-values.yaml` is the `values.yaml` of the guide's ConfigMap.
#[test]
fn offline_value_files_are_the_guides_overrides() {
    for (fixture, values_file) in [
        ("seed-layer2.yaml", "metallb-layer2-values.yaml"),
        ("seed-bgp.yaml", "metallb-bgp-values.yaml"),
    ] {
        let docs = yaml::parse_all(&example(fixture)).unwrap();
        let cm = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap_or_else(|| panic!("{fixture} has no ConfigMap"));
        let guide = yaml::parse_all(cm["data"]["values.yaml"].as_str().unwrap()).unwrap();
        let ours = yaml::parse_all(&example(values_file)).unwrap();
        assert_eq!(guide, ours, "examples/{values_file} differs from {fixture}");
    }
}

/// The guide's `kubectl` lines work against us: the jsonpath names the Workspace status field
/// the operator writes, and the label selector picks the MetalLB controller's pods, not the
/// speaker's.
#[test]
fn guide_commands_name_our_fields_and_labels() {
    let commands = example("seed-commands.sh");
    let line = |prefix: &str| {
        commands
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("seed-commands.sh has no line starting {prefix:?}"))
            .to_string()
    };
    let export = line("export WORKSPACE_NAMESPACE=");
    let jsonpath = export.split("jsonpath='{.").nth(1).unwrap();
    let path: Vec<&str> = jsonpath.split("}'").next().unwrap().split('.').collect();
    assert_eq!(path, ["status", "namespaceRef", "name"]);
    let status = kommander_operator::resources::WorkspaceStatus {
        namespace_ref: Some(kommander_operator::resources::NamespaceRef {
            name: "kommander".into(),
        }),
        ..Default::default()
    };
    let status = serde_json::json!({"status": status});
    let found = path.iter().fold(&status, |v, key| &v[*key]);
    assert_eq!(
        found, "kommander",
        "{jsonpath} is not where the operator writes"
    );

    let delete = line("kubectl -n kommander delete pod -l ");
    let selector = delete.rsplit(' ').next().unwrap();
    let wanted: Vec<(&str, &str)> = selector
        .split(',')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let text =
        std::fs::read_to_string(repo_root().join("manifests/catalog/metallb-0.12.3.yaml")).unwrap();
    let app = catalog::load_app("metallb-0.12.3.yaml", &text).unwrap();
    let compiled = render::CompiledApp::compile(&app.name, &app.definition).unwrap();
    let release = render::Release {
        name: "metallb".into(),
        namespace: "kommander".into(),
    };
    let objects = compiled
        .render(
            compiled.values(&[]),
            &release,
            &render::ClusterInfo::default(),
        )
        .unwrap();
    let selected: Vec<String> = objects
        .iter()
        .filter(|o| {
            let labels = &o.body["spec"]["template"]["metadata"]["labels"];
            wanted.iter().all(|(k, v)| labels[*k] == *v)
        })
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    assert_eq!(selected, ["Deployment/metallb-controller"]);
}

#[test]
fn seed_appdeployment_and_configmaps_deserialize_unchanged_and_render_valid_configs() {
    let blocks = seed_yaml_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "the seed has a layer2 example and a BGP example"
    );
    let catalog_text =
        std::fs::read_to_string(repo_root().join("manifests/catalog/metallb-0.12.3.yaml")).unwrap();
    let app = catalog::load_app("metallb-0.12.3.yaml", &catalog_text).unwrap();
    let compiled = render::CompiledApp::compile(&app.name, &app.definition).unwrap();

    let mut appdeployments = 0;
    let mut configmaps = 0;
    for block in &blocks {
        for doc in yaml::parse_all(block)
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
        {
            match doc["kind"].as_str() {
                Some("AppDeployment") => {
                    let ad: AppDeployment = serde_json::from_value(doc.clone()).unwrap();
                    assert_eq!(
                        serde_json::to_value(&ad).unwrap(),
                        doc,
                        "AppDeployment changes on a round trip"
                    );
                    assert_eq!(ad.spec.app_ref.name, "metallb-0.12.3");
                    assert_eq!(ad.spec.app_ref.kind, AppKind::ClusterApp);
                    assert_eq!(
                        ad.spec.config_overrides.as_ref().map(|c| c.name.as_str()),
                        Some("metallb-overrides")
                    );
                    appdeployments += 1;
                }
                Some("ConfigMap") => {
                    let cm: ConfigMap = serde_json::from_value(doc.clone()).unwrap();
                    assert_eq!(
                        serde_json::to_value(&cm).unwrap(),
                        doc,
                        "ConfigMap changes on a round trip"
                    );
                    let text = &cm.data.as_ref().unwrap()["values.yaml"];
                    let layer = values::parse("metallb-overrides", text).unwrap();
                    let merged = compiled.values(&[layer]);
                    let release = render::Release {
                        name: "metallb".into(),
                        namespace: "kommander".into(),
                    };
                    let cluster = render::ClusterInfo::default();
                    let objects = compiled.render(merged.clone(), &release, &cluster).unwrap();
                    let plan = compiled
                        .config_rollout(merged, &release, &cluster)
                        .unwrap()
                        .unwrap();
                    let config = rollout::runtime_config(&objects, &plan).unwrap();
                    metallb::config::parse(&config.text, metallb::config::SpeakerMode::Native)
                        .unwrap();
                    configmaps += 1;
                }
                other => panic!("unexpected kind {other:?} in the seed"),
            }
        }
    }
    assert_eq!((appdeployments, configmaps), (1, 2));
}
