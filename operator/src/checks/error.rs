//! Why a check could not read what its decision needs from a cluster, typed by whose fault it
//! is: that decides the cluster's phase.

use crate::remote::{excerpt, short_error};
use crate::resources::ClusterPhase;

/// A failed read of a cluster's live state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The cluster's API did not answer, or answered with an error: tried again.
    #[error("{0}")]
    Api(String),
    /// The cluster holds something the check cannot read (kubeadm's ClusterConfiguration that
    /// is not YAML): the cluster's own state, so it counts as not reachable for the check.
    #[error("{0}")]
    Unreadable(String),
    /// The KommanderCluster declares a network that is not one (`spec.network`): its writer's
    /// mistake, not the cluster's, and nothing is tried until it changes.
    #[error("{0}")]
    Declared(String),
}

impl ReadError {
    /// The phase of a cluster whose check could not read.
    pub fn phase(&self) -> ClusterPhase {
        match self {
            ReadError::Api(_) | ReadError::Unreadable(_) => ClusterPhase::Unreachable,
            ReadError::Declared(_) => ClusterPhase::Invalid,
        }
    }

    /// From the cluster's API, shortened for status.
    pub fn api(e: &kube::Error) -> Self {
        ReadError::Api(short_error(e))
    }

    /// From what the cluster holds, as an excerpt (it is the cluster's text).
    pub fn unreadable(what: &str) -> Self {
        ReadError::Unreadable(excerpt(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whose_fault_decides_the_phase() {
        let cases = [
            (
                ReadError::Api("timed out".into()),
                ClusterPhase::Unreachable,
            ),
            (ReadError::unreadable("not YAML"), ClusterPhase::Unreachable),
            (
                ReadError::Declared("bad CIDR".into()),
                ClusterPhase::Invalid,
            ),
        ];
        for (e, phase) in cases {
            assert_eq!(e.phase(), phase, "{e:?}");
        }
    }
}
