//! Every Event true: each Event the operator wrote in the workspace is judged, at each time it
//! was seen (an Event repeated is one series: its first and last time), against the driver's
//! record of what it asked for and which faults it injected when, and against the addresses
//! the Services hold. An Event whose reason no rule here judges is reported too: an Event
//! nobody can judge is not known to be true.

use super::workload::{History, Want};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How stale the operator's view of the management cluster may be when it decides (a watch
/// broken by a management API server kill, a new operator's first list), not counting the
/// time it or the management API server was down (`History::view_from`).
const LAG: Duration = Duration::from_secs(20);
/// How long after a fault heals the operator may still report what it saw during it.
const GRACE: Duration = Duration::from_secs(10);
/// How long after a fault begins a request already under way may still be answered.
const SETTLE: Duration = Duration::from_secs(2);

/// One Event series as listed.
#[derive(Debug)]
pub struct Seen {
    pub reason: String,
    pub kind: String,
    pub name: String,
    pub note: String,
    /// When it was seen first and, for a series, last.
    pub times: Vec<SystemTime>,
}

/// The Events in namespace `ns`.
pub async fn events(mgmt: &Client, ns: &str) -> Result<Vec<Seen>, String> {
    let api: Api<Event> = Api::namespaced(mgmt.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            let mut times: Vec<SystemTime> = e.event_time.iter().map(|t| t.0.into()).collect();
            times.extend(
                e.series
                    .iter()
                    .map(|s| SystemTime::from(s.last_observed_time.0)),
            );
            Seen {
                reason: e.reason.unwrap_or_default(),
                kind: regarding.kind.unwrap_or_default(),
                name: regarding.name.unwrap_or_default(),
                note: e.note.unwrap_or_default(),
                times,
            }
        })
        .collect())
}

/// What the Events are judged against.
pub struct Judge<'a> {
    pub history: &'a History,
    /// The AppDeployments of plain apps the driver writes.
    pub apps: &'a [&'static str],
    /// The attached clusters.
    pub clusters: &'a [&'static str],
    /// The MetalLB AppDeployment, deployed to attached-1 only.
    pub metallb: &'static str,
    /// `namespace/name` of each Service on attached-1 -> the address it holds (and always held).
    pub addresses: &'a BTreeMap<String, String>,
}

