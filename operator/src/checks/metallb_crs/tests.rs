use super::*;
use crate::metallb::cluster::ClusterFacts;
use crate::metallb::safety::LiveService;
use serde_json::json;

fn pool(name: &str, range: &str) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"name": name}, "spec": {"addresses": [range]}})
}

fn l2() -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "all"}, "spec": {}})
}

fn text(items: &[Value]) -> String {
    Value::Array(items.to_vec()).to_string()
}

fn live(config: Option<&[Value]>, ips: &[&str]) -> LiveState {
    LiveState {
        config: config.map(text),
        services: ips
            .iter()
            .enumerate()
            .map(|(i, ip)| LiveService {
                namespace: "default".into(),
                name: format!("s{i}"),
                ips: vec![ip.parse().unwrap()],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn validate_names_resource_rules_and_cluster_facts() {
    let rules = V015.rules();
    let bad = text(&[pool("a", "10.0.50.0/24"), pool("b", "10.0.50.128/25")]);
    assert_eq!(
        rules.validate(&bad, &LiveState::default()),
        vec![
            "IPAddressPool/b spec.addresses[0]: 10.0.50.128/25 overlaps 10.0.50.0/24 of IPAddressPool/a"
        ]
    );
    let mut state = LiveState {
        facts: ClusterFacts {
            service_subnets: vec!["10.0.0.0/16".parse().unwrap()],
            ipvs_without_strict_arp: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let guide = text(&[pool("default", "10.0.50.25-10.0.50.50"), l2()]);
    assert_eq!(
        rules.validate(&guide, &state),
        vec![
            "IPAddressPool/default: addresses 10.0.50.25/32 overlap the cluster's serviceSubnet 10.0.0.0/16 (the guide: the MetalLB range must not overlap podSubnet and serviceSubnet)",
            "IPAddressPool/default: announced by an L2Advertisement, which needs strictARP: true in kube-proxy's IPVS config (kube-system/kube-proxy ConfigMap, config.conf: ipvs.strictARP; or set spec.kubeProxy.setStrictARP: true on the KommanderCluster to let the operator set it)",
        ]
    );
    state.facts = ClusterFacts::default();
    assert!(rules.validate(&guide, &state).is_empty());
}

#[test]
fn a_hand_made_pool_counts_with_the_rendered_ones() {
    let mut state = live(None, &[]);
    state.foreign = vec![pool("mine", "10.0.50.40/29")];
    assert_eq!(
        V015.rules()
            .validate(&text(&[pool("default", "10.0.50.25-10.0.50.50")]), &state),
        vec![
            "IPAddressPool/mine spec.addresses[0]: 10.0.50.40/29 overlaps 10.0.50.32/28 of IPAddressPool/default"
        ]
    );
}

#[test]
fn breaks_names_the_service_and_its_fate_per_release() {
    let old = [pool("default", "10.0.50.25-10.0.50.50"), l2()];
    let narrow = text(&[pool("default", "10.0.50.26-10.0.50.50"), l2()]);
    let state = live(Some(&old), &["10.0.50.25", "10.0.50.26"]);
    assert_eq!(
        V015.rules().breaks(&narrow, &state),
        vec![
            "default/s0 would lose 10.0.50.25 (no pool of the new config holds it) and get 10.0.50.27"
        ]
    );
    assert_eq!(
        V013.rules().breaks(&narrow, &state),
        vec![
            "default/s0 holds 10.0.50.25, which no single pool of the new config contains: MetalLB 0.13 refuses the config, and a controller restart would renumber default/s0"
        ]
    );
    let grown = text(&[pool("default", "10.0.50.25-10.0.50.60"), l2()]);
    assert!(V015.rules().breaks(&grown, &state).is_empty());
}

#[test]
fn pools_that_lose_addresses_are_written_after_the_rest_and_before_what_takes_them_up() {
    let old = [pool("a", "10.0.50.0/28"), pool("b", "10.0.51.0/28"), l2()];
    let state = live(Some(&old), &[]);
    let rules = V015.rules();
    let (a, b, new, adv, taker) = (
        pool("a", "10.0.50.0/29"),
        pool("b", "10.0.51.0/27"),
        pool("new", "10.0.52.0/28"),
        l2(),
        // Takes a's upper half, which a gives up.
        pool("taker", "10.0.50.8/29"),
    );
    assert_eq!(
        rules.write_groups(&[&a, &b, &new, &adv, &taker], &state),
        vec![1, 0, 0, 0, 2]
    );
}
