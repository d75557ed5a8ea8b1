//! MetalLB 0.12 (ConfigMap-configured), the whole check in one file: what it reads (the
//! LoadBalancer Services and the IPs they hold, the cluster's pod and service networks,
//! kube-proxy's mode) and its rules (`MetallbV012`: every config rule of `metallb::config`, the
//! networks, and the Services a change would break, from `metallb::safety`).

use super::adapter::{Adapter, Source};
use super::error::ReadError;
use crate::metallb::capacity::{self, PoolUse};
use crate::metallb::cluster::{self as metallb_cluster, ClusterFacts};
use crate::metallb::config::{self as mlb, SpeakerMode};
use crate::metallb::nodes::NodeSubnets;
use crate::metallb::safety::{LiveService, POOL_ANNOTATION};
use crate::metallb::segments::PoolAddresses;
use crate::metallb::{cluster, nodes, safety};
use crate::remote::short_error;
use crate::resources::ClusterNetwork;
use crate::rollout::{ConfigCheck, LiveState};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use std::net::IpAddr;

/// The adapter.
pub struct MetallbV012Adapter;

impl Adapter for MetallbV012Adapter {
    fn observe<'a>(
        &'a self,
        source: &'a Source<'a>,
    ) -> BoxFuture<'a, Result<LiveState, ReadError>> {
        Box::pin(observe(source))
    }

    fn reads_services(&self) -> bool {
        true
    }

    fn rules(&self) -> &'static dyn ConfigCheck {
        &MetallbV012
    }
}

/// A Service as the gate sees it; `None` unless it is a LoadBalancer.
pub fn live_service(svc: &Service) -> Option<LiveService> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect();
    Some(LiveService {
        namespace: svc.namespace().unwrap_or_default(),
        name: svc.name_any(),
        ips,
        pool: svc.annotations().get(POOL_ANNOTATION).cloned(),
        requested_ip: spec
            .load_balancer_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        labels: svc.labels().clone(),
        annotations: svc
            .annotations()
            .iter()
            .filter(|(k, _)| k.starts_with("metallb.io/") || k.starts_with("metallb.universe.tf/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        // Filled in by the adapters whose pools admit namespaces by label.
        namespace_labels: Default::default(),
    })
}

/// The nodes' InternalIPs.
/// The nodes' InternalIPs and `spec.providerID`s.
async fn node_facts(client: &kube::Client) -> Result<(Vec<IpAddr>, Vec<String>), String> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| short_error(&e))?;
    let ips = nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    let provider_ids = nodes
        .items
        .iter()
        .filter_map(|n| n.spec.as_ref()?.provider_id.clone())
        .collect();
    Ok((ips, provider_ids))
}

/// The Services, the cluster's networks and kube-proxy's mode: what every MetalLB check reads.
pub(super) async fn observe(source: &Source<'_>) -> Result<LiveState, ReadError> {
    let client = source.client;
    let services: Vec<LiveService> = match &source.services {
        Some(watched) => watched.iter().filter_map(|s| live_service(s)).collect(),
        None => Api::<Service>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| ReadError::api(&e))?
            .items
            .iter()
            .filter_map(live_service)
            .collect(),
    };
    // The KommanderCluster's spec.network wins over what kubeadm recorded.
    let network = source.network.cloned().unwrap_or_default();
    let mut facts = system_facts(client, &network).await?;
    let mut notes = Vec::new();
    let nodes = node_facts(client).await;
    if let Err(e) = &nodes {
        notes.push(format!(
            "the nodes could not be read ({e}): whether they are a cloud's was not checked"
        ));
    }
    facts.cloud = nodes
        .as_ref()
        .ok()
        .and_then(|(_, ids)| crate::metallb::cloud::detect(ids));
    facts.node_subnets = node_subnets(&network, &nodes, &mut notes)?;
    for (name, nets) in [
        ("podSubnet", &facts.pod_subnets),
        ("serviceSubnet", &facts.service_subnets),
    ] {
        if nets.is_empty() {
            notes.push(format!(
                "the cluster's {name} is unknown (set spec.network.{name} on the KommanderCluster, or keep kube-system/kubeadm-config): overlap with it was not checked"
            ));
        }
    }
    Ok(LiveState {
        config: None,
        facts,
        services,
        notes,
        foreign: Vec::new(),
    })
}

