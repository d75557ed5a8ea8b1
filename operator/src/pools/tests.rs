use super::*;
use crate::resources::ClusterPhase;

fn pool(name: &str, size: i64, used: i64, waiting: &[&str]) -> PoolCapacity {
    PoolCapacity {
        name: name.into(),
        size,
        used,
        free: size - used,
        waiting: waiting.iter().map(|s| s.to_string()).collect(),
    }
}

fn cluster(name: &str, pools: Vec<PoolCapacity>) -> ClusterRolloutStatus {
    ClusterRolloutStatus {
        name: name.into(),
        phase: ClusterPhase::Applied,
        revision: None,
        applied_config_hash: None,
        desired_config_hash: None,
        message: None,
        blockers: vec![],
        accepted_disruptions: vec![],
        last_transition_time: None,
        applied_objects: vec![],
        pools,
        warnings: vec![],
        hooks: None,
        shared_addresses: Default::default(),
        announcements: None,
    }
}

#[test]
fn the_status_saturates_what_does_not_fit() {
    let uses = [PoolUse {
        pool: "v6".into(),
        size: 1 << 64,
        used: 3,
        waiting: vec!["default/web".into()],
    }];
    assert_eq!(
        status_of(&uses),
        vec![PoolCapacity {
            name: "v6".into(),
            size: i64::MAX,
            used: 3,
            free: i64::MAX,
            waiting: vec!["default/web".into()],
        }]
    );
}

/// (clusters, the condition's (ok, reason, message))
type Case = (
    Vec<ClusterRolloutStatus>,
    Option<(bool, &'static str, &'static str)>,
);

#[test]
fn the_condition_names_the_fullest_pools() {
    let cases: Vec<Case> = vec![
        (vec![cluster("a", vec![])], None),
        (
            vec![cluster("a", vec![pool("default", 26, 3, &[])])],
            Some((
                true,
                "Room",
                "every address pool has more than 10% of its addresses free",
            )),
        ),
        (
            vec![
                cluster("a", vec![pool("default", 10, 9, &[])]),
                cluster("b", vec![pool("default", 10, 1, &[])]),
            ],
            Some((
                false,
                "PoolNearlyFull",
                "a: pool \"default\" has 9 of 10 addresses in use, 1 free",
            )),
        ),
        (
            vec![
                cluster("a", vec![pool("default", 10, 9, &[])]),
                cluster("b", vec![pool("small", 2, 2, &["default/web"])]),
            ],
            Some((
                false,
                "PoolFull",
                "a: pool \"default\" has 9 of 10 addresses in use, 1 free; b: pool \"small\" has 2 of 2 addresses in use, 0 free (1 Service(s) waiting for an IP: default/web)",
            )),
        ),
    ];
    for (clusters, want) in cases {
        let got = condition(&clusters);
        let got = got.as_ref().map(|(ok, r, m)| (*ok, *r, m.as_str()));
        assert_eq!(got, want);
    }
}

#[test]
fn a_warning_when_a_pool_fills_up_not_while_it_stays_full() {
    let at = |used: i64, waiting: &[&str]| vec![cluster("a", vec![pool("p", 10, used, waiting)])];
    let reasons = |prev: &[ClusterRolloutStatus], now: &[ClusterRolloutStatus]| {
        events(prev, now)
            .iter()
            .map(|n| (n.warning, n.reason))
            .collect::<Vec<_>>()
    };
    // (prev, now, events)
    let cases = [
        (at(1, &[]), at(2, &[]), vec![]),
        (at(8, &[]), at(9, &[]), vec![(true, "PoolNearlyFull")]),
        (at(9, &[]), at(9, &[]), vec![]),
        (at(9, &[]), at(10, &[]), vec![(true, "PoolFull")]),
        (at(8, &[]), at(10, &[]), vec![(true, "PoolFull")]),
        (at(10, &[]), at(10, &[]), vec![]),
        (
            at(10, &[]),
            at(10, &["default/web"]),
            vec![(true, "PoolFull")],
        ),
        (at(10, &["default/web"]), at(10, &["default/web"]), vec![]),
        (at(10, &[]), at(5, &[]), vec![]),
        // A cluster seen for the first time.
        (vec![], at(10, &[]), vec![(true, "PoolFull")]),
    ];
    for (prev, now, want) in cases {
        assert_eq!(reasons(&prev, &now), want, "{prev:?} -> {now:?}");
    }
    assert_eq!(
        events(&at(9, &[]), &at(10, &["default/web"]))[0].message,
        "a: pool \"p\" has 10 of 10 addresses in use, 0 free (1 Service(s) waiting for an IP: default/web)"
    );
}
