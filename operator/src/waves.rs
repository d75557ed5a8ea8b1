//! The rollout of one revision across an AppDeployment's clusters, in steps: which clusters may
//! take it now, and where the rollout stands. A pure function of the strategy, each cluster's
//! standing (from the last status) and the clock; the shell deploys to the clusters it admits.

use crate::resources::{
    ClusterPhase, ClusterRolloutStatus, RolloutPhase, RolloutStatus, RolloutStrategy,
};
use crate::selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};

/// AppDeployment annotation lifting a paused step: `<step name>@<revision>`.
pub const RESUME_ANNOTATION: &str = "apps.kommander.d2iq.io/resume-rollout";

/// The progress deadline when `spec.rollout.progressDeadline` is absent.
pub const DEFAULT_PROGRESS_DEADLINE_SECS: i64 = 600;

/// Name of the step of the clusters no step's selector matches.
pub const REST: &str = "rest";

/// Name of the one step when `spec.rollout.steps` is empty.
pub const ALL: &str = "all";

/// `spec.rollout`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// At most this many clusters take the revision at a time.
    pub limit: usize,
    /// Named steps, in order.
    pub steps: Vec<Step>,
    /// Failures tolerated before the rollout halts.
    pub max_failures: usize,
    /// Seconds a cluster may take to become Ready (or stay unreachable) once its turn came.
    pub deadline_secs: i64,
}

/// One step, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// As shown.
    pub name: String,
    /// Its clusters.
    pub selector: LabelSelector,
    /// Wait for a person once done.
    pub pause: bool,
}

impl Strategy {
    /// Check `spec.rollout` for `targets` clusters. `Err` names the field and the rule.
    pub fn from_spec(spec: Option<&RolloutStrategy>, targets: usize) -> Result<Strategy, String> {
        // No strategy: every cluster at once, each on its own (a failure halts nothing).
        let Some(spec) = spec else {
            return Ok(Strategy {
                limit: usize::MAX,
                steps: Vec::new(),
                max_failures: usize::MAX,
                deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
            });
        };
        let limit = match &spec.max_concurrent_clusters {
            None => usize::MAX,
            Some(v) => concurrency(v, targets)?,
        };
        let deadline_secs = match &spec.progress_deadline {
            None => DEFAULT_PROGRESS_DEADLINE_SECS,
            Some(d) => {
                let nanos = crate::metallb::duration::parse_go_duration(d)
                    .map_err(|e| format!("spec.rollout.progressDeadline: {e}"))?;
                let secs = crate::metallb::duration::whole_seconds(nanos);
                if secs < 1 {
                    return Err(format!(
                        "spec.rollout.progressDeadline: {d:?} must be at least 1s"
                    ));
                }
                secs
            }
        };
        let mut steps = Vec::new();
        let mut names = BTreeSet::new();
        for (i, s) in spec.steps.iter().enumerate() {
            let name = s.name.clone().unwrap_or_else(|| format!("step-{}", i + 1));
            crate::names::check(&format!("spec.rollout.steps[{i}].name"), &name)?;
            if name == REST || name == ALL || !names.insert(name.clone()) {
                return Err(format!(
                    "spec.rollout.steps[{i}].name: {name:?} is used twice (or is {REST:?} or {ALL:?}, the names the operator gives the clusters no step matches)"
                ));
            }
            selector::matches(&s.cluster_selector, &BTreeMap::new())
                .map_err(|e| format!("spec.rollout.steps[{i}].clusterSelector: {e}"))?;
            steps.push(Step {
                name,
                selector: s.cluster_selector.clone(),
                pause: s.pause,
            });
        }
        Ok(Strategy {
            limit,
            steps,
            max_failures: spec.max_failures.unwrap_or(0) as usize,
            deadline_secs,
        })
    }
}

/// `maxConcurrentClusters` as a count: a number of at least 1, or a percentage (1–100) of the
/// targets, rounded up.
fn concurrency(v: &IntOrString, targets: usize) -> Result<usize, String> {
    let field = "spec.rollout.maxConcurrentClusters";
    match v {
        IntOrString::Int(n) if *n >= 1 => Ok(*n as usize),
        IntOrString::Int(n) => Err(format!("{field}: {n} must be at least 1")),
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| {
                    format!("{field}: {s:?} is neither a number nor a percentage from 1% to 100%")
                })?;
            Ok((targets * pct).div_ceil(100).max(1))
        }
    }
}

