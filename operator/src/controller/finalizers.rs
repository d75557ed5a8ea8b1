//! The operator's finalizer on an object, added before kube's `finalizer` helper sees it.
//!
//! The helper adds a missing finalizer with a JSON patch that tests the finalizers the cached
//! object shows, then waits for the watch to bring the change back. A second trigger for the
//! same object often arrives before that (a KommanderCluster and its kubeconfig Secret both
//! appear at start-up), finds the cache without the finalizer, and its test fails: a 422 and a
//! failed reconcile for every such object. Here a failed test is answered by reading the object
//! once, and the object the server returns goes on to the helper, so the first reconcile does
//! the work instead of waiting for its own write to come back.

use json_patch::{
    AddOperation, Patch as JsonPatch, PatchOperation, TestOperation, jsonptr::PointerBuf,
};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// The status code of a JSON patch whose `test` failed.
const TEST_FAILED: u16 = 422;

/// `obj` with finalizer `name`: as given when it has it, else as the API server returns it
/// once the finalizer is added. An object being deleted is returned as given: no finalizer
/// can be added to it.
pub async fn ensure<K>(api: &Api<K>, name: &str, obj: Arc<K>) -> Result<Arc<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let mut current = obj;
    // One read answers a stale cache; a second failed test means someone else is changing
    // the finalizers right now, and the helper's own attempt (and its retry) takes over.
    for _ in 0..2 {
        if current.meta().deletion_timestamp.is_some() || has(&*current, name) {
            return Ok(current);
        }
        let object = current.name_any();
        match api
            .patch(
                &object,
                &PatchParams::default(),
                &Patch::Json::<()>(add(current.finalizers(), name)),
            )
            .await
        {
            Ok(fresh) => return Ok(Arc::new(fresh)),
            Err(kube::Error::Api(s)) if s.code == TEST_FAILED => {
                current = Arc::new(api.get(&object).await?);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

fn has<K: Resource>(obj: &K, name: &str) -> bool {
    obj.finalizers().iter().any(|f| f == name)
}

/// Add `name` to finalizers the object is believed to hold (`seen`): the test fails when they
/// are not what the server holds, so nobody's finalizer is lost or duplicated.
fn add(seen: &[String], name: &str) -> JsonPatch {
    let at = |p: &str| PointerBuf::parse(p).unwrap_or_default();
    JsonPatch(if seen.is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: at("/metadata/finalizers"),
                value: serde_json::Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: at("/metadata/finalizers"),
                value: serde_json::json!([name]),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: at("/metadata/finalizers"),
                value: serde_json::json!(seen),
            }),
            PatchOperation::Add(AddOperation {
                path: at("/metadata/finalizers/-"),
                value: serde_json::json!(name),
            }),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patch_tests_what_was_seen_and_adds_one() {
        let cases: [(&[&str], serde_json::Value); 2] = [
            (
                &[],
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["ours"]},
                ]),
            ),
            (
                &["theirs"],
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": ["theirs"]},
                    {"op": "add", "path": "/metadata/finalizers/-", "value": "ours"},
                ]),
            ),
        ];
        for (seen, want) in cases {
            let seen: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
            assert_eq!(serde_json::to_value(add(&seen, "ours")).unwrap(), want);
        }
    }

    #[test]
    fn present_is_found() {
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        assert!(!has(&cm, "ours"));
        cm.metadata.finalizers = Some(vec!["theirs".into(), "ours".into()]);
        assert!(has(&cm, "ours"));
    }
}
