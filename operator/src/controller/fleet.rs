//! The fleet's address claims: what each AppDeployment's MetalLB hands out on each cluster,
//! kept across reconciles so that one cluster's config is judged against every other
//! cluster's, whichever AppDeployment or workspace put it there. `metallb::segments` decides;
//! this keeps the claims and asks. Kept in memory: after a restart the claims come back as the
//! reconciles run, and a cluster whose config is applied says so from its status (it has its
//! range first whatever the order).

use super::watches::{ClusterKey, Watches};
use crate::metallb::segments::{self, Claim, Verdict};
use crate::resources::Workspace;
use crate::resources::{AddressSharing, ClusterRolloutStatus, SharedAddresses};
use crate::rollout::{ConfigCheck, LiveState, RuntimeConfig};
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::sync::Mutex;

/// A claim on record: the claim, whether the policy holds it, and the pools of the config
/// rendered for the cluster alone (the claim's pools also hold those of the config in force
/// while a change is on its way).
struct Entry {
    claim: Claim,
    held: bool,
    desired: Vec<segments::PoolAddresses>,
}

#[derive(Default)]
struct Claims {
    by_key: HashMap<(String, String), Entry>,
    next: u64,
}

/// A claim from a fresh read, and the pools of the rendered config alone.
pub struct Fresh {
    /// The claim.
    pub claim: Claim,
    /// The rendered config's pools.
    pub desired: Vec<segments::PoolAddresses>,
}

/// Every cluster's claim, by (AppDeployment, cluster).
#[derive(Default)]
pub struct Fleet {
    claims: Mutex<Claims>,
}

/// Whose claim: `namespace/name` of the AppDeployment and of the KommanderCluster.
pub struct Subject<'a> {
    /// The AppDeployment.
    pub app: &'a str,
    /// The KommanderCluster.
    pub cluster: &'a str,
}

