use super::*;
use crate::metallb::config::{SpeakerMode, parse};
use crate::metallb::crs::{self, Announcement, BgpMode, Release};
use std::collections::BTreeSet;

const BGP: &str = "peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 172.17.0.4
  password: s3cret
  hold-time: 30s
- my-asn: 64500
  peer-asn: 64502
  peer-address: fd00::1
  node-selectors:
  - match-labels: {rack: a}
bgp-communities:
  nope: 65535:65282
address-pools:
- name: my-ip-space
  protocol: bgp
  addresses: [172.40.100.0/24]
  bgp-advertisements:
  - aggregation-length: 24
    communities: [nope, 64500:7]
  - localpref: 100
- name: default
  protocol: layer2
  auto-assign: false
  addresses: [10.0.50.25-10.0.50.50]
";

fn convert(text: &str) -> Vec<Value> {
    to_resources(&parse(text, SpeakerMode::Frr).unwrap(), "ws").unwrap()
}

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_guides_layer2_example() {
    let out = convert(
        "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.50.25-10.0.50.50\n",
    );
    assert_eq!(
        names(&out),
        vec!["IPAddressPool/default", "L2Advertisement/default"]
    );
    assert_eq!(
        out[0]["spec"],
        json!({"addresses": ["10.0.50.25-10.0.50.50"]})
    );
    assert_eq!(out[1]["spec"], json!({"ipAddressPools": ["default"]}));
    assert_eq!(out[0]["metadata"]["namespace"], "ws");
}

#[test]
fn every_field_carries_over_and_the_password_goes_into_a_secret() {
    let out = convert(BGP);
    assert_eq!(
        names(&out),
        vec![
            "IPAddressPool/my-ip-space",
            "BGPAdvertisement/my-ip-space-1",
            "BGPAdvertisement/my-ip-space-2",
            "IPAddressPool/default",
            "L2Advertisement/default",
            "Secret/peer-172-17-0-4-64501-password",
            "BGPPeer/peer-172-17-0-4-64501",
            "BGPPeer/peer-fd00--1-64502",
        ]
    );
    assert_eq!(
        out[1]["spec"],
        json!({"ipAddressPools": ["my-ip-space"], "aggregationLength": 24, "communities": ["64500:7", "65535:65282"]})
    );
    assert_eq!(out[2]["spec"]["localPref"], 100);
    assert_eq!(out[3]["spec"]["autoAssign"], false);
    assert_eq!(out[5]["type"], "kubernetes.io/basic-auth");
    assert_eq!(out[5]["data"]["password"], "czNjcmV0");
    let peer = &out[6]["spec"];
    assert!(peer.get("password").is_none(), "{peer}");
    assert_eq!(
        peer["passwordSecret"]["name"],
        "peer-172-17-0-4-64501-password"
    );
    assert_eq!(peer["holdTime"], "30s");
    assert!(peer.get("keepaliveTime").is_none());
    assert_eq!(
        out[7]["spec"]["nodeSelectors"],
        json!([{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}])
    );
    assert!(!serde_json::to_string(&out).unwrap().contains("s3cret"));
}

#[test]
fn the_resources_mean_what_the_config_meant() {
    let cfg = parse(BGP, SpeakerMode::Frr).unwrap();
    let out = to_resources(&cfg, "ws").unwrap();
    let secrets = BTreeSet::from(["peer-172-17-0-4-64501-password".to_string()]);
    let crs = crs::parse(&out, Release::V0_15, BgpMode::Frr, &secrets).unwrap();
    for pool in &cfg.pools {
        let p = crs.pool(&pool.name).unwrap();
        assert_eq!(p.cidrs, pool.cidrs);
        assert_eq!(p.capacity(), pool.capacity());
        let want = match pool.protocol {
            Protocol::Layer2 => Announcement::Layer2,
            Protocol::Bgp => Announcement::Bgp,
        };
        assert_eq!(crs.announced(p), BTreeSet::from([want]));
    }
    assert_eq!(crs.peers.len(), 2);
}

#[test]
fn reordering_peers_renames_nothing() {
    let a = "peers:\n- {my-asn: 1, peer-asn: 2, peer-address: 10.0.0.1}\n- {my-asn: 1, peer-asn: 3, peer-address: 10.0.0.2}\n";
    let b = "peers:\n- {my-asn: 1, peer-asn: 3, peer-address: 10.0.0.2}\n- {my-asn: 1, peer-asn: 2, peer-address: 10.0.0.1}\n";
    let mut x = names(&convert(a));
    let mut y = names(&convert(b));
    x.sort();
    y.sort();
    assert_eq!(x, y);
    // Two peers on one address and ASN are told apart by content, not position.
    let twins = "peers:\n- {my-asn: 1, peer-asn: 2, peer-address: 10.0.0.1, node-selectors: [{match-labels: {r: a}}]}\n- {my-asn: 1, peer-asn: 2, peer-address: 10.0.0.1, node-selectors: [{match-labels: {r: b}}]}\n";
    let n = names(&convert(twins));
    assert_eq!(n.len(), 2);
    assert_ne!(n[0], n[1]);
    assert!(n[0].starts_with("BGPPeer/peer-10-0-0-1-2-"), "{n:?}");
}

#[test]
fn a_pool_name_that_is_no_object_name_is_refused() {
    let cfg = parse(
        "address-pools:\n- name: My_Pool\n  protocol: layer2\n  addresses: [10.0.0.0/30]\n",
        SpeakerMode::Native,
    )
    .unwrap();
    let e = to_resources(&cfg, "ws").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "address pool \"My_Pool\": is not a valid object name (lower-case letters, digits, '-', '.'); rename it first, with the Services that ask for it"
    );
}
