use super::*;
use crate::metallb::config::{SpeakerMode, parse};

fn cfg(pools: &[(&str, &str, &str)]) -> Config {
    let mut text = String::from("address-pools:\n");
    for (name, proto, addrs) in pools {
        text.push_str(&format!(
            "- name: {name}\n  protocol: {proto}\n  addresses: [{addrs}]\n"
        ));
    }
    parse(&text, SpeakerMode::Native).unwrap()
}

fn svc(name: &str, ips: &[&str]) -> LiveService {
    LiveService {
        namespace: "default".into(),
        name: name.into(),
        ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        pool: None,
        requested_ip: None,
        ..Default::default()
    }
}

fn messages(b: &[Breakage]) -> Vec<String> {
    b.iter().map(ToString::to_string).collect()
}

#[test]
fn shrinking_past_an_assigned_ip_is_refused() {
    let old = cfg(&[("default", "layer2", "10.0.50.25-10.0.50.50")]);
    let new = cfg(&[("default", "layer2", "10.0.50.25-10.0.50.29")]);
    let b = check(Some(&old), &new, &[svc("web", &["10.0.50.30"])]);
    assert_eq!(
        messages(&b),
        vec!["default/web holds 10.0.50.30, outside every pool of the new config"]
    );
    assert!(b[0].is_refusal());
}

#[test]
fn an_ip_kept_in_range_is_fine() {
    let old = cfg(&[("default", "layer2", "10.0.50.25-10.0.50.50")]);
    let new = cfg(&[("default", "layer2", "10.0.50.0/24")]);
    assert!(check(Some(&old), &new, &[svc("web", &["10.0.50.30"])]).is_empty());
}

#[test]
fn adding_a_pool_is_safe() {
    let old = cfg(&[("default", "layer2", "10.0.50.25-10.0.50.50")]);
    let new = cfg(&[
        ("default", "layer2", "10.0.50.25-10.0.50.50"),
        ("extra", "layer2", "10.0.60.0/28"),
    ]);
    assert!(check(Some(&old), &new, &[svc("web", &["10.0.50.30"])]).is_empty());
}

#[test]
fn renaming_the_pool_of_an_unannotated_service_is_accepted() {
    // MetalLB only needs some pool to hold the IPs.
    let old = cfg(&[("default", "layer2", "10.0.50.0/24")]);
    let new = cfg(&[("renamed", "layer2", "10.0.50.0/24")]);
    assert!(check(Some(&old), &new, &[svc("web", &["10.0.50.30"])]).is_empty());
}

#[test]
fn ips_split_across_pools_are_refused() {
    let new = cfg(&[
        ("a", "layer2", "10.0.1.0/24"),
        ("b", "layer2", "fd00::/120"),
    ]);
    let b = check(None, &new, &[svc("dual", &["10.0.1.5", "fd00::5"])]);
    assert_eq!(
        messages(&b),
        vec!["default/dual holds IPs that no single pool of the new config contains"]
    );
    let both = cfg(&[("ab", "layer2", "10.0.1.0/24,fd00::/120")]);
    assert!(check(None, &both, &[svc("dual", &["10.0.1.5", "fd00::5"])]).is_empty());
}

#[test]
fn avoid_buggy_ips_disowns_dot_zero_and_dot_255() {
    let new_text = "address-pools:\n- name: p\n  protocol: layer2\n  avoid-buggy-ips: true\n  addresses: [10.0.0.0/24]\n";
    let new = parse(new_text, SpeakerMode::Native).unwrap();
    let b = check(
        None,
        &new,
        &[svc("edge", &["10.0.0.255"]), svc("ok", &["10.0.0.7"])],
    );
    assert_eq!(
        messages(&b),
        vec!["default/edge holds 10.0.0.255, outside every pool of the new config"]
    );
}

#[test]
fn removing_an_annotated_pool_disrupts() {
    let old = cfg(&[
        ("default", "layer2", "10.0.50.0/24"),
        ("gold", "layer2", "10.0.60.0/24"),
    ]);
    let new = cfg(&[("default", "layer2", "10.0.50.0/24,10.0.60.0/24")]);
    let mut s = svc("pinned", &["10.0.60.3"]);
    s.pool = Some("gold".into());
    let b = check(Some(&old), &new, &[s]);
    assert_eq!(b.len(), 1);
    assert!(!b[0].is_refusal(), "MetalLB accepts this config silently");
    assert_eq!(
        b[0].to_string(),
        "default/pinned asks for pool \"gold\" (metallb.universe.tf/address-pool), which the new config removes: it would lose its IP"
    );
}

#[test]
fn an_annotated_pool_that_no_longer_holds_the_ip_renumbers() {
    let old = cfg(&[("gold", "layer2", "10.0.60.0/24")]);
    let new = cfg(&[
        ("gold", "layer2", "10.0.70.0/24"),
        ("other", "layer2", "10.0.60.0/24"),
    ]);
    let mut s = svc("pinned", &["10.0.60.3"]);
    s.pool = Some("gold".into());
    assert_eq!(
        messages(&check(Some(&old), &new, &[s])),
        vec![
            "default/pinned asks for pool \"gold\", which would no longer hold its IP 10.0.60.3: it would be renumbered"
        ]
    );
}

#[test]
fn a_protocol_change_disrupts() {
    let old = cfg(&[("default", "layer2", "10.0.50.0/24")]);
    let new_text = "peers:\n- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 10.9.9.9\naddress-pools:\n- name: default\n  protocol: bgp\n  addresses: [10.0.50.0/24]\n";
    let new = parse(new_text, SpeakerMode::Native).unwrap();
    assert_eq!(
        messages(&check(Some(&old), &new, &[svc("web", &["10.0.50.30"])])),
        vec![
            "default/web holds 10.0.50.30, whose pool changes from layer2 to bgp: it would be announced differently"
        ]
    );
    // Without knowing the old config there is nothing to compare.
    assert!(check(None, &new, &[svc("web", &["10.0.50.30"])]).is_empty());
}

#[test]
fn an_unservable_requested_ip_blocks() {
    let new = cfg(&[("default", "layer2", "10.0.50.0/24")]);
    let mut s = svc("pending", &[]);
    s.requested_ip = Some("10.0.99.1".parse().unwrap());
    assert_eq!(
        messages(&check(None, &new, &[s])),
        vec![
            "default/pending requests loadBalancerIP 10.0.99.1, outside every pool of the new config"
        ]
    );
}

#[test]
fn services_without_ips_or_requests_never_block() {
    let new = cfg(&[]);
    assert!(check(None, &new, &[svc("pending", &[])]).is_empty());
}

#[test]
fn an_empty_config_refuses_every_assigned_service() {
    let new = Config::default();
    let b = check(
        None,
        &new,
        &[svc("a", &["10.0.0.1"]), svc("b", &["10.0.0.2"])],
    );
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(Breakage::is_refusal));
}

#[test]
fn one_blocker_per_service_the_first_reason_wins() {
    let old = cfg(&[("gold", "layer2", "10.0.60.0/24")]);
    let new = cfg(&[("x", "layer2", "10.0.70.0/24")]);
    let mut s = svc("pinned", &["10.0.60.3"]);
    s.pool = Some("gold".into());
    s.requested_ip = Some("10.0.60.3".parse().unwrap());
    let b = check(Some(&old), &new, &[s]);
    assert_eq!(b.len(), 1);
    assert!(matches!(b[0].reason, Reason::OutsideEveryPool(_)));
}
