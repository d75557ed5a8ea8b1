use super::*;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// The guide's pool, 10.0.50.25-10.0.50.50, as MetalLB splits it into blocks.
fn guide() -> Vec<IpNet> {
    crate::metallb::cidr::parse_addresses("10.0.50.25-10.0.50.50").unwrap()
}

fn pool(name: &str, layer2: bool, bgp: bool, cidrs: Vec<IpNet>) -> PoolAddresses {
    PoolAddresses {
        name: name.into(),
        layer2,
        bgp,
        cidrs,
    }
}

fn claim(cluster: &str, segment: NodeSubnets, holds: bool, order: u64) -> Claim {
    Claim {
        app: "ws/metallb".into(),
        cluster: format!("ws/{cluster}"),
        segment,
        pools: vec![pool("default", true, false, guide())],
        holds,
        order,
    }
}

fn inferred(s: &[&str]) -> NodeSubnets {
    NodeSubnets::Inferred(nets(s))
}

#[test]
fn clusters_share_a_segment_when_their_node_subnets_overlap() {
    let a = inferred(&["172.31.0.0/24"]);
    assert_eq!(
        shared_subnet(&a, &NodeSubnets::Declared(nets(&["172.31.0.0/16"]))),
        Some("172.31.0.0/24".parse().unwrap())
    );
    assert_eq!(shared_subnet(&a, &inferred(&["172.31.1.0/24"])), None);
    assert_eq!(shared_subnet(&a, &NodeSubnets::Unknown), None);
}

#[test]
fn shared_addresses_are_merged_into_ranges() {
    assert_eq!(
        common_ranges(&guide(), &guide()),
        vec!["10.0.50.25-10.0.50.50"]
    );
    assert_eq!(
        common_ranges(&guide(), &nets(&["10.0.50.40/29", "10.0.50.50/32"])),
        vec!["10.0.50.40-10.0.50.47", "10.0.50.50"]
    );
    assert!(common_ranges(&guide(), &nets(&["10.0.51.0/24"])).is_empty());
    assert_eq!(
        common_ranges(&nets(&["fd00::/127"]), &nets(&["fd00::1/128"])),
        vec!["fd00::1"]
    );
}

#[test]
fn the_guides_pool_on_two_clusters_of_one_segment_overlaps_and_the_first_has_it() {
    let seg = || inferred(&["172.31.0.0/24"]);
    let (first, later) = (
        claim("attached-1", seg(), false, 1),
        claim("attached-2", seg(), false, 2),
    );
    let found = overlaps(&later, std::slice::from_ref(&first));
    assert_eq!(found.len(), 1);
    assert!(found[0].other_first);
    assert_eq!(
        found[0].describe(),
        "layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws/attached-1 (ws/metallb, pool \"default\") also does, on segment 172.31.0.0/24"
    );
    assert!(!overlaps(&first, std::slice::from_ref(&later))[0].other_first);
    // A cluster that holds the range has it first, whatever the order.
    let holder = claim("attached-2", seg(), true, 2);
    assert!(overlaps(&first, &[holder])[0].other_first);
    // Distinct segments, or the same cluster under another AppDeployment: nothing.
    let elsewhere = claim("attached-3", inferred(&["10.1.3.0/24"]), false, 0);
    assert!(overlaps(&later, &[elsewhere]).is_empty());
    let same = Claim {
        app: "other/metallb".into(),
        ..claim("attached-2", seg(), true, 0)
    };
    assert!(overlaps(&later, &[same]).is_empty());
}

#[test]
fn bgp_overlaps_are_anycast_and_layer2_against_bgp_is_none() {
    let seg = || inferred(&["172.31.0.0/24"]);
    let mut a = claim("attached-1", seg(), true, 1);
    let mut b = claim("attached-2", seg(), false, 2);
    a.pools = vec![pool("anycast", false, true, guide())];
    b.pools = vec![pool("anycast", false, true, guide())];
    assert_eq!(overlaps(&b, &[a.clone()])[0].mode, Mode::Bgp);
    b.pools = vec![pool("l2", true, false, guide())];
    assert!(overlaps(&b, &[a]).is_empty());
}

#[test]
fn the_policy_warns_holds_or_reports() {
    let seg = || inferred(&["172.31.0.0/24"]);
    let first = claim("attached-1", seg(), true, 1);
    let later = claim("attached-2", seg(), false, 2);
    let found = || overlaps(&later, std::slice::from_ref(&first));
    let policy = |layer2, bgp| AddressSharing { layer2, bgp };
    use SharingPolicy::*;
    assert!(matches!(
        decide(&later, found(), &AddressSharing::default()),
        Verdict::Apply { ref warned, ref reported } if warned.len() == 1 && reported.is_empty()
    ));
    assert!(matches!(
        decide(&later, found(), &policy(Hold, Allow)),
        Verdict::Hold(ref o) if o.other == "ws/attached-1"
    ));
    assert!(matches!(
        decide(&later, found(), &policy(Allow, Hold)),
        Verdict::Apply { ref warned, ref reported } if warned.is_empty() && reported.len() == 1
    ));
    // The one that has it first is never held; nor is one that holds it already.
    let back = overlaps(&first, std::slice::from_ref(&later));
    assert!(matches!(
        decide(&first, back, &policy(Hold, Hold)),
        Verdict::Apply { ref warned, .. } if warned.len() == 1
    ));
    let both_hold = claim("attached-2", seg(), true, 2);
    let found = overlaps(&both_hold, std::slice::from_ref(&first));
    assert!(matches!(
        decide(&both_hold, found, &policy(Hold, Hold)),
        Verdict::Apply { ref warned, .. } if warned.len() == 1
    ));
}

#[test]
fn one_address_held_on_two_clusters_of_a_segment_is_a_conflict_naming_both_services() {
    let held = |svc: &str, ip: &str| Held {
        service: svc.into(),
        ip: ip.parse().unwrap(),
    };
    let here = [
        held("default/web", "10.0.50.25"),
        held("default/db", "10.0.50.26"),
    ];
    let neighbour = Neighbour {
        cluster: "ws/attached-2".into(),
        segment: "172.31.0.0/24".parse().unwrap(),
        held: vec![
            held("default/api", "10.0.50.25"),
            held("default/x", "10.0.50.30"),
        ],
    };
    let found = conflicts(&here, &[neighbour]);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].describe("ws/attached-1"),
        "10.0.50.25 is held by Service default/web on ws/attached-1 and by Service default/api on ws/attached-2, on segment 172.31.0.0/24"
    );
    assert!(conflicts(&here, &[]).is_empty());
}
