//! The nodes' subnets, and layer2 pools that share none of them: addresses announced by ARP or
//! NDP from a node are reachable only on a link the node is on (the guide: "your configuration
//! is complete if the reserved virtual IP addresses are in the same subnet as the rest of the
//! cluster nodes").

use super::cidr;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::fmt;
use std::net::IpAddr;

/// The prefix a node's IPv4 InternalIP is taken to sit in when no subnet is declared.
pub const INFERRED_V4_PREFIX: u8 = 24;
/// The prefix a node's IPv6 InternalIP is taken to sit in when no subnet is declared.
pub const INFERRED_V6_PREFIX: u8 = 64;

/// The nodes' subnets and where they come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeSubnets {
    /// Not known: neither declared nor read (the warning is not given).
    #[default]
    Unknown,
    /// `spec.network.nodeSubnets` on the KommanderCluster.
    Declared(Vec<IpNet>),
    /// From the nodes' InternalIPs, with [`INFERRED_V4_PREFIX`] and [`INFERRED_V6_PREFIX`].
    Inferred(Vec<IpNet>),
}

impl NodeSubnets {
    /// Infer from the nodes' InternalIPs; `Unknown` when there are none.
    pub fn infer(internal_ips: &[IpAddr]) -> Self {
        let mut nets: Vec<IpNet> = internal_ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Ipv4Net::new(*a, INFERRED_V4_PREFIX).ok().map(IpNet::from),
                IpAddr::V6(a) => Ipv6Net::new(*a, INFERRED_V6_PREFIX).ok().map(IpNet::from),
            })
            .map(|n| n.trunc())
            .collect();
        nets.sort();
        nets.dedup();
        if nets.is_empty() {
            NodeSubnets::Unknown
        } else {
            NodeSubnets::Inferred(nets)
        }
    }

    /// The subnets; none when unknown.
    pub fn nets(&self) -> &[IpNet] {
        match self {
            NodeSubnets::Unknown => &[],
            NodeSubnets::Declared(n) | NodeSubnets::Inferred(n) => n,
        }
    }
}

impl fmt::Display for NodeSubnets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |n: &[IpNet]| n.iter().map(ToString::to_string).collect::<Vec<_>>();
        match self {
            NodeSubnets::Unknown => f.write_str("unknown"),
            NodeSubnets::Declared(n) => write!(
                f,
                "{} (spec.network.nodeSubnets of the KommanderCluster)",
                list(n).join(", ")
            ),
            NodeSubnets::Inferred(n) => write!(
                f,
                "{} (inferred from the nodes' InternalIPs as /{INFERRED_V4_PREFIX} for IPv4 and /{INFERRED_V6_PREFIX} for IPv6; set spec.network.nodeSubnets on the KommanderCluster to declare them)",
                list(n).join(", ")
            ),
        }
    }
}

/// A warning for each layer2 pool (`name`, its blocks) none of whose blocks is in a node
/// subnet; none when the subnets are unknown.
pub fn off_subnet<'a>(
    layer2_pools: impl Iterator<Item = (&'a str, &'a [IpNet])>,
    nodes: &NodeSubnets,
) -> Vec<String> {
    if nodes.nets().is_empty() {
        return Vec::new();
    }
    layer2_pools
        .filter(|(_, blocks)| {
            !blocks
                .iter()
                .any(|b| nodes.nets().iter().any(|n| cidr::overlaps(b, n)))
        })
        .map(|(name, _)| {
            format!(
                "layer2 pool {name:?} shares no subnet with the nodes ({nodes}): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn subnets_are_inferred_per_family_and_deduplicated() {
        assert_eq!(
            NodeSubnets::infer(&ips(&["10.0.50.3", "10.0.50.4", "10.0.51.9", "fd00:1::5"])),
            NodeSubnets::Inferred(nets(&["10.0.50.0/24", "10.0.51.0/24", "fd00:1::/64"]))
        );
        assert_eq!(NodeSubnets::infer(&[]), NodeSubnets::Unknown);
    }

    #[test]
    fn a_layer2_pool_off_every_node_subnet_is_named_with_where_the_subnets_came_from() {
        let seed = nets(&["10.0.50.25/32", "10.0.50.26/31"]);
        let far = nets(&["192.168.7.0/28"]);
        let pools = || [("default", seed.as_slice()), ("far", far.as_slice())].into_iter();
        // (node subnets, warnings)
        let cases = [
            (NodeSubnets::Unknown, vec![]),
            (
                NodeSubnets::Inferred(nets(&["10.0.50.0/24"])),
                vec![
                    "layer2 pool \"far\" shares no subnet with the nodes (10.0.50.0/24 (inferred from the nodes' InternalIPs as /24 for IPv4 and /64 for IPv6; set spec.network.nodeSubnets on the KommanderCluster to declare them)): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)",
                ],
            ),
            (
                NodeSubnets::Declared(nets(&["10.0.0.0/16", "192.168.0.0/16"])),
                vec![],
            ),
            (
                NodeSubnets::Declared(nets(&["172.16.0.0/24"])),
                vec![
                    "layer2 pool \"default\" shares no subnet with the nodes (172.16.0.0/24 (spec.network.nodeSubnets of the KommanderCluster)): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)",
                    "layer2 pool \"far\" shares no subnet with the nodes (172.16.0.0/24 (spec.network.nodeSubnets of the KommanderCluster)): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)",
                ],
            ),
        ];
        for (nodes, want) in cases {
            assert_eq!(off_subnet(pools(), &nodes), want, "{nodes:?}");
        }
    }
}
