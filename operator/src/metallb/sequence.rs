//! The states MetalLB passes through while the operator writes a config change, and what each
//! Service ends with when MetalLB acts on every one of them. Pure.
//!
//! The operator writes what adds addresses first, then each pool that narrows (in kind/name
//! order), then what takes up the addresses those give up (MetalLB's webhook refuses two pools
//! holding one address), then prunes what the new config drops (in kind/name order). A running
//! 0.14+ controller reloads on every write, so a Service cleared by one narrowing pool draws
//! from the pools as they stand at that moment, and may be cleared again by the next. A state
//! MetalLB would refuse as invalid (two pools overlapping for a moment) changes nothing: it
//! keeps the last valid one. On 0.13 the order does not matter: the controller judges each
//! state against the same assignments and refuses any that takes an IP.

use super::crs::{CrConfig, Phase, Release, phases};
use super::renumber::{Fate, Outcome, held, predict};
use super::safety::LiveService;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One state of the write sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What was just written, as "IPAddressPool/b is written" or "IPAddressPool/a is deleted".
    pub after: String,
    /// Every config object in force after it.
    pub items: Vec<Value>,
}

fn key(o: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (s(&o["kind"]), s(&o["metadata"]["name"]))
}

/// The states between `old_items` (in force, parsed as `old`) and `new_items`, in the
/// operator's write order; the last holds the new items (others' objects included, as both
/// lists hold them). Writes that change nothing make no state.
pub fn write_steps(old: Option<&CrConfig>, old_items: &[Value], new_items: &[Value]) -> Vec<Step> {
    let mut state: Vec<Value> = old_items.to_vec();
    let mut steps: Vec<Step> = Vec::new();
    let mut push = |state: &Vec<Value>, after: String| {
        let last = steps.last().map_or(old_items, |s| s.items.as_slice());
        if last != state.as_slice() {
            steps.push(Step {
                after,
                items: state.clone(),
            });
        }
    };
    let put = |state: &mut Vec<Value>, o: &Value| match state.iter_mut().find(|s| key(s) == key(o))
    {
        Some(slot) => *slot = o.clone(),
        None => state.push(o.clone()),
    };
    let phase = phases(old, new_items);
    let adds: Vec<&Value> = new_items
        .iter()
        .zip(&phase)
        .filter(|(_, p)| **p == Phase::Add)
        .map(|(o, _)| o)
        .collect();
    for o in &adds {
        put(&mut state, o);
    }
    push(&state, "what adds addresses is written".into());
    // Each pool that narrows, then each that takes up what those gave up, in name order.
    for later in [Phase::Narrow, Phase::Fill] {
        let mut group: Vec<&Value> = new_items
            .iter()
            .zip(&phase)
            .filter(|(_, p)| **p == later)
            .map(|(o, _)| o)
            .collect();
        group.sort_by_key(|o| key(o));
        for o in group {
            put(&mut state, o);
            let (kind, name) = key(o);
            push(&state, format!("{kind}/{name} is written"));
        }
    }
    let mut dropped: Vec<(String, String)> = old_items
        .iter()
        .map(key)
        .filter(|k| !new_items.iter().any(|n| key(n) == *k))
        .collect();
    dropped.sort();
    for k in dropped {
        state.retain(|o| key(o) != k);
        push(&state, format!("{}/{} is deleted", k.0, k.1));
    }
    // The last state is the new config as written, in its own order.
    if let Some(last) = steps.last_mut() {
        last.items = new_items.to_vec();
    }
    steps
}

/// The states of [`write_steps`] as configs, ending with `new` (`new_items` parsed), each
/// labelled with what was just written. A state `parse` refuses is left out: MetalLB keeps the
/// last valid config through it.
pub fn parsed_steps(
    old: Option<&CrConfig>,
    old_items: Option<&[Value]>,
    new_items: &[Value],
    new: CrConfig,
    parse: impl Fn(&[Value]) -> Option<CrConfig>,
) -> Vec<(String, CrConfig)> {
    let mut steps: Vec<(String, CrConfig)> = match (old, old_items) {
        (Some(o), Some(items)) => write_steps(Some(o), items, new_items)
            .into_iter()
            .filter_map(|s| Some((s.after, parse(&s.items)?)))
            .collect(),
        _ => Vec::new(),
    };
    // The last state holds `new_items`: it is `new`.
    let after = steps
        .pop()
        .map_or_else(|| "the new config is written".to_string(), |(a, _)| a);
    steps.push((after, new));
    steps
}

