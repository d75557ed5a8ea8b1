use super::*;
use serde_json::json;

fn place(kinds: &[String]) -> Placement<'_> {
    Placement {
        namespace: "ws1",
        release: "rel",
        cluster_scoped_kinds: kinds,
    }
}

#[test]
fn existing_labels_are_kept_and_ownership_labels_added() {
    let objs = parse_objects(
        "t",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    app: metallb\n",
        &place(&[]),
    )
    .unwrap();
    let labels = &objs[0].body["metadata"]["labels"];
    assert_eq!(labels["app"], json!("metallb"));
    assert_eq!(labels[LABEL_MANAGED_BY], json!(MANAGER));
}

#[test]
fn null_labels_become_a_map() {
    let objs = parse_objects(
        "t",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n",
        &place(&[]),
    )
    .unwrap();
    assert_eq!(
        objs[0].body["metadata"]["labels"][LABEL_WORKSPACE],
        json!("ws1")
    );
}

#[test]
fn labels_that_are_not_a_map_are_refused() {
    let e = parse_objects(
        "t",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: [a]\n",
        &place(&[]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ConfigMap c: metadata.labels must be a mapping of label to value"
    );
}

#[test]
fn allowed_cluster_scoped_object_may_not_set_a_namespace() {
    let kinds = vec!["ClusterRole".to_string()];
    let e = parse_objects("t", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n  namespace: ws1\n", &place(&kinds)).unwrap_err();
    assert!(
        matches!(e, ManifestError::NamespaceOnClusterScoped { .. }),
        "{e}"
    );
}

#[test]
fn custom_kinds_are_namespaced_unless_declared() {
    let objs = parse_objects(
        "t",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        &place(&[]),
    )
    .unwrap();
    assert_eq!(objs[0].namespace.as_deref(), Some("ws1"));
    let kinds = vec!["Widget".to_string()];
    let objs = parse_objects(
        "t",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        &place(&kinds),
    )
    .unwrap();
    assert_eq!(objs[0].namespace, None);
}

#[test]
fn same_name_in_different_groups_is_not_a_duplicate() {
    let mut objs = parse_objects(
        "t",
        "apiVersion: a.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        &place(&[]),
    )
    .unwrap();
    objs.extend(
        parse_objects(
            "t",
            "apiVersion: b.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
            &place(&[]),
        )
        .unwrap(),
    );
    assert!(check_unique(&objs).is_ok());
    // Same group at another version is the same object.
    objs.extend(
        parse_objects(
            "t",
            "apiVersion: a.example.com/v2\nkind: Widget\nmetadata:\n  name: w\n",
            &place(&[]),
        )
        .unwrap(),
    );
    assert!(check_unique(&objs).is_err());
}

#[test]
fn yaml_errors_quote_the_rendered_line() {
    let e = parse_objects("t", "apiVersion: v1\nkind: [oops\n", &place(&[])).unwrap_err();
    match e {
        ManifestError::Yaml { error, .. } => assert!(error.line.is_some()),
        other => panic!("expected a YAML error, got {other:?}"),
    }
}
