//! Loading app definitions (ClusterApp or App manifests) from YAML text.

use crate::resources::{App, AppDefinition, ClusterApp};
use crate::yaml::{self, YamlError};
use serde_json::Value;

/// Why an app manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not YAML.
    #[error("{source_name}: invalid YAML at {error}")]
    Yaml {
        /// File or object the text came from.
        source_name: String,
        /// Parse error.
        error: YamlError,
    },
    /// YAML, but not a ClusterApp or App.
    #[error("{source_name}: {message}")]
    NotAnApp {
        /// File or object the text came from.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// An app definition and the name it is known by (`metadata.name`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedApp {
    /// `metadata.name`, e.g. `metallb-0.12.3`.
    pub name: String,
    /// The spec.
    pub definition: AppDefinition,
}

/// Read a ClusterApp or App manifest.
pub fn load_app(source_name: &str, text: &str) -> Result<LoadedApp, CatalogError> {
    let not_an_app = |message: String| CatalogError::NotAnApp {
        source_name: source_name.to_string(),
        message,
    };
    let doc = yaml::parse(text).map_err(|error| CatalogError::Yaml {
        source_name: source_name.to_string(),
        error,
    })?;
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (name, definition) = match kind.as_str() {
        "ClusterApp" => {
            let app: ClusterApp = serde_json::from_value(doc)
                .map_err(|e| not_an_app(format!("not a valid ClusterApp: {e}")))?;
            (app.metadata.name, app.spec.app)
        }
        "App" => {
            let app: App = serde_json::from_value(doc)
                .map_err(|e| not_an_app(format!("not a valid App: {e}")))?;
            (app.metadata.name, app.spec.app)
        }
        "" => {
            return Err(not_an_app(
                "has no kind; expected a ClusterApp or App manifest".into(),
            ));
        }
        other => {
            return Err(not_an_app(format!(
                "is a {other}; expected a ClusterApp or App manifest"
            )));
        }
    };
    let name = name.ok_or_else(|| not_an_app("has no metadata.name".into()))?;
    Ok(LoadedApp { name, definition })
}
