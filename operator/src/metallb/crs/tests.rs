use super::*;
use serde_json::json;

fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"name": name, "namespace": "metallb-system"},
           "spec": {"addresses": addresses}})
}

fn l2(name: &str, pools: &[&str]) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
           "metadata": {"name": name}, "spec": {"ipAddressPools": pools}})
}

fn messages(items: &[Value], release: Release, mode: BgpMode) -> Vec<String> {
    match parse(items, release, mode, &BTreeSet::new()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_guides_layer2_pool_as_resources() {
    let items = [
        pool("default", &["10.0.50.25-10.0.50.50"]),
        l2("default", &["default"]),
    ];
    let cfg = parse(&items, Release::V0_15, BgpMode::Frr, &BTreeSet::new()).unwrap();
    let p = cfg.pool("default").unwrap();
    assert_eq!(p.capacity(), 26);
    assert!(p.auto_assign);
    assert_eq!(cfg.announced(p), BTreeSet::from([Announcement::Layer2]));
    assert_eq!(
        cfg.pool_for(&["10.0.50.30".parse().unwrap()]).unwrap().name,
        "default"
    );
    assert!(cfg.pool_for(&["10.0.50.51".parse().unwrap()]).is_none());
}

#[test]
fn every_problem_is_named_with_object_and_field() {
    let mut bad = pool("b", &["10.0.50.0/24", "not-an-ip"]);
    bad["spec"]["autoassign"] = json!(true);
    let items = [
        pool("a", &["10.0.50.10-10.0.50.20"]),
        pool("c", &["10.0.50.15/32"]),
        bad,
        pool("empty", &[]),
    ];
    assert_eq!(
        messages(&items, Release::V0_15, BgpMode::Frr),
        vec![
            "IPAddressPool/c spec.addresses[0]: 10.0.50.15/32 overlaps 10.0.50.12/30 of IPAddressPool/a",
            "IPAddressPool/b spec: unknown field `autoassign`, expected one of `addresses`, `autoAssign`, `avoidBuggyIPs`, `serviceAllocation`",
            "IPAddressPool/empty spec.addresses: list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50",
        ]
    );
}

#[test]
fn fields_a_release_does_not_know_are_refused() {
    let mut p = pool("a", &["10.0.50.0/28"]);
    p["spec"]["serviceAllocation"] = json!({"namespaces": ["team-a"]});
    assert_eq!(
        messages(&[p.clone()], Release::V0_13, BgpMode::Frr),
        vec![
            "IPAddressPool/a spec.serviceAllocation: is not a field in MetalLB 0.13 (it came later)"
        ]
    );
    let cfg = parse(&[p], Release::V0_15, BgpMode::Frr, &BTreeSet::new()).unwrap();
    let alloc = cfg.pools[0].allocation.as_ref().unwrap();
    assert_eq!(alloc.namespaces, BTreeSet::from(["team-a".to_string()]));
    assert!(alloc.service_selectors.is_empty());
}

#[test]
fn an_empty_service_allocation_admits_every_service() {
    let mut p = pool("a", &["10.0.50.0/28"]);
    p["spec"]["serviceAllocation"] = json!({"priority": 5});
    let cfg = parse(&[p], Release::V0_15, BgpMode::Frr, &BTreeSet::new()).unwrap();
    assert_eq!(
        cfg.pools[0].allocation.as_ref().unwrap().service_selectors,
        vec![LabelSelector::default()]
    );
}

#[test]
fn advertisements_select_pools_by_name_label_or_all() {
    let mut labelled = pool("lab", &["10.0.60.0/28"]);
    labelled["metadata"]["labels"] = json!({"zone": "a"});
    let bgp = json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "by-label"},
        "spec": {"ipAddressPoolSelectors": [{"matchLabels": {"zone": "a"}}]}});
    let all = json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "all"}});
    let items = [pool("plain", &["10.0.50.0/28"]), labelled, bgp, all];
    let cfg = parse(&items, Release::V0_15, BgpMode::Frr, &BTreeSet::new()).unwrap();
    assert_eq!(
        cfg.announced(cfg.pool("lab").unwrap()),
        BTreeSet::from([Announcement::Layer2, Announcement::Bgp])
    );
    assert_eq!(
        cfg.announced(cfg.pool("plain").unwrap()),
        BTreeSet::from([Announcement::Layer2])
    );
}

