use super::*;
use crate::metallb::crs::{BgpMode, parse};
use serde_json::json;

/// A config from `name=addresses[;...]` pools, each with an L2Advertisement unless it ends in
/// `!` (no advertisement) or `^` (BGP).
fn cfg(pools: &[&str]) -> CrConfig {
    let mut items = Vec::new();
    for p in pools {
        let (spec, adv) = match p.strip_suffix('!') {
            Some(s) => (s, None),
            None => match p.strip_suffix('^') {
                Some(s) => (s, Some("BGPAdvertisement")),
                None => (*p, Some("L2Advertisement")),
            },
        };
        let (name, addrs) = spec.split_once('=').unwrap();
        let mut pool = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name}, "spec": {"addresses": addrs.split(';').collect::<Vec<_>>()}});
        if let Some(ns) = name.strip_prefix("only-") {
            pool["spec"]["serviceAllocation"] = json!({"namespaces": [ns]});
        }
        if name.ends_with("-nobuggy") {
            pool["spec"]["avoidBuggyIPs"] = json!(true);
        }
        items.push(pool);
        if let Some(kind) = adv {
            items.push(json!({"apiVersion": "metallb.io/v1beta1", "kind": kind,
                "metadata": {"name": format!("{name}-adv")}, "spec": {"ipAddressPools": [name]}}));
        }
    }
    parse(&items, Release::V0_15, BgpMode::Frr, &Default::default()).unwrap()
}

/// `ns/name@ip[,ip]`, optionally `+pool=P`, `+ask=IP`.
fn svc(text: &str) -> LiveService {
    let mut parts = text.split('+');
    let (id, ips) = parts.next().unwrap().split_once('@').unwrap();
    let (namespace, name) = id.split_once('/').unwrap();
    let mut s = LiveService {
        namespace: namespace.into(),
        name: name.into(),
        ips: ips
            .split(',')
            .filter(|i| !i.is_empty())
            .map(|i| i.parse().unwrap())
            .collect(),
        ..Default::default()
    };
    for extra in parts {
        match extra.split_once('=').unwrap() {
            ("pool", p) => {
                s.annotations
                    .insert("metallb.io/address-pool".into(), p.into());
            }
            ("oldpool", p) => {
                s.annotations
                    .insert("metallb.universe.tf/address-pool".into(), p.into());
            }
            ("ask", ip) => s.requested_ip = Some(ip.parse().unwrap()),
            other => panic!("{other:?}"),
        }
    }
    s
}

fn run(old: &[&str], new: &[&str], services: &[&str], release: Release) -> Vec<String> {
    let services: Vec<LiveService> = services.iter().map(|s| svc(s)).collect();
    predict(Some(&cfg(old)), &cfg(new), &services, release)
        .iter()
        .filter(|o| o.breaks())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn fates_on_0_15() {
    let a = "a=10.0.0.0-10.0.0.9";
    // (what, new pools, Services, the breaks expected)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        ("nothing changes", &[a], &["x/s@10.0.0.1"], &[]),
        (
            "a pool grows",
            &["a=10.0.0.0-10.0.0.20"],
            &["x/s@10.0.0.1"],
            &[],
        ),
        (
            "a pool shrinks past the IP: the first free address",
            &["a=10.0.0.0-10.0.0.4"],
            &["x/s@10.0.0.7", "x/t@10.0.0.0"],
            &["x/s would lose 10.0.0.7 (no pool of the new config holds it) and get 10.0.0.1"],
        ),
        (
            "the pool is renamed and a Service asks for the old name",
            &["b=10.0.0.0-10.0.0.9"],
            &["x/s@10.0.0.1+pool=a"],
            &[
                "x/s would lose 10.0.0.1 (it asks for pool \"a\", but its IP is now in pool \"b\") and stay pending: the pool \"a\" it asks for does not exist",
            ],
        ),
        (
            "two open pools: either may serve",
            &["b=10.1.0.0/30", "c=10.2.0.0/30"],
            &["x/s@10.0.0.1"],
            &[
                "x/s would lose 10.0.0.1 (no pool of the new config holds it) and get a new IP from pool b or c",
            ],
        ),
        (
            "no room anywhere",
            &["a=10.0.0.0/32"],
            &["x/s@10.0.0.0", "x/t@10.0.0.5"],
            &[
                "x/t would lose 10.0.0.5 (no pool of the new config holds it) and stay pending: no pool that admits it has a free address",
            ],
        ),
        (
            "all pools removed",
            &[],
            &["x/s@10.0.0.1"],
            &[
                "x/s would lose 10.0.0.1 (the new config has no pools) and stay pending: no pool that admits it has a free address",
            ],
        ),
        (
            "a requested IP outside every pool",
            &["a=10.0.0.0-10.0.0.4"],
            &["x/s@10.0.0.7+ask=10.0.0.7"],
            &[
                "x/s would lose 10.0.0.7 (no pool of the new config holds it) and stay pending: its requested IP 10.0.0.7 is in no pool that admits it",
            ],
        ),
        (
            "the pool now admits only another namespace",
            &["only-y=10.0.0.0-10.0.0.9", "b=10.1.0.0/31"],
            &["x/s@10.0.0.1", "y/t@10.0.0.2"],
            &[
                "x/s would lose 10.0.0.1 (pool \"only-y\" no longer admits it (spec.serviceAllocation)) and get 10.1.0.0",
            ],
        ),
        (
            "avoidBuggyIPs takes .0 away",
            &["a-nobuggy=10.0.0.0/29"],
            &["x/s@10.0.0.0"],
            &["x/s would lose 10.0.0.0 (no pool of the new config holds it) and get 10.0.0.1"],
        ),
        (
            "the advertisement goes",
            &["a=10.0.0.0-10.0.0.9!"],
            &["x/s@10.0.0.1"],
            &[
                "x/s keeps 10.0.0.1, but no L2Advertisement or BGPAdvertisement covers pool \"a\" any more: nobody would announce it",
            ],
        ),
        (
            "layer2 becomes BGP",
            &["a=10.0.0.0-10.0.0.9^"],
            &["x/s@10.0.0.1"],
            &["x/s holds 10.0.0.1, whose pool \"a\" changes from layer2 to BGP announcement"],
        ),
        (
            "two Services cleared together take the first two free addresses, in either order",
            &["b=10.1.0.0/30"],
            &["x/s@10.0.0.1", "x/t@10.0.0.2"],
            &[
                "x/s would lose 10.0.0.1 (no pool of the new config holds it) and get one of 10.1.0.0,10.1.0.1",
                "x/t would lose 10.0.0.2 (no pool of the new config holds it) and get one of 10.1.0.0,10.1.0.1",
            ],
        ),
        (
            "three Services for two addresses: one stays pending, which one is MetalLB's order",
            &["b=10.1.0.0/31"],
            &["x/s@10.0.0.1", "x/t@10.0.0.2", "x/u@10.0.0.3"],
            &[
                "x/s would lose 10.0.0.1 (no pool of the new config holds it); 3 Services compete for 2 free address(es) of pool b (10.1.0.0,10.1.0.1): 1 of them stay pending",
                "x/t would lose 10.0.0.2 (no pool of the new config holds it); 3 Services compete for 2 free address(es) of pool b (10.1.0.0,10.1.0.1): 1 of them stay pending",
                "x/u would lose 10.0.0.3 (no pool of the new config holds it); 3 Services compete for 2 free address(es) of pool b (10.1.0.0,10.1.0.1): 1 of them stay pending",
            ],
        ),
    ];
    for (what, new, services, want) in cases {
        assert_eq!(&run(&[a], new, services, Release::V0_15), want, "{what}");
    }
}

