use super::*;
use proptest::prelude::*;
use serde_json::json;

fn m(v: Value) -> Values {
    match v {
        Value::Object(m) => m,
        _ => panic!("test values must be maps"),
    }
}

fn merged(defaults: Value, layers: Vec<Value>) -> Value {
    let layers: Vec<Values> = layers.into_iter().map(m).collect();
    Value::Object(merge(&m(defaults), &layers))
}

#[test]
fn nested_maps_merge_per_key() {
    let out = merged(
        json!({"controller": {"image": {"repository": "quay.io/metallb/controller", "tag": "v0.12.1"}, "logLevel": "info"}}),
        vec![json!({"controller": {"image": {"tag": "v0.12.2"}}})],
    );
    assert_eq!(
        out,
        json!({"controller": {"image": {"repository": "quay.io/metallb/controller", "tag": "v0.12.2"}, "logLevel": "info"}})
    );
}

#[test]
fn lists_are_replaced_whole_never_appended() {
    let out = merged(
        json!({"pools": [{"name": "a"}, {"name": "b"}]}),
        vec![json!({"pools": [{"name": "c"}]})],
    );
    assert_eq!(out, json!({"pools": [{"name": "c"}]}));
}

#[test]
fn empty_list_override_replaces_defaults() {
    let out = merged(
        json!({"tolerations": [{"key": "x"}]}),
        vec![json!({"tolerations": []})],
    );
    assert_eq!(out, json!({"tolerations": []}));
}

#[test]
fn scalars_are_replaced() {
    let out = merged(
        json!({"a": 1, "b": "x", "c": true}),
        vec![json!({"a": 2, "c": false})],
    );
    assert_eq!(out, json!({"a": 2, "b": "x", "c": false}));
}

#[test]
fn null_deletes_a_default_key_at_top_level() {
    let out = merged(json!({"a": 1, "b": 2}), vec![json!({"a": null})]);
    assert_eq!(out, json!({"b": 2}));
}

#[test]
fn null_deletes_a_default_key_when_nested() {
    let out = merged(
        json!({"controller": {"resources": {"limits": {"cpu": "100m"}}, "logLevel": "info"}}),
        vec![json!({"controller": {"resources": null}})],
    );
    assert_eq!(out, json!({"controller": {"logLevel": "info"}}));
}

#[test]
fn nested_null_for_a_key_without_a_default_stays_like_helm_3_21() {
    // coalesceTablesFullKey (Helm 3.21+) keeps a user null the defaults do not override;
    // Helm 3.20 dropped it. A chart's schema then sees it (e.g. `command: null`).
    let out = merged(
        json!({"a": {"x": 1, "n": null}}),
        vec![json!({"a": {"y": null, "n": null}})],
    );
    assert_eq!(out, json!({"a": {"x": 1, "y": null, "n": null}}));
}

#[test]
fn top_level_null_for_an_unknown_key_survives_like_helm() {
    // Helm's coalesceValues only deletes keys the chart defines.
    let out = merged(json!({"a": 1}), vec![json!({"zzz": null})]);
    assert_eq!(out, json!({"a": 1, "zzz": null}));
}

#[test]
fn null_inside_a_map_without_defaults_is_kept() {
    // No defaults table to coalesce with: Helm copies the user table as is.
    let out = merged(json!({}), vec![json!({"new": {"k": null}})]);
    assert_eq!(out, json!({"new": {"k": null}}));
}

#[test]
fn map_over_scalar_override_wins() {
    let out = merged(json!({"a": "scalar"}), vec![json!({"a": {"b": 1}})]);
    assert_eq!(out, json!({"a": {"b": 1}}));
}

#[test]
fn scalar_over_map_override_wins() {
    let out = merged(json!({"a": {"b": 1}}), vec![json!({"a": "scalar"})]);
    assert_eq!(out, json!({"a": "scalar"}));
}

#[test]
fn list_over_map_and_map_over_list() {
    assert_eq!(
        merged(json!({"a": {"b": 1}}), vec![json!({"a": [1]})]),
        json!({"a": [1]})
    );
    assert_eq!(
        merged(json!({"a": [1]}), vec![json!({"a": {"b": 1}})]),
        json!({"a": {"b": 1}})
    );
}

#[test]
fn several_layers_apply_in_order() {
    let out = merged(
        json!({"a": 1, "m": {"x": 1, "y": 1}}),
        vec![
            json!({"a": 2, "m": {"x": 2}}),
            json!({"m": {"y": 3}}),
            json!({"a": 4}),
        ],
    );
    assert_eq!(out, json!({"a": 4, "m": {"x": 2, "y": 3}}));
}

#[test]
fn a_later_layer_null_deletes_an_earlier_layer_value_and_the_default() {
    let out = merged(
        json!({"a": {"b": 1, "c": 1}}),
        vec![json!({"a": {"b": 2}}), json!({"a": {"b": null}})],
    );
    assert_eq!(out, json!({"a": {"c": 1}}));
}

#[test]
fn a_later_layer_map_replaces_an_earlier_layer_null() {
    let out = merged(
        json!({"a": {"b": 1}}),
        vec![json!({"a": null}), json!({"a": {"c": 2}})],
    );
    assert_eq!(out, json!({"a": {"b": 1, "c": 2}}));
}

#[test]
fn earlier_null_nested_then_later_sibling_still_deletes() {
    let out = merged(
        json!({"a": {"b": 5}}),
        vec![json!({"a": {"b": null}}), json!({"a": {"c": 1}})],
    );
    assert_eq!(out, json!({"a": {"c": 1}}));
}