#[test]
fn bgp_rules_from_metallb() {
    let peer = |spec: Value| json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"}, "spec": spec});
    let adv = json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "agg"}, "spec": {"aggregationLength": 24, "communities": ["no-such", "64500:1"]}});
    let items = [
        pool("narrow", &["10.0.0.0/28"]),
        adv,
        peer(
            json!({"myASN": 64500, "peerAddress": "10.0.0.1", "holdTime": "1s", "bfdProfile": "x",
                    "password": "a", "passwordSecret": {"name": "s"}}),
        ),
    ];
    assert_eq!(
        messages(&items, Release::V0_15, BgpMode::Native),
        vec![
            "BGPAdvertisement/agg spec.communities[0]: \"no-such\": it must be two numbers separated by a colon, like 64500:100 (or the name of a Community alias)",
            "BGPAdvertisement/agg spec.aggregationLength: 24 is shorter than prefix /28 of \"10.0.0.0/28\" in IPAddressPool/narrow",
            "BGPPeer/p spec.peerASN: missing (or set spec.dynamicASN)",
            "BGPPeer/p spec.holdTime: hold time 1s must be 0 or at least 3s",
            "BGPPeer/p spec.password: set either password or passwordSecret, not both",
            "BGPPeer/p spec.passwordSecret.name: no kubernetes.io/basic-auth Secret \"s\" with a password key",
            "BGPPeer/p spec.bfdProfile: no BFDProfile \"x\"",
            "BGPPeer/p spec.bfdProfile: needs the FRR speaker (speaker.frr.enabled)",
        ]
    );
}

#[test]
fn a_peer_with_its_password_in_a_secret_is_fine() {
    let items = [
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "passwordSecret": {"name": "pw"}}}),
    ];
    let secrets = BTreeSet::from(["pw".to_string()]);
    let cfg = parse(&items, Release::V0_13, BgpMode::Native, &secrets).unwrap();
    assert_eq!(cfg.peers, vec!["p"]);
}

#[test]
fn duplicates_and_foreign_objects() {
    let items = [
        pool("a", &["10.0.50.0/28"]),
        pool("a", &["10.0.51.0/28"]),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        json!({"apiVersion": "example.com/v1", "kind": "IPAddressPool", "metadata": {"name": "z"}}),
    ];
    assert_eq!(
        messages(&items, Release::V0_15, BgpMode::Frr),
        vec![
            "IPAddressPool/z apiVersion: \"example.com/v1\" is not in the metallb.io group",
            "IPAddressPool/a: defined twice",
        ]
    );
}

#[test]
fn what_adds_addresses_is_written_before_what_takes_them() {
    let old = parse(
        &[
            pool("grow", &["10.0.50.0/29"]),
            pool("shrink", &["10.0.51.0/29"]),
            pool("same", &["10.0.52.0/29"]),
        ],
        Release::V0_15,
        BgpMode::Frr,
        &BTreeSet::new(),
    )
    .unwrap();
    let mut narrowed = pool("same", &["10.0.52.0/29"]);
    narrowed["spec"]["serviceAllocation"] = json!({"namespaces": ["a"]});
    let new = [
        pool("shrink", &["10.0.51.0/30"]),
        pool("grow", &["10.0.50.0/28"]),
        narrowed,
        pool("fresh", &["10.0.60.0/29"]),
        l2("all", &[]),
    ];
    assert_eq!(
        phases(Some(&old), &new),
        vec![
            Phase::Narrow,
            Phase::Add,
            Phase::Narrow,
            Phase::Add,
            Phase::Add
        ]
    );
    assert_eq!(phases(None, &new[..1]), vec![Phase::Add]);
}