#[test]
fn fates_on_0_13() {
    let a = "a=10.0.0.0-10.0.0.9";
    // A misfit refuses the whole config; other Services are untouched.
    assert_eq!(
        run(
            &[a],
            &["a=10.0.0.0-10.0.0.4"],
            &["x/s@10.0.0.7", "x/t@10.0.0.1"],
            Release::V0_13
        ),
        vec![
            "x/s holds 10.0.0.7, which no single pool of the new config contains: MetalLB 0.13 refuses the config, and a controller restart would renumber x/s"
        ]
    );
    // 0.13.5 reads only the metallb.universe.tf pool annotation.
    assert!(
        run(
            &[a],
            &["b=10.0.0.0-10.0.0.9"],
            &["x/s@10.0.0.1+pool=a"],
            Release::V0_13
        )
        .is_empty()
    );
    assert_eq!(
        run(
            &[a],
            &["b=10.0.0.0-10.0.0.9"],
            &["x/s@10.0.0.1+oldpool=a"],
            Release::V0_13
        ),
        vec![
            "x/s would lose 10.0.0.1 (it asks for pool \"a\", but its IP is now in pool \"b\") and stay pending: the pool \"a\" it asks for does not exist"
        ]
    );
}

#[test]
fn services_without_ips_are_not_listed() {
    let out = predict(None, &cfg(&[]), &[svc("x/pending@")], Release::V0_15);
    assert!(out.is_empty());
}

#[test]
fn a_service_free_to_use_several_pools_competes_for_each() {
    // x/s asks for pool b; x/t may draw from b or c: either may get b's first address.
    assert_eq!(
        run(
            &["a=10.0.0.0-10.0.0.9"],
            &["b=10.1.0.0/30", "c=10.2.0.0/30"],
            &["x/s@10.0.0.1+pool=b", "x/t@10.0.0.2"],
            Release::V0_15
        ),
        vec![
            "x/s would lose 10.0.0.1 (no pool of the new config holds it) and get one of 10.1.0.0,10.1.0.1",
            "x/t would lose 10.0.0.2 (no pool of the new config holds it) and get a new IP from pool b or c",
        ]
    );
}

#[test]
fn pools_admit_namespaces_by_label() {
    let items = vec![
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "team"},
               "spec": {"addresses": ["10.0.0.0/29"], "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]}}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "all"}}),
    ];
    let new = parse(&items, Release::V0_15, BgpMode::Frr, &Default::default()).unwrap();
    let mut inside = svc("a1/s@10.0.0.1");
    inside.namespace_labels.insert("team".into(), "a".into());
    let outside = svc("b1/t@10.0.0.2");
    let fates: Vec<bool> = predict(None, &new, &[inside, outside], Release::V0_15)
        .iter()
        .map(Outcome::breaks)
        .collect();
    assert_eq!(fates, vec![false, true]);
}

#[test]
fn what_a_pinned_pool_cannot_take_goes_to_the_open_pools() {
    // x/s and x/t are pinned to only-x (one address); the second falls back to the open pool.
    assert_eq!(
        run(
            &["a=10.0.0.0-10.0.0.9"],
            &["only-x=10.1.0.0/32", "b=10.2.0.0/30"],
            &["x/s@10.0.0.1", "x/t@10.0.0.2"],
            Release::V0_15
        ),
        vec![
            "x/s would lose 10.0.0.1 (no pool of the new config holds it) and get a new IP from pool only-x or b",
            "x/t would lose 10.0.0.2 (no pool of the new config holds it) and get a new IP from pool only-x or b",
        ]
    );
}
