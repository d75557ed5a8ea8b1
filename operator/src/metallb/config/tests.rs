use super::*;
use ipnet::IpNet;
use std::net::IpAddr;

const SEED_LAYER2: &str = "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.50.25-10.0.50.50\n";
const SEED_BGP: &str = "peers:\n- my-asn: 64500\n  peer-asn: 64500\n  peer-address: 172.17.0.4\naddress-pools:\n- name: my-ip-space\n  protocol: bgp\n  addresses:\n  - 172.40.100.0/24\n";

fn errors(text: &str) -> Vec<String> {
    errors_in(text, SpeakerMode::Native)
}

fn errors_in(text: &str, mode: SpeakerMode) -> Vec<String> {
    match parse(text, mode) {
        Ok(c) => panic!("expected {text:?} to be refused, parsed {c:?}"),
        Err(ConfigErrors(es)) => es.iter().map(ToString::to_string).collect(),
    }
}

/// Exactly one error, with exactly this text.
fn refused(text: &str, expected: &str) {
    assert_eq!(errors(text), vec![expected.to_string()], "config: {text}");
}

fn pool(extra: &str) -> String {
    format!("address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/24\n{extra}")
}

fn bgp_pool(extra: &str) -> String {
    format!("address-pools:\n- name: b\n  protocol: bgp\n  addresses:\n  - 10.0.0.0/24\n{extra}")
}

fn peer(extra: &str) -> String {
    format!("peers:\n- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 10.1.1.1\n{extra}")
}

// ---- valid configs ----

#[test]
fn seed_layer2_config_is_valid() {
    let c = parse(SEED_LAYER2, SpeakerMode::Native).unwrap();
    assert_eq!(c.pools.len(), 1);
    let p = &c.pools[0];
    assert_eq!(
        (
            p.name.as_str(),
            p.protocol,
            p.auto_assign,
            p.avoid_buggy_ips
        ),
        ("default", Protocol::Layer2, true, false)
    );
    assert_eq!(p.addresses, vec!["10.0.50.25-10.0.50.50".to_string()]);
    assert_eq!(p.capacity(), 26, "10.0.50.25 to 10.0.50.50 inclusive");
    assert!(p.owns(&"10.0.50.30".parse().unwrap()));
    assert!(!p.owns(&"10.0.50.51".parse().unwrap()));
}

#[test]
fn seed_bgp_config_is_valid() {
    let c = parse(SEED_BGP, SpeakerMode::Native).unwrap();
    let peer = &c.peers[0];
    assert_eq!(
        (
            peer.my_asn,
            peer.peer_asn,
            peer.peer_port,
            peer.hold_time_secs,
            peer.keepalive_time_secs
        ),
        (64500, 64500, 179, 90, 30)
    );
    assert_eq!(peer.peer_address, "172.17.0.4".parse::<IpAddr>().unwrap());
    let p = &c.pools[0];
    assert_eq!(
        (p.name.as_str(), p.protocol),
        ("my-ip-space", Protocol::Bgp)
    );
    assert_eq!(p.bgp_advertisements, vec![BgpAdvertisement::default()]);
    assert_eq!(p.capacity(), 256);
}

#[test]
fn empty_and_null_configs_are_valid_and_empty() {
    assert_eq!(parse("", SpeakerMode::Native).unwrap(), Config::default());
    assert_eq!(
        parse("~\n", SpeakerMode::Native).unwrap(),
        Config::default()
    );
    assert_eq!(
        parse("address-pools: []\n", SpeakerMode::Native).unwrap(),
        Config::default()
    );
}

#[test]
fn full_featured_valid_config() {
    let text = "\
bgp-communities:
  no-advertise: 65535:65282
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.1.1.1
  peer-port: 1179
  hold-time: 1m30s
  router-id: 10.1.1.254
  source-address: 10.1.1.2
  password: secret
  ebgp-multihop: true
  node-selectors:
  - match-labels:
      rack: a1
    match-expressions:
    - key: kubernetes.io/hostname
      operator: In
      values: [node-1, node-2]
address-pools:
- name: bgp-pool
  protocol: bgp
  avoid-buggy-ips: true
  auto-assign: false
  addresses:
  - 10.2.0.0/23
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-advertise, '64500:1']
  - aggregation-length: 24
