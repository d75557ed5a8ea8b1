use super::*;
use crate::metallb::config::{SpeakerMode, parse};
use crate::metallb::crs::{BgpMode, Release};
use serde_json::json;

fn svc(name: &str, ips: &[&str]) -> LiveService {
    LiveService {
        namespace: "default".into(),
        name: name.into(),
        ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn naming(name: &str, key: &str, pool: &str) -> LiveService {
    let mut s = svc(name, &[]);
    s.annotations.insert(key.into(), pool.into());
    s
}

/// Two layer2 pools of 10 and 4 addresses; `b` is not auto-assigned.
fn config() -> Config {
    parse(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.1-10.0.0.10\n- name: b\n  protocol: layer2\n  auto-assign: false\n  addresses:\n  - 10.0.1.0/30\n",
        SpeakerMode::Native,
    )
    .unwrap()
}

#[test]
fn held_addresses_are_counted_per_pool_and_once_when_shared() {
    let services = [
        svc("one", &["10.0.0.1"]),
        // Two Services sharing an address (allow-shared-ip) hold one.
        svc("two", &["10.0.0.2"]),
        svc("two-shared", &["10.0.0.2"]),
        svc("in-b", &["10.0.1.3"]),
        // Not from any pool (an address given by hand): counted nowhere.
        svc("elsewhere", &["192.168.9.9"]),
    ];
    let use_ = of_config(&config(), &services);
    let got: Vec<(&str, u128, u128, u128)> = use_
        .iter()
        .map(|p| (p.pool.as_str(), p.size, p.used, p.free()))
        .collect();
    assert_eq!(got, vec![("a", 10, 2, 8), ("b", 4, 1, 3)]);
}

#[test]
fn fill_levels() {
    // (size, used, fill)
    let cases = [
        (10, 0, Fill::Fine),
        (10, 8, Fill::Fine),
        (10, 9, Fill::NearlyFull),
        (10, 10, Fill::Full),
        (4, 3, Fill::Fine),
        (4, 4, Fill::Full),
        (0, 0, Fill::Full),
        (1000, 899, Fill::Fine),
        (1000, 900, Fill::NearlyFull),
        (1000, 999, Fill::NearlyFull),
        (u128::MAX, u128::MAX, Fill::Full),
        (u128::MAX, 1, Fill::Fine),
    ];
    for (size, used, fill) in cases {
        let p = PoolUse {
            pool: "p".into(),
            size,
            used,
            waiting: vec![],
        };
        assert_eq!(p.fill(), fill, "{used} of {size}");
    }
}

#[test]
fn waiting_services_are_named_on_the_pool_they_would_draw_from() {
    let mut asks_ip = svc("asks-b-ip", &[]);
    asks_ip.requested_ip = Some("10.0.1.2".parse().unwrap());
    let mut old_field = svc("old-field", &[]);
    old_field.pool = Some("b".into());
    let services = [
        svc("any", &[]),
        naming("names-b", "metallb.universe.tf/address-pool", "b"),
        naming("names-b-new", "metallb.io/address-pool", "b"),
        asks_ip,
        old_field,
        naming("names-gone", "metallb.io/address-pool", "gone"),
    ];
    let use_ = of_config(&config(), &services);
    assert_eq!(use_[0].waiting, vec!["default/any"]);
    assert_eq!(
        use_[1].waiting,
        vec![
            "default/names-b",
            "default/names-b-new",
            "default/asks-b-ip",
            "default/old-field"
        ]
    );
}

#[test]
fn resources_are_counted_like_the_configmap() {
    let items = [
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "default", "namespace": "metallb-system"},
               "spec": {"addresses": ["10.0.50.25-10.0.50.50"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "v6", "namespace": "metallb-system"},
               "spec": {"addresses": ["fd00::/64"]}}),
    ];
    let cfg = crate::metallb::crs::parse(&items, Release::V0_15, BgpMode::Frr, &Default::default())
        .unwrap();
    let use_ = of_crs(
        &cfg,
        &[svc("web", &["10.0.50.25"]), svc("v6", &["fd00::5"])],
    );
    assert_eq!(
        use_[0].to_string(),
        "pool \"default\": 1 of 26 addresses in use, 25 free"
    );
    assert_eq!(use_[1].size, 1 << 64);
    assert_eq!(use_[1].used, 1);
}

#[test]
fn a_shortfall_is_a_pool_smaller_than_what_its_services_hold() {
    let now = of_config(
        &config(),
        &[
            svc("x", &["10.0.0.1"]),
            svc("y", &["10.0.0.2"]),
            svc("z", &["10.0.0.3"]),
        ],
    );
    let smaller = parse(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses:\n  - 10.0.0.9-10.0.0.10\n- name: b\n  protocol: layer2\n  addresses:\n  - 10.0.1.0/31\n",
        SpeakerMode::Native,
    )
    .unwrap();
    let new = of_config(&smaller, &[]);
    assert_eq!(
        shortfalls(&now, &new),
        vec!["pool \"a\" would have 2 address(es) for the 3 its Services hold now"]
    );
    // Same size or larger: none.
    assert!(shortfalls(&now, &now).is_empty());
}
