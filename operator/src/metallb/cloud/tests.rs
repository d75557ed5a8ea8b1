use super::*;

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_known_clouds_provider_id_names_it() {
    let cloud = detect(&ids(&["", "aws:///us-east-1a/i-0abc"])).unwrap();
    assert_eq!(cloud.provider, "AWS");
    assert_eq!(cloud.provider_id, "aws:///us-east-1a/i-0abc");
    assert!(cloud.held().starts_with(
        "the nodes are AWS's (spec.providerID aws:///us-east-1a/i-0abc): its cloud controller serves LoadBalancer Services"
    ));
    assert!(cloud.held().contains("spec.metallbOnCloud: true"));
    assert_eq!(
        detect(&ids(&["gce://project/zone/node-1"]))
            .unwrap()
            .provider,
        "Google Cloud"
    );
}

#[test]
fn on_premises_nodes_are_no_clouds() {
    assert_eq!(detect(&[]), None);
    assert_eq!(
        detect(&ids(&["", "kind://docker/kind/kind-control-plane"])),
        None
    );
    assert_eq!(detect(&ids(&["metal3://ns/bmh/node-1", "not-a-uri"])), None);
}