- name: l2
  protocol: layer2
  addresses:
  - 10.3.0.10-10.3.0.20
";
    let c = parse(text, SpeakerMode::Native).unwrap();
    assert_eq!(c.communities["no-advertise"], (65535 << 16) | 65282);
    let p = &c.peers[0];
    assert_eq!(
        (
            p.peer_port,
            p.hold_time_secs,
            p.keepalive_time_secs,
            p.ebgp_multihop
        ),
        (1179, 90, 30, true)
    );
    assert_eq!(p.node_selectors[0].len(), 2);
    let b = c.pool("bgp-pool").unwrap();
    assert!(!b.auto_assign && b.avoid_buggy_ips);
    assert_eq!(b.capacity(), 508);
    assert!(!b.owns(&"10.2.0.255".parse().unwrap()));
    assert!(b.owns(&"10.2.0.254".parse().unwrap()));
    assert_eq!(
        b.bgp_advertisements[0].communities,
        [(65535u32 << 16) | 65282, (64500 << 16) | 1].into()
    );
    assert_eq!(
        c.pool_owning(&"10.3.0.15".parse().unwrap())
            .map(|p| p.name.as_str()),
        Some("l2")
    );
    assert_eq!(c.pool_owning(&"10.9.0.1".parse().unwrap()), None);
}

#[test]
fn yaml_11_booleans_and_whole_floats_are_accepted_like_yaml_v2() {
    let c = parse(
        &pool("  auto-assign: no\n  avoid-buggy-ips: yes\n"),
        SpeakerMode::Native,
    )
    .unwrap();
    assert!(!c.pools[0].auto_assign && c.pools[0].avoid_buggy_ips);
    let c = parse(&peer("  peer-port: 1179.0\n"), SpeakerMode::Native).unwrap();
    assert_eq!(c.peers[0].peer_port, 1179);
}

