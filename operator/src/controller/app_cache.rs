//! Apps checked once: a ClusterApp or App whose templates compiled, kept by its
//! resourceVersion, since compiling is the slow part of a reconcile.

use crate::resources::AppDefinition;
use crate::values::Values;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// An app version whose templates compiled (bounds and syntax checked), ready to render.
pub struct CheckedApp {
    /// The ClusterApp/App name, for messages.
    pub name: String,
    /// Its definition, handed to the render sandbox.
    pub definition: AppDefinition,
    /// Its `defaultValues`, parsed once (a chart app's first values layer).
    pub defaults: Values,
}

/// Checked apps by (kind/namespace/name) -> (resourceVersion, the app).
pub type AppCache = Mutex<HashMap<String, (String, Arc<CheckedApp>)>>;
