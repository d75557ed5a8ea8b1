//! What a reconcile fails with (after recording what it could in status and Events), and the
//! category that decides what happens next and labels the `reconcile_errors` metric.

use kube::runtime::finalizer;

/// How a failed reconcile is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// Transient (a conflict, a timeout, a cluster still detaching): retried.
    Retry,
    /// The object itself is wrong (a field missing or refused by the API server): retried
    /// slowly, it only changes when someone edits it.
    Invalid,
    /// A cluster (or the management API) did not answer: retried.
    Unreachable,
    /// The API server refused the operator (RBAC, admission): retried, and worth an alert.
    Refused,
}

impl ErrorCategory {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorCategory::Retry => "retry",
            ErrorCategory::Invalid => "invalid",
            ErrorCategory::Unreachable => "unreachable",
            ErrorCategory::Refused => "refused",
        }
    }

    /// The category of a Kubernetes API error.
    pub fn of_kube(e: &kube::Error) -> ErrorCategory {
        match e {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => ErrorCategory::Refused,
            kube::Error::Api(s) if s.code == 400 || s.code == 422 => ErrorCategory::Invalid,
            kube::Error::Api(_) => ErrorCategory::Retry,
            _ => ErrorCategory::Unreachable,
        }
    }
}

/// What a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The management cluster's API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    /// Cleaning up on delete failed on some cluster (unreachable, or its API failed); retried.
    #[error("cleanup on cluster {cluster}: {message}")]
    Cleanup {
        /// Cluster.
        cluster: String,
        /// Why, as the cluster answered.
        message: String,
    },
    /// An object without the name or namespace it must have.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// A deleted cluster still has apps to remove: not a failure, a wait.
    #[error("cluster {0} is detaching: waiting for its apps to be removed")]
    Detaching(String),
}

impl Error {
    /// How it is handled.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Kube(e) | Error::Finalizer(e) => ErrorCategory::of_kube(e),
            Error::Cleanup { .. } => ErrorCategory::Unreachable,
            Error::MissingField(_) => ErrorCategory::Invalid,
            Error::Detaching(_) => ErrorCategory::Retry,
        }
    }

    /// The reconcile's own error out of the finalizer helper's.
    pub fn from_finalizer(e: finalizer::Error<Error>) -> Error {
        match e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                Error::Finalizer(e)
            }
            finalizer::Error::UnnamedObject => Error::MissingField("metadata.name"),
            // The helper builds the path itself from our constant name.
            finalizer::Error::InvalidFinalizer => Error::MissingField("metadata.finalizers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn each_error_has_the_category_that_decides_its_handling() {
        let table = [
            (Error::Kube(api(403)), ErrorCategory::Refused),
            (Error::Kube(api(401)), ErrorCategory::Refused),
            (Error::Kube(api(422)), ErrorCategory::Invalid),
            (Error::Kube(api(409)), ErrorCategory::Retry),
            (Error::Kube(api(500)), ErrorCategory::Retry),
            (Error::Finalizer(api(403)), ErrorCategory::Refused),
            (
                Error::Cleanup {
                    cluster: "c".into(),
                    message: "m".into(),
                },
                ErrorCategory::Unreachable,
            ),
            (
                Error::MissingField("metadata.namespace"),
                ErrorCategory::Invalid,
            ),
            (Error::Detaching("c".into()), ErrorCategory::Retry),
        ];
        for (e, want) in table {
            assert_eq!(e.category(), want, "{e}");
        }
        assert_eq!(
            ErrorCategory::of_kube(&kube::Error::LinesCodecMaxLineLengthExceeded),
            ErrorCategory::Unreachable
        );
    }

    #[test]
    fn the_finalizer_helpers_errors_become_ours() {
        let ours =
            Error::from_finalizer(finalizer::Error::ApplyFailed(Error::Detaching("c".into())));
        assert!(matches!(ours, Error::Detaching(c) if c == "c"));
        let add = Error::from_finalizer(finalizer::Error::AddFinalizer(api(403)));
        assert_eq!(add.category(), ErrorCategory::Refused);
        let unnamed = Error::from_finalizer(finalizer::Error::UnnamedObject);
        assert!(matches!(unnamed, Error::MissingField("metadata.name")));
    }
}