/// Where a cluster stands with the revision rendered for it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Ready at this revision.
    Done,
    /// Took this revision and is not Ready yet (rolling out, held by its safety check, or
    /// waiting for an input).
    InFlight,
    /// Failed at this revision (Failed, Invalid, Conflict).
    Failed,
    /// Unreachable since this time (seconds since the epoch).
    Unreachable(i64),
    /// Has not taken this revision.
    NotStarted,
}

/// Where a cluster stands with `revision`, from its last status.
pub fn standing(prev: Option<&ClusterRolloutStatus>, revision: &str) -> Standing {
    let Some(p) = prev else {
        return Standing::NotStarted;
    };
    if p.phase == ClusterPhase::Unreachable {
        let since = p
            .last_transition_time
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(i64::MAX);
        return Standing::Unreachable(since);
    }
    if p.revision.as_deref() != Some(revision) {
        return Standing::NotStarted;
    }
    match p.phase {
        ClusterPhase::Applied => Standing::Done,
        ClusterPhase::Failed | ClusterPhase::Invalid | ClusterPhase::Conflict => Standing::Failed,
        ClusterPhase::Waiting => Standing::NotStarted,
        ClusterPhase::Progressing
        | ClusterPhase::Blocked
        | ClusterPhase::Pending
        | ClusterPhase::Drifted
        | ClusterPhase::Unreachable => Standing::InFlight,
    }
}

/// One target cluster, as the plan sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// KommanderCluster name.
    pub name: String,
    /// Its labels (what steps select on).
    pub labels: BTreeMap<String, String>,
    /// Its standing.
    pub standing: Standing,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    /// Clusters to deploy to now: those that have the revision or take it now.
    pub admitted: BTreeSet<String>,
    /// Why each other cluster waits, in words.
    pub waiting: BTreeMap<String, String>,
    /// The status to show.
    pub status: RolloutStatus,
}

/// The AppDeployment a plan is for, for the commands its messages print.
pub struct Subject<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// The revision rolled out.
    pub revision: &'a str,
    /// The resume annotation's value, if set.
    pub resume: Option<&'a str>,
}

fn skipped(t: &Target, now: i64, deadline: i64) -> bool {
    matches!(t.standing, Standing::Unreachable(since) if now - since >= deadline)
}

fn settled(t: &Target, now: i64, deadline: i64) -> bool {
    matches!(t.standing, Standing::Done | Standing::Failed) || skipped(t, now, deadline)
}

/// The steps with their clusters (indices into `targets`), in order; the clusters no step
/// matches last.
fn assign(strategy: &Strategy, targets: &[Target]) -> Vec<(String, bool, Vec<usize>)> {
    let mut steps: Vec<(String, bool, Vec<usize>)> = strategy
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.pause, Vec::new()))
        .collect();
    let mut rest = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        // Selectors were checked in `from_spec`: an error cannot happen here.
        match strategy
            .steps
            .iter()
            .position(|s| selector::matches(&s.selector, &t.labels).unwrap_or(false))
        {
            Some(k) => steps[k].2.push(i),
            None => rest.push(i),
        }
    }
    if steps.is_empty() {
        steps.push((ALL.to_string(), false, rest));
    } else if !rest.is_empty() {
        steps.push((REST.to_string(), false, rest));
    }
    steps
}

/// Where the walk through the steps stopped.
enum Reached {
    /// At this step, which is not settled.
    At(usize),
    /// After this settled step, which pauses.
    Paused(usize),
    /// At this step: too many failures up to here.
    Halted(usize),
    /// Every step settled.
    Complete,
}

/// The walk through the steps: the targets assigned to them, at a time.
struct Walk<'a> {
    strategy: &'a Strategy,
    targets: &'a [Target],
    steps: Vec<(String, bool, Vec<usize>)>,
    /// Each target's step.
    step_of: BTreeMap<usize, usize>,
    now: i64,
}

