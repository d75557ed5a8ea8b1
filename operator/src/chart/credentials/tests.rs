use super::*;

fn secret(name: &str, pairs: &[(&str, &str)]) -> (String, BTreeMap<String, Vec<u8>>) {
    (
        name.to_string(),
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    )
}

fn login(name: &str, url: &str, workspaces: &str) -> (String, BTreeMap<String, Vec<u8>>) {
    secret(
        name,
        &[
            ("url", url),
            ("username", "robot"),
            ("password", "s3cret"),
            ("workspaces", workspaces),
        ],
    )
}

const TEAM: Requester<'static> = Requester::Tenant {
    workspace: "team-a",
    allowed: &[],
};

fn picked(
    secrets: &[(String, BTreeMap<String, Vec<u8>>)],
    repo: &str,
    who: Requester<'_>,
) -> Option<String> {
    pick(secrets, repo, who).unwrap().map(|c| c.secret)
}

#[test]
fn the_platform_gets_the_longest_url_that_covers_the_repository() {
    let secrets = [
        login("corp", "https://charts.corp.example", ""),
        login("infra", "https://charts.corp.example/infra/", ""),
        login("other", "https://other.example", ""),
    ];
    let p = Requester::Platform;
    assert_eq!(
        picked(&secrets, "https://charts.corp.example/infra", p).as_deref(),
        Some("infra")
    );
    assert_eq!(
        picked(&secrets, "https://CHARTS.corp.example/apps", p).as_deref(),
        Some("corp")
    );
    // A path boundary: `infra` does not cover `infra-b`.
    assert_eq!(
        picked(&secrets, "https://charts.corp.example/infra-b", p).as_deref(),
        Some("corp")
    );
    assert_eq!(picked(&secrets, "https://public.example/charts", p), None);
}

#[test]
fn a_workspace_gets_only_credentials_that_name_it() {
    let secrets = [
        login("platform-only", "https://charts.corp.example", ""),
        login(
            "shared",
            "https://charts.corp.example/shared",
            "team-b, team-a",
        ),
    ];
    assert_eq!(
        picked(&secrets, "https://charts.corp.example/apps", TEAM),
        None
    );
    assert_eq!(
        picked(&secrets, "https://charts.corp.example/shared", TEAM).as_deref(),
        Some("shared")
    );
    let other = Requester::Tenant {
        workspace: "team-c",
        allowed: &[],
    };
    assert_eq!(
        picked(&secrets, "https://charts.corp.example/shared", other),
        None
    );
}

#[test]
fn the_header_goes_only_under_the_url() {
    let c = parse(
        "corp",
        &login("corp", "https://charts.corp.example/private", "").1,
    )
    .unwrap();
    assert_eq!(c.header(), "Basic cm9ib3Q6czNjcmV0");
    assert!(c.covers("https://charts.corp.example/private/index.yaml"));
    assert!(!c.covers("https://cdn.example/private/m.tgz"));
    assert!(!c.covers("http://charts.corp.example/private/index.yaml"));
    assert!(!c.covers("https://charts.corp.example.evil.example/private/x"));
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn a_malformed_secret_is_named_when_it_would_serve_the_repository() {
    let broken = secret(
        "half",
        &[
            ("url", "https://charts.corp.example"),
            ("username", "robot"),
        ],
    );
    assert_eq!(
        pick(
            std::slice::from_ref(&broken),
            "https://charts.corp.example/x",
            Requester::Platform
        ),
        Err("Secret half has no `password`".to_string())
    );
    // One for elsewhere does not stop this fetch.
    assert_eq!(
        pick(&[broken], "https://other.example", Requester::Platform),
        Ok(None)
    );
    let plain = secret(
        "plain",
        &[
            ("url", "http://charts.corp.example"),
            ("username", "u"),
            ("password", "p"),
        ],
    );
    assert_eq!(
        parse(&plain.0, &plain.1),
        Err("Secret plain: `url` \"http://charts.corp.example\" is not an https URL".to_string())
    );
}
