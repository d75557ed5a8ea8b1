//! Whether MetalLB announces each LoadBalancer Service's address. From 0.14 on, a speaker that
//! announces a Service writes an object saying so in its namespace: a `ServiceL2Status`
//! (layer2: the node answering ARP/NDP for it) or a `ServiceBGPStatus` (BGP: the peers it
//! advertises to), labelled with the Service (`metallb.io/service-name`,
//! `metallb.io/service-namespace`) and the node (`metallb.io/node`). A Service with an address
//! and no such object is handed out but not announced: nobody answers for it. Counted per
//! cluster; `kubectl get servicel2statuses,servicebgpstatuses -n <namespace>` lists the details.
//! Pure: the Services and the status objects in, a count out.

use crate::metallb::safety::LiveService;
use crate::resources::Announcements;
use serde_json::Value;
use std::collections::BTreeSet;

/// Label naming the announced Service.
pub const SERVICE_NAME: &str = "metallb.io/service-name";
/// Label naming its namespace.
pub const SERVICE_NAMESPACE: &str = "metallb.io/service-namespace";

/// How many unannounced Services the status names.
const NAMED: usize = 3;

/// The Service (`namespace/name`) a ServiceL2Status or ServiceBGPStatus speaks for, by the
/// labels the speaker sets when it creates one (its `status` is filled in a moment later).
pub fn subject(object: &Value) -> Option<String> {
    let labels = &object["metadata"]["labels"];
    let name = labels[SERVICE_NAME].as_str().filter(|s| !s.is_empty())?;
    let namespace = labels[SERVICE_NAMESPACE]
        .as_str()
        .filter(|s| !s.is_empty())?;
    Some(format!("{namespace}/{name}"))
}

/// The count for a cluster: its LoadBalancer Services holding an address, and which of them a
/// status object says are announced.
pub fn count(services: &[LiveService], statuses: &[Value]) -> Announcements {
    let announced: BTreeSet<String> = statuses.iter().filter_map(subject).collect();
    let mut holding: Vec<String> = services
        .iter()
        .filter(|s| !s.ips.is_empty())
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    holding.sort();
    let (yes, no): (Vec<&String>, Vec<&String>) =
        holding.iter().partition(|s| announced.contains(*s));
    Announcements {
        services: count_of(holding.len()),
        announced: count_of(yes.len()),
        unannounced: no.into_iter().take(NAMED).cloned().collect(),
    }
}

fn count_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, ip: Option<&str>) -> LiveService {
        LiveService {
            namespace: "default".into(),
            name: name.into(),
            ips: ip.iter().map(|i| i.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    fn status(name: &str, namespace: &str) -> Value {
        json!({"metadata": {"name": "l2-x", "labels": {
            "metallb.io/node": "n1",
            SERVICE_NAME: name,
            SERVICE_NAMESPACE: namespace,
        }}})
    }

    #[test]
    fn services_with_an_address_are_counted_and_the_unannounced_named() {
        let services = [
            service("web", Some("10.0.50.25")),
            service("api", Some("10.0.50.26")),
            service("pending", None),
            service("db", Some("10.0.50.27")),
            service("cache", Some("10.0.50.28")),
            service("queue", Some("10.0.50.29")),
        ];
        let statuses = [
            status("web", "default"),
            status("api", "other"),
            json!({"metadata": {"labels": {SERVICE_NAME: "db"}}}),
        ];
        let got = count(&services, &statuses);
        assert_eq!(got.services, 5);
        assert_eq!(got.announced, 1);
        assert_eq!(
            got.unannounced,
            vec!["default/api", "default/cache", "default/db"]
        );
    }

    #[test]
    fn a_status_names_its_service_by_the_speakers_labels() {
        assert_eq!(
            subject(&status("web", "default")),
            Some("default/web".into())
        );
        assert_eq!(subject(&status("", "default")), None);
        assert_eq!(subject(&json!({"metadata": {}})), None);
        assert_eq!(count(&[], &[]), Announcements::default());
    }
}
