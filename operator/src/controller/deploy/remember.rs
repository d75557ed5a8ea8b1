//! What a read found that this process keeps, written once observe (which only reads) is done:
//! the cluster's watches over this connection (a new one replaces the old and starts with a
//! full apply), the Service watch of a check that reads Services, drift a dry run cleared, and
//! the declared networks the live state was last read with.

use super::observe::Observed;
use crate::controller::context::Context;
use crate::resources::AppDeployment;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

/// Record what `obs` learned about cluster `cluster` for `ad`.
pub(super) async fn remember(ctx: &Context, ad: &AppDeployment, cluster: &str, obs: &Observed) {
    let learned = &obs.learned;
    if learned.fresh {
        ctx.watches.connect(&obs.key, &obs.conn);
    }
    if learned.watch_services {
        ctx.watches
            .watch_services(&obs.key, ObjectRef::from_obj(ad));
    }
    for object in &learned.not_drift {
        ctx.watches.accept(&obs.key, object);
    }
    if let Some(network) = &learned.network {
        let id = (ad.uid().unwrap_or_default(), cluster.to_string());
        if let Some(r) = ctx.applied.lock().await.get_mut(&id) {
            r.network = network.clone();
        }
    }
}
