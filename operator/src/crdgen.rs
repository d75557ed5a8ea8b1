//! The CustomResourceDefinitions, generated from the Rust types. `crds/` holds their YAML;
//! a test keeps it in sync.

use crate::resources::{App, AppDeployment, ClusterApp, KommanderCluster, Workspace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON;
use kube::CustomResourceExt;

/// AppDeployment is also served as v1alpha3, with the same schema (v1alpha2 stays the storage
/// version, so no conversion webhook is needed).
fn appdeployment() -> CustomResourceDefinition {
    let mut crd = AppDeployment::crd();
    let mut v3 = crd.spec.versions[0].clone();
    v3.name = "v1alpha3".into();
    v3.storage = false;
    v3.served = true;
    crd.spec.versions[0].storage = true;
    crd.spec.versions.push(v3);
    crd
}

/// Every Workspace field is optional, so a Workspace may be just a name: the API server fills
/// in `spec: {}` (the Rust type, like every derived custom resource, always has a spec).
fn workspace() -> CustomResourceDefinition {
    let mut crd = Workspace::crd();
    for v in &mut crd.spec.versions {
        if let Some(schema) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            if let Some(required) = schema.required.as_mut() {
                required.retain(|f| f != "spec");
            }
            schema.required = schema.required.take().filter(|r| !r.is_empty());
            if let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) {
                spec.default = Some(JSON(serde_json::json!({})));
            }
        }
    }
    crd
}

/// Every CRD the operator owns, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        workspace(),
        KommanderCluster::crd(),
        ClusterApp::crd(),
        App::crd(),
        appdeployment(),
    ]
}

/// File name under `crds/` for a CRD: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as YAML.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, String> {
    let value = serde_json::to_value(crd).map_err(|e| e.to_string())?;
    crate::yaml::to_yaml(&value).map(|s| s + "\n")
}

/// Every CRD as one multi-document YAML stream.
pub fn stream() -> Result<String, String> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}
