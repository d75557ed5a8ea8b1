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
        chart: vec![0x1f, 0x8b, 0].into(),
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

mod sources {
    use crate::chart::source::*;
    use crate::chart::{Category, ChartError};
    use crate::resources::ChartSource;

    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn src(repository: &str) -> ChartSource {
        ChartSource {
            repository: repository.into(),
            name: "metallb".into(),
            version: "0.16.2".into(),
            digest: DIGEST.into(),
            withheld_values: vec![],
            archive: None,
        }
    }

    /// A chart carried in the app: `DIGEST` is the sha256 of `foo`.
    fn carried(base64: &str) -> ChartSource {
        ChartSource {
            archive: Some(base64.into()),
            ..src("")
        }
    }

    #[test]
    fn a_carried_archive_is_checked_against_the_digest_and_fetches_nothing() {
        let none: [String; 0] = [];
        // A tenant whose Workspace allows no repository may still carry its chart.
        check(
            &carried("Zm9v"),
            Requester::Tenant {
                workspace: "team",
                allowed: &none,
            },
        )
        .unwrap();
        assert_eq!(embedded(&carried("Zm9v")).unwrap().unwrap(), b"foo");
        assert_eq!(embedded(&src("https://charts.example.com")), None);
        let e = embedded(&carried("YmFy")).unwrap().unwrap_err();
        assert_eq!(e.reason(), "DigestMismatch", "{e}");
        assert!(e.to_string().starts_with("spec.chart.archive: "), "{e}");
        let m = refusal(embedded(&carried("not base64!")).unwrap());
        assert!(m.starts_with("spec.chart.archive: is not base64"), "{m}");
        let huge = "A".repeat(MAX_EMBEDDED_BYTES / 3 * 4 + 8);
        let m = refusal(embedded(&carried(&huge)).unwrap());
        assert!(m.contains("serve the chart from a repository"), "{m}");
    }

    #[test]
    fn a_chart_comes_from_a_repository_or_an_archive_exactly() {
        let mut both = carried("Zm9v");
        both.repository = "https://charts.example.com".into();
        let m = refusal(check(&both, Requester::Platform));
        assert_eq!(m, "spec.chart.archive: set repository or archive, not both");
        let m = refusal(check(&src(""), Requester::Platform));
        assert!(
            m.starts_with("spec.chart.repository: set the chart's"),
            "{m}"
        );
    }

