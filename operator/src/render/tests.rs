use super::*;
use crate::resources::AppTemplate;
use serde_json::json;

fn app(templates: &[(&str, &str)], defaults: &str, cluster_kinds: &[&str]) -> AppDefinition {
    AppDefinition {
        app_id: "demo".into(),
        version: "1.0.0".into(),
        default_values: Some(defaults.into()),
        templates: templates
            .iter()
            .map(|(n, t)| AppTemplate {
                name: n.to_string(),
                template: t.to_string(),
            })
            .collect(),
        cluster_scoped_kinds: cluster_kinds.iter().map(|s| s.to_string()).collect(),
        config_rollout: None,
        values_schema: None,
        chart: None,
    }
}

fn release() -> Release {
    Release {
        name: "rel".into(),
        namespace: "ws1".into(),
    }
}

fn cluster() -> ClusterInfo {
    ClusterInfo {
        name: "attached-1".into(),
        labels: [("env".to_string(), "prod".to_string())].into(),
    }
}

fn render_one(
    template: &str,
    defaults: &str,
    values: Value,
) -> Result<Vec<ManifestObject>, RenderError> {
    let compiled = CompiledApp::compile(
        "demo-1.0.0",
        &app(&[("t.yaml", template)], defaults, &["ClusterRole"]),
    )?;
    let layer = match values {
        Value::Object(m) => m,
        _ => Values::new(),
    };
    let v = compiled.values(&[layer]);
    compiled.render(v, &release(), &cluster())
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{release.name}}-cm\ndata:\n  value: {{values.x}}\n";

#[test]
fn context_fields_are_available() {
    let t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  rel: {{release.name}}\n  ns: {{release.namespace}}\n  cluster: {{cluster.name}}\n  env: {{cluster.labels.env}}\n  id: {{app.id}}\n  version: {{app.version}}\n  v: {{values.x}}\n";
    let objs = render_one(t, "x: hello", json!({})).unwrap();
    assert_eq!(
        objs[0].body["data"],
        json!({"rel": "rel", "ns": "ws1", "cluster": "attached-1", "env": "prod", "id": "demo", "version": "1.0.0", "v": "hello"})
    );
}

#[test]
fn namespaced_objects_land_in_the_release_namespace_with_owner_labels() {
    let objs = render_one(CM, "x: 1", json!({})).unwrap();
    assert_eq!(objs.len(), 1);
    let o = &objs[0];
    assert_eq!(
        (o.kind.as_str(), o.name.as_str(), o.namespace.as_deref()),
        ("ConfigMap", "rel-cm", Some("ws1"))
    );
    assert_eq!(o.body["metadata"]["namespace"], json!("ws1"));
    assert_eq!(
        o.body["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "kommander-operator",
            "apps.kommander.d2iq.io/appdeployment": "rel",
            "apps.kommander.d2iq.io/workspace": "ws1"
        })
    );
}

#[test]
fn overrides_change_the_output() {
    let objs = render_one(CM, "x: 1", json!({"x": 2})).unwrap();
    assert_eq!(objs[0].body["data"]["value"], json!(2));
}

