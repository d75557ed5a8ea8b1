use super::*;
use crate::resources::RolloutStep;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const NOW: i64 = 1_000_000;

fn stage(v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([("stage".to_string(), v.to_string())].into()),
        ..Default::default()
    }
}

fn step(name: &str, stage_label: &str, pause: bool) -> RolloutStep {
    RolloutStep {
        name: Some(name.into()),
        cluster_selector: stage(stage_label),
        pause,
    }
}

/// canary (pauses) -> early -> the rest; two at a time; the first failure halts.
fn spec() -> RolloutStrategy {
    RolloutStrategy {
        max_concurrent_clusters: Some(IntOrString::Int(2)),
        steps: vec![
            step("canary", "canary", true),
            step("early", "early", false),
        ],
        max_failures: None,
        progress_deadline: Some("60s".into()),
    }
}

fn target(name: &str, stage_label: Option<&str>, standing: Standing) -> Target {
    Target {
        name: name.into(),
        labels: stage_label
            .map(|s| [("stage".to_string(), s.to_string())].into())
            .unwrap_or_default(),
        standing,
    }
}

/// c1 canary; c2, c3, c4 early; c5, c6 unlabelled.
fn fleet(standings: [Standing; 6]) -> Vec<Target> {
    let stages = [
        Some("canary"),
        Some("early"),
        Some("early"),
        Some("early"),
        None,
        None,
    ];
    (0..6)
        .map(|i| target(&format!("c{}", i + 1), stages[i], standings[i]))
        .collect()
}

