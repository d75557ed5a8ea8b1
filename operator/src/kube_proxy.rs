//! kube-proxy's `ipvs.strictARP`, set on request before a layer2 MetalLB config goes out. The
//! guide's readers do it by hand: edit kube-system/kube-proxy's `config.conf`, then restart
//! kube-proxy's pods as kubeadm documents (delete them; the DaemonSet recreates them with the
//! new config). This decides the next step from what the cluster shows; the shell takes it.

use serde_json::Value;

/// ConfigMap annotation: `config.conf` as it was before the operator set strictARP, so a person
/// can put it back.
pub const PREVIOUS_ANNOTATION: &str = "kommander.d2iq.io/previous-config.conf";
/// ConfigMap annotation: when the operator set strictARP (seconds since the epoch). Pods
/// created before it still run the old config.
pub const SET_AT_ANNOTATION: &str = "kommander.d2iq.io/strict-arp-set-at";

/// What the cluster shows of kube-proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// kube-system/kube-proxy's `config.conf`; `None` without one.
    pub config: Option<String>,
    /// [`SET_AT_ANNOTATION`], when present and a number.
    pub set_at: Option<i64>,
    /// kube-proxy's pods: name and creation time (seconds since the epoch).
    pub pods: Vec<(String, i64)>,
    /// The DaemonSet's pods scheduled, and available.
    pub scheduled: i32,
    pub available: i32,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: not IPVS, or strictARP is set and every pod runs with it.
    Done,
    /// Write this `config.conf` (strictARP set), keeping the current one in
    /// [`PREVIOUS_ANNOTATION`].
    Set {
        /// The new `config.conf`.
        config: String,
    },
    /// Delete these pods, which started before strictARP was set.
    Restart(Vec<String>),
    /// The DaemonSet is bringing its pods back: wait, saying how far it is.
    Wait(String),
}

/// Whether a parsed `config.conf` runs IPVS, and with strictARP.
pub fn mode(doc: &Value) -> (bool, bool) {
    let ipvs = doc.get("mode").and_then(Value::as_str) == Some("ipvs");
    let strict = doc
        .get("ipvs")
        .and_then(|i| i.get("strictARP"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (ipvs, strict)
}

/// The next step for kube-proxy, from what the cluster shows.
pub fn next(o: &Observed) -> Result<Step, String> {
    let Some(text) = &o.config else {
        return Ok(Step::Done);
    };
    let doc = crate::yaml::parse(text)
        .map_err(|e| format!("kube-system/kube-proxy config.conf is not YAML: {e}"))?;
    match mode(&doc) {
        (false, _) => Ok(Step::Done),
        (true, false) => Ok(Step::Set {
            config: with_strict_arp(doc)?,
        }),
        (true, true) => {
            // Set by someone else, or by us with every pod started since: nothing to restart.
            let Some(set_at) = o.set_at else {
                return Ok(Step::Done);
            };
            let old: Vec<String> = o
                .pods
                .iter()
                .filter(|(_, created)| *created <= set_at)
                .map(|(name, _)| name.clone())
                .collect();
            if !old.is_empty() {
                Ok(Step::Restart(old))
            } else if o.available < o.scheduled {
                Ok(Step::Wait(format!(
                    "kube-proxy restarting with strictARP: {} of {} pods available",
                    o.available, o.scheduled
                )))
            } else {
                Ok(Step::Done)
            }
        }
    }
}

/// Whether a step still under way `waited_secs` after the cluster started on it has failed:
/// past the deadline, and from then on until it is done.
pub fn overdue(waited_secs: i64, deadline_secs: i64, failed_before: bool) -> bool {
    failed_before || waited_secs >= deadline_secs
}

/// `doc` with `ipvs.strictARP: true`, as YAML.
fn with_strict_arp(mut doc: Value) -> Result<String, String> {
    let root = doc
        .as_object_mut()
        .ok_or("kube-system/kube-proxy config.conf is not a mapping")?;
    let ipvs = root
        .entry("ipvs")
        .or_insert_with(|| Value::Object(Default::default()));
    if !ipvs.is_object() {
        *ipvs = Value::Object(Default::default());
    }
    if let Some(m) = ipvs.as_object_mut() {
        m.insert("strictARP".into(), Value::Bool(true));
    }
    crate::yaml::to_yaml(&doc)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const IPVS: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: false\n  scheduler: rr\n";

    /// What kube-proxy shows: `config`, set at `set_at`, these pods, `avail` of 2 available.
    pub(crate) fn observed(
        config: &str,
        set_at: Option<i64>,
        pods: &[(&str, i64)],
        avail: i32,
    ) -> Observed {
        Observed {
            config: Some(config.into()),
            set_at,
            pods: pods.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            scheduled: 2,
            available: avail,
        }
    }

    #[test]
    fn a_step_under_way_fails_at_the_deadline_and_stays_failed() {
        // (waited, deadline, failed before, overdue)
        let cases = [
            (0, 600, false, false),
            (599, 600, false, false),
            (600, 600, false, true),
            (0, 600, true, true),
        ];
        for (waited, deadline, before, want) in cases {
            assert_eq!(
                overdue(waited, deadline, before),
                want,
                "{waited} of {deadline}"
            );
        }
    }

    #[test]
    fn strict_arp_is_set_keeping_the_rest() {
        let Ok(Step::Set { config }) = next(&observed(IPVS, None, &[("a", 1)], 2)) else {
            panic!("expected Set");
        };
        let doc = crate::yaml::parse(&config).unwrap();
        assert_eq!(mode(&doc), (true, true));
        assert_eq!(doc["ipvs"]["scheduler"], "rr");
        assert_eq!(doc["kind"], "KubeProxyConfiguration");
        // No ipvs section at all: one is written.
        let Ok(Step::Set { config }) = next(&observed("mode: ipvs\n", None, &[], 0)) else {
            panic!("expected Set");
        };
        assert_eq!(mode(&crate::yaml::parse(&config).unwrap()), (true, true));
    }

    #[test]
    fn the_steps_after_it_is_set() {
        let strict = IPVS.replace("strictARP: false", "strictARP: true");
        // (observed, step)
        let cases = [
            (
                observed(&strict, Some(100), &[("a", 50), ("b", 101), ("c", 100)], 2),
                Ok(Step::Restart(vec!["a".into(), "c".into()])),
            ),
            (
                observed(&strict, Some(100), &[("a", 120)], 1),
                Ok(Step::Wait(
                    "kube-proxy restarting with strictARP: 1 of 2 pods available".into(),
                )),
            ),
            (
                observed(&strict, Some(100), &[("a", 120), ("b", 121)], 2),
                Ok(Step::Done),
            ),
            // Set by a person: their pods are theirs to restart.
            (observed(&strict, None, &[("a", 1)], 2), Ok(Step::Done)),
            (
                observed("mode: iptables\n", None, &[("a", 1)], 2),
                Ok(Step::Done),
            ),
            (
                observed("mode: [ipvs\n", None, &[], 0),
                Err("kube-system/kube-proxy config.conf is not YAML".into()),
            ),
        ];
        for (o, want) in cases {
            let got =
                next(&o).map_err(|e: String| e.split(':').next().unwrap_or_default().to_string());
            assert_eq!(got, want, "{o:?}");
        }
        assert_eq!(
            next(&Observed::default()),
            Ok(Step::Done),
            "no kube-proxy ConfigMap"
        );
    }
}
