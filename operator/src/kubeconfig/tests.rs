use super::*;

fn config(cluster_extra: &str, user_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\ncontexts:\n- name: t\n  context: {{cluster: c, user: u}}\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Zm9v\n{cluster_extra}users:\n- name: u\n  user:\n    token: abc\n{user_extra}"
    )
}

fn refusals(text: &str, policy: Policy) -> Vec<(String, Option<&'static str>)> {
    match sanitize(text, policy) {
        Err(KubeconfigError::Refused(r)) => r.into_iter().map(|r| (r.field, r.flag)).collect(),
        Err(other) => panic!("expected refusals, got {other}"),
        Ok(_) => Vec::new(),
    }
}

#[test]
fn each_dangerous_field_is_refused_by_name() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "",
            "    exec: {command: /bin/sh, args: [-c, id], apiVersion: client.authentication.k8s.io/v1}\n",
            "users[\"u\"].user.exec",
            Some(FLAG_EXEC),
        ),
        (
            "",
            "    auth-provider: {name: gcp, config: {cmd-path: /bin/sh}}\n",
            "users[\"u\"].user.auth-provider",
            None,
        ),
        (
            "",
            "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            "users[\"u\"].user.tokenFile",
            None,
        ),
        (
            "",
            "    client-certificate: /etc/ssl/cert.pem\n",
            "users[\"u\"].user.client-certificate",
            None,
        ),
        (
            "",
            "    client-key: /etc/ssl/key.pem\n",
            "users[\"u\"].user.client-key",
            None,
        ),
        ("", "    surprise: 1\n", "users[\"u\"].user.surprise", None),
        ("", "    as: system:admin\n", "users[\"u\"].user.as", None),
        ("", "    as-uid: \"0\"\n", "users[\"u\"].user.as-uid", None),
        (
            "",
            "    as-groups: [system:masters]\n",
            "users[\"u\"].user.as-groups",
            None,
        ),
        (
            "",
            "    as-user-extra: {scopes: [all]}\n",
            "users[\"u\"].user.as-user-extra",
            None,
        ),
        (
            "    certificate-authority: /etc/ssl/ca.pem\n",
            "",
            "clusters[\"c\"].cluster.certificate-authority",
            None,
        ),
        (
            "    insecure-skip-tls-verify: true\n",
            "",
            "clusters[\"c\"].cluster.insecure-skip-tls-verify",
            Some(FLAG_TLS),
        ),
        (
            "    proxy-url: socks5://127.0.0.1:1080\n",
            "",
            "clusters[\"c\"].cluster.proxy-url",
            None,
        ),
    ];
    for (cluster, user, field, flag) in cases {
        let got = refusals(&config(cluster, user), Policy::default());
        assert_eq!(got, vec![(field.to_string(), *flag)], "case {field}");
    }
}

#[test]
fn every_refusal_is_reported_at_once() {
    let text = config(
        "    insecure-skip-tls-verify: true\n",
        "    tokenFile: /x\n    exec: {command: sleep}\n",
    );
    assert_eq!(refusals(&text, Policy::default()).len(), 3);
}

#[test]
fn flags_allow_exactly_what_they_name() {
    let exec = config("", "    exec: {command: /bin/true}\n");
    let ok = sanitize(
        &exec,
        Policy {
            allow_exec: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ok.exec.and_then(|e| e.command).as_deref(),
        Some("/bin/true")
    );
    // The exec plugin never reaches the client library's config.
    assert!(
        ok.kubeconfig.auth_infos[0]
            .auth_info
            .as_ref()
            .unwrap()
            .exec
            .is_none()
    );

    let insecure = config("    insecure-skip-tls-verify: true\n", "");
    assert!(
        sanitize(
            &insecure,
            Policy {
                allow_insecure_tls: true,
                ..Default::default()
            }
        )
        .is_ok()
    );
    // The TLS flag does not allow exec, nor files.
    let both = config(
        "    insecure-skip-tls-verify: true\n",
        "    tokenFile: /x\n",
    );
    assert_eq!(
        refusals(
            &both,
            Policy {
                allow_insecure_tls: true,
                allow_exec: true
            }
        ),
        vec![("users[\"u\"].user.tokenFile".to_string(), None)]
    );
}

#[test]
fn servers_must_be_https_unless_tls_is_loosened() {
    let text = |server: &str| config("", "").replace("https://127.0.0.1:6443", server);
    assert_eq!(
        refusals(&text("http://10.0.0.1"), Policy::default())[0].1,
        Some(FLAG_TLS)
    );
    assert!(
        sanitize(
            &text("http://10.0.0.1"),
            Policy {
                allow_insecure_tls: true,
                ..Default::default()
            }
        )
        .is_ok()
    );
    assert_eq!(
        refusals(&text("unix:///var/run/x.sock"), Policy::default())[0].0,
        "clusters[\"c\"].cluster.server"
    );
    assert_eq!(
        refusals(&text(""), Policy::default())[0].0,
        "clusters[\"c\"].cluster.server"
    );
}

#[test]
fn only_allowed_fields_survive() {
    let text = config(
        "    tls-server-name: api.internal\n",
        "    username: a\n    password: b\n    client-certificate-data: Y2VydA==\n    client-key-data: a2V5\n",
    );
    let s = sanitize(&text, Policy::default()).unwrap();
    assert_eq!(s.server, "https://127.0.0.1:6443");
    let c = s.kubeconfig.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(c.tls_server_name.as_deref(), Some("api.internal"));
    assert_eq!(c.certificate_authority_data.as_deref(), Some("Zm9v"));
    let u = s.kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(u.username.as_deref(), Some("a"));
    assert!(
        u.token.is_some() && u.client_key_data.is_some() && u.client_certificate_data.is_some()
    );
    assert!(u.token_file.is_none() && u.auth_provider.is_none() && u.exec.is_none());
}

#[test]
fn unused_entries_are_not_checked_and_not_kept() {
    // A second user with exec that the current context does not use: dropped, never run.
    let text = format!(
        "{}- name: other\n  user:\n    exec: {{command: /bin/sh}}\n",
        config("", "")
    );
    let s = sanitize(&text, Policy::default()).unwrap();
    assert_eq!(s.kubeconfig.auth_infos.len(), 1);
    assert!(s.exec.is_none());
}

#[test]
fn contexts_must_resolve() {
    let no_current = "apiVersion: v1\nkind: Config\ncontexts: []\nclusters: []\nusers: []\n";
    assert!(matches!(
        sanitize(no_current, Policy::default()),
        Err(KubeconfigError::NoContext(_))
    ));
    let dangling = config("", "").replace("cluster: c, user: u", "cluster: nope, user: u");
    assert!(
        matches!(sanitize(&dangling, Policy::default()), Err(KubeconfigError::NoContext(m)) if m.contains("nope"))
    );
    assert_eq!(
        sanitize("{", Policy::default()).unwrap_err(),
        KubeconfigError::NotAKubeconfig
    );
}

#[test]
fn the_message_names_field_rule_and_flag() {
    let e = sanitize(
        &config("", "    exec: {command: sleep}\n"),
        Policy::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("users[\"u\"].user.exec is refused"), "{msg}");
    assert!(msg.contains(FLAG_EXEC), "{msg}");
}
