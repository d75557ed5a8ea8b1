//! kube-proxy in IPVS mode without strictARP, and the guide's layer2 MetalLB config. Off by
//! default the config is refused, as before, and kube-system is not touched. With
//! `spec.kubeProxy.setStrictARP` on the KommanderCluster, the operator sets strictARP in
//! kube-system/kube-proxy (keeping the previous config.conf in an annotation), restarts
//! kube-proxy's pods, waits for them, and only then applies MetalLB.
//!
//! The embedded cluster runs kube-proxy's DaemonSet on its simulated nodes; its pods really
//! are created, scheduled and replaced.

use kommander_e2e::bench::seed_layer2;
use kommander_operator::resources::ClusterPhase;

mod metallb_env;

use metallb_env::Env;

const NS: &str = "ws-s";

const KUBE_PROXY_CONFIG: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: false\n";

fn kube_proxy() -> String {
    let indented: String = KUBE_PROXY_CONFIG
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kube-proxy, namespace: kube-system}}\ndata:\n  config.conf: |\n{indented}---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: kube-proxy, namespace: kube-system}}\nspec:\n  selector: {{matchLabels: {{k8s-app: kube-proxy}}}}\n  template:\n    metadata: {{labels: {{k8s-app: kube-proxy}}}}\n    spec:\n      containers:\n      - name: kube-proxy\n        image: registry.k8s.io/kube-proxy:v1.34.4\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_strict_arp_is_set_only_when_asked_and_before_metallb() {
    let env = Env::start(NS).await;
    let clusters = &env.clusters;
    let k = |args: &[&str]| clusters.kubectl("attached-1", args, None).unwrap();
    let ks = |args: &[&str]| {
        let mut all = vec!["-n", "kube-system"];
        all.extend(args);
        k(&all)
    };
    println!("kube-proxy in IPVS mode without strictARP, as a DaemonSet on the nodes");
    clusters
        .kubectl("attached-1", &["apply", "-f", "-"], Some(&kube_proxy()))
        .unwrap();
    ks(&["rollout", "status", "daemonset/kube-proxy", "--timeout=60s"]);
    let pods = || {
        ks(&[
            "get",
            "pods",
            "-l",
            "k8s-app=kube-proxy",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
    };
    let before = pods();
    assert!(!before.is_empty());

    println!("the guide's layer2 config: refused, kube-system untouched (off by default)");
    env.apply(&seed_layer2(NS).unwrap());
    let refused = env.phase(ClusterPhase::Invalid).await;
    assert!(
        refused
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("layer2 pools need strictARP: true"),
        "{refused:?}"
    );
    let conf = || {
        ks(&[
            "get",
            "configmap",
            "kube-proxy",
            "-o",
            "jsonpath={.data.config\\.conf}",
        ])
    };
    assert_eq!(conf().trim_end(), KUBE_PROXY_CONFIG.trim_end());
    assert_eq!(pods(), before);

    println!("spec.kubeProxy.setStrictARP: set, kube-proxy restarted, then MetalLB applied");
    env.patch_cluster("{\"spec\":{\"kubeProxy\":{\"setStrictARP\":true}}}");
    env.phase(ClusterPhase::Applied).await;
    let now = conf();
    assert!(now.contains("strictARP: true"), "{now}");
    assert!(now.contains("mode: ipvs"), "{now}");
    let previous = ks(&[
        "get",
        "configmap",
        "kube-proxy",
        "-o",
        "jsonpath={.metadata.annotations.kommander\\.d2iq\\.io/previous-config\\.conf}",
    ]);
    assert_eq!(previous.trim_end(), KUBE_PROXY_CONFIG.trim_end());
    let after = pods();
    for old in before.split_whitespace() {
        assert!(!after.contains(old), "{old} was restarted: {after}");
    }
    // MetalLB's config came after every new kube-proxy pod.
    let created =
        |args: &[&str]| -> Vec<String> { k(args).split_whitespace().map(str::to_string).collect() };
    let proxies = created(&[
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "k8s-app=kube-proxy",
        "-o",
        "jsonpath={.items[*].metadata.creationTimestamp}",
    ]);
    let metallb = created(&[
        "-n",
        NS,
        "get",
        "configmap",
        "metallb",
        "-o",
        "jsonpath={.metadata.creationTimestamp}",
    ]);
    // RFC 3339 in UTC sorts as time does.
    assert!(
        proxies.iter().all(|p| p <= &metallb[0]),
        "kube-proxy pods {proxies:?}, MetalLB config {metallb:?}"
    );
    env.has_event(
        "StrictARPSet",
        "cluster attached-1: set ipvs.strictARP: true",
    )
    .await;
    env.has_event(
        "KubeProxyRestarted",
        "cluster attached-1: deleted kube-proxy pod(s)",
    )
    .await;
}