#[test]
fn host_bits_are_masked_like_metallb() {
    let c = parse(
        &pool("").replace("10.0.0.0/24", "10.0.0.77/24"),
        SpeakerMode::Native,
    )
    .unwrap();
    assert_eq!(
        c.pools[0].cidrs,
        vec!["10.0.0.0/24".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn frr_mode_allows_bfd_and_keepalive() {
    let text = "\
bfd-profiles:
- name: fast
  receive-interval: 10
  transmit-interval: 60000
  detect-multiplier: 2
  echo-interval: 50
  minimum-ttl: 254
  echo-mode: true
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.1.1.1
  hold-time: 9s
  keepalive-time: 3s
  bfd-profile: fast
address-pools:
- name: v6
  protocol: bgp
  addresses: ['fd00::/120']
";
    let c = parse(text, SpeakerMode::Frr).unwrap();
    assert_eq!(
        (c.peers[0].hold_time_secs, c.peers[0].keepalive_time_secs),
        (9, 3)
    );
    assert_eq!(c.bfd_profiles[0].detect_multiplier, Some(2));
    assert_eq!(c.pools[0].capacity(), 256);
}

#[test]
fn hold_time_zero_is_allowed() {
    let c = parse(&peer("  hold-time: 0s\n"), SpeakerMode::Native).unwrap();
    assert_eq!(
        (c.peers[0].hold_time_secs, c.peers[0].keepalive_time_secs),
        (0, 0)
    );
}

// ---- invalid configs: one test per rule, each asserting the error ----

#[test]
fn e01_invalid_yaml() {
    let e = errors("address-pools:\n- name: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("config: not valid YAML: line "), "{e:?}");
}

#[test]
fn e02_duplicate_keys() {
    let e = errors("address-pools: []\naddress-pools: []\n");
    assert!(e[0].starts_with("config: not valid YAML: line 2"), "{e:?}");
}

#[test]
fn e03_config_is_a_list() {
    refused(
        "- a\n",
        "config: the config must be a mapping, found a list",
    );
}

#[test]
fn e04_unknown_top_level_field() {
    refused(
        "adress-pools: []\n",
        "config: unknown field \"adress-pools\" (MetalLB 0.12 rejects unknown fields; allowed here: peers, bgp-communities, address-pools, bfd-profiles)",
    );
}

#[test]
fn e05_pools_not_a_list() {
    refused(
        "address-pools:\n  name: x\n",
        "config: address-pools must be a list, found a mapping",
    );
}

#[test]
fn e06_pool_not_a_mapping() {
    refused(
        "address-pools:\n- just-a-string\n",
        "address pool #1: the entry must be a mapping, found a string",
    );
}

#[test]
fn e07_pool_unknown_field() {
    refused(
        &pool("  adresses: [10.1.0.0/24]\n"),
        "address pool #1 \"p\": unknown field \"adresses\" (MetalLB 0.12 rejects unknown fields; allowed here: name, protocol, addresses, auto-assign, avoid-buggy-ips, bgp-advertisements)",
    );
}

#[test]
fn e08_pool_missing_name() {
    refused(
        "address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n",
        "address pool #1: name is required: Services pick a pool by name",
    );
}

#[test]
fn e09_pool_missing_protocol() {
    refused(
        "address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n",
        "address pool #1 \"p\": protocol is required: \"layer2\" or \"bgp\"",
    );
}

#[test]
fn e10_pool_protocol_is_case_sensitive() {
    refused(
        &pool("").replace("layer2", "Layer2"),
        "address pool #1 \"p\": protocol \"Layer2\" is unknown: use \"layer2\" or \"bgp\" (lower case)",
    );
}

#[test]
fn e11_pool_missing_addresses() {
    refused(
        "address-pools:\n- name: p\n  protocol: layer2\n",
        "address pool #1 \"p\": addresses is required: list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50",
    );
}

#[test]
fn e12_pool_empty_addresses() {
    let e = errors("address-pools:\n- name: p\n  protocol: layer2\n  addresses: []\n");
    assert_eq!(
        e,
        vec![
            "address pool #1 \"p\": addresses is required: list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50"
        ]
    );
}

#[test]
fn e13_bare_ip_is_not_a_cidr() {
    refused(
        &pool("").replace("10.0.0.0/24", "10.0.0.1"),
        "address pool #1 \"p\": addresses: \"10.0.0.1\" is neither a CIDR (e.g. 10.0.50.0/24) nor a range (e.g. 10.0.50.25-10.0.50.50)",
    );
}

#[test]
fn e14_prefix_too_long() {
    let e = errors(&pool("").replace("10.0.0.0/24", "10.0.0.0/33"));
    assert!(e[0].contains("\"10.0.0.0/33\" is neither a CIDR"), "{e:?}");
}

#[test]
fn e15_range_backwards() {
    refused(
        &pool("").replace("10.0.0.0/24", "10.0.0.50-10.0.0.25"),
        "address pool #1 \"p\": addresses: range \"10.0.0.50-10.0.0.25\": start 10.0.0.50 is after end 10.0.0.25",
    );
}

#[test]
fn e16_range_bad_start() {
    refused(
        &pool("").replace("10.0.0.0/24", "10.0.0.x-10.0.0.25"),
        "address pool #1 \"p\": addresses: range \"10.0.0.x-10.0.0.25\": start \"10.0.0.x\" is not an IP address",
    );
}

#[test]
fn e17_range_mixed_families() {
    let e = errors(&pool("").replace("10.0.0.0/24", "10.0.0.1-fd00::1"));
    assert_eq!(
        e,
        vec![
            "address pool #1 \"p\": addresses: range \"10.0.0.1-fd00::1\": start and end must both be IPv4 or both be IPv6"
        ]
    );
}

#[test]
fn e18_overlap_within_a_pool() {
    refused(
        "address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/24\n  - 10.0.0.128-10.0.0.130\n",
        "address pool #1 \"p\": addresses \"10.0.0.128-10.0.0.130\" (10.0.0.128/31) overlap 10.0.0.0/24 of pool \"p\": pools may not share addresses",
    );
}

#[test]
fn e19_overlap_across_pools() {
    let text = format!(
        "{}- name: q\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/16\n",
        pool("")
    );
    refused(
        &text,
        "address pool #2 \"q\": addresses \"10.0.0.0/16\" (10.0.0.0/16) overlap 10.0.0.0/24 of pool \"p\": pools may not share addresses",
    );
}

#[test]
fn e20_duplicate_pool_name() {
    let text = format!(
        "{}- name: p\n  protocol: layer2\n  addresses:\n  - 10.9.0.0/24\n",
        pool("")
    );
    refused(
        &text,
        "address pool #2 \"p\": pool name \"p\" is used twice: pool names must be unique",
    );
}

#[test]
fn e21_auto_assign_not_a_bool() {
    refused(
        &pool("  auto-assign: maybe\n"),
        "address pool #1 \"p\": auto-assign must be true or false, found a string",
    );
}

#[test]
fn e22_quoted_bool_is_a_string() {
    refused(
        &pool("  avoid-buggy-ips: \"true\"\n"),
        "address pool #1 \"p\": avoid-buggy-ips must be true or false, found a string",
    );
}

#[test]
fn e23_advertisements_on_layer2() {
    refused(
        &pool("  bgp-advertisements:\n  - aggregation-length: 32\n"),
        "address pool #1 \"p\": bgp-advertisements are only allowed in bgp pools, and this pool is layer2",
    );
}

#[test]
fn e24_aggregation_length_over_32() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - aggregation-length: 33\n"),
        "address pool #1 \"b\": bgp-advertisements[0].aggregation-length 33 is out of range: it must be between 0 and 32",
    );
}

#[test]
fn e25_aggregation_length_v6_over_128() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - aggregation-length-v6: 129\n"),
        "address pool #1 \"b\": bgp-advertisements[0].aggregation-length-v6 129 is out of range: it must be between 0 and 128",
    );
}