fn subject(resume: Option<&'static str>) -> Subject<'static> {
    Subject {
        namespace: "ws",
        name: "web",
        revision: "rev2",
        resume,
    }
}

fn run(spec: &RolloutStrategy, targets: &[Target], resume: Option<&'static str>) -> Wave {
    let strategy = Strategy::from_spec(Some(spec), targets.len()).unwrap();
    wave(&strategy, targets, &subject(resume), NOW)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

use Standing::{Done, Failed, InFlight, NotStarted, Unreachable};

/// (what, standings, resume annotation, admitted, phase, step, message fragment)
type Case = (
    &'static str,
    [Standing; 6],
    Option<&'static str>,
    &'static [&'static str],
    RolloutPhase,
    &'static str,
    &'static str,
);

#[test]
fn steps_go_in_order_a_few_clusters_at_a_time() {
    let cases: Vec<Case> = vec![
        (
            "a new revision starts with the canary alone",
            [NotStarted; 6],
            None,
            &["c1"],
            RolloutPhase::Progressing,
            "1/3 canary",
            "revision rev2 at step 1/3 (canary): 0 done, 1 progressing, 5 waiting",
        ),
        (
            "the canary done, the rollout waits for a person",
            [
                Done, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
            ],
            None,
            &["c1"],
            RolloutPhase::Paused,
            "1/3 canary",
            "To go on: kubectl annotate appdeployment web -n ws apps.kommander.d2iq.io/resume-rollout=canary@rev2 --overwrite",
        ),
        (
            "a resume for an older revision does not lift the gate",
            [
                Done, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
            ],
            Some("canary@rev1"),
            &["c1"],
            RolloutPhase::Paused,
            "1/3 canary",
            "paused after step 1/3 (canary)",
        ),
        (
            "resumed: the next step, two at a time",
            [
                Done, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
            ],
            Some("canary@rev2"),
            &["c1", "c2", "c3"],
            RolloutPhase::Progressing,
            "2/3 early",
            "1 done, 2 progressing, 3 waiting",
        ),
        (
            "a cluster done frees its slot",
            [Done, Done, InFlight, NotStarted, NotStarted, NotStarted],
            Some("canary@rev2"),
            &["c1", "c2", "c3", "c4"],
            RolloutPhase::Progressing,
            "2/3 early",
            "2 done, 2 progressing, 2 waiting",
        ),
        (
            "the clusters no step matches go last",
            [Done, Done, Done, Done, NotStarted, NotStarted],
            Some("canary@rev2"),
            &["c1", "c2", "c3", "c4", "c5", "c6"],
            RolloutPhase::Progressing,
            "3/3 rest",
            "4 done, 2 progressing, 0 waiting",
        ),
        (
            "every step done",
            [Done; 6],
            None,
            &["c1", "c2", "c3", "c4", "c5", "c6"],
            RolloutPhase::Complete,
            "3/3 rest",
            "revision rev2: every step done, 6 cluster(s) Ready",
        ),
        (
            "a failed canary halts the rest",
            [
                Failed, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
            ],
            Some("canary@rev2"),
            &["c1"],
            RolloutPhase::Halted,
            "1/3 canary",
            "1 cluster(s) failed, more than spec.rollout.maxFailures (0) allows; failed: c1",
        ),
        (
            "a failure mid-step lets the clusters in flight finish and starts no other",
            [Done, Failed, InFlight, NotStarted, NotStarted, NotStarted],
            Some("canary@rev2"),
            &["c1", "c2", "c3"],
            RolloutPhase::Halted,
            "2/3 early",
            "halted at step 2/3 (early)",
        ),
        (
            "an unreachable cluster holds its slot until its deadline",
            [
                Done,
                Unreachable(NOW - 5),
                Done,
                Done,
                NotStarted,
                NotStarted,
            ],
            Some("canary@rev2"),
            &["c1", "c2", "c3", "c4"],
            RolloutPhase::Progressing,
            "2/3 early",
            "3 done, 1 progressing, 2 waiting",
        ),
        (
            "past its deadline it is skipped and named",
            [
                Done,
                Unreachable(NOW - 60),
                Done,
                Done,
                NotStarted,
                NotStarted,
            ],
            Some("canary@rev2"),
            &["c1", "c2", "c3", "c4", "c5", "c6"],
            RolloutPhase::Progressing,
            "3/3 rest",
            "skipped, unreachable past the 60s progress deadline: c2",
        ),
        (
            "an unreachable cluster whose turn has not come waits",
            [
                InFlight,
                NotStarted,
                NotStarted,
                NotStarted,
                Unreachable(NOW - 600),
                NotStarted,
            ],
            None,
            &["c1"],
            RolloutPhase::Progressing,
            "1/3 canary",
            "0 done, 1 progressing, 5 waiting",
        ),
    ];
    for (what, standings, resume, admitted, phase, step, fragment) in cases {
        let wave = run(&spec(), &fleet(standings), resume);
        assert_eq!(wave.admitted, set(admitted), "{what}");
        assert_eq!(wave.status.phase, phase, "{what}");
        assert_eq!(wave.status.step, step, "{what}");
        assert!(
            wave.status.message.contains(fragment),
            "{what}: {:?} lacks {fragment:?}",
            wave.status.message
        );
        let all: BTreeSet<String> = wave
            .admitted
            .iter()
            .chain(wave.waiting.keys())
            .cloned()
            .collect();
        assert_eq!(all.len(), 6, "{what}: every cluster is admitted or waits");
    }
}

#[test]
fn each_waiting_cluster_says_what_it_waits_for() {
    let wave = run(&spec(), &fleet([NotStarted; 6]), None);
    assert_eq!(
        wave.waiting["c2"],
        "waiting for step 2/3 (early): the rollout is at step 1/3 (canary)"
    );
    let wave = run(
        &spec(),
        &fleet([
            Done, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
        ]),
        Some("canary@rev2"),
    );
    assert_eq!(
        wave.waiting["c4"],
        "waiting for a free slot in step 2/3 (early): 2 cluster(s) at a time (spec.rollout.maxConcurrentClusters)"
    );
    let wave = run(&spec(), &fleet([NotStarted; 6]), None);
    assert_eq!(wave.status.waiting, ["c2", "c3", "c4", "c5", "c6"]);
    let wave = run(
        &spec(),
        &fleet([
            Done, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
        ]),
        None,
    );
    assert_eq!(
        wave.waiting["c5"],
        "the rollout is paused after step 1/3 (canary)"
    );
}

#[test]
fn tolerated_failures_let_the_rollout_go_on() {
    let mut s = spec();
    s.max_failures = Some(1);
    s.steps[0].pause = false;
    let wave = run(
        &s,
        &fleet([
            Failed, NotStarted, NotStarted, NotStarted, NotStarted, NotStarted,
        ]),
        None,
    );
    assert_eq!(wave.status.phase, RolloutPhase::Progressing);
    assert_eq!(wave.status.step, "2/3 early");
    assert_eq!(wave.admitted, set(&["c1", "c2", "c3"]));
    assert_eq!(wave.status.failed, ["c1"]);
    let wave = run(
        &s,
        &fleet([
            Failed, Failed, NotStarted, NotStarted, NotStarted, NotStarted,
        ]),
        None,
    );
    assert_eq!(wave.status.phase, RolloutPhase::Halted);
}

#[test]
fn a_pause_with_nothing_after_it_does_not_wait() {
    let wave = run(&spec(), &fleet([Done, Done, Done, Done, Done, Done]), None);
    // Only the canary's render changed, so the others are done already: nothing to pause for.
    assert_eq!(wave.status.phase, RolloutPhase::Complete);
}

#[test]
fn without_a_strategy_every_cluster_goes_at_once_and_a_failure_halts_nothing() {
    let strategy = Strategy::from_spec(None, 6).unwrap();
    let targets = fleet([Failed, NotStarted, NotStarted, InFlight, Done, NotStarted]);
    let wave = wave(&strategy, &targets, &subject(None), NOW);
    assert_eq!(wave.admitted.len(), 6);
    assert_eq!(wave.status.step, "1/1 all");
    assert_eq!(wave.status.phase, RolloutPhase::Progressing);
}

#[test]
fn concurrency_is_a_number_or_a_percentage_of_the_targets() {
    let with = |v: IntOrString, targets: usize| {
        let mut s = spec();
        s.max_concurrent_clusters = Some(v);
        Strategy::from_spec(Some(&s), targets).map(|s| s.limit)
    };
    assert_eq!(with(IntOrString::Int(3), 10), Ok(3));
    assert_eq!(with(IntOrString::String("25%".into()), 10), Ok(3));
    assert_eq!(with(IntOrString::String("100%".into()), 10), Ok(10));
    assert_eq!(with(IntOrString::String("1%".into()), 3), Ok(1));
    assert_eq!(
        with(IntOrString::Int(0), 10),
        Err("spec.rollout.maxConcurrentClusters: 0 must be at least 1".into())
    );
    for bad in ["0%", "150%", "two", "5"] {
        assert_eq!(
            with(IntOrString::String(bad.into()), 10),
            Err(format!(
                "spec.rollout.maxConcurrentClusters: {bad:?} is neither a number nor a percentage from 1% to 100%"
            ))
        );
    }
}

#[test]
fn a_bad_strategy_names_the_field() {
    type Edit = Box<dyn Fn(&mut RolloutStrategy)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s.progress_deadline = Some("soon".into())),
            "spec.rollout.progressDeadline: \"soon\" is not a duration",
        ),
        (
            Box::new(|s| s.progress_deadline = Some("0s".into())),
            "spec.rollout.progressDeadline: \"0s\" must be at least 1s",
        ),
        (
            Box::new(|s| s.steps[1].name = Some("canary".into())),
            "spec.rollout.steps[1].name: \"canary\" is used twice",
        ),
        (
            Box::new(|s| s.steps[1].name = Some("rest".into())),
            "spec.rollout.steps[1].name: \"rest\" is used twice (or is \"rest\" or \"all\"",
        ),
        (
            Box::new(|s| s.steps[0].name = Some("Canary@1".into())),
            "spec.rollout.steps[0].name",
        ),
        (
            Box::new(|s| {
                s.steps[0].cluster_selector.match_expressions = Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "stage".into(),
                        operator: "Near".into(),
                        values: None,
                    },
                ])
            }),
            "spec.rollout.steps[0].clusterSelector: matchExpressions[0]: operator \"Near\"",
        ),
    ];
    for (edit, want) in cases {
        let mut s = spec();
        edit(&mut s);
        let err = Strategy::from_spec(Some(&s), 6).unwrap_err();
        assert!(
            err.starts_with(want),
            "{err:?} does not start with {want:?}"
        );
    }
    let mut s = spec();
    s.steps[0].name = None;
    s.steps[1].name = None;
    let names: Vec<String> = Strategy::from_spec(Some(&s), 6)
        .unwrap()
        .steps
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["step-1", "step-2"]);
}

