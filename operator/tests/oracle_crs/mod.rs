//! Differential test against the real MetalLB controllers of the custom-resource era (v0.13.5
//! and v0.15.2, built from the Go module as pinned tools under e2e/): random (old pools,
//! Services holding IPs, new pools) scenarios, each run through MetalLB and through our
//! prediction (`metallb::renumber`): 0.13 refuses the whole config when a Service's IP fits no
//! pool (its stale-config metric says so); 0.14+ applies it, and which Services keep their IP,
//! which get another (and which), which end pending must match.
//!
//! The config is applied the way the operator applies it: what adds addresses first, what
//! narrows pools next, deletions last.
//!
//! `make test` runs a fixed sample (ORACLE_SCENARIOS=20 per version); `make oracle` runs 300.

use kommander_e2e::metrics::{sample, scrape};
use kommander_e2e::{Clusters, Rng, eventually, metallb_crs_controller_as};
use kommander_operator::metallb::crs::{self, BgpMode, Phase, Release};
use kommander_operator::metallb::renumber::Fate;
use kommander_operator::metallb::safety::LiveService;
use kommander_operator::metallb::sequence;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One MetalLB release under test.
pub struct Version {
    /// Its rules.
    pub release: Release,
    /// The tag, e.g. v0.15.2 (its chart's CRDs come from the Go module at that version).
    pub tag: &'static str,
    /// The controller binary under e2e/bin.
    pub bin: &'static str,
}

impl Version {
    /// The pool annotation this release reads (0.13.5 knows only the old spelling).
    fn pool_annotation(&self) -> &'static str {
        match self.release {
            Release::V0_13 => "metallb.universe.tf/address-pool",
            Release::V0_15 | Release::V0_16 => "metallb.io/address-pool",
        }
    }
}

#[derive(Clone, Debug)]
struct PoolSpec {
    name: String,
    third: u8,
    first: u8,
    last: u8,
    avoid_buggy: bool,
    /// serviceAllocation.namespaces.
    only: Option<&'static str>,
}

impl PoolSpec {
    fn object(&self) -> Value {
        let mut spec = json!({
            "addresses": [format!("10.78.{t}.{}-10.78.{t}.{}", self.first, self.last, t = self.third)],
            "avoidBuggyIPs": self.avoid_buggy,
        });
        if let Some(ns) = self.only {
            spec["serviceAllocation"] = json!({"namespaces": [ns]});
        }
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": self.name, "namespace": "metallb"}, "spec": spec})
    }
}

#[derive(Clone, Debug)]
struct SvcSpec {
    namespace: &'static str,
    name: String,
    /// metallb.io/address-pool.
    pool: Option<String>,
    /// spec.loadBalancerIP.
    ask: Option<IpAddr>,
}

fn objects(pools: &[PoolSpec]) -> Vec<Value> {
    let mut out: Vec<Value> = pools.iter().map(PoolSpec::object).collect();
    // One advertisement for every pool: announcement is the speaker's business, not the oracle's.
    out.push(
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                    "metadata": {"name": "all", "namespace": "metallb"}}),
    );
    out
}

fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{o}\n"))
        .collect::<String>()
}

fn scenario(rng: &mut Rng, release: Release) -> (Vec<PoolSpec>, Vec<SvcSpec>, Vec<PoolSpec>) {
    let n = 1 + rng.below(3) as usize;
    let old: Vec<PoolSpec> = (0..n)
        .map(|i| {
            let first = rng.below(200) as u8;
            PoolSpec {
                name: format!("p{i}"),
                third: i as u8,
                first,
                last: first + rng.below(12) as u8,
                avoid_buggy: false,
                only: None,
            }
        })
        .collect();
    let mut services = Vec::new();
    for i in 0..1 + rng.below(4) {
        let namespace = if rng.below(3) == 0 { "apps2" } else { "apps" };
        let p = &old[rng.below(old.len() as u64) as usize];
        let (pool, ask) = match rng.below(4) {
            0 => (Some(p.name.clone()), None),
            1 => {
                let last = p.first as u64 + rng.below((p.last - p.first) as u64 + 1);
                (None, format!("10.78.{}.{last}", p.third).parse().ok())
            }
            _ => (None, None),
        };
        services.push(SvcSpec {
            namespace,
            name: format!("s{i}"),
            pool,
            ask,
        });
    }
    let mut new = old.clone();
    for _ in 0..1 + rng.below(2) {
        let i = rng.below(new.len() as u64) as usize;
        match rng.below(8) {
            0 => {
                new[i].first = new[i]
                    .first
                    .saturating_add(rng.below(6) as u8)
                    .min(new[i].last)
            }
            1 => {
                new[i].last = new[i]
                    .last
                    .saturating_sub(rng.below(6) as u8)
                    .max(new[i].first)
            }
            2 if new.len() > 1 => {
                new.remove(i);
            }
            3 => new.push(PoolSpec {
                name: format!("extra{}", rng.below(1000)),
                third: 100 + rng.below(50) as u8,
                first: 1,
                last: 1 + rng.below(4) as u8,
                avoid_buggy: false,
                only: None,
            }),
            4 => new[i].name = format!("renamed{}", rng.below(1000)),
            5 => new[i].avoid_buggy = true,
            6 if release.renumbers() => {
                new[i].only = Some(if rng.below(2) == 0 { "apps" } else { "apps2" })
            }
            _ => new[i].third = new[i].third.wrapping_add(1 + rng.below(3) as u8),
        }
    }
    (old, services, new)
}