/// Why a fate clears a Service, if it does.
fn why(fate: &Fate) -> Option<&str> {
    match fate {
        Fate::Renumbered { why, .. } | Fate::Contended { why, .. } | Fate::Pending { why, .. } => {
            Some(why)
        }
        _ => None,
    }
}

/// The same fate, cleared for `why`.
fn with_why(fate: &Fate, why: String) -> Fate {
    match fate.clone() {
        Fate::Renumbered { to, pools, .. } => Fate::Renumbered { why, to, pools },
        Fate::Contended {
            pools,
            free,
            rivals,
            ..
        } => Fate::Contended {
            why,
            pools,
            free,
            rivals,
        },
        Fate::Pending { because, .. } => Fate::Pending { why, because },
        other => other,
    }
}

/// A Service cleared on the way: why first, and its latest fate.
struct Cleared {
    why: String,
    fate: Fate,
    /// Its address since is one of several MetalLB's order decides between: assumed, to
    /// follow it through the next states, but never reported as certain.
    assumed: bool,
}

/// The fate of every Service holding IPs when MetalLB acts on each state of `steps` in turn
/// (each labelled with what was just written; the last is the new config). On 0.13, or with
/// one state, this is `predict` from `old` to the last.
pub fn predict_along(
    old: Option<&CrConfig>,
    steps: &[(String, CrConfig)],
    services: &[LiveService],
    release: Release,
) -> Vec<Outcome> {
    let Some(((_, last), between)) = steps.split_last() else {
        return Vec::new();
    };
    if !release.renumbers() || between.is_empty() {
        return predict(old, last, services, release);
    }
    let mut now = Along::new(services);
    let mut prev = old;
    for (after, cfg) in between {
        now.step(predict(prev, cfg, &now.services, release), after);
        prev = Some(cfg);
    }
    let finals: BTreeMap<String, Fate> = predict(prev, last, &now.services, release)
        .into_iter()
        .map(|o| (o.service, o.fate))
        .collect();
    held(services)
        .into_iter()
        .map(|s| {
            let service = s.id();
            let fate = now.fate(&service, finals.get(&service), last);
            Outcome {
                service,
                ips: s.ips.clone(),
                fate,
            }
        })
        .collect()
}

/// The Services as MetalLB leaves them after each state on the way, and those it cleared.
struct Along {
    services: Vec<LiveService>,
    /// Where each Service is in `services`: a prediction names thousands of them.
    index: BTreeMap<String, usize>,
    cleared: BTreeMap<String, Cleared>,
}

