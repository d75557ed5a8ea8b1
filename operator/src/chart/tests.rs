use super::*;
use serde_json::json;

fn answer(v: serde_json::Value) -> Result<ChartRender, ChartError> {
    parse_answer(&serde_json::to_vec(&v).unwrap())
}

fn sample() -> serde_json::Value {
    json!({
        "chart": {"name": "demo", "version": "1.2.3", "appVersion": "v1"},
        "values": {"replicas": 2},
        "crds": [{"path": "demo/crds/widgets.yaml", "content": "kind: CustomResourceDefinition\n"}],
        "manifests": [
            {"path": "demo/templates/sa.yaml", "content": "kind: ServiceAccount\nmetadata:\n  name: a"},
            {"path": "demo/templates/deploy.yaml", "content": "kind: Deployment\nmetadata:\n  name: b"}
        ],
        "hooks": [{
            "path": "demo/templates/job.yaml", "name": "migrate", "kind": "Job",
            "manifest": "kind: Job\nmetadata:\n  name: migrate", "events": ["pre-install", "pre-upgrade"],
            "weight": -5, "deletePolicies": ["before-hook-creation"]
        }, {
            "path": "demo/templates/test.yaml", "name": "t", "kind": "Pod",
            "manifest": "kind: Pod\nmetadata:\n  name: t", "events": ["test"],
            "weight": 0, "deletePolicies": []
        }],
        "notes": "thanks"
    })
}

#[test]
fn an_answer_reads_into_the_render() {
    let r = answer(sample()).unwrap();
    assert_eq!(r.chart.name, "demo");
    assert_eq!(r.chart.app_version, "v1");
    assert_eq!(r.values, json!({"replicas": 2}));
    assert_eq!(r.manifests.len(), 2);
    assert_eq!(r.hooks[0].weight, -5);
    assert_eq!(r.hooks[0].events, ["pre-install", "pre-upgrade"]);
    assert!(!r.hooks[0].is_test());
    assert!(r.hooks[1].is_test());
    assert_eq!(r.notes, "thanks");
}

#[test]
fn each_failure_kind_is_its_own_error_with_a_category() {
    let cases = [
        ("chart", Category::Invalid, "the chart cannot be used: m"),
        ("values", Category::Invalid, "m"),
        ("schema", Category::Invalid, "m"),
        ("kubeVersion", Category::Invalid, "m"),
        ("render", Category::Invalid, "m"),
        ("manifest", Category::Invalid, "m"),
        ("output", Category::Refused, "the render output bound: m"),
        ("memory", Category::Refused, "the render memory bound: m"),
        ("request", Category::Retry, "Helm's engine could not run: m"),
    ];
    for (kind, category, text) in cases {
        let e = answer(json!({"error": {"kind": kind, "message": "m"}, "crds": [], "manifests": [], "hooks": []}))
            .unwrap_err();
        assert_eq!(e.category(), category, "{kind}");
        assert_eq!(e.to_string(), text, "{kind}");
    }
}

#[test]
fn garbage_is_an_engine_error_not_a_panic() {
    for bytes in [&b""[..], b"{", b"[]", b"{}"] {
        let e = parse_answer(bytes).unwrap_err();
        assert_eq!(e.category(), Category::Retry, "{bytes:?}");
    }
}

#[test]
fn template_text_is_laid_out_as_helm_template_prints_it() {
    let r = answer(sample()).unwrap();
    let want_manifests = "---\n# Source: demo/templates/sa.yaml\nkind: ServiceAccount\nmetadata:\n  name: a\n---\n# Source: demo/templates/deploy.yaml\nkind: Deployment\nmetadata:\n  name: b\n";
    let want_hooks = "---\n# Source: demo/templates/job.yaml\nkind: Job\nmetadata:\n  name: migrate\n---\n# Source: demo/templates/test.yaml\nkind: Pod\nmetadata:\n  name: t\n";
    assert_eq!(
        template_text(&r, false),
        format!("{want_manifests}{want_hooks}")
    );
    assert_eq!(
        template_text(&r, true),
        format!(
            "---\n# Source: demo/crds/widgets.yaml\nkind: CustomResourceDefinition\n\n{want_manifests}{want_hooks}"
        )
    );
}

#[test]
fn the_wire_request_carries_the_chart_as_base64_and_the_bound() {
    let req = ChartRequest {
        chart: vec![0x1f, 0x8b, 0],
        value_layers: vec!["a: 1\n".into()],
        release: ChartRelease {
            name: "metallb".into(),
            namespace: "ws".into(),
            revision: 1,
            is_upgrade: true,
        },
        capabilities: Capabilities {
            kube_version: "v1.34.4".into(),
            api_versions: vec!["apps/v1".into()],
            helm_defaults: false,
        },
    };
    let wire: serde_json::Value = serde_json::from_slice(&req.to_wire(99).unwrap()).unwrap();
    assert_eq!(
        wire,
        json!({
            "chart": "H4sA", "valueLayers": ["a: 1\n"],
            "release": {"name": "metallb", "namespace": "ws", "revision": 1, "isUpgrade": true},
            "kubeVersion": "v1.34.4", "apiVersions": ["apps/v1"],
            "helmDefaultAPIVersions": false, "maxOutputBytes": 99
        })
    );
}