#[test]
fn a_cluster_stands_where_its_last_status_left_it_at_this_revision() {
    let at = |phase: ClusterPhase, revision: &str| ClusterRolloutStatus {
        name: "c1".into(),
        phase,
        revision: Some(revision.into()),
        applied_config_hash: None,
        desired_config_hash: None,
        message: None,
        blockers: vec![],
        accepted_disruptions: vec![],
        last_transition_time: Some(Time(Timestamp::from_second(NOW - 7).unwrap())),
        applied_objects: vec![],
        pools: vec![],
        warnings: vec![],
        hooks: None,
        shared_addresses: Default::default(),
        announcements: None,
    };
    let cases = [
        (None, NotStarted),
        (Some(at(ClusterPhase::Applied, "rev1")), NotStarted),
        (Some(at(ClusterPhase::Applied, "rev2")), Done),
        (Some(at(ClusterPhase::Progressing, "rev2")), InFlight),
        (Some(at(ClusterPhase::Blocked, "rev2")), InFlight),
        (Some(at(ClusterPhase::Failed, "rev2")), Failed),
        (Some(at(ClusterPhase::Invalid, "rev2")), Failed),
        (Some(at(ClusterPhase::Failed, "rev1")), NotStarted),
        (Some(at(ClusterPhase::Waiting, "rev2")), NotStarted),
        (
            Some(at(ClusterPhase::Unreachable, "rev1")),
            Unreachable(NOW - 7),
        ),
    ];
    for (prev, want) in cases {
        assert_eq!(standing(prev.as_ref(), "rev2"), want, "{prev:?}");
    }
}