impl Along {
    fn new(services: &[LiveService]) -> Self {
        let index = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id(), i))
            .collect();
        Along {
            services: services.to_vec(),
            index,
            cleared: BTreeMap::new(),
        }
    }

    /// Follow the Services a state's prediction clears (`after`: what was just written).
    fn step(&mut self, predicted: Vec<Outcome>, after: &str) {
        // Services drawing "one of" the same addresses take them in the order predict lists
        // them: a guess, but one that stays in the right pool for the next state.
        let mut handed: BTreeMap<Vec<IpAddr>, usize> = BTreeMap::new();
        for o in predicted {
            let Some(why) = why(&o.fate) else { continue };
            let (to, assumed) = match &o.fate {
                Fate::Renumbered { to, .. } if to.len() == 1 => (to.clone(), false),
                Fate::Renumbered { to: some, .. } | Fate::Contended { free: some, .. }
                    if !some.is_empty() =>
                {
                    let k = handed.entry(some.clone()).or_default();
                    let ip = some.get(*k).copied();
                    *k += 1;
                    (ip.into_iter().collect(), true)
                }
                // Pending, or the pool itself uncertain: no address to follow.
                _ => (Vec::new(), false),
            };
            let entry = self.cleared.entry(o.service.clone()).or_insert(Cleared {
                why: format!("{why}, once {after}"),
                fate: o.fate.clone(),
                assumed,
            });
            entry.fate = o.fate.clone();
            entry.assumed = assumed;
            if let Some(&i) = self.index.get(&o.service) {
                self.services[i].ips = to;
            }
        }
    }

    /// A Service's fate over the whole way, given its fate under the last state.
    fn fate(&self, service: &str, last_fate: Option<&Fate>, last: &CrConfig) -> Fate {
        match (self.cleared.get(service), last_fate) {
            (None, fate) => fate.cloned().unwrap_or(Fate::Keeps),
            // Cleared on the way and given no address since, or one MetalLB's order picks.
            (Some(c), None) => with_why(&c.fate, c.why.clone()),
            (Some(c), Some(f)) if c.assumed && why(f).is_none() => with_why(&c.fate, c.why.clone()),
            // Cleared again by the new config.
            (Some(c), Some(f)) if why(f).is_some() => {
                with_why(f, format!("{}; then {}", c.why, why(f).unwrap_or_default()))
            }
            // Cleared on the way, and the address it got then stays.
            (Some(c), Some(_)) => {
                let ips: Vec<IpAddr> = self
                    .index
                    .get(service)
                    .map(|&i| self.services[i].ips.clone())
                    .unwrap_or_default();
                Fate::Renumbered {
                    why: c.why.clone(),
                    pools: last
                        .pool_for(&ips)
                        .map(|p| vec![p.name.clone()])
                        .unwrap_or_default(),
                    to: ips,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metallb::crs::{BgpMode, parse};
    use serde_json::json;

    /// Pool `name` with `addrs`, pinned to namespace `x` at `priority` when it is non-zero.
    fn pool(name: &str, addrs: &str, priority: i64) -> Value {
        let mut p = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name}, "spec": {"addresses": [addrs]}});
        if priority > 0 {
            p["spec"]["serviceAllocation"] = json!({"priority": priority, "namespaces": ["x"]});
        }
        p
    }

    fn adv() -> Value {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "all"}})
    }

    fn cfg(items: &[Value]) -> CrConfig {
        parse(items, Release::V0_15, BgpMode::Frr, &Default::default()).unwrap()
    }

    fn svc(name: &str, ip: &str) -> LiveService {
        LiveService {
            namespace: "x".into(),
            name: name.into(),
            ips: vec![ip.parse().unwrap()],
            ..Default::default()
        }
    }

    fn labels(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.after.as_str()).collect()
    }

    #[test]
    fn writes_add_first_then_narrow_then_delete_each_in_name_order() {
        let old = vec![
            pool("c", "10.0.3.0/24", 0),
            pool("b", "10.0.2.0/24", 0),
            pool("a", "10.0.1.0/24", 0),
            adv(),
        ];
        let new = vec![
            pool("b", "10.0.2.0/25", 0),
            pool("a", "10.0.1.0/25", 0),
            pool("d", "10.0.4.0/24", 0),
            pool("e", "10.0.5.0/24", 0),
            adv(),
        ];
        let steps = write_steps(Some(&cfg(&old)), &old, &new);
        assert_eq!(
            labels(&steps),
            vec![
                "what adds addresses is written",
                "IPAddressPool/a is written",
                "IPAddressPool/b is written",
                "IPAddressPool/c is deleted",
            ]
        );
        // d and e come at once; a narrows before b is touched.
        assert_eq!(steps[0].items.len(), 6);
        assert_eq!(steps[1].items[2], pool("a", "10.0.1.0/25", 0));
        assert_eq!(steps[1].items[1], pool("b", "10.0.2.0/24", 0));
        assert_eq!(steps.last().map(|s| &s.items), Some(&new));
    }

    /// A range moving from p to q: p gives it up first, q takes it after. A Service holding
    /// an address of the range is cleared in between (MetalLB's webhook allows no state in
    /// which both pools hold it), and the prediction says so.
    #[test]
    fn a_range_moving_between_pools() {
        let old = vec![
            pool("p", "10.0.0.1-10.0.0.4", 0),
            pool("q", "10.0.1.1-10.0.1.4", 0),
            adv(),
        ];
        let new = vec![
            pool("p", "10.0.0.1-10.0.0.2", 0),
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "q"},
                "spec": {"addresses": ["10.0.1.1-10.0.1.4", "10.0.0.3-10.0.0.4"]}}),
            adv(),
        ];
        let old_cfg = cfg(&old);
        let steps = write_steps(Some(&old_cfg), &old, &new);
        assert_eq!(
            labels(&steps),
            vec!["IPAddressPool/p is written", "IPAddressPool/q is written"]
        );
        let services = vec![svc("s0", "10.0.0.1"), svc("s3", "10.0.0.3")];
        let steps = parsed_steps(Some(&old_cfg), Some(&old), &new, cfg(&new), |i| {
            Some(cfg(i))
        });
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_15);
        assert_eq!(ours[0].fate, Fate::Keeps);
        assert!(
            matches!(&ours[1].fate, Fate::Renumbered { why, .. } if why.contains("once IPAddressPool/p is written")),
            "{}",
            ours[1]
        );
        // 0.13 refuses the state in between and accepts the end, where 10.0.0.3 is in q.
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_13);
        assert!(ours.iter().all(|o| o.fate == Fate::Keeps), "{ours:?}");
    }

    #[test]
    fn no_change_and_adds_only() {
        let old = vec![pool("a", "10.0.1.0/24", 0), adv()];
        assert!(write_steps(Some(&cfg(&old)), &old, &old).is_empty());
        let grown = vec![pool("a", "10.0.0.0/23", 0), adv()];
        assert_eq!(
            labels(&write_steps(Some(&cfg(&old)), &old, &grown)),
            vec!["what adds addresses is written"]
        );
    }

    /// p (first choice of namespace x) loses s1's address and is full; q (second choice) loses
    /// s2's. Written p then q, s1 moves into q before s2 is cleared: each lands on a known
    /// address, where judging the end state alone can only say "one of".
    #[test]
    fn two_narrowing_pools_in_turn() {
        let old = vec![
            pool("p", "10.0.0.1-10.0.0.2", 1),
            pool("q", "10.0.0.10-10.0.0.13", 2),
            adv(),
        ];
        let new = vec![
            pool("p", "10.0.0.2-10.0.0.2", 1),
            pool("q", "10.0.0.10-10.0.0.12", 2),
            adv(),
        ];
        let services = vec![
            svc("s0", "10.0.0.2"),
            svc("s1", "10.0.0.1"),
            svc("s2", "10.0.0.13"),
        ];
        let old_cfg = cfg(&old);
        let steps: Vec<(String, CrConfig)> = write_steps(Some(&old_cfg), &old, &new)
            .into_iter()
            .map(|s| (s.after, cfg(&s.items)))
            .collect();
        assert_eq!(steps.len(), 2);
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_15);
        let said: Vec<String> = ours.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            vec![
                "x/s0 keeps 10.0.0.2",
                "x/s1 would lose 10.0.0.1 (no pool of the new config holds it, once IPAddressPool/p is written) and get 10.0.0.10",
                "x/s2 would lose 10.0.0.13 (no pool of the new config holds it) and get 10.0.0.11",
            ]
        );
        // The end state alone: both cleared at once, each gets one of the two.
        let direct = predict(Some(&old_cfg), &cfg(&new), &services, Release::V0_15);
        assert!(matches!(&direct[1].fate, Fate::Renumbered { to, .. } if to.len() == 2));
        // 0.13 judges every state against the same assignments: the order does not matter.
        assert_eq!(
            predict_along(Some(&old_cfg), &steps, &services, Release::V0_13),
            predict(Some(&old_cfg), &cfg(&new), &services, Release::V0_13)
        );
    }

    /// A state MetalLB would refuse (two pools overlapping for a moment) is left out; the last
    /// is the new config as given.
    #[test]
    fn parsed_steps_skip_invalid_states_and_end_with_new() {
        let old = vec![pool("a", "10.0.0.0/24", 0), adv()];
        // a renamed b: b is added while a still holds the range, a is pruned after.
        let new = vec![pool("b", "10.0.0.0/24", 0), adv()];
        let old_cfg = cfg(&old);
        let raw = write_steps(Some(&old_cfg), &old, &new);
        assert_eq!(
            labels(&raw),
            vec![
                "what adds addresses is written",
                "IPAddressPool/a is deleted"
            ]
        );
        let parse = |items: &[Value]| {
            crate::metallb::crs::parse(items, Release::V0_15, BgpMode::Frr, &Default::default())
                .ok()
        };
        // The adds state (a and b over one range) overlaps: refused, left out.
        assert!(parse(&raw[0].items).is_none());
        let steps = parsed_steps(Some(&old_cfg), Some(&old), &new, cfg(&new), parse);
        let after: Vec<&str> = steps.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(after, vec!["IPAddressPool/a is deleted"]);
        assert_eq!(steps[0].1, cfg(&new));
        // Nothing in force: one state, the new config.
        assert_eq!(parsed_steps(None, None, &new, cfg(&new), parse).len(), 1);
    }

    /// Two Services cleared by the first write draw "one of" two addresses of a pool the
    /// second write moves: both are cleared again, and end with one of its new addresses.
    #[test]
    fn one_of_followed_through_the_next_state() {
        let old = vec![
            pool("p0", "10.0.0.1-10.0.0.2", 0),
            pool("p1", "10.0.1.1-10.0.1.3", 0),
            adv(),
        ];
        let new = vec![only_other(), pool("p1", "10.0.2.1-10.0.2.3", 0), adv()];
        let services = vec![svc("s0", "10.0.0.1"), svc("s1", "10.0.0.2")];
        let old_cfg = cfg(&old);
        let steps = parsed_steps(Some(&old_cfg), Some(&old), &new, cfg(&new), |i| {
            Some(cfg(i))
        });
        assert_eq!(steps.len(), 2);
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_15);
        let two: Vec<IpAddr> = vec!["10.0.2.1".parse().unwrap(), "10.0.2.2".parse().unwrap()];
        for o in &ours {
            assert!(
                matches!(&o.fate, Fate::Renumbered { to, why, .. } if *to == two && why.contains("once IPAddressPool/p0 is written; then")),
                "{o}"
            );
        }
        // Had p1 stayed (and another pool narrowed after p0), the address assumed for the
        // next state is not reported as certain.
        let old = vec![
            pool("p0", "10.0.0.1-10.0.0.2", 0),
            pool("p1", "10.0.1.1-10.0.1.3", 0),
            for_other("p2", "10.0.3.1-10.0.3.2"),
            adv(),
        ];
        let kept = vec![
            only_other(),
            pool("p1", "10.0.1.1-10.0.1.3", 0),
            for_other("p2", "10.0.3.1-10.0.3.1"),
            adv(),
        ];
        let old_cfg = cfg(&old);
        let steps = parsed_steps(Some(&old_cfg), Some(&old), &kept, cfg(&kept), |i| {
            Some(cfg(i))
        });
        assert_eq!(steps.len(), 2);
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_15);
        assert!(
            matches!(&ours[0].fate, Fate::Renumbered { to, .. } if to.len() == 2),
            "{}",
            ours[0]
        );
    }

    /// p0 of the old config, now admitting namespace `other` only.
    fn only_other() -> Value {
        for_other("p0", "10.0.0.1-10.0.0.2")
    }

    fn for_other(name: &str, addrs: &str) -> Value {
        let mut p = pool(name, addrs, 0);
        p["spec"]["serviceAllocation"] = json!({"namespaces": ["other"]});
        p
    }

    /// Cleared by the first write and again by the second: both reasons, the final address.
    #[test]
    fn cleared_twice() {
        let old = vec![
            pool("p", "10.0.0.1-10.0.0.2", 1),
            pool("q", "10.0.0.10-10.0.0.11", 2),
            adv(),
        ];
        let new = vec![
            pool("p", "10.0.0.2-10.0.0.2", 1),
            pool("q", "10.0.0.11-10.0.0.12", 2),
            adv(),
        ];
        let services = vec![svc("s0", "10.0.0.2"), svc("s1", "10.0.0.1")];
        let old_cfg = cfg(&old);
        let steps: Vec<(String, CrConfig)> = write_steps(Some(&old_cfg), &old, &new)
            .into_iter()
            .map(|s| (s.after, cfg(&s.items)))
            .collect();
        let ours = predict_along(Some(&old_cfg), &steps, &services, Release::V0_15);
        assert_eq!(
            ours[1].to_string(),
            "x/s1 would lose 10.0.0.1 (no pool of the new config holds it, once IPAddressPool/p is written; then no pool of the new config holds it) and get 10.0.0.11"
        );
    }
}
