//! Safety verdict for a MetalLB config change: 5,000 LoadBalancer Services, 50 pools.
//! Goal: under 10 ms. Measured: parse of the new config + the check (the old config parsed too,
//! for the protocol comparison), as the operator does per cluster; for MetalLB 0.12 (ConfigMap)
//! and for MetalLB 0.15 (resources, with the renumbering prediction), a safe change, one
//! that renumbers 200 Services, and one where two pools narrow (predicted state by state).

use criterion::{Criterion, criterion_group, criterion_main};
use kommander_operator::checks::adapter::Adapter;
use kommander_operator::checks::metallb_crs;
use kommander_operator::metallb::config::{SpeakerMode, parse};
use kommander_operator::metallb::safety::{self, LiveService};
use kommander_operator::rollout::LiveState;
use serde_json::{Value, json};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

fn pools(n: u8, shift: u8) -> String {
    let mut text = String::from("address-pools:\n");
    for p in 0..n {
        // 50 pools of a /24 each; `shift` moves the last pool so one pool changes.
        let third = if p == n - 1 { p + shift } else { p };
        text.push_str(&format!(
            "- name: pool-{p}\n  protocol: layer2\n  addresses:\n  - 10.20.{third}.0/24\n"
        ));
    }
    text
}

/// 5,000 Services spread over the first 49 pools (100 per pool, IPs .1-.100).
fn services() -> Vec<LiveService> {
    (0..5000u32)
        .map(|i| LiveService {
            namespace: format!("ns-{}", i % 50),
            name: format!("svc-{i}"),
            ips: vec![IpAddr::V4(Ipv4Addr::new(
                10,
                20,
                (i / 100 % 49) as u8,
                (i % 100 + 1) as u8,
            ))],
            ..Default::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let old_text = pools(50, 0);
    let new_text = pools(50, 100);
    let services = services();
    let old = parse(&old_text, SpeakerMode::Native).expect("old config is valid");
    let verdict = safety::check(
        Some(&old),
        &parse(&new_text, SpeakerMode::Native).expect("valid"),
        &services,
    );
    assert!(verdict.is_empty(), "the shift only moves the unused pool");

    c.bench_function("safety_verdict_5000_services_50_pools", |b| {
        b.iter(|| {
            let old = parse(black_box(&old_text), SpeakerMode::Native).expect("valid");
            let new = parse(black_box(&new_text), SpeakerMode::Native).expect("valid");
            black_box(safety::check(Some(&old), &new, black_box(&services)))
        })
    });
}

/// 50 IPAddressPools of a /24 and one L2Advertisement, as the operator's config text;
/// `shift` moves the last pool, `shrink` cuts the first one to .101-.255.
fn resources(shift: u8, shrink: bool) -> String {
    let mut items: Vec<Value> = (0..50u8)
        .map(|p| {
            let third = if p == 49 { p + shift } else { p };
            let range = if p == 0 && shrink {
                format!("10.20.{third}.101-10.20.{third}.255")
            } else {
                format!("10.20.{third}.0/24")
            };
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                   "metadata": {"name": format!("pool-{p}")}, "spec": {"addresses": [range]}})
        })
        .collect();
    items.push(
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                      "metadata": {"name": "all"}, "spec": {}}),
    );
    Value::Array(items).to_string()
}

fn bench_v015(c: &mut Criterion) {
    let live = LiveState {
        config: Some(resources(0, false)),
        services: services(),
        ..Default::default()
    };
    let rules = metallb_crs::V015.rules();
    let safe = resources(100, false);
    let renumbering = resources(0, true);
    assert!(rules.breaks(&safe, &live).is_empty());
    // Pool 0 holds svc-0..99 and svc-4900..4999.
    assert_eq!(rules.breaks(&renumbering, &live).len(), 200);
    c.bench_function("v015_verdict_5000_services_50_pools_safe", |b| {
        b.iter(|| black_box(rules.breaks(black_box(&safe), black_box(&live))))
    });
    c.bench_function("v015_verdict_5000_services_50_pools_200_renumbered", |b| {
        b.iter(|| black_box(rules.breaks(black_box(&renumbering), black_box(&live))))
    });
    // Two pools narrow: MetalLB acts on each write, so the prediction follows both states.
    let two_narrow = resources(100, true);
    assert_eq!(rules.breaks(&two_narrow, &live).len(), 200);
    c.bench_function(
        "v015_verdict_5000_services_50_pools_two_pools_narrow",
        |b| b.iter(|| black_box(rules.breaks(black_box(&two_narrow), black_box(&live)))),
    );
}

criterion_group!(benches, bench, bench_v015);
criterion_main!(benches);