#[test]
fn a_value_with_a_document_separator_cannot_add_an_object() {
    let evil = "x\n---\nkind: ClusterRoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata:\n  name: pwn\nroleRef: {kind: ClusterRole, name: cluster-admin, apiGroup: rbac.authorization.k8s.io}\nsubjects: [{kind: Group, name: system:authenticated}]";
    // Through plain interpolation, toYaml, toJson, quote and indent: still one object, one string.
    for t in [
        CM.to_string(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  value: {{toJson values.x}}\n".to_string(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  value: {{quote values.x}}\n".to_string(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {{nindent 2 (toYaml values)}}\n".to_string(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  value: |\n{{indent 4 values.x}}\n".to_string(),
    ] {
        let objs = render_one(&t, "x: safe", json!({"x": evil})).unwrap();
        assert_eq!(objs.len(), 1, "template {t:?} produced {objs:?}");
        assert_eq!(objs[0].kind, "ConfigMap");
        let stored = if t.contains("indent 4") { format!("{evil}\n") } else { evil.to_string() };
        let got = objs[0].body["data"].get("value").or_else(|| objs[0].body["data"].get("x")).cloned();
        assert_eq!(got, Some(json!(stored)), "template {t:?}");
    }
}

#[test]
fn a_single_line_document_marker_value_stays_a_string() {
    let objs = render_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    a: x\n{{values.x}}: y\n",
        "x: k",
        json!({"x": "--- {kind: Namespace, apiVersion: v1, metadata: {name: pwn}}"}),
    );
    // It cannot become a second document; the worst it can do is fail to parse.
    match objs {
        Ok(objs) => assert_eq!(objs.len(), 1),
        Err(e) => assert!(matches!(e, RenderError::Output { .. }), "{e}"),
    }
}

#[test]
fn raw_interpolation_is_refused_at_compile_time() {
    for t in [
        "a: {{{values.x}}}",
        "a: {{&values.x}}",
        "a:\n  b: {{~{values.x}~}}",
    ] {
        let e = CompiledApp::compile("demo-1.0.0", &app(&[("t.yaml", t)], "", &[])).unwrap_err();
        assert!(
            matches!(e, RenderError::RawInterpolation { .. }),
            "{t}: {e}"
        );
        assert!(e.to_string().contains("template t.yaml, line"), "{e}");
    }
    // An escaped mustache is literal text, not interpolation.
    assert!(
        CompiledApp::compile("demo-1.0.0", &app(&[("t.yaml", "a: \\{{{x}}}")], "", &[])).is_ok()
    );
}

#[test]
fn unknown_helper_is_an_error_naming_app_template_and_line() {
    let e = render_one("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: {{frobnicate values.x}}\n", "x: 1", json!({}))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("app demo-1.0.0, template t.yaml, line 6"),
        "{msg}"
    );
    assert!(msg.contains("frobnicate"), "{msg}");
}

#[test]
fn missing_value_is_an_error_in_strict_mode() {
    let e = render_one(CM, "y: 1", json!({})).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("app demo-1.0.0, template t.yaml, line 6"),
        "{msg}"
    );
    assert!(msg.contains("values.x"), "{msg}");
}

