//! Differential test against the real MetalLB v0.12.1 controller (e2e/bin/metallb-controller):
//! random (old config, assigned Services, new config) scenarios, each run through MetalLB (does
//! it refuse the new config? its stale-config metric says) and through our safety check. Also
//! compares pool capacity with MetalLB's own address count.
//!
//! `make test` runs a fixed sample (ORACLE_SCENARIOS=20); `make oracle` runs 300.

use kommander_e2e::{Clusters, KillOnDrop, Rng, eventually, free_port, http_get, root};
use kommander_operator::metallb::config::{SpeakerMode, parse};
use kommander_operator::metallb::safety::{self, LiveService};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Clone, Debug)]
struct PoolSpec {
    name: String,
    protocol: &'static str,
    third: u8,
    first: u8,
    last: u8,
    avoid_buggy: bool,
}

fn render(pools: &[PoolSpec]) -> String {
    let mut t = String::from("address-pools:\n");
    for p in pools {
        t.push_str(&format!(
            "- name: {}\n  protocol: {}\n  avoid-buggy-ips: {}\n  addresses:\n  - 10.77.{}.{}-10.77.{}.{}\n",
            p.name, p.protocol, p.avoid_buggy, p.third, p.first, p.third, p.last
        ));
    }
    if pools.iter().any(|p| p.protocol == "bgp") {
        t = format!("peers:\n- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 10.99.0.1\n{t}");
    }
    t
}

/// Old pools (disjoint /24s), some Services in them, and a mutated new config.
fn scenario(rng: &mut Rng) -> (Vec<PoolSpec>, Vec<IpAddr>, Vec<PoolSpec>) {
    let n = 1 + rng.below(3) as usize;
    let old: Vec<PoolSpec> = (0..n)
        .map(|i| {
            let first = rng.below(200) as u8;
            PoolSpec {
                name: format!("p{i}"),
                protocol: "layer2",
                third: i as u8,
                first,
                last: first + 1 + rng.below(50) as u8,
                avoid_buggy: false,
            }
        })
        .collect();
    let mut ips = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let p = &old[rng.below(old.len() as u64) as usize];
        let last = p.first as u64 + rng.below((p.last - p.first) as u64 + 1);
        let ip: IpAddr = format!("10.77.{}.{last}", p.third).parse().unwrap();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut new = old.clone();
    for _ in 0..1 + rng.below(2) {
        let i = rng.below(new.len() as u64) as usize;
        match rng.below(7) {
            0 => {
                new[i].first = new[i]
                    .first
                    .saturating_add(rng.below(20) as u8)
                    .min(new[i].last)
            }
            1 => {
                new[i].last = new[i]
                    .last
                    .saturating_sub(rng.below(20) as u8)
                    .max(new[i].first)
            }
            2 if new.len() > 1 => {
                new.remove(i);
            }
            3 => new.push(PoolSpec {
                name: format!("extra{}", rng.below(1000)),
                protocol: "layer2",
                third: 100 + rng.below(50) as u8,
                first: 1,
                last: 20,
                avoid_buggy: false,
            }),
            4 => new[i].name = format!("renamed{}", rng.below(1000)),
            5 => new[i].avoid_buggy = true,
            _ => new[i].third = new[i].third.wrapping_add(1 + rng.below(3) as u8),
        }
    }
    (old, ips, new)
}

fn metric(port: u16, name: &str) -> Result<f64, String> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name}"))
}

