use super::*;
use crate::resources::{PoolCapacity, SharedAddresses};

fn cluster(name: &str, shared: SharedAddresses) -> ClusterRolloutStatus {
    let mut c: ClusterRolloutStatus = serde_json::from_value(serde_json::json!({
        "name": name,
        "phase": "Applied",
    }))
    .unwrap();
    c.pools = vec![PoolCapacity {
        name: "default".into(),
        size: 26,
        used: 1,
        free: 25,
        waiting: vec![],
    }];
    c.shared_addresses = shared;
    c
}

fn warned(n: u32, example: &str) -> SharedAddresses {
    SharedAddresses {
        warned: n,
        examples: vec![example.into()],
        ..SharedAddresses::default()
    }
}

#[test]
fn no_pools_no_condition() {
    let mut c = cluster("a", SharedAddresses::default());
    c.pools.clear();
    assert_eq!(condition(&[c]), None);
}

#[test]
fn the_condition_names_each_sharing_cluster_and_what_it_shares() {
    let unique = [cluster("a", SharedAddresses::default())];
    assert!(condition(&unique).unwrap().0);
    let both = [
        cluster(
            "attached-1",
            warned(
                1,
                "layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws/attached-2 …",
            ),
        ),
        cluster(
            "attached-2",
            warned(
                2,
                "layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws/attached-1 …",
            ),
        ),
    ];
    let (ok, reason, message) = condition(&both).unwrap();
    assert_eq!((ok, reason), (false, "SharedOnSegment"));
    assert!(message.starts_with("attached-1: layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws/attached-2"), "{message}");
    assert!(message.contains("attached-2: layer2 pool"), "{message}");
    assert!(message.ends_with("(and 1 more)"), "{message}");
    let anycast = [cluster(
        "a",
        SharedAddresses {
            reported: 2,
            ..SharedAddresses::default()
        },
    )];
    let (ok, reason, message) = condition(&anycast).unwrap();
    assert_eq!((ok, reason), (true, "Unique"));
    assert!(message.contains("2 BGP range(s)"), "{message}");
    let held = [cluster(
        "attached-3",
        SharedAddresses {
            held: Some("layer2 pool \"default\" hands out …".into()),
            ..SharedAddresses::default()
        },
    )];
    let (ok, reason, message) = condition(&held).unwrap();
    assert_eq!((ok, reason), (false, "HeldOnSegment"));
    assert!(
        message.starts_with("attached-3 is held: layer2 pool"),
        "{message}"
    );
}

#[test]
fn a_warning_when_a_cluster_starts_sharing_or_is_held_not_again() {
    let before = [cluster("a", SharedAddresses::default())];
    let now = [cluster("a", warned(1, "x"))];
    let notes = events(&before, &now);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].reason, notes[0].message.as_str()),
        ("AddressesShared", "a: x")
    );
    assert!(events(&now, &now).is_empty(), "no news, no Event");
    let held = [cluster(
        "a",
        SharedAddresses {
            held: Some("y".into()),
            ..SharedAddresses::default()
        },
    )];
    assert_eq!(events(&before, &held)[0].reason, "AddressesHeld");
    assert!(events(&held, &held).is_empty());
}

#[test]
fn a_live_conflict_comes_first_and_is_announced_once() {
    let conflict = SharedAddresses {
        warned: 1,
        examples: vec!["layer2 pool …".into()],
        conflicts: 1,
        conflict_examples: vec![
            "10.0.50.25 is held by Service default/a on ws/attached-1 and by Service default/b on ws/attached-2, on segment 172.31.0.0/24".into(),
        ],
        ..SharedAddresses::default()
    };
    let now = [cluster("attached-1", conflict)];
    let (ok, reason, message) = condition(&now).unwrap();
    assert_eq!((ok, reason), (false, "AddressConflict"));
    assert!(
        message.starts_with(
            "10.0.50.25 is held by Service default/a on ws/attached-1 and by Service default/b"
        ),
        "{message}"
    );
    let before = [cluster("attached-1", warned(1, "layer2 pool …"))];
    let notes = events(&before, &now);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].reason, "AddressConflict");
    assert!(events(&now, &now).is_empty());
    // Cleared by itself when one Service goes: back to the overlap.
    let (_, reason, _) = condition(&before).unwrap();
    assert_eq!(reason, "SharedOnSegment");
}
