//! MetalLB 0.13, 0.15 and 0.16 (configured by custom resources): every resource rule, the cluster's
//! networks and kube-proxy's mode, and what the change does to each Service holding an IP:
//! 0.13 refuses a change that takes an IP away; 0.14 and later renumber the Service, so the
//! prediction is the only protection.

use super::adapter::{Adapter, Source};
use super::error::ReadError;
use super::metallb_v012;
use crate::metallb::capacity::{self, PoolUse};
use crate::metallb::cidr;
use crate::metallb::crs::{self, Announcement, BgpMode, CrConfig, Phase, Release};
use crate::metallb::nodes;
use crate::metallb::segments::PoolAddresses;
use crate::metallb::sequence;
use crate::remote::short_error;
use crate::rollout::{ConfigCheck, LiveState};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::collections::BTreeSet;

/// The adapter for one release.
pub struct MetallbCrsAdapter(Release);

/// MetalLB 0.13.
pub static V013: MetallbCrsAdapter = MetallbCrsAdapter(Release::V0_13);
/// MetalLB 0.14 and 0.15.
pub static V015: MetallbCrsAdapter = MetallbCrsAdapter(Release::V0_15);
/// MetalLB 0.16.
pub static V016: MetallbCrsAdapter = MetallbCrsAdapter(Release::V0_16);

static RULES_V013: MetallbCrs = MetallbCrs(Release::V0_13);
static RULES_V015: MetallbCrs = MetallbCrs(Release::V0_15);
static RULES_V016: MetallbCrs = MetallbCrs(Release::V0_16);

impl Adapter for MetallbCrsAdapter {
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
        match self.0 {
            Release::V0_13 => &RULES_V013,
            Release::V0_15 => &RULES_V015,
            Release::V0_16 => &RULES_V016,
        }
    }
}

async fn observe(source: &Source<'_>) -> Result<LiveState, ReadError> {
    let mut live = metallb_v012::observe(source).await?;
    // Pools may admit Services by their namespace's labels.
    let namespaces: Api<Namespace> = Api::all(source.client.clone());
    match namespaces.list_metadata(&ListParams::default()).await {
        Ok(list) => {
            for s in &mut live.services {
                if let Some(ns) = list.items.iter().find(|n| n.name_any() == s.namespace) {
                    s.namespace_labels = ns.labels().clone();
                }
            }
        }
        Err(e) => live.notes.push(format!(
            "namespaces could not be read ({}): pools that select namespaces by label were judged without their labels",
            short_error(&e)
        )),
    }
    Ok(live)
}

/// The rules of one release.
pub struct MetallbCrs(Release);

/// The configuration: the objects of a config text plus those of others in the namespace.
fn objects(text: &str, live: &LiveState) -> Option<Vec<Value>> {
    let mut items: Vec<Value> = serde_json::from_str(text).ok()?;
    items.extend(live.foreign.iter().cloned());
    Some(items)
}

fn secrets(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

impl MetallbCrs {
    fn parse(&self, text: &str, live: &LiveState) -> Option<CrConfig> {
        self.parse_items(&objects(text, live)?)
    }

    fn parse_items(&self, items: &[Value]) -> Option<CrConfig> {
        crs::parse(items, self.0, BgpMode::Frr, &secrets(items)).ok()
    }
}

impl ConfigCheck for MetallbCrs {
    fn validate(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Some(items) = objects(new, live) else {
            return vec!["the configuration objects are not a JSON list".into()];
        };
        // The FRR speaker is the chart's default; with the native one MetalLB's webhook also
        // refuses the FRR-only fields.
        let cfg = match crs::parse(&items, self.0, BgpMode::Frr, &secrets(&items)) {
            Err(errors) => return errors.iter().map(ToString::to_string).collect(),
            Ok(cfg) => cfg,
        };
        let facts = &live.facts;
        let mut out = Vec::new();
        for pool in &cfg.pools {
            let networks = facts
                .pod_subnets
                .iter()
                .map(|n| (n, "podSubnet"))
                .chain(facts.service_subnets.iter().map(|n| (n, "serviceSubnet")));
            for (net, which) in networks {
                if let Some(block) = pool.cidrs.iter().find(|b| cidr::overlaps(b, net)) {
                    out.push(format!(
                        "IPAddressPool/{}: addresses {block} overlap the cluster's {which} {net} (the guide: the MetalLB range must not overlap podSubnet and serviceSubnet)",
                        pool.name
                    ));
                    break;
                }
            }
            if facts.ipvs_without_strict_arp && cfg.announced(pool).contains(&Announcement::Layer2)
            {
                out.push(format!(
                    "IPAddressPool/{}: announced by an L2Advertisement, which needs strictARP: true in kube-proxy's IPVS config (kube-system/kube-proxy ConfigMap, config.conf: ipvs.strictARP; or set spec.kubeProxy.setStrictARP: true on the KommanderCluster to let the operator set it)",
                    pool.name
                ));
            }
        }
        out
    }

    fn breaks(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Some(new_items) = objects(new, live) else {
            return Vec::new();
        };
        let Some(new) = self.parse_items(&new_items) else {
            return Vec::new();
        };
        let old_items = live.config.as_deref().and_then(|t| objects(t, live));
        let old = old_items
            .as_deref()
            .and_then(|items| self.parse_items(items));
        // MetalLB acts on every state the writes pass through.
        let steps =
            sequence::parsed_steps(old.as_ref(), old_items.as_deref(), &new_items, new, |i| {
                self.parse_items(i)
            });
        sequence::predict_along(old.as_ref(), &steps, &live.services, self.0)
            .iter()
            .filter(|o| o.breaks())
            .map(ToString::to_string)
            .collect()
    }

    fn write_groups(&self, objects: &[&Value], live: &LiveState) -> Vec<u8> {
        // The config in force is parsed once for the whole set.
        let old = live.config.as_deref().and_then(|t| self.parse(t, live));
        crs::phases(old.as_ref(), objects.iter().copied())
            .into_iter()
            .map(|p| match p {
                Phase::Add => 0,
                Phase::Narrow => 1,
                Phase::Fill => 2,
            })
            .collect()
    }

    fn announces_layer2(&self, new: &str, live: &LiveState) -> bool {
        self.parse(new, live).is_some_and(|cfg| {
            cfg.pools
                .iter()
                .any(|p| cfg.announced(p).contains(&Announcement::Layer2))
        })
    }

    fn warnings(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Some(cfg) = self.parse(new, live) else {
            return Vec::new();
        };
        let layer2 = cfg
            .pools
            .iter()
            .filter(|p| cfg.announced(p).contains(&Announcement::Layer2))
            .map(|p| (p.name.as_str(), p.cidrs.as_slice()));
        nodes::off_subnet(layer2, &live.facts.node_subnets)
    }

    fn capacity(&self, config: &str, live: &LiveState) -> Vec<PoolUse> {
        self.parse(config, live)
            .map(|cfg| capacity::of_crs(&cfg, &live.services))
            .unwrap_or_default()
    }

    fn addresses(&self, config: &str, live: &LiveState) -> Vec<PoolAddresses> {
        let Some(cfg) = self.parse(config, live) else {
            return Vec::new();
        };
        cfg.pools
            .iter()
            .map(|p| {
                let announced = cfg.announced(p);
                PoolAddresses {
                    name: p.name.clone(),
                    layer2: announced.contains(&Announcement::Layer2),
                    bgp: announced.contains(&Announcement::Bgp),
                    cidrs: p.cidrs.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
