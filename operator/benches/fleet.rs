//! The fleet's address check at 1,000 clusters: one cluster's claim judged against the
//! other 999 (what each cluster's reconcile does), when every cluster is on its own segment
//! (the usual fleet) and when all 1,000 share one segment and the guide's range (the worst
//! case: 999 overlaps each). Measured: `Fleet::judge` with the claims kept as the operator
//! keeps them.

use criterion::{Criterion, criterion_group, criterion_main};
use kommander_operator::controller::fleet::{Fleet, Fresh};
use kommander_operator::metallb::nodes::NodeSubnets;
use kommander_operator::metallb::segments::{Claim, PoolAddresses};
use kommander_operator::resources::AddressSharing;
use std::hint::black_box;

/// The guide's range, as MetalLB splits it into blocks.
fn guide() -> Vec<ipnet::IpNet> {
    kommander_operator::metallb::cidr::parse_addresses("10.0.50.25-10.0.50.50").unwrap()
}

fn fresh(i: u32, shared: bool) -> Fresh {
    let subnet = if shared {
        "172.31.0.0/24".to_string()
    } else {
        format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
    };
    let pools = vec![PoolAddresses {
        name: "default".into(),
        layer2: true,
        bgp: false,
        cidrs: guide(),
    }];
    Fresh {
        claim: Claim {
            app: "ws/metallb".into(),
            cluster: format!("ws/c{i}"),
            segment: NodeSubnets::Inferred(vec![subnet.parse().unwrap()]),
            pools: pools.clone(),
            holds: true,
            order: 0,
        },
        desired: pools,
    }
}

fn bench(c: &mut Criterion) {
    let policy = AddressSharing::default();
    for (label, shared) in [("own segments", false), ("one segment", true)] {
        let fleet = Fleet::default();
        for i in 0..1000 {
            fleet.judge(fresh(i, shared), &policy);
        }
        c.bench_function(&format!("fleet judge, 1,000 clusters, {label}"), |b| {
            b.iter(|| black_box(fleet.judge(fresh(500, shared), &policy)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