impl Judge<'_> {
    /// Every false Event, each saying why.
    pub fn falsehoods(&self, seen: &[Seen]) -> Vec<String> {
        let mut out = Vec::new();
        for e in seen {
            if e.times.is_empty() {
                out.push(format!("{e:?}: no time"));
            }
            for t in &e.times {
                if let Err(why) = self.judge(e, *t) {
                    out.push(format!(
                        "{} {}/{} at {}: {:?}: {why}",
                        e.reason,
                        e.kind,
                        e.name,
                        clock(*t),
                        e.note
                    ));
                }
            }
        }
        out
    }

    fn judge(&self, e: &Seen, t: SystemTime) -> Result<(), String> {
        match e.kind.as_str() {
            "KommanderCluster" => self.cluster_event(e, t),
            "AppDeployment" if e.name == self.metallb => self.metallb_event(e, t),
            "AppDeployment" => self.app_event(e, t),
            kind => Err(format!("an Event about a {kind}")),
        }
    }

    /// Where the window of what the operator may have acted on at `t` begins.
    fn since(&self, t: SystemTime) -> SystemTime {
        self.history.view_from(t, LAG)
    }

    fn cluster(&self, name: &str) -> Result<&'static str, String> {
        self.clusters
            .iter()
            .copied()
            .find(|c| *c == name)
            .ok_or_else(|| format!("{name} is no cluster of the workspace"))
    }

    /// The cluster an AppDeployment's Event is about (`cluster X: …`, `cluster X detached…`).
    fn named_cluster(&self, note: &str) -> Result<&'static str, String> {
        let rest = note.strip_prefix("cluster ").ok_or("names no cluster")?;
        let name = rest.split([':', ' ']).next().unwrap_or_default();
        self.cluster(name)
    }

    fn cluster_event(&self, e: &Seen, t: SystemTime) -> Result<(), String> {
        let c = self.cluster(&e.name)?;
        let h = self.history;
        let ok = match e.reason.as_str() {
            "Joined" => !h.down_at(c, t, SETTLE) && h.attached_within(c, self.since(t), t, true),
            "Unreachable" => h.faulted(c, t, GRACE),
            "Detaching" | "Detached" => h.attached_within(c, self.since(t), t, false),
            _ => return Err("no rule judges this reason".into()),
        };
        ok.then_some(())
            .ok_or_else(|| "the driver's record says otherwise".into())
    }

    fn app_event(&self, e: &Seen, t: SystemTime) -> Result<(), String> {
        let ad = (self.apps.iter().copied())
            .find(|a| *a == e.name)
            .ok_or("not an AppDeployment of the driver's")?;
        let h = self.history;
        let wants = h.wants_within(ad, self.since(t), t);
        let asked = || wants.iter().flatten().copied();
        match e.reason.as_str() {
            "Applied" => {
                let c = self.named_cluster(&e.note)?;
                let n = count_before(&e.note, " objects applied")?;
                let target = asked().any(|w| w.selects(c) && w.objects() == n);
                claim(
                    target && h.attached_within(c, self.since(t), t, true),
                    "not a target with that many objects",
                )
            }
            "ClusterUnreachable" => {
                let c = self.named_cluster(&e.note)?;
                claim(h.faulted(c, t, GRACE), "no fault on the cluster then")
            }
            "Removed" => {
                let c = self.named_cluster(&e.note)?;
                let why = if e.note.contains(" detached: ") {
                    h.attached_within(c, self.since(t), t, false)
                } else {
                    let was = |(w, a, x): &(SystemTime, &str, Option<Want>)| {
                        *a == ad && *w <= t && x.as_ref().is_some_and(|x| x.selects(c))
                    };
                    h.wants.iter().any(was) && wants.iter().any(|w| w.is_none_or(|w| !w.selects(c)))
                };
                claim(
                    why && removed_at_most_all(&e.note),
                    "the cluster was targeted",
                )
            }
            "Deleted" => claim(
                wants.iter().any(Option::is_none)
                    && h.wants
                        .iter()
                        .any(|(w, a, x)| *a == ad && x.is_none() && *w <= t),
                "not deleted then",
            ),
            "RolloutStarted" | "RolloutRestarted" => claim(
                h.changed_within(ad, "", self.since(t), t),
                "nothing changed",
            ),
            "StepStarted" => claim(asked().any(|w| w.steps), "no steps"),
            "RolloutComplete" => {
                let n = count_before(&e.note, " cluster(s) Ready")?;
                claim(
                    self.targeted_counts(ad, t).contains(&n),
                    "not that many targets",
                )
            }
            "RolloutReopened" => self.reopened(ad, &e.note, t),
            // Pending: the write-ahead could not reach the management API server.
            "Waiting" if e.note.contains("could not be put on record first") => claim(
                h.management_faulted(t, GRACE),
                "the management API server was up",
            ),
            _ => Err("no rule judges this reason".into()),
        }
    }

    /// How many clusters `ad` targeted at the moments something changed in the window
    /// before `t`.
    fn targeted_counts(&self, ad: &'static str, t: SystemTime) -> Vec<usize> {
        let h = self.history;
        let since = self.since(t);
        let mut moments = vec![since, t];
        moments.extend(h.wants.iter().map(|(w, _, _)| *w));
        moments.extend(h.attachments.iter().map(|(w, _, _)| *w));
        moments.retain(|m| *m >= since && *m <= t);
        let want_at = |m: SystemTime| -> Option<Want> { h.wants_within(ad, m, m)[0].cloned() };
        moments
            .into_iter()
            .map(|m| match want_at(m) {
                None => 0,
                Some(w) => (self.clusters.iter())
                    .filter(|c| w.selects(c) && h.attached_within(c, m, m, true))
                    .count(),
            })
            .collect()
    }

    /// `not Ready: X, Y; …`: each cluster named was faulted, or newly targeted.
    fn reopened(&self, ad: &'static str, note: &str, t: SystemTime) -> Result<(), String> {
        let names = note
            .split("not Ready: ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .ok_or("names no cluster")?;
        for name in names.split(", ") {
            let c = self.cluster(name)?;
            let h = self.history;
            if !(h.faulted(c, t, GRACE) || h.changed_within(ad, c, self.since(t), t)) {
                return Err(format!("{c} had no fault and no change then"));
            }
        }
        Ok(())
    }

    fn metallb_event(&self, e: &Seen, t: SystemTime) -> Result<(), String> {
        let pools = self.history.pools_within(self.since(t), t);
        match e.reason.as_str() {
            "Applied" => claim(
                self.named_cluster(&e.note)? == "attached-1" && pools.iter().any(|p| !p.held),
                "no safe pool asked for",
            ),
            "ClusterUnreachable" => claim(
                self.history.faulted("attached-1", t, GRACE),
                "no fault on attached-1 then",
            ),
            "RolloutBlocked" => {
                self.services_named(&e.note)?;
                claim(pools.iter().any(|p| p.held), "no pool to hold asked for")
            }
            "RolloutStarted" | "RolloutRestarted" => claim(
                self.history.pool_changed_within(self.since(t), t),
                "no pool asked for",
            ),
            // The embedded clusters' nodes are in 172.31.0.0/24; the pools are not.
            "ConfigWarning" => claim(
                e.note.starts_with(
                    "attached-1: layer2 pool \"default\" shares no subnet with the nodes (172.31.0.0/24",
                ) && pools.iter().all(|p| !p.range.starts_with("172.31.0.")),
                "the pool is in the nodes' subnet",
            ),
            "RolloutComplete" => claim(
                count_before(&e.note, " cluster(s) Ready")? == 1,
                "MetalLB has one target",
            ),
            "RolloutReopened" => self.reopened_metallb(&e.note, t),
            "Waiting" if e.note.contains("could not be put on record first") => claim(
                self.history.management_faulted(t, GRACE),
                "the management API server was up",
            ),
            _ => Err("no rule judges this reason".into()),
        }
    }

    fn reopened_metallb(&self, note: &str, t: SystemTime) -> Result<(), String> {
        let h = self.history;
        claim(
            note.contains("not Ready: attached-1;")
                && (h.faulted("attached-1", t, GRACE) || h.pool_changed_within(self.since(t), t)),
            "attached-1 had no fault and no change then",
        )
    }

    /// Each `ns/name would lose IP` or `ns/name holds IP` names the address the Service holds.
    fn services_named(&self, note: &str) -> Result<(), String> {
        let mut named = 0;
        for (svc, held) in &self.addresses_claimed(note) {
            named += 1;
            let holds = self.addresses.get(svc.as_str());
            if holds != Some(held) {
                return Err(format!("{svc} holds {holds:?}, not {held}"));
            }
        }
        claim(named > 0, "names no Service")
    }

    /// The `(Service, address)` pairs a note claims: `ns/name holds IP`, `ns/name would lose IP`.
    fn addresses_claimed(&self, note: &str) -> Vec<(String, String)> {
        let words: Vec<&str> = note.split_whitespace().collect();
        let at = |i: usize| words.get(i).copied().unwrap_or_default();
        let mut out = Vec::new();
        for (i, word) in words.iter().enumerate() {
            let ip = match (at(i + 1), at(i + 2)) {
                ("holds", ip) => ip,
                ("would", "lose") => at(i + 3),
                _ => continue,
            };
            if word.contains('/') {
                let svc = word.trim_matches(|c: char| !c.is_alphanumeric());
                let ip = ip.trim_end_matches(|c: char| !c.is_ascii_digit());
                out.push((svc.to_string(), ip.to_string()));
            }
        }
        out
    }
}