fn pool_sizes(port: u16) -> Result<Vec<(String, u128)>, String> {
    let (_, body) = http_get(port, "/metrics")?;
    Ok(body
        .lines()
        .filter_map(|l| l.strip_prefix("metallb_allocator_addresses_total{pool=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once('"')?;
            Some((
                name.to_string(),
                rest.rsplit(' ').next()?.parse::<f64>().ok()? as u128,
            ))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_oracle_metallb_agrees_with_the_safety_check() {
    let count: u64 = std::env::var("ORACLE_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let clusters = Clusters::start(&["oracle"]).expect("cluster starts");
    let k = |args: &[&str], stdin: Option<&str>| clusters.kubectl("oracle", args, stdin);
    k(&["create", "namespace", "metallb"], None).unwrap();
    k(&["create", "namespace", "apps"], None).unwrap();
    let port = free_port();
    let log = std::fs::File::create(clusters.state_dir().join("metallb.log")).unwrap();
    let _mlb = KillOnDrop(
        Command::new(root().join("e2e/bin/metallb-controller"))
            .args([
                "--kubeconfig",
                clusters.kubeconfig("oracle").to_str().unwrap(),
                "--namespace",
                "metallb",
                "--config",
                "metallb",
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("e2e/bin/metallb-controller runs (make e2e-build)"),
    );
    let set_config = |text: &str| {
        let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
        k(&["apply", "-f", "-"], Some(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: metallb, namespace: metallb}}\ndata:\n  config: |\n{indented}"))).unwrap();
    };

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut agree, mut disagree, mut capacity_checked, mut refusals) = (0, Vec::new(), 0, 0);
    for n in 0..count {
        let (old, ips, new) = scenario(&mut rng);
        let (old_text, new_text) = (render(&old), render(&new));
        // Reset: no Services, then the old config (always accepted with nothing assigned).
        let _ = k(
            &["-n", "apps", "delete", "service", "--all", "--wait=true"],
            None,
        );
        set_config(&old_text);
        eventually("old config loaded", Duration::from_secs(30), || async {
            if metric(port, "metallb_k8s_client_config_stale_bool")? == 0.0
                && metric(port, "metallb_k8s_client_config_loaded_bool")? == 1.0
            {
                Ok(())
            } else {
                Err("stale".into())
            }
        })
        .await
        .unwrap();
        let mut services = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let name = format!("s{i}");
            k(&["apply", "-f", "-"], Some(&format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: {ip}\n  ports: [{{port: 80}}]\n"))).unwrap();
            services.push(LiveService {
                namespace: "apps".into(),
                name,
                ips: vec![*ip],
                pool: None,
                requested_ip: Some(*ip),
                ..Default::default()
            });
        }
        for s in &services {
            let want = s.ips[0].to_string();
            eventually(
                &format!("scenario {n}: MetalLB assigns {want}"),
                Duration::from_secs(30),
                || async {
                    let got = k(
                        &[
                            "-n",
                            "apps",
                            "get",
                            "service",
                            &s.name,
                            "-o",
                            "jsonpath={.status.loadBalancer.ingress[0].ip}",
                        ],
                        None,
                    )?;
                    if got.trim() == want { Ok(()) } else { Err(got) }
                },
            )
            .await
            .unwrap();
        }
        // The change, through MetalLB.
        let before = metric(port, "metallb_k8s_client_updates_total").unwrap_or(0.0);
        set_config(&new_text);
        eventually("new config processed", Duration::from_secs(30), || async {
            if metric(port, "metallb_k8s_client_updates_total")? > before {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let refused = metric(port, "metallb_k8s_client_config_stale_bool").unwrap() == 1.0;
        refusals += u64::from(refused);

        // The change, through our check.
        let ours = match parse(&new_text, SpeakerMode::Native) {
            Err(e) => (true, format!("invalid: {e}")),
            Ok(cfg) => {
                let old_cfg = parse(&old_text, SpeakerMode::Native).ok();
                let blockers = safety::check(old_cfg.as_ref(), &cfg, &services);
                let refusal = blockers.iter().any(|b| b.is_refusal());
                if !refused {
                    // Accepted: MetalLB's own address count per pool must equal our capacity.
                    for (pool, size) in pool_sizes(port).unwrap_or_default() {
                        if let Some(p) = cfg.pool(&pool) {
                            assert_eq!(p.capacity(), size, "scenario {n}: capacity of pool {pool}");
                            capacity_checked += 1;
                        }
                    }
                }
                (
                    refusal,
                    blockers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        };
        if ours.0 == refused {
            agree += 1;
        } else {
            disagree.push(format!("scenario {n}: MetalLB refused={refused}, ours refused={} ({})\nold:\n{old_text}new:\n{new_text}services: {ips:?}", ours.0, ours.1));
        }
    }
    println!(
        "oracle: {count} scenarios ({refusals} refused by MetalLB, {} accepted), agreement {agree}/{count}, {capacity_checked} pool capacities compared with MetalLB's",
        count - refusals
    );
    assert!(
        refusals > 0 && refusals < count,
        "the sample must hold both refusals and acceptances"
    );
    println!("oracle: {agree} passed, {} failed", disagree.len());
    assert!(
        disagree.is_empty(),
        "disagreements with the real MetalLB:\n{}",
        disagree.join("\n\n")
    );
}
