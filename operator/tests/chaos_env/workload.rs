//! What the chaos driver asks for and does, and its record of when: the record is what the
//! Events are judged against.

use std::time::{Duration, SystemTime};

/// What the driver asked of one AppDeployment.
#[derive(Clone, Debug)]
pub struct Want {
    /// The clusters it selects: `None` for every one, else the `group` label.
    pub group: Option<&'static str>,
    pub data: String,
    pub extra: bool,
    /// Rolled out in steps: group a first, one cluster at a time.
    pub steps: bool,
}

impl Want {
    pub fn selects(&self, cluster: &str) -> bool {
        self.group.is_none_or(|g| g == group_of(cluster))
    }

    /// How many objects its render has.
    pub fn objects(&self) -> usize {
        if self.extra { 2 } else { 1 }
    }
}

pub fn group_of(cluster: &str) -> &'static str {
    if cluster == "attached-1" { "a" } else { "b" }
}

/// The injected faults.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Operator,
    AttachedApiServer(&'static str),
    ManagementApiServer,
    PortClosed(&'static str),
}

impl Fault {
    /// The attached cluster it makes unreachable, if any.
    pub fn cluster(&self) -> Option<&'static str> {
        match self {
            Fault::AttachedApiServer(c) | Fault::PortClosed(c) => Some(c),
            Fault::Operator | Fault::ManagementApiServer => None,
        }
    }
}

/// A fault: when it was injected, when its healing began, when it was healed.
#[derive(Clone, Debug)]
pub struct Span {
    pub fault: Fault,
    pub from: SystemTime,
    pub healing: SystemTime,
    pub to: SystemTime,
}

/// A MetalLB pool asked for, and whether the gate must hold it (it drops a Service's IP).
#[derive(Clone, Debug)]
pub struct Pool {
    pub range: String,
    pub held: bool,
}

/// When each thing was asked for (the time just before the request).
#[derive(Default, Debug)]
pub struct History {
    pub faults: Vec<Span>,
    /// An AppDeployment's want from then on; `None`: deleted.
    pub wants: Vec<(SystemTime, &'static str, Option<Want>)>,
    /// A cluster attached (true) or detached (false) from then on.
    pub attachments: Vec<(SystemTime, &'static str, bool)>,
    /// MetalLB's pool on attached-1 asked for from then on.
    pub pools: Vec<(SystemTime, (), Pool)>,
}

/// The states an entry list went through in `[from, to]`: the one in force at `from` (or none
/// yet), and each set within.
fn states<'a, K: PartialEq, V>(
    entries: &'a [(SystemTime, K, V)],
    key: &K,
    from: SystemTime,
    to: SystemTime,
) -> Vec<Option<&'a V>> {
    let mine = entries.iter().filter(|(_, k, _)| k == key);
    let before = mine.clone().filter(|(t, _, _)| *t <= from).last();
    let mut out = vec![before.map(|(_, _, v)| v)];
    out.extend(
        mine.filter(|(t, _, _)| *t > from && *t <= to)
            .map(|(_, _, v)| Some(v)),
    );
    out
}

impl History {
    /// What AppDeployment `ad` was asked to be at some moment in `[from, to]` (`None`: absent).
    pub fn wants_within(
        &self,
        ad: &'static str,
        from: SystemTime,
        to: SystemTime,
    ) -> Vec<Option<&Want>> {
        states(&self.wants, &ad, from, to)
            .into_iter()
            .map(|w| w.and_then(Option::as_ref))
            .collect()
    }

    /// Whether `cluster` was attached at some moment in `[from, to]` (`want`: true), or
    /// detached (`want`: false).
    pub fn attached_within(
        &self,
        cluster: &'static str,
        from: SystemTime,
        to: SystemTime,
        want: bool,
    ) -> bool {
        states(&self.attachments, &cluster, from, to)
            .into_iter()
            .any(|a| a.copied().unwrap_or(false) == want)
    }

    /// Whether something about `ad` or `cluster` was asked for in `[from, to]`.
    pub fn changed_within(
        &self,
        ad: &'static str,
        cluster: &str,
        from: SystemTime,
        to: SystemTime,
    ) -> bool {
        let within = |t: &SystemTime| *t >= from && *t <= to;
        self.wants.iter().any(|(t, a, _)| *a == ad && within(t))
            || self
                .attachments
                .iter()
                .any(|(t, c, _)| *c == cluster && within(t))
    }

    /// The oldest moment the operator's view at `t` may date from: `lag` of the time before
    /// `t` that it could watch the management cluster, i.e. not counting the time it or the
    /// management API server was down (a change asked then is seen only after).
    pub fn view_from(&self, t: SystemTime, lag: Duration) -> SystemTime {
        let blind_faults = self.faults.iter().filter(|s| s.fault.cluster().is_none());
        let mut from = t - lag;
        for _ in 0..1000 {
            let blind: Duration = blind_faults
                .clone()
                .map(|s| overlap(s.from, s.to, from, t))
                .sum();
            let next = t - lag - blind;
            if next >= from {
                break;
            }
            from = next;
        }
        from
    }

    /// Whether a fault on `cluster` had begun by `t` and healed at most `grace` before it.
    pub fn faulted(&self, cluster: &str, t: SystemTime, grace: Duration) -> bool {
        self.faults
            .iter()
            .any(|s| s.fault.cluster() == Some(cluster) && s.from <= t && t <= s.to + grace)
    }

    /// Whether the management API server was killed by `t` and back at most `grace` before.
    pub fn management_faulted(&self, t: SystemTime, grace: Duration) -> bool {
        self.faults.iter().any(|s| {
            matches!(s.fault, Fault::ManagementApiServer) && s.from <= t && t <= s.to + grace
        })
    }

    /// Whether `cluster` was surely unreachable at `t`: within a fault on it, `settle` after
    /// it began (a request under way when it began may still have been answered) and before
    /// its healing began (a restarted API server answers before it is seen ready).
    pub fn down_at(&self, cluster: &str, t: SystemTime, settle: Duration) -> bool {
        self.faults
            .iter()
            .any(|s| s.fault.cluster() == Some(cluster) && s.from + settle <= t && t <= s.healing)
    }

    /// Whether a pool was asked of MetalLB in `[from, to]`.
    pub fn pool_changed_within(&self, from: SystemTime, to: SystemTime) -> bool {
        self.pools.iter().any(|(t, _, _)| *t >= from && *t <= to)
    }

    /// The pools asked of MetalLB in `[from, to]`.
    pub fn pools_within(&self, from: SystemTime, to: SystemTime) -> Vec<&Pool> {
        states(&self.pools, &(), from, to)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// How long `[a, b]` and `[c, d]` overlap.
fn overlap(a: SystemTime, b: SystemTime, c: SystemTime, d: SystemTime) -> Duration {
    let (start, end) = (a.max(c), b.min(d));
    end.duration_since(start).unwrap_or_default()
}
