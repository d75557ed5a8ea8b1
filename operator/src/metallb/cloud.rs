//! Clusters whose LoadBalancer Services a cloud's controller already serves. In cloud
//! deployments "the load balancer is provided by the cloud provider" (the guide); MetalLB is
//! the on-premises answer. MetalLB on such a cluster means two controllers writing the same
//! Services' addresses, so a MetalLB app is held there unless the KommanderCluster says
//! MetalLB belongs (`spec.metallbOnCloud`). Pure: the nodes' `spec.providerID`s in, a verdict
//! out.

/// `spec.providerID` schemes of clouds whose cloud controller manager serves LoadBalancer
/// Services, and their names.
const PROVIDERS: &[(&str, &str)] = &[
    ("aws", "AWS"),
    ("gce", "Google Cloud"),
    ("azure", "Azure"),
    ("openstack", "OpenStack"),
    ("vsphere", "vSphere"),
    ("digitalocean", "DigitalOcean"),
    ("linode", "Linode"),
    ("hcloud", "Hetzner Cloud"),
    ("oci", "Oracle Cloud"),
    ("ibm", "IBM Cloud"),
    ("alicloud", "Alibaba Cloud"),
    ("exoscale", "Exoscale"),
    ("scaleway", "Scaleway"),
    ("vultr", "Vultr"),
];

/// The cloud a cluster's nodes belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// Its name, e.g. `AWS`.
    pub provider: String,
    /// One node's `spec.providerID`, as the evidence.
    pub provider_id: String,
}

/// The cloud the nodes' `spec.providerID`s name, if any names a known one.
pub fn detect(provider_ids: &[String]) -> Option<Cloud> {
    provider_ids.iter().find_map(|id| {
        let scheme = id.split_once("://")?.0.to_ascii_lowercase();
        PROVIDERS
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, name)| Cloud {
                provider: name.to_string(),
                provider_id: id.clone(),
            })
    })
}

impl Cloud {
    /// Why a MetalLB app is held on this cluster, and the ways out.
    pub fn held(&self) -> String {
        format!(
            "the nodes are {}'s (spec.providerID {}): its cloud controller serves LoadBalancer Services, and MetalLB there would write the same Services' addresses. Leave this cluster out with the AppDeployment's clusterSelector, or set spec.metallbOnCloud: true on the KommanderCluster if MetalLB belongs here (e.g. for Services that choose it by loadBalancerClass)",
            self.provider, self.provider_id
        )
    }

    /// The same, for a cluster where MetalLB already runs: shown, not holding.
    pub fn warning(&self) -> String {
        format!("MetalLB runs on a cloud cluster: {}", self.held())
    }
}

#[cfg(test)]
mod tests;