#[test]
fn e26_aggregation_shorter_than_pool_prefix() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - aggregation-length: 16\n"),
        "address pool #1 \"b\": bgp-advertisements #1: aggregation length 16 is shorter than prefix /24 of addresses \"10.0.0.0/24\"; it must be at least 24",
    );
}

#[test]
fn e27_duplicate_advertisements() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - localpref: 100\n  - localpref: 100\n"),
        "address pool #1 \"b\": bgp-advertisements #1 and #2 are identical",
    );
}

#[test]
fn e28_duplicate_community_in_advertisement() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - communities: ['64500:1', '64500:1']\n"),
        "address pool #1 \"b\": community \"64500:1\" is listed twice in one advertisement",
    );
}

#[test]
fn e29_community_half_too_large() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - communities: ['70000:1']\n"),
        "address pool #1 \"b\": community \"70000:1\" is invalid: the first half \"70000\" must be a number from 0 to 65535, or the name of an entry in bgp-communities",
    );
}

#[test]
fn e30_unknown_community_alias() {
    let e = errors(&bgp_pool(
        "  bgp-advertisements:\n  - communities: [no-such-alias]\n",
    ));
    assert_eq!(
        e,
        vec![
            "address pool #1 \"b\": community \"no-such-alias\" is invalid: it must be two numbers separated by a colon, like 64500:100, or the name of an entry in bgp-communities"
        ]
    );
}

#[test]
fn e31_bad_bgp_communities_entry() {
    refused(
        "bgp-communities:\n  mine: '1:2:3'\n",
        "bgp-communities \"mine\": community \"1:2:3\" is invalid: it must be two numbers separated by a colon, like 64500:100",
    );
}

#[test]
fn e32_localpref_negative() {
    refused(
        &bgp_pool("  bgp-advertisements:\n  - localpref: -1\n"),
        "address pool #1 \"b\": bgp-advertisements[0].localpref -1 is out of range: it must be between 0 and 4294967295",
    );
}

#[test]
fn e33_ipv6_bgp_pool_with_native_speaker() {
    refused(
        "address-pools:\n- name: v6\n  protocol: bgp\n  addresses: ['fd00::/120']\n",
        "address pool #1 \"v6\": bgp pool has IPv6 block fd00::/120; the native BGP speaker supports IPv4 only",
    );
}

/// Peers, BFD profiles, node selectors, and several problems at once.
mod peers;
