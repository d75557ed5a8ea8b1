//! The inventory gap, closed: an operator SIGKILLed in the middle of applying an app's
//! objects to a cluster, then the AppDeployment deleted while no operator runs. The next
//! operator removes every object the killed one wrote, because what it was about to apply
//! went into the AppDeployment's status before it applied anything. (Before that record, a
//! first apply cut short left its objects out of the inventory, and the deletion left them on
//! the cluster for good.) Run by `make e2e-chaos`.

use k8s_openapi::api::core::v1::ConfigMap;
use kommander_e2e::{Clusters, Operator, eventually, until_gone};
use kommander_operator::manifest::LABEL_APPDEPLOYMENT;
use kommander_operator::resources::AppDeployment;
use kube::api::{Api, ListParams};
use std::path::PathBuf;
use std::time::Duration;

const NS: &str = "ws-w";
/// Enough objects that applying them takes a while (one request each).
const N: usize = 400;
const T: Duration = Duration::from_secs(120);

/// An app of `N` ConfigMaps, and its AppDeployment.
fn bulk() -> String {
    let items: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
    format!(
        r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: App
metadata: {{name: bulk, namespace: {NS}}}
spec:
  appId: bulk
  version: 1.0.0
  defaultValues: |
    items: [{}]
  templates:
  - name: bulk.yaml
    template: |
      {{{{#each values.items}}}}
      ---
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: bulk-{{{{this}}}}
      data: {{v: x}}
      {{{{/each}}}}
---
apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: AppDeployment
metadata: {{name: bulk, namespace: {NS}}}
spec:
  appRef: {{name: bulk, kind: App}}
"#,
        items.join(", ")
    )
}

/// How many of the app's ConfigMaps attached-1 holds.
async fn held(cms: &Api<ConfigMap>) -> Result<usize, String> {
    let lp = ListParams::default().labels(&format!("{LABEL_APPDEPLOYMENT}=bulk"));
    cms.list_metadata(&lp)
        .await
        .map(|l| l.items.len())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_apply_cut_short_then_deleted_leaves_nothing_behind() {
    let clusters = Clusters::start(&["management", "attached-1"]).expect("clusters");
    clusters.install_crds_and_catalog("management").unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let log = clusters.state_dir().join("operator.log");
    let kubeconfig = clusters.kubeconfig("management");
    let args = ["--no-leader-election", "--metrics-addr", "127.0.0.1:0"];
    let mut operator = Operator::start_with(&bin, &kubeconfig, log.clone(), &args).unwrap();
    clusters.workspace_with(NS, "attached-1").await.unwrap();
    let attached = clusters.client("attached-1").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(attached, NS);

    println!("{N} ConfigMaps to apply; the operator SIGKILLed once the first is on the cluster");
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&bulk()))
        .unwrap();
    eventually("the first object on attached-1", T, || async {
        match held(&cms).await? {
            0 => Err("none yet".to_string()),
            _ => Ok(()),
        }
    })
    .await
    .unwrap();
    operator.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = held(&cms).await.unwrap();
    assert!(
        written > 0 && written < N,
        "the kill was to land mid-apply: {written} of {N} objects written"
    );
    println!("  killed with {written} of {N} objects written");

    println!("the AppDeployment deleted while no operator runs; then a new operator");
    let delete = ["-n", NS, "delete", "appdeployment", "bulk", "--wait=false"];
    clusters.kubectl("management", &delete, None).unwrap();
    let mgmt = clusters.client("management").await.unwrap();
    let ads: Api<AppDeployment> = Api::namespaced(mgmt, NS);
    assert!(
        ads.get_opt("bulk").await.unwrap().is_some(),
        "held by its finalizer"
    );
    let _operator = Operator::start_with(&bin, &kubeconfig, log, &args).unwrap();
    until_gone(&ads, "bulk", T, |a| a.status).await.unwrap();
    let left = held(&cms).await.unwrap();
    assert_eq!(
        left, 0,
        "objects the killed operator wrote were left behind"
    );
    println!("  gone, and none of the {written} objects left on attached-1");
}
