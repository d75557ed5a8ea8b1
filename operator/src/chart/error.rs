//! Why a chart app could not be had or rendered, and how the operator acts on it.

/// How the operator acts on a chart error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The chart, the values or the cluster's version are at fault: wait for a change.
    Invalid,
    /// A bound was passed (time, memory, output): the input is refused until it changes.
    Refused,
    /// The engine could not run: retry with backoff.
    Retry,
}

/// Why a chart did not render. Each message is Helm's own where Helm said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// The archive is not a chart Helm can install.
    #[error("the chart cannot be used: {0}")]
    Chart(String),
    /// A values layer is not a YAML map, or the values break the chart's values.schema.json.
    #[error("{0}")]
    Values(String),
    /// The chart's `kubeVersion` excludes the cluster's version.
    #[error("{0}")]
    KubeVersion(String),
    /// A template failed (`fail`, `required`, a missing value, a syntax error).
    #[error("{0}")]
    Template(String),
    /// The rendered text is not a set of Kubernetes manifests.
    #[error("{0}")]
    Manifest(String),
    /// The render passed a bound; `bound` names it and its limit.
    #[error("{bound}: {message}")]
    Bound {
        /// The bound, e.g. `the render deadline of 10s`.
        bound: String,
        /// What happened.
        message: String,
    },
    /// The engine is missing or crashed.
    #[error("Helm's engine could not run: {0}")]
    Engine(String),
    /// The chart source breaks a rule, or names a repository its requester may not reach.
    #[error("{field}: {rule}")]
    Refused {
        /// The field, e.g. `spec.chart.repository`.
        field: String,
        /// The rule, with the value.
        rule: String,
    },
    /// The repository or the archive could not be had.
    #[error("{url}: {message}")]
    Unavailable {
        /// What was requested.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// The archive (or the index's record of it) is not the pinned one.
    #[error("{url}: the chart's sha256 is {found}, not the pinned {pinned} (spec.chart.digest)")]
    DigestMismatch {
        /// Where it came from.
        url: String,
        /// `spec.chart.digest`.
        pinned: String,
        /// What was found.
        found: String,
    },
}

impl ChartError {
    /// How the operator acts on it.
    pub fn category(&self) -> Category {
        match self {
            ChartError::Chart(_)
            | ChartError::Values(_)
            | ChartError::KubeVersion(_)
            | ChartError::Template(_)
            | ChartError::Manifest(_) => Category::Invalid,
            ChartError::Bound { .. }
            | ChartError::Refused { .. }
            | ChartError::DigestMismatch { .. } => Category::Refused,
            ChartError::Engine(_) | ChartError::Unavailable { .. } => Category::Retry,
        }
    }

    /// The reason a condition and an Event give for it.
    pub fn reason(&self) -> &'static str {
        match self {
            ChartError::Chart(_) => "InvalidChart",
            ChartError::Values(_) => "InvalidValues",
            ChartError::KubeVersion(_) => "KubeVersionUnsupported",
            ChartError::Template(_) | ChartError::Manifest(_) => "RenderFailed",
            ChartError::Bound { .. } => "RenderBound",
            ChartError::Engine(_) => "HelmEngineFailed",
            ChartError::Refused { .. } => "ChartRefused",
            ChartError::Unavailable { .. } => "ChartUnavailable",
            ChartError::DigestMismatch { .. } => "DigestMismatch",
        }
    }
}
