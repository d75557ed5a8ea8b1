//! Custom resource types. The CRD YAML under `crds/` is generated from these (see `crdgen`).

pub mod app;
pub mod appdeployment;
pub mod cluster;
pub mod workspace;

pub use app::{
    App, AppDefinition, AppSpec, AppTemplate, ChartSource, ClusterApp, ClusterAppSpec, ConfigKind,
    ConfigRollout, RestartTarget, SafetyCheck,
};
pub use appdeployment::{
    Announcements, AppDeployment, AppDeploymentSpec, AppDeploymentStatus, AppKind, AppRef,
    AppliedObject, ClusterConfigOverride, ClusterPhase, ClusterRolloutStatus, ConfigMapRef,
    DriftPolicy, HooksStatus, PoolCapacity, RolloutPhase, RolloutStatus, RolloutStep,
    RolloutStrategy, SharedAddresses,
};
pub use cluster::{
    ClusterNetwork, JoinPhase, KommanderCluster, KommanderClusterSpec, KommanderClusterStatus,
    KubeProxySettings, SecretRef,
};
pub use workspace::{
    AddressSharing, NamespaceRef, SharingPolicy, Workspace, WorkspaceSpec, WorkspaceStatus,
};