impl<'a> Walk<'a> {
    fn new(strategy: &'a Strategy, targets: &'a [Target], now: i64) -> Self {
        let steps = assign(strategy, targets);
        let step_of = steps
            .iter()
            .enumerate()
            .flat_map(|(k, (_, _, m))| m.iter().map(move |&i| (i, k)))
            .collect();
        Walk {
            strategy,
            targets,
            steps,
            step_of,
            now,
        }
    }

    fn settled(&self, i: usize) -> bool {
        settled(&self.targets[i], self.now, self.strategy.deadline_secs)
    }

    fn skipped(&self, i: usize) -> bool {
        skipped(&self.targets[i], self.now, self.strategy.deadline_secs)
    }

    fn label(&self, k: usize) -> String {
        format!("{}/{} ({})", k + 1, self.steps.len(), self.steps[k].0)
    }

    /// Where the walk stops: the first step not settled, past too many failures, or pausing
    /// (unless resumed for this revision, or every later step is settled anyway).
    fn reached(&self, subject: &Subject<'_>) -> Reached {
        let mut failures = 0;
        for (k, (name, pause, members)) in self.steps.iter().enumerate() {
            let failed = members
                .iter()
                .filter(|&&i| self.targets[i].standing == Standing::Failed);
            failures += failed.count();
            if failures > self.strategy.max_failures {
                return Reached::Halted(k);
            }
            if !members.iter().all(|&i| self.settled(i)) {
                return Reached::At(k);
            }
            let later = &self.steps[k + 1..];
            let later_settled = later
                .iter()
                .all(|(_, _, m)| m.iter().all(|&i| self.settled(i)));
            let resumed = subject.resume == Some(format!("{name}@{}", subject.revision).as_str());
            if *pause && !later_settled && !resumed {
                return Reached::Paused(k);
            }
        }
        Reached::Complete
    }

    /// The clusters admitted now, and of them those that start now: every one that has
    /// started, and not-started ones of the open step while there is a free slot.
    fn admit(
        &self,
        current: usize,
        opens: bool,
        in_flight: &dyn Fn(usize) -> bool,
    ) -> (BTreeSet<String>, BTreeSet<usize>) {
        let mut busy = (0..self.targets.len()).filter(|&i| in_flight(i)).count();
        let (mut admitted, mut starting) = (BTreeSet::new(), BTreeSet::new());
        for (i, t) in self.targets.iter().enumerate() {
            let take = match t.standing {
                Standing::Done | Standing::InFlight | Standing::Failed => true,
                Standing::Unreachable(_) => self.step_of[&i] <= current,
                Standing::NotStarted => {
                    let ok = opens && self.step_of[&i] == current && busy < self.strategy.limit;
                    if ok {
                        busy += 1;
                        starting.insert(i);
                    }
                    ok
                }
            };
            if take {
                admitted.insert(t.name.clone());
            }
        }
        (admitted, starting)
    }

    /// Why target `i`, not admitted, waits.
    fn why_waiting(&self, i: usize, stop: &Reached, current: usize) -> String {
        match stop {
            Reached::Paused(k) => format!("the rollout is paused after step {}", self.label(*k)),
            Reached::Halted(k) => format!("the rollout is halted at step {}", self.label(*k)),
            _ if self.step_of[&i] > current => format!(
                "waiting for step {}: the rollout is at step {}",
                self.label(self.step_of[&i]),
                self.label(current)
            ),
            _ => format!(
                "waiting for a free slot in step {}: {} cluster(s) at a time (spec.rollout.maxConcurrentClusters)",
                self.label(current),
                self.strategy.limit
            ),
        }
    }

    /// The names of the targets `pred` picks.
    fn names(&self, pred: impl Fn(usize) -> bool) -> Vec<String> {
        let picked = (0..self.targets.len()).filter(|&i| pred(i));
        picked.map(|i| self.targets[i].name.clone()).collect()
    }
}