fn metric(port: u16, kubeconfig: &Path, name: &str) -> Result<f64, String> {
    sample(&scrape(port, kubeconfig)?, name)
}

/// The CRDs of the release's chart, from the Go module the controller was built from.
fn crds(tag: &str) -> String {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go runs");
    let cache = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = format!(
        "{cache}/go.universe.tf/metallb@{tag}/charts/metallb/charts/crds/templates/crds.yaml"
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (make e2e-build fetches it)"))
        .replace("{{ .Release.Namespace }}", "metallb")
}

/// Every LoadBalancer Service in apps/apps2 and the IPs it holds.
fn services_now(k: &dyn Fn(&[&str]) -> Result<String, String>) -> BTreeMap<String, Vec<IpAddr>> {
    let text = k(&["get", "services", "-A", "-o", "json"]).unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["spec"]["type"] == "LoadBalancer")
        .map(|s| {
            let ips = s["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str()?.parse().ok())
                .collect();
            (
                format!(
                    "{}/{}",
                    s["metadata"]["namespace"].as_str().unwrap_or_default(),
                    s["metadata"]["name"].as_str().unwrap_or_default()
                ),
                ips,
            )
        })
        .collect()
}

/// Whether we and MetalLB agree that the Service keeps its IPs (or that it loses them).
fn same_class(fate: &Fate, before: &[IpAddr], after: &[IpAddr]) -> bool {
    let keeps = matches!(
        fate,
        Fate::Keeps | Fate::Unannounced { .. } | Fate::Reannounced { .. }
    );
    keeps == (after == before)
}

/// Our verdict vs MetalLB's result for one Service, in detail (the new IP, or pending):
/// `None` when they agree.
fn compare(fate: &Fate, before: &[IpAddr], after: &[IpAddr]) -> Option<String> {
    let ok = match fate {
        Fate::Keeps | Fate::Unannounced { .. } | Fate::Reannounced { .. } => after == before,
        Fate::Refused => false,
        Fate::Renumbered { to, .. } if to.is_empty() => !after.is_empty() && after != before,
        Fate::Renumbered { to, .. } => after.len() == 1 && to.contains(&after[0]),
        Fate::Contended { free, .. } => {
            after.is_empty() || (after.len() == 1 && free.contains(&after[0]))
        }
        Fate::Pending { .. } => after.is_empty(),
    };
    (!ok).then(|| format!("ours: {fate:?}; MetalLB: {before:?} -> {after:?}"))
}

/// Run the scenarios against one release.
pub async fn run(v: &Version) {
    let count: u64 = std::env::var("ORACLE_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let clusters = Clusters::start(&["oracle"]).expect("cluster starts");
    let k = |args: &[&str]| clusters.kubectl("oracle", args, None);
    let apply = |text: &str| {
        clusters.kubectl(
            "oracle",
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(text),
        )
    };
    for ns in ["metallb", "apps", "apps2"] {
        k(&["create", "namespace", ns]).unwrap();
    }
    apply(&crds(v.tag)).expect("the chart's CRDs install");
    k(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ])
    .unwrap();
    let kc = clusters.kubeconfig("oracle");
    // v0.16 names its own pod as the owner of its ConfigurationState: one exists (no kubelet
    // runs it; the controller runs beside the cluster).
    apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: controller, namespace: metallb}\nspec:\n  containers: [{name: controller, image: metallb-controller}]\n",
    )
    .expect("the controller's Pod object");
    let (_mlb, port) = metallb_crs_controller_as(
        v.bin,
        &kc,
        "metallb",
        &clusters.state_dir().join("metallb.log"),
        "controller",
    );
    eventually(
        &format!("MetalLB {} serves metrics", v.tag),
        Duration::from_secs(60),
        || async { metric(port, &kc, "metallb_k8s_client_config_loaded_bool").map(|_| ()) },
    )
    .await
    .unwrap();

    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let (mut agree, mut disagree, mut skipped) = (0, Vec::new(), 0);
    // Where the Service's class agrees but its new IP (or pending) does not: MetalLB walks pools
    // as a Go map and acts on the states between the writes, so these are figures, not failures.
    let mut details: Vec<String> = Vec::new();
    let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    // ORACLE_ONLY=n replays scenario n alone.
    let only: Option<u64> = std::env::var("ORACLE_ONLY")
        .ok()
        .and_then(|s| s.parse().ok());
    for n in 0..count {
        let (old, svcs, new) = scenario(&mut rng, v.release);
        if only.is_some_and(|o| o != n) {
            skipped += 1;
            continue;
        }
        // Reset: no Services, no config.
        for ns in ["apps", "apps2"] {
            let _ = k(&["-n", ns, "delete", "service", "--all", "--wait=true"]);
        }
        let _ = k(&[
            "-n",
            "metallb",
            "delete",
            "ipaddresspools,l2advertisements",
            "--all",
            "--wait=true",
        ]);
        apply(&yaml(&objects(&old))).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for s in &svcs {
            let mut svc = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
            if let Some(p) = &s.pool {
                svc["metadata"]["annotations"] = json!({v.pool_annotation(): p});
            }
            if let Some(ip) = s.ask {
                svc["spec"]["loadBalancerIP"] = json!(ip.to_string());
            }
            apply(&svc.to_string()).unwrap();
        }
        // Wait until MetalLB has served what it can (two reads 500 ms apart agree).
        let mut before = services_now(&k);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again = services_now(&k);
            if again == before && before.values().all(|ips| !ips.is_empty()) {
                break;
            }
            if again == before {
                break;
            }
            before = again;
        }
        if before.values().any(|ips| ips.is_empty()) {
            // Two Services asked for the same IP, or a pool was too small: not a config change.
            skipped += 1;
            continue;
        }
        let live: Vec<LiveService> = svcs
            .iter()
            .map(|s| LiveService {
                namespace: s.namespace.into(),
                name: s.name.clone(),
                ips: before[&format!("{}/{}", s.namespace, s.name)].clone(),
                requested_ip: s.ask,
                annotations: s
                    .pool
                    .iter()
                    .map(|p| (v.pool_annotation().to_string(), p.clone()))
                    .collect(),
                ..Default::default()
            })
            .collect();

        // Ours first: an invalid new config must be refused by MetalLB too.
        let parse_items =
            |items: &[Value]| crs::parse(items, Release::V0_15, BgpMode::Frr, &Default::default());
        let parse = |pools: &[PoolSpec]| parse_items(&objects(pools));
        let ours = parse(&new);
        let unchanged = objects(&old) == objects(&new);

        // The change, through MetalLB, written the way the operator writes it: what adds
        // addresses first, then each pool that narrows, then what takes up the addresses those
        // give up, then what the new config drops, each in name order. The running controller
        // acts on every state in between.
        let updates = metric(port, &kc, "metallb_k8s_client_updates_total").unwrap_or(0.0);
        let new_objects = objects(&new);
        let phases = crs::phases(parse(&old).ok().as_ref(), &new_objects);
        for phase in [Phase::Add, Phase::Narrow, Phase::Fill] {
            let mut batch: Vec<Value> = new_objects
                .iter()
                .zip(&phases)
                .filter(|(_, p)| **p == phase)
                .map(|(o, _)| o.clone())
                .collect();
            batch.sort_by_key(|o| o["metadata"]["name"].to_string());
            if !batch.is_empty() {
                apply(&yaml(&batch)).unwrap();
            }
        }
        let mut dropped: Vec<&PoolSpec> = old
            .iter()
            .filter(|p| !new.iter().any(|q| q.name == p.name))
            .collect();
        dropped.sort_by_key(|p| p.name.clone());
        for p in dropped {
            k(&[
                "-n",
                "metallb",
                "delete",
                "ipaddresspool",
                &p.name,
                "--wait=true",
            ])
            .unwrap();
        }
        if ours.is_ok() && !unchanged {
            eventually("new config processed", Duration::from_secs(30), || async {
                if metric(port, &kc, "metallb_k8s_client_updates_total")? > updates {
                    Ok(())
                } else {
                    Err("not yet".into())
                }
            })
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut after = services_now(&k);
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let again = services_now(&k);
            if again == after {
                break;
            }
            after = again;
        }
        if let Err(errors) = ours {
            *seen.entry("invalid config").or_default() += 1;
            let stale = metric(port, &kc, "metallb_k8s_client_config_stale_bool").unwrap_or(-1.0);
            if stale == 1.0 && after == before {
                agree += 1;
            } else {
                disagree.push(format!("scenario {n}: we refuse the new config ({errors:?}); MetalLB stale={stale}, Services {before:?} -> {after:?}"));
            }
            continue;
        }

        // The change, through our prediction.
        let (Ok(old_cfg), Ok(new_cfg)) = (parse(&old), parse(&new)) else {
            unreachable!("checked above");
        };
        // Along the states the writes pass through, as the gate judges it.
        let steps = sequence::parsed_steps(
            Some(&old_cfg),
            Some(&objects(&old)),
            &new_objects,
            new_cfg,
            |items| parse_items(items).ok(),
        );
        let outcomes = sequence::predict_along(Some(&old_cfg), &steps, &live, v.release);
        let mut problems = Vec::new();
        // 0.13: a refused config changes nothing, and MetalLB says it is stale.
        let refused = outcomes.iter().any(|o| o.fate == Fate::Refused);
        if !v.release.renumbers() && !unchanged {
            let stale = metric(port, &kc, "metallb_k8s_client_config_stale_bool").unwrap_or(-1.0);
            *seen
                .entry(if refused { "refused" } else { "accepted" })
                .or_default() += 1;
            if (stale == 1.0) != refused {
                problems.push(format!("we say refused={refused}, MetalLB stale={stale}"));
            }
            if refused && after != before {
                problems.push(format!(
                    "refused, yet Services changed: {before:?} -> {after:?}"
                ));
            }
        }
        for o in outcomes.iter().filter(|_| !refused) {
            let kind = match &o.fate {
                Fate::Keeps => "keeps",
                Fate::Renumbered { to, .. } if to.len() == 1 => "renumbered (IP predicted)",
                Fate::Renumbered { to, .. } if to.is_empty() => "renumbered (pool uncertain)",
                Fate::Renumbered { .. } => "renumbered (one of the first free IPs)",
                Fate::Contended { .. } => "contended",
                Fate::Pending { .. } => "pending",
                _ => "other",
            };
            *seen.entry(kind).or_default() += 1;
            let now = &after[&o.service];
            if !same_class(&o.fate, &o.ips, now) {
                problems.push(format!(
                    "{}: ours: {:?}; MetalLB: {:?} -> {now:?}",
                    o.service, o.fate, o.ips
                ));
            } else if let Some(p) = compare(&o.fate, &o.ips, now) {
                details.push(format!("scenario {n}: {}: {p}\n    old: {old:?}\n    new: {new:?}\n    services: {svcs:?}", o.service));
            }
        }
        // Contended Services: exactly `rivals - free` of them end pending.
        let contended: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match &o.fate {
                Fate::Contended { free, rivals, .. } => Some((o, rivals - free.len())),
                _ => None,
            })
            .collect();
        if let Some((_, want)) = contended.first() {
            let pending = contended
                .iter()
                .filter(|(o, _)| after[&o.service].is_empty())
                .count();
            if pending != *want {
                details.push(format!(
                    "scenario {n}: {pending} contended Services ended pending, we said {want}\n    old: {old:?}\n    new: {new:?}\n    services: {svcs:?}"
                ));
            }
        }
        if problems.is_empty() {
            agree += 1;
        } else {
            disagree.push(format!(
                "scenario {n}:\n  {}\n  old: {old:?}\n  new: {new:?}\n  services: {svcs:?}",
                problems.join("\n  ")
            ));
        }
    }
    let run = count - skipped;
    // Per Service, not per config.
    let fates: u64 = seen
        .iter()
        .filter(|(k, _)| !["refused", "accepted", "invalid config"].contains(k))
        .map(|(_, n)| n)
        .sum();
    println!(
        "oracle {}: {count} scenarios ({skipped} skipped at setup), keeps-or-loses agreement {agree}/{run}; Service fates predicted: {seen:?}; exact new IP or pending agreed for {}/{fates} Services",
        v.tag,
        fates - details.len() as u64
    );
    for d in &details {
        println!("  detail: {d}");
    }
    let has = |k: &str| seen.get(k).copied().unwrap_or(0) > 0;
    assert!(
        only.is_some()
            || has("keeps")
                && match v.release {
                    Release::V0_13 => has("refused") && has("accepted"),
                    Release::V0_15 | Release::V0_16 =>
                        has("renumbered (IP predicted)") || has("pending"),
                },
        "the sample must hold kept Services and, on 0.13, refused and accepted configs, on 0.15 moved Services: {seen:?}"
    );
    assert!(
        disagree.is_empty(),
        "disagreements with the real MetalLB {}:\n{}",
        v.tag,
        disagree.join("\n\n")
    );
}