/// `t` as UNIX seconds with milliseconds, as the driver's step lines print it.
pub fn clock(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

fn claim(ok: bool, otherwise: &str) -> Result<(), String> {
    ok.then_some(()).ok_or_else(|| otherwise.to_string())
}

/// The number just before `what` in `note` (`2 objects applied` -> 2).
fn count_before(note: &str, what: &str) -> Result<usize, String> {
    note.split(what)
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no count before {what:?}"))
}

/// `k of n objects removed` with k <= n.
fn removed_at_most_all(note: &str) -> bool {
    let Some(head) = note.split(" objects removed").next() else {
        return false;
    };
    let words: Vec<&str> = head.rsplit(' ').take(3).collect();
    match words.as_slice() {
        [n, "of", k] => k.parse::<usize>().ok() <= n.parse::<usize>().ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos_env::workload::{Fault, Pool, Span};

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn seen(kind: &str, name: &str, reason: &str, note: &str, t: u64) -> Seen {
        Seen {
            reason: reason.into(),
            kind: kind.into(),
            name: name.into(),
            note: note.into(),
            times: vec![at(t)],
        }
    }

    /// chaos-1 for group a from 0 s, retargeted to group b at 100 s; attached-1 down from 200
    /// s, healing from 207 s, healed at 208 s; chaos-1 set again at 390 s, the operator down
    /// from 400 to 430 s; a safe pool at 0 s, a held one at 300 s.
    fn history() -> History {
        let want = |group| Want {
            group: Some(group),
            data: "v".into(),
            extra: false,
            steps: false,
        };
        let pool = |range: &str, held| Pool {
            range: range.into(),
            held,
        };
        History {
            faults: vec![
                Span {
                    fault: Fault::PortClosed("attached-1"),
                    from: at(200),
                    healing: at(207),
                    to: at(208),
                },
                Span {
                    fault: Fault::Operator,
                    from: at(400),
                    healing: at(429),
                    to: at(430),
                },
            ],
            wants: vec![
                (at(0), "chaos-1", Some(want("a"))),
                (at(100), "chaos-1", Some(want("b"))),
                (at(390), "chaos-1", Some(want("b"))),
            ],
            attachments: vec![(at(0), "attached-1", true), (at(0), "attached-2", true)],
            pools: vec![
                (at(0), (), pool("10.0.50.20-10.0.50.40", false)),
                (at(300), (), pool("10.0.50.21-10.0.50.40", true)),
            ],
        }
    }

    #[test]
    fn a_false_event_is_named_and_a_true_one_is_not() {
        let h = history();
        let addresses = BTreeMap::from([("default/lb-1".to_string(), "10.0.50.20".to_string())]);
        let judge = Judge {
            history: &h,
            apps: &["chaos-1"],
            clusters: &["attached-1", "attached-2"],
            metallb: "metallb",
            addresses: &addresses,
        };
        let ad = |reason, note, t| seen("AppDeployment", "chaos-1", reason, note, t);
        let kc = |name, reason, t| seen("KommanderCluster", name, reason, "", t);
        let blocked = |note, t| seen("AppDeployment", "metallb", "RolloutBlocked", note, t);
        let cases = [
            (
                ad("Applied", "cluster attached-1: 1 objects applied", 50),
                true,
            ),
            // Not a target, or not that many objects.
            (
                ad("Applied", "cluster attached-2: 1 objects applied", 50),
                false,
            ),
            (
                ad("Applied", "cluster attached-1: 2 objects applied", 50),
                false,
            ),
            // Within the lag of the retarget, either view may be acted on.
            (
                ad("Applied", "cluster attached-1: 1 objects applied", 110),
                true,
            ),
            (
                ad("Applied", "cluster attached-1: 1 objects applied", 130),
                false,
            ),
            (
                ad(
                    "Removed",
                    "cluster attached-1 no longer targeted: 1 of 1 objects removed",
                    105,
                ),
                true,
            ),
            (
                ad(
                    "Removed",
                    "cluster attached-2 no longer targeted: 1 of 1 objects removed",
                    50,
                ),
                false,
            ),
            (
                ad(
                    "Removed",
                    "cluster attached-1 no longer targeted: 2 of 1 objects removed",
                    105,
                ),
                false,
            ),
            (
                ad("ClusterUnreachable", "cluster attached-1: unreachable", 204),
                true,
            ),
            (
                ad("ClusterUnreachable", "cluster attached-1: unreachable", 150),
                false,
            ),
            (
                ad("ClusterUnreachable", "cluster attached-2: unreachable", 204),
                false,
            ),
            (ad("RolloutStarted", "revision r: step 1/1 all", 101), true),
            (ad("RolloutStarted", "revision r: step 1/1 all", 150), false),
            // 45 s after the change, 30 s of which the operator was down: 15 s of its time.
            (ad("RolloutStarted", "revision r: step 1/1 all", 435), true),
            (ad("RolloutStarted", "revision r: step 1/1 all", 445), false),
            (
                ad(
                    "RolloutComplete",
                    "revision r: every step done, 1 cluster(s) Ready",
                    150,
                ),
                true,
            ),
            (
                ad(
                    "RolloutComplete",
                    "revision r: every step done, 2 cluster(s) Ready",
                    150,
                ),
                false,
            ),
            (
                ad(
                    "RolloutReopened",
                    "revision r is not complete any more: not Ready: attached-2; at step 1/1 all",
                    201,
                ),
                false,
            ),
            (
                ad("Deleted", "objects removed from every cluster", 150),
                false,
            ),
            (ad("RolloutResumed", "revision r goes on", 150), false),
            (kc("attached-1", "Unreachable", 201), true),
            (kc("attached-1", "Unreachable", 230), false),
            (kc("attached-1", "Joined", 205), false),
            (kc("attached-1", "Joined", 208), true),
            (kc("attached-1", "Joined", 209), true),
            (
                blocked(
                    "cluster attached-1: default/lb-1 would lose 10.0.50.20 (no pool of the new config holds it) and get 10.0.50.22",
                    301,
                ),
                true,
            ),
            (
                blocked(
                    "cluster attached-1: default/lb-1 would lose 10.0.50.21 (no pool of the new config holds it) and get 10.0.50.22",
                    301,
                ),
                false,
            ),
            (
                blocked(
                    "cluster attached-1: default/lb-1 would lose 10.0.50.20 (no pool of the new config holds it) and get 10.0.50.22",
                    150,
                ),
                false,
            ),
        ];
        for (e, true_) in cases {
            let got = judge.falsehoods(std::slice::from_ref(&e));
            assert_eq!(got.is_empty(), true_, "{e:?}: {got:?}");
        }
    }
}
