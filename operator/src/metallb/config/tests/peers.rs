//! MetalLB 0.12 config problems of peers, BFD profiles and node selectors, and several at once.

use super::*;

#[test]
fn e34_peer_missing_my_asn() {
    refused(
        "peers:\n- peer-asn: 64501\n  peer-address: 10.1.1.1\n",
        "peer #1 (10.1.1.1): my-asn is required: the local AS number (1-4294967295)",
    );
}

#[test]
fn e35_peer_zero_peer_asn() {
    refused(
        "peers:\n- my-asn: 64500\n  peer-asn: 0\n  peer-address: 10.1.1.1\n",
        "peer #1 (10.1.1.1): peer-asn is required: 0 is not an AS number",
    );
}

#[test]
fn e36_peer_asn_too_large() {
    refused(
        &peer("").replace("64501", "4294967296"),
        "peer #1 (10.1.1.1): peer-asn 4294967296 is out of range: it must be between 0 and 4294967295",
    );
}

#[test]
fn e37_peer_asn_quoted_string() {
    refused(
        &peer("").replace("64501", "\"64501\""),
        "peer #1 (10.1.1.1): peer-asn must be a whole number, found a string",
    );
}

#[test]
fn e38_peer_asn_fraction() {
    refused(
        &peer("").replace("64501", "64501.5"),
        "peer #1 (10.1.1.1): peer-asn 64501.5 is out of range: it must be between 0 and 4294967295",
    );
}

#[test]
fn e39_peer_missing_address() {
    refused(
        "peers:\n- my-asn: 64500\n  peer-asn: 64501\n",
        "peer #1: peer-address is required: the address of the BGP router to peer with",
    );
}

#[test]
fn e40_peer_bad_address() {
    refused(
        &peer("").replace("10.1.1.1", "10.1.1"),
        "peer #1 (10.1.1): peer-address \"10.1.1\" is not an IP address",
    );
}

#[test]
fn e41_peer_bad_source_and_router_id() {
    let e = errors(&peer("  source-address: nope\n  router-id: 1.2.3.4.5\n"));
    assert_eq!(
        e,
        vec![
            "peer #1 (10.1.1.1): source-address \"nope\" is not an IP address",
            "peer #1 (10.1.1.1): router-id \"1.2.3.4.5\" is not an IP address"
        ]
    );
}

#[test]
fn e42_peer_port_out_of_range() {
    refused(
        &peer("  peer-port: 70000\n"),
        "peer #1 (10.1.1.1): peer-port 70000 is out of range: it must be between 0 and 65535",
    );
}

#[test]
fn e43_hold_time_without_unit() {
    refused(
        &peer("  hold-time: 90\n"),
        "peer #1 (10.1.1.1): hold-time: \"90\" is missing a unit (ns, us, ms, s, m, h)",
    );
}

#[test]
fn e44_hold_time_too_short() {
    refused(
        &peer("  hold-time: 2s\n"),
        "peer #1 (10.1.1.1): hold-time \"2s\" is too short: it must be 0 or at least 3s",
    );
}

#[test]
fn e45_keepalive_with_native_speaker() {
    refused(
        &peer("  keepalive-time: 10s\n"),
        "peer #1 (10.1.1.1): keepalive-time needs the FRR speaker; this MetalLB runs the native BGP speaker",
    );
}

#[test]
fn e46_keepalive_above_hold_in_frr_mode() {
    let e = errors_in(
        &peer("  hold-time: 30s\n  keepalive-time: 40s\n"),
        SpeakerMode::Frr,
    );
    assert_eq!(
        e,
        vec!["peer #1 (10.1.1.1): keepalive-time 40s is longer than hold-time 30s; it must not be"]
    );
}

#[test]
fn e47_ebgp_multihop_on_ibgp() {
    refused(
        &peer("  ebgp-multihop: true\n").replace("64501", "64500"),
        "peer #1 (10.1.1.1): ebgp-multihop is set but my-asn equals peer-asn (an iBGP session); remove one",
    );
}

#[test]
fn e48_duplicate_peers_after_defaults() {
    let text = format!(
        "{}- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 10.1.1.1\n  peer-port: 179\n",
        peer("")
    );
    refused(
        &text,
        "peer #2 (10.1.1.1): is identical to peer #1 (after defaults): peers must be unique",
    );
}

