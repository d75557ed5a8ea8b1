use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cluster attached to a workspace. Lives in the workspace namespace of the management
/// cluster. Its labels are what AppDeployment `clusterSelector`s match.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kommander.mesosphere.io",
    version = "v1beta1",
    kind = "KommanderCluster",
    doc = "A cluster attached to the workspace whose namespace this lives in. spec.kubeconfigRef names the Secret with its kubeconfig; no kubeconfigRef means the management cluster itself. Deleting it removes the workspace's apps from the cluster first (annotate kommander.mesosphere.io/release-now=true to let it go at once).",
    namespaced,
    status = "KommanderClusterStatus",
    shortname = "kc",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.kubernetesVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KommanderClusterSpec {
    /// Secret in this namespace holding the cluster's kubeconfig under key `kubeconfig` (or
    /// `value`, the Cluster API convention). Absent means the management cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_ref: Option<SecretRef>,
    /// Network ranges of the cluster. Overrides what is discovered from
    /// kube-system/kubeadm-config; used to reject load-balancer pools that overlap them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ClusterNetwork>,
    /// MetalLB may run here although the nodes are a cloud's (their `spec.providerID` names
    /// one whose cloud controller serves LoadBalancer Services). Off (the default): a MetalLB
    /// app is held on such a cluster, naming the provider. Set it when MetalLB really belongs
    /// here, e.g. for Services that choose it by `loadBalancerClass`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metallb_on_cloud: bool,
    /// What the operator may change of kube-proxy on this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy: Option<KubeProxySettings>,
}

/// What the operator may change of kube-proxy on a cluster. kube-system is the platform's:
/// nothing is changed unless asked for here.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KubeProxySettings {
    /// Before a layer2 MetalLB config goes out while kube-proxy runs IPVS without
    /// `strictARP`: set `ipvs.strictARP: true` in kube-system/kube-proxy's `config.conf` (the
    /// previous one is kept in its annotation `kommander.d2iq.io/previous-config.conf`),
    /// restart kube-proxy's pods, and wait for them. Off by default: such a config is refused.
    #[serde(default, rename = "setStrictARP")]
    pub set_strict_arp: bool,
}

/// A reference to a Secret in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
}

/// The cluster's pod, service and node networks, as CIDRs.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// Pod network CIDR, e.g. `192.168.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_subnet: Option<String>,
    /// Service network CIDR, e.g. `10.96.0.0/12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_subnet: Option<String>,
    /// The subnets the nodes sit in, e.g. `10.0.50.0/24`: a layer2 address pool in none of
    /// them is warned about. When empty they are inferred from the nodes' InternalIPs (/24
    /// IPv4, /64 IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_subnets: Vec<String>,
}

/// Whether the operator can talk to the cluster.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JoinPhase {
    /// Not checked yet.
    Pending,
    /// Reachable with the referenced kubeconfig.
    Joined,
    /// The kubeconfig is missing or invalid, or the API server does not answer.
    Unreachable,
    /// Being deleted: every AppDeployment's objects are being removed from the cluster before
    /// it is let go (the condition says which remain, and when it is released regardless).
    Detaching,
}

/// Observed state of a KommanderCluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KommanderClusterStatus {
    /// Pending, Joined, Unreachable or Detaching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JoinPhase>,
    /// Kubernetes version reported by the cluster's API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Standard conditions; `Ready` explains why a cluster is Unreachable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
