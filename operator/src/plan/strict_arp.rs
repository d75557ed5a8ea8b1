//! The strictARP step of a cluster's plan. A layer2 MetalLB config on a cluster whose
//! KommanderCluster lets the operator set kube-proxy's strictARP waits for kube-proxy: set it,
//! restart kube-proxy's pods, wait for them. This decides, from what was read of kube-proxy,
//! whether the config may go out, and if not, which step the shell takes and how the cluster
//! stands meanwhile.

use crate::kube_proxy::{self, Observed, Step};
use crate::resources::ClusterPhase;
use crate::status::Stop;

/// How long the cluster has waited at this revision, against its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Waited {
    /// Seconds it has been `Progressing` at this revision.
    pub secs: i64,
    /// `spec.rollout.progressDeadline`, in seconds.
    pub deadline_secs: i64,
    /// It was `Failed` at this revision already.
    pub failed_before: bool,
}

/// What kube-proxy means for the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictArp {
    /// Nothing stands before it: the config may go out.
    Clear,
    /// The config waits: take `step` if there is one, and the cluster stands as `stop` says
    /// (unless taking the step fails).
    Hold { step: Option<Step>, stop: Stop },
}

const RESTART_NEXT: &str = "kube-proxy: strictARP set; its pods restart next";

/// The strictARP step, from kube-proxy as read (or why it could not be), the time now (seconds
/// since the epoch) and how long the cluster has waited.
pub fn strict_arp(read: &Result<Observed, String>, now: i64, waited: Waited) -> StrictArp {
    let step = match read
        .as_ref()
        .map_err(String::clone)
        .and_then(kube_proxy::next)
    {
        Ok(step) => step,
        Err(e) => return hold(None, Stop::new(ClusterPhase::Failed, e)),
    };
    let (step, why) = match step {
        Step::Done => return StrictArp::Clear,
        Step::Set { .. } => (Some(step), RESTART_NEXT.to_string()),
        // Pods started in the second strictARP was set cannot be told apart from older ones.
        Step::Restart(_)
            if read
                .as_ref()
                .is_ok_and(|o| o.set_at.is_some_and(|t| now <= t)) =>
        {
            (None, RESTART_NEXT.to_string())
        }
        Step::Restart(ref pods) => {
            let why = format!(
                "kube-proxy: restarting {} pod(s) with strictARP",
                pods.len()
            );
            (Some(step), why)
        }
        Step::Wait(why) => (None, why),
    };
    hold(step, under_way(why, waited))
}

fn hold(step: Option<Step>, stop: Stop) -> StrictArp {
    StrictArp::Hold { step, stop }
}

/// A step under way is `Progressing`, and `Failed` once past the deadline.
fn under_way(why: String, waited: Waited) -> Stop {
    if kube_proxy::overdue(waited.secs, waited.deadline_secs, waited.failed_before) {
        let deadline = waited.deadline_secs;
        Stop::new(
            ClusterPhase::Failed,
            format!("{why}; past spec.rollout.progressDeadline ({deadline} s)"),
        )
    } else {
        Stop::new(ClusterPhase::Progressing, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_proxy::tests::observed as read;

    const IPVS: &str = "mode: ipvs\nipvs:\n  strictARP: false\n";
    const STRICT: &str = "mode: ipvs\nipvs:\n  strictARP: true\n";

    fn waited(secs: i64, failed_before: bool) -> Waited {
        Waited {
            secs,
            deadline_secs: 600,
            failed_before,
        }
    }

    fn stop(phase: ClusterPhase, m: &str) -> Stop {
        Stop::new(phase, m)
    }

    #[test]
    fn each_read_gives_one_step_and_one_standing() {
        let set = kube_proxy::next(&read(IPVS, None, &[], 2)).expect("a step");
        let restart = |pods: &[&str]| Step::Restart(pods.iter().map(|p| p.to_string()).collect());
        type Case = (
            &'static str,
            Result<Observed, String>,
            i64,
            Waited,
            StrictArp,
        );
        let cases: Vec<Case> = vec![
            (
                "strictARP set, every pod since: clear",
                Ok(read(STRICT, Some(100), &[("a", 101), ("b", 102)], 2)),
                200,
                waited(0, false),
                StrictArp::Clear,
            ),
            (
                "not IPVS: clear",
                Ok(read("mode: iptables\n", None, &[("a", 1)], 2)),
                200,
                waited(0, false),
                StrictArp::Clear,
            ),
            (
                "IPVS without strictARP: set it, then its pods restart",
                Ok(read(IPVS, None, &[("a", 1)], 2)),
                200,
                waited(0, false),
                hold(Some(set), stop(ClusterPhase::Progressing, RESTART_NEXT)),
            ),
            (
                "pods older than the setting: restart them",
                Ok(read(STRICT, Some(100), &[("a", 90), ("b", 101)], 2)),
                200,
                waited(10, false),
                hold(
                    Some(restart(&["a"])),
                    stop(
                        ClusterPhase::Progressing,
                        "kube-proxy: restarting 1 pod(s) with strictARP",
                    ),
                ),
            ),
            (
                "set this very second: no pod is restarted yet",
                Ok(read(STRICT, Some(200), &[("a", 200)], 2)),
                200,
                waited(0, false),
                hold(None, stop(ClusterPhase::Progressing, RESTART_NEXT)),
            ),
            (
                "pods coming back: wait",
                Ok(read(STRICT, Some(100), &[("a", 101)], 1)),
                200,
                waited(5, false),
                hold(
                    None,
                    stop(
                        ClusterPhase::Progressing,
                        "kube-proxy restarting with strictARP: 1 of 2 pods available",
                    ),
                ),
            ),
            (
                "past the deadline: failed, still waiting",
                Ok(read(STRICT, Some(100), &[("a", 101)], 1)),
                900,
                waited(600, false),
                hold(
                    None,
                    stop(
                        ClusterPhase::Failed,
                        "kube-proxy restarting with strictARP: 1 of 2 pods available; past spec.rollout.progressDeadline (600 s)",
                    ),
                ),
            ),
            (
                "failed before at this revision: failed until done",
                Ok(read(STRICT, Some(100), &[("a", 101)], 1)),
                200,
                waited(0, true),
                hold(
                    None,
                    stop(
                        ClusterPhase::Failed,
                        "kube-proxy restarting with strictARP: 1 of 2 pods available; past spec.rollout.progressDeadline (600 s)",
                    ),
                ),
            ),
            (
                "kube-proxy could not be read: failed, nothing taken",
                Err("kube-system/kube-proxy: forbidden".into()),
                200,
                waited(0, false),
                hold(
                    None,
                    stop(ClusterPhase::Failed, "kube-system/kube-proxy: forbidden"),
                ),
            ),
            (
                "config.conf that is not YAML: failed, nothing taken",
                Ok(read("mode: [", None, &[], 2)),
                200,
                waited(0, false),
                StrictArp::Hold {
                    step: None,
                    stop: stop(
                        ClusterPhase::Failed,
                        &kube_proxy::next(&read("mode: [", None, &[], 2)).expect_err("not YAML"),
                    ),
                },
            ),
        ];
        for (name, r, now, w, want) in cases {
            assert_eq!(strict_arp(&r, now, w), want, "{name}");
        }
    }
}