/// Plan the rollout of `subject.revision` over `targets` at time `now` (seconds).
pub fn wave(strategy: &Strategy, targets: &[Target], subject: &Subject<'_>, now: i64) -> Wave {
    let walk = Walk::new(strategy, targets, now);
    let n = walk.steps.len();
    let stop = walk.reached(subject);
    let (current, opens) = match stop {
        Reached::At(k) => (k, true),
        Reached::Paused(k) | Reached::Halted(k) => (k, false),
        Reached::Complete => (n - 1, false),
    };
    let started = |i: usize| walk.step_of[&i] <= current;
    let in_flight = |i: usize| match targets[i].standing {
        Standing::InFlight => true,
        Standing::Unreachable(_) => started(i) && !walk.skipped(i),
        _ => false,
    };
    let (admitted, starting) = walk.admit(current, opens, &in_flight);
    let waiting: BTreeMap<String, String> = (0..targets.len())
        .filter(|&i| !admitted.contains(&targets[i].name))
        .map(|i| (targets[i].name.clone(), walk.why_waiting(i, &stop, current)))
        .collect();
    let done = walk.names(|i| targets[i].standing == Standing::Done);
    let failed = walk.names(|i| targets[i].standing == Standing::Failed);
    let skipped_names = walk.names(|i| started(i) && walk.skipped(i));
    let progressing = walk.names(|i| in_flight(i) || starting.contains(&i));
    let waiting_names: Vec<String> = waiting.keys().cloned().collect();
    let lists = (
        &done[..],
        &progressing[..],
        &waiting_names[..],
        &failed[..],
        &skipped_names[..],
    );
    let (phase, message) = describe(
        &stop,
        &walk.label(current),
        strategy,
        subject,
        &walk.steps,
        lists,
    );
    Wave {
        admitted,
        waiting,
        status: RolloutStatus {
            revision: subject.revision.to_string(),
            step: format!("{}/{n} {}", current + 1, walk.steps[current].0),
            phase,
            message,
            done,
            progressing,
            waiting: waiting_names,
            failed,
            skipped: skipped_names,
        },
    }
}

type Lists<'a> = (
    &'a [String],
    &'a [String],
    &'a [String],
    &'a [String],
    &'a [String],
);

/// What the rollout's message ends with: the failed and skipped clusters.
fn tail(strategy: &Strategy, failed: &[String], skipped: &[String]) -> String {
    let mut tail = String::new();
    if !failed.is_empty() {
        tail.push_str(&format!("; failed: {}", failed.join(", ")));
    }
    if !skipped.is_empty() {
        tail.push_str(&format!(
            "; skipped, unreachable past the {}s progress deadline: {}",
            strategy.deadline_secs,
            skipped.join(", ")
        ));
    }
    tail
}

fn describe(
    stop: &Reached,
    label: &str,
    strategy: &Strategy,
    subject: &Subject<'_>,
    steps: &[(String, bool, Vec<usize>)],
    (done, progressing, waiting, failed, skipped): Lists<'_>,
) -> (RolloutPhase, String) {
    let tail = tail(strategy, failed, skipped);
    match stop {
        Reached::Complete => (
            RolloutPhase::Complete,
            format!(
                "revision {}: every step done, {} cluster(s) Ready{tail}",
                subject.revision,
                done.len()
            ),
        ),
        Reached::At(_) => (
            RolloutPhase::Progressing,
            format!(
                "revision {} at step {label}: {} done, {} progressing, {} waiting{tail}",
                subject.revision,
                done.len(),
                progressing.len(),
                waiting.len()
            ),
        ),
        Reached::Paused(k) => {
            let value = format!("{}@{}", steps[*k].0, subject.revision);
            (
                RolloutPhase::Paused,
                format!(
                    "revision {} paused after step {label}: {} done, {} waiting{tail}. To go on: kubectl annotate appdeployment {} -n {} {RESUME_ANNOTATION}={value} --overwrite",
                    subject.revision,
                    done.len(),
                    waiting.len(),
                    subject.name,
                    subject.namespace
                ),
            )
        }
        Reached::Halted(_) => (
            RolloutPhase::Halted,
            format!(
                "revision {} halted at step {label}: {} cluster(s) failed, more than spec.rollout.maxFailures ({}) allows{tail}. No further cluster starts until the failed ones recover or a new revision (a fixed config) starts over",
                subject.revision,
                failed.len(),
                strategy.max_failures
            ),
        ),
    }
}

