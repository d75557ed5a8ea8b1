//! Safety verdict for a MetalLB config change: 5,000 LoadBalancer Services, 50 pools.
//! Goal: under 10 ms. Measured: parse of the new config + the check (the old config parsed too,
//! for the protocol comparison), as the operator does per cluster.

use criterion::{Criterion, criterion_group, criterion_main};
use kommander_operator::metallb::safety::{self, LiveService};
use kommander_operator::metallb::{SpeakerMode, parse};
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

fn bench(c: &mut Criterion) {
    let old_text = pools(50, 0);
    let new_text = pools(50, 100);
    // 5,000 Services spread over the first 49 pools (100 per pool, IPs .1-.100).
    let services: Vec<LiveService> = (0..5000u32)
        .map(|i| LiveService {
            namespace: format!("ns-{}", i % 50),
            name: format!("svc-{i}"),
            ips: vec![IpAddr::V4(Ipv4Addr::new(
                10,
                20,
                (i / 100 % 49) as u8,
                (i % 100 + 1) as u8,
            ))],
            pool: None,
            requested_ip: None,
            ..Default::default()
        })
        .collect();
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

criterion_group!(benches, bench);
criterion_main!(benches);