#[test]
fn null_defaults_are_kept_when_not_overridden() {
    let out = merged(json!({"a": null, "m": {"tag": null}}), vec![json!({})]);
    assert_eq!(out, json!({"a": null, "m": {"tag": null}}));
}

#[test]
fn defaults_are_not_modified() {
    let defaults = m(json!({"a": {"b": 1}}));
    let before = defaults.clone();
    let _ = merge(&defaults, &[m(json!({"a": {"b": null, "c": 2}}))]);
    assert_eq!(defaults, before);
}

#[test]
fn seed_layer2_overrides_replace_config_inline() {
    let defaults = parse(
        "defaults",
        "configInline: {}\ncontroller:\n  enabled: true\n",
    )
    .unwrap();
    let layer = parse(
        "overrides",
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n",
    )
    .unwrap();
    let out = Value::Object(merge(&defaults, &[layer]));
    assert_eq!(
        out,
        json!({"configInline": {"address-pools": [{"name": "default", "protocol": "layer2", "addresses": ["10.0.50.25-10.0.50.50"]}]}, "controller": {"enabled": true}})
    );
}

#[test]
fn parse_empty_and_null_documents_are_empty_maps() {
    assert!(parse("x", "").unwrap().is_empty());
    assert!(parse("x", "# only a comment\n").unwrap().is_empty());
    assert!(parse("x", "~").unwrap().is_empty());
}

#[test]
fn parse_rejects_non_maps_naming_the_source() {
    let e = parse("ConfigMap ws/o key values.yaml", "- a\n- b\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ConfigMap ws/o key values.yaml: values must be a YAML mapping (key: value), found a list"
    );
    assert!(matches!(
        parse("x", "just a string").unwrap_err(),
        ValuesError::NotAMap {
            found: "a string",
            ..
        }
    ));
}

#[test]
fn parse_reports_line_and_column_of_bad_yaml() {
    let e = parse(
        "ConfigMap ws/o key values.yaml",
        "configInline:\n  address-pools: [\n",
    )
    .unwrap_err();
    match &e {
        ValuesError::Yaml { source_name, error } => {
            assert_eq!(source_name, "ConfigMap ws/o key values.yaml");
            assert!(error.line.is_some(), "{e}");
        }
        other => panic!("expected a YAML error, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("ConfigMap ws/o key values.yaml: invalid YAML at line "),
        "{e}"
    );
}

// ---- property tests ----

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|i| json!(i)),
        "[a-z]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_map() -> impl Strategy<Value = Values> {
    prop::collection::btree_map("[a-d]", arb_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// Does the tree hold a `null` anywhere below the top level?
fn has_nested_null(v: &Values) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(m) => m.values().any(walk),
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    v.values().any(|x| matches!(x, Value::Object(_)) && walk(x))
}

/// Every path to a non-map, non-null leaf of `v`.
fn scalar_leaves(v: &Values, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (k, x) in v {
        prefix.push(k.clone());
        match x {
            Value::Object(m) => scalar_leaves(m, prefix, out),
            Value::Null => {}
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.pop();
    }
}

fn lookup<'a>(v: &'a Values, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let x = v.get(first)?;
    if rest.is_empty() {
        Some(x)
    } else {
        match x {
            Value::Object(m) => lookup(m, rest),
            _ => None,
        }
    }
}

proptest! {
    #[test]
    fn an_empty_layer_is_identity(defaults in arb_map(), layer in arb_map()) {
        let once = merge(&defaults, std::slice::from_ref(&layer));
        let with_empty = merge(&defaults, &[layer.clone(), Values::new()]);
        prop_assert_eq!(&once, &with_empty);
        let empty_first = merge(&defaults, &[Values::new(), layer]);
        prop_assert_eq!(once, empty_first);
    }

    #[test]
    fn no_layers_keeps_null_free_defaults(defaults in arb_map()) {
        prop_assume!(!has_nested_null(&defaults));
        prop_assert_eq!(merge(&defaults, &[]), defaults);
    }

    #[test]
    fn the_last_layers_scalars_always_win(defaults in arb_map(), a in arb_map(), b in arb_map()) {
        let out = merge(&defaults, &[a, b.clone()]);
        let mut leaves = Vec::new();
        scalar_leaves(&b, &mut Vec::new(), &mut leaves);
        for (path, want) in leaves {
            prop_assert_eq!(lookup(&out, &path), Some(&want), "path {:?}", path);
        }
    }

    #[test]
    fn merging_is_deterministic_and_leaves_inputs_alone(defaults in arb_map(), a in arb_map()) {
        let (d0, a0) = (defaults.clone(), a.clone());
        let x = merge(&defaults, std::slice::from_ref(&a));
        let y = merge(&defaults, std::slice::from_ref(&a));
        prop_assert_eq!(x, y);
        prop_assert_eq!(defaults, d0);
        prop_assert_eq!(a, a0);
    }

    #[test]
    fn merging_is_idempotent_for_a_repeated_null_free_layer(defaults in arb_map(), a in arb_map()) {
        prop_assume!(!has_nested_null(&a) && a.values().all(|v| !v.is_null()));
        let once = merge(&defaults, std::slice::from_ref(&a));
        let twice = merge(&defaults, &[a.clone(), a]);
        prop_assert_eq!(once, twice);
    }
}
