//! What stops a whole AppDeployment before any cluster is touched, and what it waits for.

/// A problem that stops the whole AppDeployment before any cluster is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// CamelCase reason, e.g. `AppNotFound`.
    pub reason: String,
    /// In words, naming the object and field.
    pub message: String,
    /// What it waits for, which decides when the AppDeployment is looked at again.
    pub kind: BlockerKind,
}

/// What a blocker waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockerKind {
    /// The configuration is at fault (ConfigValid=False): nothing changes until it does.
    Invalid,
    /// Something the user creates or changes (an overrides ConfigMap that does not exist yet,
    /// the AppDeployment suspended): its change brings the AppDeployment back.
    AwaitingChange,
    /// The environment failed (an object unreadable, a repository unreachable): retried.
    Transient,
}

impl Blocker {
    /// Whether the configuration is at fault (ConfigValid=False) rather than the environment.
    pub fn config_invalid(&self) -> bool {
        self.kind == BlockerKind::Invalid
    }
}