#[test]
fn if_and_default_tolerate_missing_values() {
    let t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n{{#if values.missing}}  a: 1\n{{/if}}  b: {{default \"fb\" values.missing}}\n";
    let objs = render_one(t, "x: 1", json!({})).unwrap();
    assert_eq!(objs[0].body["data"], json!({"b": "fb"}));
}

#[test]
fn comparison_and_boolean_helpers_exist() {
    let t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n{{#if (and (eq values.mode \"bgp\") (gt values.n 2) (not values.off))}}  ok: \"yes\"\n{{/if}}";
    let objs = render_one(t, "mode: bgp\nn: 3\noff: false", json!({})).unwrap();
    assert_eq!(objs[0].body["data"], json!({"ok": "yes"}));
}

#[test]
fn required_names_its_message() {
    let t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: {{required \"values.pools is required\" values.pools}}\n";
    let e = render_one(t, "pools: ~", json!({})).unwrap_err();
    assert!(
        e.to_string()
            .contains("required value missing: values.pools is required"),
        "{e}"
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let e = CompiledApp::compile(
        "demo-1.0.0",
        &app(&[("t.yaml", "a: 1\nb: {{#if x}}\n")], "", &[]),
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::Syntax { .. }), "{e}");
    assert!(
        e.to_string().starts_with("app demo-1.0.0, template t.yaml"),
        "{e}"
    );
}

#[test]
fn bad_default_values_name_the_app() {
    let e = CompiledApp::compile("demo-1.0.0", &app(&[], "- a\n", &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "app demo-1.0.0: spec.defaultValues: spec.defaultValues: values must be a YAML mapping (key: value), found a list"
    );
}

#[test]
fn cluster_scoped_kinds_need_permission() {
    let allowed = render_one(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
        "",
        json!({}),
    )
    .unwrap();
    assert_eq!(allowed[0].namespace, None);
    assert_eq!(allowed[0].body["metadata"].get("namespace"), None);

    let e = render_one("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: b\n", "", json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "app demo-1.0.0, template t.yaml: ClusterRoleBinding b is cluster-scoped and the app does not allow it (add it to spec.clusterScopedKinds)"
    );
    let e = render_one(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n",
        "",
        json!({}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RenderError::Output { error, .. } if matches!(**error, ManifestError::ClusterScopedNotAllowed { .. })),
        "{e}"
    );
}

#[test]
fn foreign_namespaces_are_refused() {
    let e = render_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: kube-system\n",
        "",
        json!({}),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("sets metadata.namespace \"kube-system\""),
        "{e}"
    );
    // Naming the release namespace explicitly is fine.
    assert!(
        render_one(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: ws1\n",
            "",
            json!({})
        )
        .is_ok()
    );
}

#[test]
fn objects_need_identity() {
    for (t, field) in [
        ("kind: ConfigMap\nmetadata: {name: c}\n", "apiVersion"),
        ("apiVersion: v1\nmetadata: {name: c}\n", "kind"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            "metadata.name",
        ),
    ] {
        let e = render_one(t, "", json!({})).unwrap_err();
        assert!(
            matches!(&e, RenderError::Output { error, .. } if matches!(**error, ManifestError::MissingField { field: f, .. } if f == field)),
            "{e}"
        );
    }
    let e = render_one("- a\n- b\n", "", json!({})).unwrap_err();
    assert!(e.to_string().contains("document 1 is a list"), "{e}");
}

#[test]
fn invalid_rendered_yaml_names_the_template_and_line() {
    let e = render_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: [1, 2\n",
        "",
        json!({}),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "app demo-1.0.0, template t.yaml: rendered output is not valid YAML at line"
        ),
        "{msg}"
    );
}

#[test]
fn duplicates_are_refused() {
    let t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
    let e = render_one(t, "", json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "app demo-1.0.0, template t.yaml: ConfigMap ws1/c is rendered twice"
    );
}

#[test]
fn partials_render_nothing_themselves_and_can_be_included() {
    let def = app(
        &[
            ("_labels", "app: {{release.name}}\nteam: net"),
            (
                "cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    {{> _labels}}\n",
            ),
        ],
        "",
        &[],
    );
    let compiled = CompiledApp::compile("demo-1.0.0", &def).unwrap();
    let objs = compiled
        .render(compiled.values(&[]), &release(), &cluster())
        .unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].body["metadata"]["labels"]["team"], json!("net"));
    assert_eq!(objs[0].body["metadata"]["labels"]["app"], json!("rel"));
}

#[test]
fn duplicate_template_names_are_refused() {
    let e = CompiledApp::compile("demo-1.0.0", &app(&[("a", ""), ("a", "")], "", &[])).unwrap_err();
    assert!(matches!(e, RenderError::DuplicateTemplate { .. }), "{e}");
}

#[test]
fn empty_documents_are_skipped() {
    let objs = render_one(
        "---\n{{#if values.on}}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n{{/if}}---\n",
        "on: false",
        json!({}),
    )
    .unwrap();
    assert!(objs.is_empty());
}

#[test]
fn rendering_is_deterministic() {
    let a = render_one(CM, "x: 1", json!({"x": "v"})).unwrap();
    let b = render_one(CM, "x: 1", json!({"x": "v"})).unwrap();
    assert_eq!(a, b);
}

#[test]
fn values_that_break_the_schema_are_refused_each_named() {
    let mut def = app(
        &[(
            "t.yaml",
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n",
        )],
        "level: info\nport: 80\n",
        &[],
    );
    def.values_schema = Some(
        r#"{"$schema": "https://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"level": {"enum": ["info", "debug"]}, "port": {"type": "integer"}}}"#
            .into(),
    );
    let compiled = CompiledApp::compile("demo-1.0.0", &def).unwrap();
    let bad = crate::values::parse("x", "level: verbose\nport: eighty\n").unwrap();
    let e = compiled
        .render(
            crate::values::merge(&compiled.defaults, &[bad]),
            &release(),
            &cluster(),
        )
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("app demo-1.0.0: values don't meet the app's values schema: "),
        "{text}"
    );
    assert!(
        text.contains("at '/level'") && text.contains("at '/port'"),
        "{text}"
    );
    let good = crate::values::parse("x", "level: debug\n").unwrap();
    compiled
        .render(
            crate::values::merge(&compiled.defaults, &[good]),
            &release(),
            &cluster(),
        )
        .unwrap();
    def.values_schema = Some("{not json".into());
    assert!(
        CompiledApp::compile("demo-1.0.0", &def)
            .unwrap_err()
            .to_string()
            .contains("spec.valuesSchema: not JSON")
    );
}