impl Fleet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Claims> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record `fresh` (keeping the order it first came in) and judge it against every other
    /// cluster's. A held claim is kept, so it stays the later one, but is not live: no other
    /// cluster's verdict counts it.
    pub fn judge(&self, fresh: Fresh, policy: &AddressSharing) -> Verdict {
        let Fresh { mut claim, desired } = fresh;
        let mut claims = self.lock();
        let key = (claim.app.clone(), claim.cluster.clone());
        claim.order = match claims.by_key.get(&key) {
            Some(e) => e.claim.order,
            None => {
                claims.next += 1;
                claims.next
            }
        };
        let others = claims.by_key.values().filter(|e| !e.held).map(|e| &e.claim);
        let verdict = segments::decide(&claim, segments::overlaps(&claim, others), policy);
        let held = matches!(verdict, Verdict::Hold(_));
        claims.by_key.insert(
            key,
            Entry {
                claim,
                held,
                desired,
            },
        );
        verdict
    }

    /// The claim on record for `who`, judged again (the cluster was not read this time, so
    /// its config and segment are as last seen; `in_force` says the rendered config is now
    /// the one in force, so the old one's pools no longer count).
    pub fn judge_again(
        &self,
        who: &Subject<'_>,
        in_force: bool,
        policy: &AddressSharing,
    ) -> Option<Verdict> {
        let fresh = {
            let claims = self.lock();
            let e = claims
                .by_key
                .get(&(who.app.to_string(), who.cluster.to_string()))?;
            let mut claim = e.claim.clone();
            if in_force {
                claim.pools = e.desired.clone();
                claim.holds = true;
            }
            Fresh {
                claim,
                desired: e.desired.clone(),
            }
        };
        Some(self.judge(fresh, policy))
    }

    /// The rendered config is now in force on `who`'s cluster: the old one's pools no longer
    /// count, and the cluster holds its range.
    pub fn applied(&self, who: &Subject<'_>) {
        if let Some(e) = self
            .lock()
            .by_key
            .get_mut(&(who.app.to_string(), who.cluster.to_string()))
        {
            e.claim.pools = e.desired.clone();
            e.claim.holds = true;
        }
    }

    /// The other clusters whose nodes share a subnet with `who`'s claimed segment, whatever
    /// AppDeployment claims them, each once, with that subnet.
    pub fn neighbours(&self, who: &Subject<'_>) -> Vec<(String, ipnet::IpNet)> {
        let claims = self.lock();
        let Some(Entry { claim: mine, .. }) = claims
            .by_key
            .get(&(who.app.to_string(), who.cluster.to_string()))
        else {
            return Vec::new();
        };
        let mut out: Vec<(String, ipnet::IpNet)> = claims
            .by_key
            .values()
            .map(|e| &e.claim)
            .filter(|c| c.cluster != who.cluster)
            .filter_map(|c| {
                segments::shared_subnet(&mine.segment, &c.segment).map(|s| (c.cluster.clone(), s))
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// Forget the claims of AppDeployment `app` (on `cluster` only, or on every cluster).
    pub fn release(&self, app: &str, cluster: Option<&str>) {
        self.lock()
            .by_key
            .retain(|(a, c), _| a != app || cluster.is_some_and(|only| only != c));
    }
}

/// The platform's policy for the workspace whose namespace is `ns` (the default when none
/// is set, or the Workspace is not cached yet).
pub fn policy(workspaces: &Store<Workspace>, ns: &str) -> AddressSharing {
    workspaces
        .state()
        .iter()
        .find(|w| w.namespace_name() == Some(ns))
        .and_then(|w| w.spec.address_sharing.clone())
        .unwrap_or_default()
}

/// This cluster's claim from a fresh read: its pools as rendered for it, and those of the
/// config in force there while a change is on its way (a held change leaves the old pools
/// handing out addresses), and its nodes' subnets. `None` when the app has no pools.
pub fn claim(
    who: &Subject<'_>,
    rules: &dyn ConfigCheck,
    desired: &RuntimeConfig,
    live: &LiveState,
    prev: Option<&ClusterRolloutStatus>,
) -> Option<Fresh> {
    let rendered = rules.addresses(&desired.text, live);
    let holds = prev.and_then(|p| p.applied_config_hash.as_deref()) == Some(desired.hash.as_str());
    let mut pools = rendered.clone();
    if !holds && let Some(in_force) = live.config.as_deref() {
        for p in rules.addresses(in_force, live) {
            if !pools.contains(&p) {
                pools.push(p);
            }
        }
    }
    if pools.is_empty() {
        return None;
    }
    Some(Fresh {
        claim: Claim {
            app: who.app.to_string(),
            cluster: who.cluster.to_string(),
            segment: live.facts.node_subnets.clone(),
            pools,
            holds,
            order: 0,
        },
        desired: rendered,
    })
}

/// What the LoadBalancer Services of a watched cluster hold (`None`: not watched, or not
/// synced yet).
fn held_on(watches: &Watches, cluster: &str) -> Option<Vec<segments::Held>> {
    let (ns, name) = cluster.split_once('/')?;
    let key: ClusterKey = (ns.to_string(), name.to_string());
    let services = watches.services(&key)?;
    Some(
        crate::checks::live_services(&services)
            .into_iter()
            .flat_map(|s| {
                let id = s.id();
                s.ips.into_iter().map(move |ip| segments::Held {
                    service: id.clone(),
                    ip,
                })
            })
            .collect(),
    )
}

/// Addresses a Service holds here and a Service of another cluster of the segment holds too,
/// from the Service watches the operator keeps (no request); `None` when this cluster's
/// Services are not known yet. A neighbour whose Services are not watched is left out.
pub fn live_conflicts(fleet: &Fleet, watches: &Watches, who: &Subject<'_>) -> Option<Vec<String>> {
    let here = held_on(watches, who.cluster)?;
    let neighbours: Vec<segments::Neighbour> = fleet
        .neighbours(who)
        .into_iter()
        .filter_map(|(cluster, segment)| {
            let held = held_on(watches, &cluster)?;
            Some(segments::Neighbour {
                cluster,
                segment,
                held,
            })
        })
        .collect();
    Some(
        segments::conflicts(&here, &neighbours)
            .iter()
            .map(|c| c.describe(who.cluster))
            .collect(),
    )
}

/// The policy rule that holds `first`, for messages: `layer2: Hold` or `bgp: Hold`.
pub fn rule_of(first: &segments::Overlap) -> &'static str {
    match first.mode {
        segments::Mode::Layer2 => "layer2: Hold",
        segments::Mode::Bgp => "bgp: Hold",
    }
}

/// How many overlaps a cluster's status names.
const EXAMPLES: usize = 3;

/// A count for status (saturating: a status never fails on a number).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The status of a verdict and the live conflicts: the warned overlaps first, at most
/// [`EXAMPLES`] of each named.
pub fn status_of(verdict: &Verdict, conflicts: &[String]) -> SharedAddresses {
    SharedAddresses {
        conflicts: count(conflicts.len()),
        conflict_examples: conflicts.iter().take(EXAMPLES).cloned().collect(),
        ..overlaps_status(verdict)
    }
}

fn overlaps_status(verdict: &Verdict) -> SharedAddresses {
    let (warned, reported) = match verdict {
        Verdict::Apply { warned, reported } => (warned.as_slice(), reported.as_slice()),
        Verdict::Hold(first) => {
            return SharedAddresses {
                held: Some(first.describe()),
                ..SharedAddresses::default()
            };
        }
    };
    SharedAddresses {
        warned: count(warned.len()),
        reported: count(reported.len()),
        examples: warned
            .iter()
            .chain(reported)
            .take(EXAMPLES)
            .map(|o| o.describe())
            .collect(),
        ..SharedAddresses::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metallb::nodes::NodeSubnets;
    use crate::metallb::segments::PoolAddresses;
    use crate::resources::SharingPolicy;

    fn claim(app: &str, cluster: &str, holds: bool) -> Fresh {
        let claim = Claim {
            app: app.into(),
            cluster: cluster.into(),
            segment: NodeSubnets::Inferred(vec!["172.31.0.0/24".parse().unwrap()]),
            pools: vec![PoolAddresses {
                name: "default".into(),
                layer2: true,
                bgp: false,
                cidrs: vec!["10.0.50.0/27".parse().unwrap()],
            }],
            holds,
            order: 0,
        };
        Fresh {
            desired: claim.pools.clone(),
            claim,
        }
    }

    const HOLD: AddressSharing = AddressSharing {
        layer2: SharingPolicy::Hold,
        bgp: SharingPolicy::Allow,
    };

    #[test]
    fn the_first_claim_keeps_its_place_and_a_held_one_counts_for_no_one() {
        let fleet = Fleet::default();
        let first = fleet.judge(claim("a/lb", "a/one", false), &HOLD);
        assert!(matches!(first, Verdict::Apply { ref warned, .. } if warned.is_empty()));
        let later = fleet.judge(claim("b/lb", "b/two", false), &HOLD);
        assert!(matches!(later, Verdict::Hold(ref o) if o.other == "a/one"));
        // Judged again, the first is still first: the held one is not live, so not counted.
        let again = fleet
            .judge_again(
                &Subject {
                    app: "a/lb",
                    cluster: "a/one",
                },
                false,
                &HOLD,
            )
            .unwrap();
        assert!(
            matches!(again, Verdict::Apply { ref warned, .. } if warned.is_empty()),
            "{again:?}"
        );
        assert_eq!(
            fleet.neighbours(&Subject {
                app: "a/lb",
                cluster: "a/one"
            }),
            vec![("b/two".to_string(), "172.31.0.0/24".parse().unwrap())]
        );
        // The first goes: the later one is no longer held.
        fleet.release("a/lb", None);
        let freed = fleet
            .judge_again(
                &Subject {
                    app: "b/lb",
                    cluster: "b/two",
                },
                false,
                &HOLD,
            )
            .unwrap();
        assert!(matches!(freed, Verdict::Apply { .. }), "{freed:?}");
    }

    #[test]
    fn once_the_rendered_config_is_in_force_the_old_pools_no_longer_count() {
        let fleet = Fleet::default();
        fleet.judge(claim("a/lb", "a/one", true), &AddressSharing::default());
        // attached-two moves to another range; until it is in force, its old one counts too.
        let mut moving = claim("a/lb", "a/two", false);
        moving.desired[0].cidrs = vec!["10.0.60.0/27".parse().unwrap()];
        moving.claim.pools.push(moving.desired[0].clone());
        let during = fleet.judge(moving, &AddressSharing::default());
        assert!(matches!(during, Verdict::Apply { ref warned, .. } if warned.len() == 1));
        let two = Subject {
            app: "a/lb",
            cluster: "a/two",
        };
        let after = fleet
            .judge_again(&two, true, &AddressSharing::default())
            .unwrap();
        assert!(
            matches!(after, Verdict::Apply { ref warned, .. } if warned.is_empty()),
            "{after:?}"
        );
        fleet.applied(&two);
        let one = Subject {
            app: "a/lb",
            cluster: "a/one",
        };
        let first = fleet
            .judge_again(&one, true, &AddressSharing::default())
            .unwrap();
        assert!(matches!(first, Verdict::Apply { ref warned, .. } if warned.is_empty()));
    }

    #[test]
    fn release_of_one_cluster_keeps_the_others() {
        let fleet = Fleet::default();
        fleet.judge(claim("a/lb", "a/one", true), &AddressSharing::default());
        fleet.judge(claim("a/lb", "a/two", true), &AddressSharing::default());
        fleet.release("a/lb", Some("a/one"));
        let who = Subject {
            app: "a/lb",
            cluster: "a/one",
        };
        assert!(
            fleet
                .judge_again(&who, true, &AddressSharing::default())
                .is_none()
        );
        let who = Subject {
            app: "a/lb",
            cluster: "a/two",
        };
        assert!(
            fleet
                .judge_again(&who, true, &AddressSharing::default())
                .is_some()
        );
    }
}
