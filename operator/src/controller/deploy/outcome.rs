//! A cluster's outcome as the deploy records it, and the inventory of what it applied.

use crate::drift::ObjKey;
use crate::manifest::ManifestObject;
use crate::resources::{AppliedObject, ClusterPhase, KommanderCluster};
use crate::status::ClusterOutcome;
use kube::ResourceExt;

pub(super) fn outcome(
    kc: &KommanderCluster,
    phase: ClusterPhase,
    message: String,
    applied: Vec<AppliedObject>,
) -> ClusterOutcome {
    ClusterOutcome::new(kc.name_any(), phase, message, applied)
}

pub(super) fn object_key(o: &AppliedObject) -> ObjKey {
    ObjKey::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name)
}

pub(super) fn inventory(objects: &[ManifestObject]) -> Vec<AppliedObject> {
    objects.iter().map(ManifestObject::entry).collect()
}