/// The pod and service networks (declared, else as kubeadm recorded them) and kube-proxy's
/// mode, from kube-system.
async fn system_facts(
    client: &kube::Client,
    network: &ClusterNetwork,
) -> Result<ClusterFacts, ReadError> {
    let short = |e: kube::Error| ReadError::api(&e);
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let mut facts = ClusterFacts::default();
    let kubeadm = system.get_opt("kubeadm-config").await.map_err(short)?;
    let (kubeadm_pod, kubeadm_svc) = kubeadm
        .and_then(|cm| cm.data.and_then(|d| d.get("ClusterConfiguration").cloned()))
        .map(|text| metallb_cluster::kubeadm_networks(&text))
        .transpose()
        .map_err(|e| ReadError::unreadable(&format!("kube-system/kubeadm-config: {e}")))?
        .unwrap_or_default();
    let declared = |field: &str, s: &str| {
        metallb_cluster::parse_subnets(field, s).map_err(ReadError::Declared)
    };
    facts.pod_subnets = match &network.pod_subnet {
        Some(s) => declared("spec.network.podSubnet", s)?,
        None => kubeadm_pod,
    };
    facts.service_subnets = match &network.service_subnet {
        Some(s) => declared("spec.network.serviceSubnet", s)?,
        None => kubeadm_svc,
    };
    let kube_proxy = system.get_opt("kube-proxy").await.map_err(short)?;
    if let Some(text) =
        kube_proxy.and_then(|cm| cm.data.and_then(|d| d.get("config.conf").cloned()))
    {
        facts.ipvs_without_strict_arp = metallb_cluster::ipvs_without_strict_arp(&text);
    }
    Ok(facts)
}

/// The nodes' subnets: declared, else inferred from the nodes' addresses (unknown, with a
/// note, when they could not be read).
fn node_subnets(
    network: &ClusterNetwork,
    nodes: &Result<(Vec<IpAddr>, Vec<String>), String>,
    notes: &mut Vec<String>,
) -> Result<NodeSubnets, ReadError> {
    if network.node_subnets.is_empty() {
        return Ok(match nodes {
            Ok((ips, _)) => NodeSubnets::infer(ips),
            Err(e) => {
                notes.push(format!(
                    "the nodes could not be read ({e}): whether layer2 pools share their subnet was not checked (set spec.network.nodeSubnets on the KommanderCluster)"
                ));
                NodeSubnets::Unknown
            }
        });
    }
    let mut nets = Vec::new();
    for s in &network.node_subnets {
        nets.extend(
            metallb_cluster::parse_subnets("spec.network.nodeSubnets", s)
                .map_err(ReadError::Declared)?,
        );
    }
    Ok(NodeSubnets::Declared(nets))
}

/// MetalLB 0.12 (ConfigMap-configured): every config rule, the cluster's networks and
/// kube-proxy mode, and the Services holding IPs.
pub struct MetallbV012;

impl ConfigCheck for MetallbV012 {
    fn validate(&self, new: &str, live: &LiveState) -> Vec<String> {
        match mlb::parse(new, SpeakerMode::Native) {
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
            Ok(cfg) => cluster::validate(&cfg, &live.facts)
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }

    fn breaks(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Ok(new) = mlb::parse(new, SpeakerMode::Native) else {
            return Vec::new();
        };
        // An unparsable live config cannot be compared with; MetalLB would not be running it.
        let old = live
            .config
            .as_deref()
            .and_then(|t| mlb::parse(t, SpeakerMode::Native).ok());
        safety::check(old.as_ref(), &new, &live.services)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn announces_layer2(&self, new: &str, _live: &LiveState) -> bool {
        mlb::parse(new, SpeakerMode::Native).is_ok_and(|cfg| {
            cfg.pools
                .iter()
                .any(|p| p.protocol == mlb::Protocol::Layer2)
        })
    }

    fn warnings(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Ok(cfg) = mlb::parse(new, SpeakerMode::Native) else {
            return Vec::new();
        };
        let layer2 = cfg
            .pools
            .iter()
            .filter(|p| p.protocol == mlb::Protocol::Layer2)
            .map(|p| (p.name.as_str(), p.cidrs.as_slice()));
        nodes::off_subnet(layer2, &live.facts.node_subnets)
    }

    fn capacity(&self, config: &str, live: &LiveState) -> Vec<PoolUse> {
        mlb::parse(config, SpeakerMode::Native)
            .map(|cfg| capacity::of_config(&cfg, &live.services))
            .unwrap_or_default()
    }

    fn addresses(&self, config: &str, _live: &LiveState) -> Vec<PoolAddresses> {
        let Ok(cfg) = mlb::parse(config, SpeakerMode::Native) else {
            return Vec::new();
        };
        cfg.pools
            .iter()
            .map(|p| PoolAddresses {
                name: p.name.clone(),
                layer2: p.protocol == mlb::Protocol::Layer2,
                bgp: p.protocol == mlb::Protocol::Bgp,
                cidrs: p.cidrs.clone(),
            })
            .collect()
    }
}