/// An Event to publish about the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// A Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// In words.
    pub message: String,
}

fn note(warning: bool, reason: &'static str, message: String) -> Note {
    Note {
        warning,
        reason,
        message,
    }
}

/// The Events that going from `prev` to `new` calls for: a revision started (or replacing one
/// mid-rollout), a step started, paused, resumed, halted, complete, clusters skipped.
pub fn events(prev: Option<&RolloutStatus>, new: Option<&RolloutStatus>) -> Vec<Note> {
    let Some(new) = new else {
        return Vec::new();
    };
    let same_revision = prev.filter(|p| p.revision == new.revision);
    let notes = [
        step_event(prev, same_revision, new),
        phase_event(same_revision.map(|p| p.phase), new),
        skipped_event(same_revision, new),
    ];
    notes.into_iter().flatten().collect()
}

/// A revision started (or replaced one mid-rollout), or a next step started.
fn step_event(
    prev: Option<&RolloutStatus>,
    same_revision: Option<&RolloutStatus>,
    new: &RolloutStatus,
) -> Option<Note> {
    match (prev, same_revision) {
        (Some(p), None) if p.phase != RolloutPhase::Complete => Some(note(
            false,
            "RolloutRestarted",
            format!(
                "revision {} replaces revision {} mid-rollout ({:?} at step {}): starting over at step {}",
                new.revision, p.revision, p.phase, p.step, new.step
            ),
        )),
        (_, None) => Some(note(
            false,
            "RolloutStarted",
            format!("revision {}: step {}", new.revision, new.step),
        )),
        (Some(p), Some(_)) if p.step != new.step => Some(note(
            false,
            "StepStarted",
            format!(
                "revision {}: step {} started after step {}",
                new.revision, new.step, p.step
            ),
        )),
        _ => None,
    }
}

/// The revision's rollout paused, halted, completed or resumed (`was`: its phase before).
fn phase_event(was: Option<RolloutPhase>, new: &RolloutStatus) -> Option<Note> {
    if was == Some(new.phase) {
        return None;
    }
    match new.phase {
        RolloutPhase::Paused => Some(note(false, "RolloutPaused", new.message.clone())),
        RolloutPhase::Halted => Some(note(true, "RolloutHalted", new.message.clone())),
        RolloutPhase::Complete => Some(note(false, "RolloutComplete", new.message.clone())),
        // A complete rollout that is rolling again was not resumed by anyone: a cluster of
        // it stopped being Ready (unreachable, drifted, newly targeted). Say which.
        RolloutPhase::Progressing if was == Some(RolloutPhase::Complete) => Some(reopened(new)),
        RolloutPhase::Progressing => was.map(|was| {
            note(
                false,
                "RolloutResumed",
                format!(
                    "revision {} goes on at step {} (was {was:?})",
                    new.revision, new.step
                ),
            )
        }),
    }
}

/// A Complete revision back to Progressing, naming the clusters that are not done.
fn reopened(new: &RolloutStatus) -> Note {
    let open: Vec<&str> = (new.progressing.iter())
        .chain(&new.waiting)
        .chain(&new.failed)
        .map(String::as_str)
        .collect();
    note(
        false,
        "RolloutReopened",
        format!(
            "revision {} is not complete any more: not Ready: {}; at step {}",
            new.revision,
            if open.is_empty() {
                "none".to_string()
            } else {
                open.join(", ")
            },
            new.step
        ),
    )
}

/// Clusters newly passed over, unreachable past the deadline.
fn skipped_event(same_revision: Option<&RolloutStatus>, new: &RolloutStatus) -> Option<Note> {
    let before: &[String] = same_revision
        .map(|p| p.skipped.as_slice())
        .unwrap_or_default();
    let skipped: Vec<&str> = new
        .skipped
        .iter()
        .filter(|c| !before.contains(c))
        .map(String::as_str)
        .collect();
    (!skipped.is_empty()).then(|| {
        note(
            true,
            "ClustersSkipped",
            format!(
                "revision {}: unreachable past the progress deadline, passed over so that the rollout goes on: {}",
                new.revision,
                skipped.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests;