    fn refusal(r: Result<impl std::fmt::Debug, ChartError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.category(), Category::Refused, "{e}");
        assert_eq!(e.reason(), "ChartRefused", "{e}");
        e.to_string()
    }

    #[test]
    fn the_platform_may_name_any_https_repository() {
        for url in [
            "https://metallb.github.io/metallb",
            "https://10.0.0.1:8443/charts/",
        ] {
            check(&src(url), Requester::Platform).unwrap();
        }
    }

    #[test]
    fn a_repository_url_is_https_with_a_host_and_no_credentials_or_dot_segments() {
        let cases = [
            ("http://charts.example.com", "is not an https URL"),
            ("file:///etc/passwd", "is not an https URL"),
            ("https://", "must name a host"),
            ("https://user:pw@charts.example.com", "no credentials"),
            ("https://charts.example.com/a/../b", "dot segments"),
            ("https://charts.example.com/a/%2E%2E/b", "dot segments"),
        ];
        for (url, rule) in cases {
            let m = refusal(check(&src(url), Requester::Platform));
            assert!(m.starts_with("spec.chart.repository: "), "{m}");
            assert!(m.contains(rule), "{url}: {m}");
        }
    }

    #[test]
    fn a_tenant_reaches_only_what_its_workspace_allows_at_a_path_boundary() {
        let allowed = ["https://charts.example.com/team-a".to_string()];
        let who = Requester::Tenant {
            workspace: "team",
            allowed: &allowed,
        };
        check(&src("https://charts.example.com/team-a"), who).unwrap();
        check(&src("https://CHARTS.example.com/team-a/stable"), who).unwrap();
        for url in [
            "https://charts.example.com/team-ab",
            "https://charts.example.com",
            "https://169.254.169.254/latest",
            "https://charts.example.com.evil.example/team-a",
        ] {
            let m = refusal(check(&src(url), who));
            assert!(
                m.contains("not under a repository the Workspace allows"),
                "{m}"
            );
        }
        let none: [String; 0] = [];
        let m = refusal(check(
            &src("https://charts.example.com/team-a"),
            Requester::Tenant {
                workspace: "team",
                allowed: &none,
            },
        ));
        assert!(m.contains("may not fetch charts"), "{m}");
    }

    #[test]
    fn digests_names_and_versions_are_checked() {
        let mut s = src("https://charts.example.com");
        s.digest = "sha256:abc".into();
        assert!(refusal(check(&s, Requester::Platform)).starts_with("spec.chart.digest: "));
        let mut s = src("https://charts.example.com");
        s.version = "../1".into();
        assert!(refusal(check(&s, Requester::Platform)).starts_with("spec.chart.version: "));
        assert_eq!(
            digest_hex(&DIGEST.to_uppercase().replace("SHA256:", "")).unwrap(),
            &DIGEST[7..]
        );
    }

    fn index(url: &str, digest: &str) -> String {
        format!(
            "apiVersion: v1\nentries:\n  metallb:\n  - name: metallb\n    version: 0.16.1\n    urls: [old.tgz]\n  - name: metallb\n    version: 0.16.2\n    digest: {digest}\n    urls:\n    - {url}\n"
        )
    }

    #[test]
    fn the_index_gives_the_archive_url_relative_or_absolute() {
        let hex = &DIGEST[7..];
        let s = src("https://charts.example.com/metallb/");
        let cases = [
            (
                "metallb-0.16.2.tgz",
                "https://charts.example.com/metallb/metallb-0.16.2.tgz",
            ),
            (
                "/dl/metallb-0.16.2.tgz",
                "https://charts.example.com/dl/metallb-0.16.2.tgz",
            ),
            (
                "https://cdn.example.com/m.tgz",
                "https://cdn.example.com/m.tgz",
            ),
        ];
        for (reference, want) in cases {
            assert_eq!(
                resolve(&index(reference, hex), &s, Requester::Platform).unwrap(),
                want
            );
        }
        assert_eq!(
            index_url(&s.repository),
            "https://charts.example.com/metallb/index.yaml"
        );
    }

    #[test]
    fn an_index_cannot_send_a_tenant_elsewhere() {
        let allowed = ["https://charts.example.com/metallb".to_string()];
        let who = Requester::Tenant {
            workspace: "team",
            allowed: &allowed,
        };
        let s = src("https://charts.example.com/metallb");
        for reference in [
            "https://169.254.169.254/m.tgz",
            "http://charts.example.com/metallb/m.tgz",
            "/other/m.tgz",
        ] {
            refusal(resolve(&index(reference, &DIGEST[7..]), &s, who));
        }
        resolve(&index("m.tgz", &DIGEST[7..]), &s, who).unwrap();
    }

    #[test]
    fn a_missing_chart_is_unavailable_and_another_digest_a_mismatch() {
        let s = src("https://charts.example.com");
        let mut other = s.clone();
        other.version = "9.9.9".into();
        let e = resolve(&index("m.tgz", &DIGEST[7..]), &other, Requester::Platform).unwrap_err();
        assert_eq!(
            (e.category(), e.reason()),
            (Category::Retry, "ChartUnavailable")
        );
        assert!(
            e.to_string().contains("no chart metallb version 9.9.9"),
            "{e}"
        );
        let e = resolve(&index("m.tgz", &"ab".repeat(32)), &s, Requester::Platform).unwrap_err();
        assert_eq!(e.reason(), "DigestMismatch");
        let e = resolve("{not: [yaml", &s, Requester::Platform).unwrap_err();
        assert_eq!(e.reason(), "ChartUnavailable");
    }

    #[test]
    fn an_archive_is_verified_against_the_pin() {
        // DIGEST is the sha256 of "foo".
        let s = src("https://charts.example.com");
        verify(b"foo", &s, "u").unwrap();
        let e = verify(b"bar", &s, "https://charts.example.com/m.tgz").unwrap_err();
        assert_eq!(e.reason(), "DigestMismatch");
        assert!(
            e.to_string()
                .starts_with("https://charts.example.com/m.tgz: the chart's sha256 is fcde2b2e"),
            "{e}"
        );
    }
}

#[test]
fn api_versions_are_group_versions_and_kinds_once_each() {
    let set = api_version_set([
        ("v1", None),
        ("v1", Some("Pod")),
        ("apps/v1", None),
        ("apps/v1", Some("Deployment")),
        ("apps/v1", Some("Deployment")),
    ]);
    assert_eq!(set, ["apps/v1", "apps/v1/Deployment", "v1", "v1/Pod"]);
}

#[test]
fn withheld_values_stay_out_of_helms_layers_and_merge_for_the_templates() {
    let v = |t: &str| crate::values::parse("t", t).unwrap();
    let defaults = v("configInline: {}\ncontroller: {logLevel: info}\n");
    let layers = [
        v("configInline: {address-pools: [{name: a}]}\ncontroller: {logLevel: debug}\n"),
        v("configInline: {peers: []}\n"),
    ];
    let (helm, held) = split_values(&defaults, &layers, &["configInline".to_string()]);
    assert_eq!(
        helm,
        [
            r#"{"controller":{"logLevel":"info"}}"#,
            r#"{"controller":{"logLevel":"debug"}}"#,
            "{}"
        ]
    );
    assert_eq!(
        serde_json::Value::Object(held),
        json!({"configInline": {"address-pools": [{"name": "a"}], "peers": []}})
    );
    let (helm, held) = split_values(&defaults, &layers[..1], &[]);
    assert_eq!(helm.len(), 2);
    assert!(helm[1].contains("configInline"));
    assert!(held.is_empty());
}