/// A range moving from one pool to another: the pool that takes it is written after the one
/// that gives it up (MetalLB's webhook refuses two pools holding it at once).
#[test]
fn what_takes_up_given_up_addresses_comes_after() {
    let old = parse(
        &[pool("a", &["10.0.50.0/28"]), pool("b", &["10.0.51.0/28"])],
        Release::V0_15,
        BgpMode::Frr,
        &BTreeSet::new(),
    )
    .unwrap();
    let new = [
        pool("a", &["10.0.50.0/29"]),
        pool("b", &["10.0.51.0/28", "10.0.50.8/30"]),
        pool("c", &["10.0.50.12/30"]),
        pool("d", &["10.0.60.0/29"]),
    ];
    assert_eq!(
        phases(Some(&old), &new),
        vec![Phase::Narrow, Phase::Fill, Phase::Fill, Phase::Add]
    );
    // b narrowing elsewhere while it takes a's range still waits for a.
    let new = [
        pool("a", &["10.0.50.0/29"]),
        pool("b", &["10.0.51.0/29", "10.0.50.8/29"]),
    ];
    assert_eq!(phases(Some(&old), &new), vec![Phase::Narrow, Phase::Fill]);
}

fn bgp_adv(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
           "metadata": {"name": name}, "spec": spec})
}

fn peer(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
           "metadata": {"name": name}, "spec": spec})
}

/// Each field 0.16 added, valid: what 0.16 accepts and 0.15 and 0.13 do not know.
fn fields_since_v016() -> Vec<Value> {
    let mut l2 = l2("l2", &["default"]);
    l2["spec"]["serviceSelectors"] = json!([{"matchLabels": {"tier": "web"}}]);
    l2["spec"]["preferredNodeSelectors"] =
        json!([{"weight": 50, "preference": {"matchLabels": {"rack": "a"}}}]);
    vec![
        pool("default", &["10.0.50.25-10.0.50.50"]),
        l2,
        bgp_adv(
            "bgp",
            json!({"ipAddressPools": ["default"], "asPathPrepend": 2,
                   "serviceSelectors": [{"matchLabels": {"tier": "web"}}]}),
        ),
        peer(
            "p",
            json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "localASN": 64999}),
        ),
    ]
}

#[test]
fn fields_0_16_added_are_known_to_0_16_only() {
    let items = fields_since_v016();
    assert_eq!(
        messages(&items, Release::V0_16, BgpMode::Frr),
        Vec::<String>::new()
    );
    let came_later = |v| format!("is not a field in MetalLB {v} (it came later)");
    for release in [Release::V0_15, Release::V0_13] {
        let got = messages(&items, release, BgpMode::Frr);
        for field in [
            "L2Advertisement/l2 spec.serviceSelectors",
            "L2Advertisement/l2 spec.preferredNodeSelectors",
            "BGPAdvertisement/bgp spec.serviceSelectors",
            "BGPAdvertisement/bgp spec.asPathPrepend",
            "BGPPeer/p spec.localASN",
        ] {
            let want = format!("{field}: {}", came_later(release.version()));
            assert!(got.contains(&want), "{release:?}: {want} not in {got:#?}");
        }
    }
}

#[test]
fn the_0_16_fields_have_0_16_rules() {
    let mut items = fields_since_v016();
    items[1]["spec"]["preferredNodeSelectors"][0]["weight"] = json!(0);
    items[1]["spec"]["asPathPrepend"] = json!(1);
    items[2]["spec"]["asPathPrepend"] = json!(11);
    items[2]["spec"]["aggregationLength"] = json!(30);
    items[2]["spec"]["preferredNodeSelectors"] = items[1]["spec"]["preferredNodeSelectors"].clone();
    items.push(bgp_adv(
        "dup",
        json!({"serviceSelectors": [{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}]}),
    ));
    assert_eq!(
        messages(&items, Release::V0_16, BgpMode::Frr),
        vec![
            "L2Advertisement/l2 spec.asPathPrepend: is a BGPAdvertisement field",
            "L2Advertisement/l2 spec.preferredNodeSelectors[0].weight: 0 is not between 1 and 100",
            "BGPAdvertisement/bgp spec.preferredNodeSelectors: is an L2Advertisement field",
            "BGPAdvertisement/bgp spec.asPathPrepend: 11 is not between 1 and 10",
            "BGPAdvertisement/bgp spec.serviceSelectors: and aggregationLength are mutually exclusive (aggregationLength must be 32 or unset)",
            "BGPAdvertisement/dup spec.serviceSelectors[1]: the same selector is listed twice",
        ]
    );
}