#[test]
fn events_tell_each_turn_of_the_rollout_once() {
    let status =
        |revision: &str, step: &str, phase: RolloutPhase, skipped: &[&str]| RolloutStatus {
            revision: revision.into(),
            step: step.into(),
            phase,
            message: format!("{phase:?} message"),
            done: vec![],
            progressing: vec![],
            waiting: vec![],
            failed: vec![],
            skipped: skipped.iter().map(|s| s.to_string()).collect(),
        };
    use RolloutPhase::*;
    let cases: Vec<(Option<RolloutStatus>, RolloutStatus, Vec<&str>)> = vec![
        (
            None,
            status("r1", "1/3 canary", Progressing, &[]),
            vec!["RolloutStarted"],
        ),
        (
            Some(status("r1", "1/3 canary", Progressing, &[])),
            status("r1", "1/3 canary", Progressing, &[]),
            vec![],
        ),
        (
            Some(status("r1", "1/3 canary", Progressing, &[])),
            status("r1", "1/3 canary", Paused, &[]),
            vec!["RolloutPaused"],
        ),
        (
            Some(status("r1", "1/3 canary", Paused, &[])),
            status("r1", "2/3 early", Progressing, &[]),
            vec!["StepStarted", "RolloutResumed"],
        ),
        (
            Some(status("r1", "2/3 early", Progressing, &[])),
            status("r1", "2/3 early", Halted, &[]),
            vec!["RolloutHalted"],
        ),
        (
            Some(status("r1", "2/3 early", Halted, &[])),
            status("r2", "1/3 canary", Progressing, &[]),
            vec!["RolloutRestarted"],
        ),
        (
            Some(status("r1", "3/3 rest", Complete, &[])),
            status("r2", "1/3 canary", Progressing, &[]),
            vec!["RolloutStarted"],
        ),
        (
            Some(status("r2", "2/3 early", Progressing, &[])),
            status("r2", "3/3 rest", Progressing, &["c2"]),
            vec!["StepStarted", "ClustersSkipped"],
        ),
        (
            Some(status("r2", "3/3 rest", Progressing, &["c2"])),
            status("r2", "3/3 rest", Complete, &["c2"]),
            vec!["RolloutComplete"],
        ),
        // Nobody resumed it: a cluster of it stopped being Ready.
        (
            Some(status("r2", "3/3 rest", Complete, &[])),
            status("r2", "3/3 rest", Progressing, &[]),
            vec!["RolloutReopened"],
        ),
        (
            Some(status("r2", "3/3 rest", Halted, &[])),
            status("r2", "3/3 rest", Progressing, &[]),
            vec!["RolloutResumed"],
        ),
    ];
    for (prev, new, want) in cases {
        let got: Vec<&str> = events(prev.as_ref(), Some(&new))
            .iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(got, want, "{prev:?} -> {new:?}");
    }
    let restarted = events(
        Some(&status("r1", "2/3 early", Halted, &[])),
        Some(&status("r2", "1/3 canary", Progressing, &[])),
    );
    assert_eq!(
        restarted[0].message,
        "revision r2 replaces revision r1 mid-rollout (Halted at step 2/3 early): starting over at step 1/3 canary"
    );
    let skipped = events(
        Some(&status("r2", "2/3 early", Progressing, &[])),
        Some(&status("r2", "3/3 rest", Progressing, &["c2"])),
    );
    assert!(skipped[1].warning && skipped[1].message.ends_with(": c2"));
    let mut unready = status("r2", "3/3 rest", Progressing, &[]);
    unready.progressing = vec!["c1".into()];
    unready.waiting = vec!["c3".into()];
    let reopened = events(
        Some(&status("r2", "3/3 rest", Complete, &[])),
        Some(&unready),
    );
    assert_eq!(
        reopened[0].message,
        "revision r2 is not complete any more: not Ready: c1, c3; at step 3/3 rest"
    );
}

#[test]
fn a_cluster_its_safety_check_holds_is_not_done_and_holds_its_step() {
    // A MetalLB change held on c2 (Blocked) keeps step 2 open: c4 waits for it.
    let held = ClusterRolloutStatus {
        name: "c2".into(),
        phase: ClusterPhase::Blocked,
        revision: Some("rev2".into()),
        applied_config_hash: None,
        desired_config_hash: None,
        message: None,
        blockers: vec!["default/web holds 10.0.0.5".into()],
        accepted_disruptions: vec![],
        last_transition_time: None,
        applied_objects: vec![],
        pools: vec![],
        warnings: vec![],
        hooks: None,
        shared_addresses: Default::default(),
        announcements: None,
    };
    let c2 = standing(Some(&held), "rev2");
    assert_eq!(c2, InFlight);
    let wave = run(
        &spec(),
        &fleet([Done, c2, Done, NotStarted, NotStarted, NotStarted]),
        Some("canary@rev2"),
    );
    assert_eq!(wave.status.step, "2/3 early");
    assert_eq!(wave.status.progressing, ["c2", "c4"]);
    assert_eq!(wave.admitted, set(&["c1", "c2", "c3", "c4"]));
    assert_eq!(wave.status.waiting, ["c5", "c6"]);
}
