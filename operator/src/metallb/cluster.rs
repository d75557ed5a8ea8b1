//! Rules that depend on the cluster a config is for: pools must not overlap the pod or service
//! network, and layer2 pools under kube-proxy in IPVS mode need `strictARP: true`.

use super::cidr;
use super::config::{Config, ConfigError, Location, Problem, Protocol};
use super::nodes::NodeSubnets;
use crate::kube_proxy;
use ipnet::IpNet;
use serde_json::Value;

/// What we know about a cluster's networking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFacts {
    /// Pod network CIDRs; empty when unknown.
    pub pod_subnets: Vec<IpNet>,
    /// Service network CIDRs; empty when unknown.
    pub service_subnets: Vec<IpNet>,
    /// kube-proxy runs in IPVS mode without strictARP.
    pub ipvs_without_strict_arp: bool,
    /// The nodes' subnets, declared or inferred.
    pub node_subnets: NodeSubnets,
    /// The cloud the nodes belong to, by their `spec.providerID`; `None` on premises (or when
    /// the nodes could not be read).
    pub cloud: Option<super::cloud::Cloud>,
}

/// Parse a comma-separated CIDR list (kubeadm's dual-stack form), naming `what` on error.
pub fn parse_subnets(what: &str, text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| format!("{what}: {s:?} is not a CIDR"))
        })
        .collect()
}

/// Pod and service subnets from kube-system/kubeadm-config's `ClusterConfiguration` text.
pub fn kubeadm_networks(cluster_configuration: &str) -> Result<(Vec<IpNet>, Vec<IpNet>), String> {
    let doc = crate::yaml::parse(cluster_configuration)
        .map_err(|e| format!("ClusterConfiguration is not YAML: {e}"))?;
    let get = |k: &str| {
        doc.get("networking")
            .and_then(|n| n.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok((
        parse_subnets("networking.podSubnet", &get("podSubnet"))?,
        parse_subnets("networking.serviceSubnet", &get("serviceSubnet"))?,
    ))
}

/// Whether kube-system/kube-proxy's `config.conf` runs IPVS without strictARP.
pub fn ipvs_without_strict_arp(kube_proxy_config: &str) -> bool {
    crate::yaml::parse(kube_proxy_config).is_ok_and(|doc| kube_proxy::mode(&doc) == (true, false))
}

/// Problems of `cfg` on a cluster with these facts.
pub fn validate(cfg: &Config, facts: &ClusterFacts) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (index, pool) in cfg.pools.iter().enumerate() {
        let location = Location::Pool {
            index,
            name: Some(pool.name.clone()),
        };
        for block in &pool.cidrs {
            let clash = facts
                .pod_subnets
                .iter()
                .map(|n| (n, "podSubnet"))
                .chain(facts.service_subnets.iter().map(|n| (n, "serviceSubnet")))
                .find(|(n, _)| cidr::overlaps(block, n));
            if let Some((network, which)) = clash {
                out.push(ConfigError {
                    location: location.clone(),
                    problem: Problem::OverlapsClusterNetwork {
                        cidr: *block,
                        network: *network,
                        which,
                    },
                });
                break;
            }
        }
        if pool.protocol == Protocol::Layer2 && facts.ipvs_without_strict_arp {
            out.push(ConfigError {
                location,
                problem: Problem::StrictArpRequired,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metallb::config::{SpeakerMode, parse};

    fn facts(pod: &str, svc: &str) -> ClusterFacts {
        ClusterFacts {
            pod_subnets: parse_subnets("p", pod).unwrap(),
            service_subnets: parse_subnets("s", svc).unwrap(),
            ipvs_without_strict_arp: false,
            node_subnets: NodeSubnets::Unknown,
            cloud: None,
        }
    }

    const SEED: &str = "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.50.25-10.0.50.50\n";

    #[test]
    fn seed_pool_is_fine_on_a_kubeadm_default_cluster() {
        let cfg = parse(SEED, SpeakerMode::Native).unwrap();
        assert!(validate(&cfg, &facts("192.168.0.0/16", "10.96.0.0/12")).is_empty());
    }

    #[test]
    fn overlapping_the_service_network_is_invalid() {
        let cfg = parse(SEED, SpeakerMode::Native).unwrap();
        let e = validate(&cfg, &facts("192.168.0.0/16", "10.0.0.0/16"));
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "address pool #1 \"default\": addresses 10.0.50.25/32 overlap the cluster's serviceSubnet 10.0.0.0/16 (the guide: the MetalLB range must not overlap podSubnet and serviceSubnet)"
            ]
        );
    }

    #[test]
    fn overlapping_the_pod_network_is_invalid() {
        let cfg = parse(SEED, SpeakerMode::Native).unwrap();
        let e = validate(&cfg, &facts("10.0.0.0/8", "172.20.0.0/16"));
        assert!(
            e[0].to_string().contains("podSubnet 10.0.0.0/8"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn layer2_under_ipvs_needs_strict_arp() {
        let cfg = parse(SEED, SpeakerMode::Native).unwrap();
        let f = ClusterFacts {
            ipvs_without_strict_arp: true,
            ..Default::default()
        };
        assert_eq!(
            validate(&cfg, &f)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec![
                "address pool #1 \"default\": layer2 pools need strictARP: true in kube-proxy's IPVS config (kube-system/kube-proxy ConfigMap, config.conf: ipvs.strictARP; or set spec.kubeProxy.setStrictARP: true on the KommanderCluster to let the operator set it)"
            ]
        );
    }

    #[test]
    fn reads_kubeadm_and_kube_proxy_configs() {
        let (pod, svc) = kubeadm_networks("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 192.168.0.0/16,fd00:1::/56\n  serviceSubnet: 10.96.0.0/12\n").unwrap();
        assert_eq!(pod.len(), 2);
        assert_eq!(svc, vec!["10.96.0.0/12".parse::<IpNet>().unwrap()]);
        assert!(
            kubeadm_networks("networking:\n  podSubnet: nope\n")
                .unwrap_err()
                .contains("networking.podSubnet")
        );
        assert!(ipvs_without_strict_arp(
            "mode: ipvs\nipvs:\n  strictARP: false\n"
        ));
        assert!(!ipvs_without_strict_arp(
            "mode: ipvs\nipvs:\n  strictARP: true\n"
        ));
        assert!(!ipvs_without_strict_arp("mode: iptables\n"));
        assert!(!ipvs_without_strict_arp("mode: \"\"\n"));
    }
}