#[test]
fn e49_peer_unknown_field() {
    let e = errors(&peer("  peer-asm: 1\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("peer #1 (10.1.1.1): unknown field \"peer-asm\""),
        "{e:?}"
    );
}

#[test]
fn e50_bfd_profile_with_native_speaker() {
    let e = errors("bfd-profiles:\n- name: fast\n");
    assert_eq!(
        e,
        vec![
            "config: bfd-profiles needs the FRR speaker; this MetalLB runs the native BGP speaker"
        ]
    );
}

#[test]
fn e51_peer_references_missing_bfd_profile() {
    let e = errors_in(&peer("  bfd-profile: slow\n"), SpeakerMode::Frr);
    assert_eq!(
        e,
        vec!["peer #1 (10.1.1.1): bfd-profile \"slow\" is not defined in bfd-profiles"]
    );
}

#[test]
fn e52_bfd_ranges() {
    let e = errors_in(
        "bfd-profiles:\n- name: x\n  detect-multiplier: 1\n  receive-interval: 9\n  transmit-interval: 60001\n  echo-interval: 5\n  minimum-ttl: 255\n",
        SpeakerMode::Frr,
    );
    assert_eq!(
        e,
        vec![
            "bfd profile #1 \"x\": receive-interval 9 is out of range: it must be between 10 and 60000",
            "bfd profile #1 \"x\": transmit-interval 60001 is out of range: it must be between 10 and 60000",
            "bfd profile #1 \"x\": detect-multiplier 1 is out of range: it must be between 2 and 255",
            "bfd profile #1 \"x\": echo-interval 5 is out of range: it must be between 10 and 60000",
            "bfd profile #1 \"x\": minimum-ttl 255 is out of range: it must be between 1 and 254",
        ]
    );
}

#[test]
fn e53_bfd_duplicate_and_unnamed() {
    let e = errors_in(
        "bfd-profiles:\n- name: x\n- name: x\n- echo-mode: true\n",
        SpeakerMode::Frr,
    );
    assert_eq!(
        e,
        vec![
            "bfd profile #2 \"x\": bfd profile name \"x\" is used twice",
            "bfd profile #3: name is required: peers refer to BFD profiles by name",
        ]
    );
}

#[test]
fn e54_node_selector_bad_operator() {
    refused(
        &peer(
            "  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: Equals\n      values: [a]\n",
        ),
        "peer #1 (10.1.1.1): node-selectors: operator \"Equals\" on \"rack\" is not one of In, NotIn, Exists, DoesNotExist",
    );
}

#[test]
fn e55_node_selector_in_without_values() {
    refused(
        &peer("  node-selectors:\n  - match-expressions:\n    - key: rack\n      operator: In\n"),
        "peer #1 (10.1.1.1): node-selectors: operator In on \"rack\" needs at least one value",
    );
}

#[test]
fn e56_node_selector_bad_label() {
    let e = errors(&peer(
        "  node-selectors:\n  - match-labels:\n      'bad key!': x\n",
    ));
    assert_eq!(
        e,
        vec!["peer #1 (10.1.1.1): node-selectors: \"bad key!\" is not a valid label key"]
    );
}

#[test]
fn e57_several_problems_are_all_reported() {
    let text = "\
peers:
- my-asn: 0
  peer-asn: 64501
  peer-address: nowhere
address-pools:
- name: a
  protocol: l2
  addresses: [10.0.0.0/24]
- name: b
  protocol: layer2
  addresses: [10.0.0.5/32]
";
    let e = errors(text);
    assert_eq!(
        e,
        vec![
            "peer #1 (nowhere): my-asn is required: 0 is not an AS number",
            "peer #1 (nowhere): peer-address \"nowhere\" is not an IP address",
            "address pool #1 \"a\": protocol \"l2\" is unknown: use \"layer2\" or \"bgp\" (lower case)",
            "address pool #2 \"b\": addresses \"10.0.0.5/32\" (10.0.0.5/32) overlap 10.0.0.0/24 of pool \"a\": pools may not share addresses",
        ],
        "a refused pool's addresses still count for overlaps"
    );
}

#[test]
fn e58_wrong_type_for_addresses_list() {
    refused(
        "address-pools:\n- name: p\n  protocol: layer2\n  addresses: 10.0.0.0/24\n",
        "address pool #1 \"p\": addresses must be a list, found a string",
    );
}

#[test]
fn e59_duplicate_name_of_a_refused_pool() {
    let e = errors(
        "address-pools:\n- name: a\n  protocol: l2\n  addresses: [10.0.0.0/24]\n- name: a\n  protocol: layer2\n  addresses: [10.1.0.0/24]\n",
    );
    assert_eq!(
        e,
        vec![
            "address pool #1 \"a\": protocol \"l2\" is unknown: use \"layer2\" or \"bgp\" (lower case)",
            "address pool #2 \"a\": pool name \"a\" is used twice: pool names must be unique",
        ]
    );
}

#[test]
fn error_list_display_joins_everything() {
    let err = parse(
        "address-pools:\n- name: a\n- name: a\n",
        SpeakerMode::Native,
    )
    .unwrap_err();
    // Each pool lacks protocol and addresses; the second also repeats the name.
    assert_eq!(err.0.len(), 5);
    assert!(err.to_string().contains("; "), "{err}");
}

#[test]
fn community_parser() {
    assert_eq!(parse_community("65535:65282"), Ok((65535 << 16) | 65282));
    assert_eq!(parse_community("0:0"), Ok(0));
    assert!(parse_community("1").is_err());
    assert!(parse_community("a:1").is_err());
    assert!(parse_community("1:-1").is_err());
}
