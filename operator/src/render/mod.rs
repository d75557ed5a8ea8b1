//! Rendering an app: handlebars templates + merged values -> checked Kubernetes objects.
//!
//! Templates are compiled once per app version ([`CompiledApp`]); each render is then pure:
//! same app, values, release and cluster in, same objects out.

mod helpers;
pub mod job;
pub mod limits;

use crate::manifest::{self, ManifestError, ManifestObject, Placement};
use crate::resources::{AppDefinition, ConfigKind, ConfigRollout, RestartTarget, SafetyCheck};
use crate::values::{self, Values, ValuesError};
use handlebars::{Context, Handlebars};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub use helpers::yaml_safe;

/// Why an app could not be compiled or rendered. Every variant names the app; template errors
/// name the template and, where handlebars knows it, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The app's `defaultValues` are unusable.
    /// The merged values break the app's values schema.
    #[error("app {app}: values don't meet the app's values schema: {}", problems.join("; "))]
    Schema {
        /// App name.
        app: String,
        /// Each problem, with the value's path.
        problems: Vec<String>,
    },
    #[error("app {app}: spec.defaultValues: {error}")]
    DefaultValues {
        /// App name, e.g. `metallb-0.12.3`.
        app: String,
        /// What is wrong.
        error: ValuesError,
    },
    /// Two templates share a name.
    #[error("app {app}: template name {template:?} is used twice")]
    DuplicateTemplate {
        /// App name.
        app: String,
        /// Template name.
        template: String,
    },
    /// A template does not compile.
    #[error("app {app}, template {template}{}: {message}", at_line(*line, *column))]
    Syntax {
        /// App name.
        app: String,
        /// Template name.
        template: String,
        /// 1-based line in the template source.
        line: Option<usize>,
        /// 1-based column.
        column: Option<usize>,
        /// What handlebars said.
        message: String,
    },
    /// A template uses raw interpolation, through which a value could inject YAML.
    #[error(
        "app {app}, template {template}, line {line}: raw interpolation ({{{{{{…}}}}}} or {{{{&…}}}}) is not allowed, because a value could inject YAML objects; use {{{{toYaml …}}}} or {{{{toJson …}}}}"
    )]
    RawInterpolation {
        /// App name.
        app: String,
        /// Template name.
        template: String,
        /// 1-based line.
        line: usize,
    },
    /// A template failed while rendering (missing value, helper error, unknown helper).
    #[error("app {app}, template {template}{}: {message}", at_line(*line, *column))]
    Render {
        /// App name.
        app: String,
        /// Template name.
        template: String,
        /// 1-based line in the template source.
        line: Option<usize>,
        /// 1-based column.
        column: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// The app passes a bound on the work it may cause (size, nesting, partial cycles, output).
    #[error("app {app}{}: {message}", .template.as_ref().map(|t| format!(", template {t}")).unwrap_or_default())]
    Limit {
        /// App name.
        app: String,
        /// Template at fault, if one is.
        template: Option<String>,
        /// The bound and how it was passed.
        message: String,
    },
    /// A template rendered something that is not an acceptable set of objects.
    #[error("app {app}, template {template}: {error}")]
    Output {
        /// App name.
        app: String,
        /// Template name.
        template: String,
        /// What is wrong with the output (boxed: it is large and rare).
        error: Box<ManifestError>,
    },
}

fn at_line(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

/// The release being rendered: the AppDeployment's name and the workspace namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// AppDeployment name.
    pub name: String,
    /// Workspace namespace.
    pub namespace: String,
}

/// The cluster being rendered for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// KommanderCluster name.
    pub name: String,
    /// KommanderCluster labels.
    pub labels: BTreeMap<String, String>,
}

/// An app version with its templates compiled and defaults parsed, ready to render many times.
pub struct CompiledApp {
    /// Name used in messages (the ClusterApp/App name, e.g. `metallb-0.12.3`).
    pub name: String,
    /// `spec.appId`.
    pub id: String,
    /// `spec.version`.
    pub version: String,
    /// Parsed `spec.defaultValues`.
    pub defaults: Values,
    cluster_scoped_kinds: Vec<String>,
    /// Templates rendered, in order; names starting with `_` are partials only.
    order: Vec<String>,
    rollout: Option<ConfigRollout>,
    schema: Option<jsonschema::Validator>,
    registry: Handlebars<'static>,
}

impl std::fmt::Debug for CompiledApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledApp")
            .field("name", &self.name)
            .field("templates", &self.order)
            .finish_non_exhaustive()
    }
}

/// Find `{{{` or `{{&` (raw interpolation), skipping `\{{` escapes; returns the 1-based line.
fn raw_interpolation_line(src: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i + 2 < bytes.len() {
        if bytes[i] == b'{' && bytes[i + 1] == b'{' && (i == 0 || bytes[i - 1] != b'\\') {
            let mut j = i + 2;
            while j < bytes.len() && (bytes[j] == b'~' || bytes[j] == b' ') {
                j += 1;
            }
            if j < bytes.len() && (bytes[j] == b'{' || bytes[j] == b'&') {
                return Some(src[..i].matches('\n').count() + 1);
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    None
}

/// The app's templates and configRollout names are within the size and nesting limits.
fn check_limits(name: &str, def: &AppDefinition) -> Result<(), RenderError> {
    let mut sources: Vec<(&str, &str)> = def
        .templates
        .iter()
        .map(|t| (t.name.as_str(), t.template.as_str()))
        .collect();
    if let Some(r) = &def.config_rollout {
        if let Some(cm) = &r.config_map {
            sources.push(("configRollout.configMap", cm.as_str()));
        }
        sources.extend(
            r.restart
                .iter()
                .map(|t| ("configRollout.restart[].name", t.name.as_str())),
        );
    }
    limits::check_templates(&sources).map_err(|e| RenderError::Limit {
        app: name.to_string(),
        template: e.template,
        message: e.message,
    })
}

/// A template's syntax error, located.
fn syntax(app: &str, template: &str, e: &handlebars::TemplateError) -> RenderError {
    RenderError::Syntax {
        app: app.to_string(),
        template: template.to_string(),
        line: e.pos().map(|p| p.0),
        column: e.pos().map(|p| p.1),
        message: e.reason().to_string(),
    }
}

/// Register the app's templates; the names of those that render objects, in order (partials,
/// named with a leading `_`, render none).
fn register_templates(
    registry: &mut Handlebars<'static>,
    name: &str,
    def: &AppDefinition,
) -> Result<Vec<String>, RenderError> {
    let mut order = Vec::new();
    for t in &def.templates {
        if registry.has_template(&t.name) {
            return Err(RenderError::DuplicateTemplate {
                app: name.to_string(),
                template: t.name.clone(),
            });
        }
        if let Some(line) = raw_interpolation_line(&t.template) {
            return Err(RenderError::RawInterpolation {
                app: name.to_string(),
                template: t.name.clone(),
                line,
            });
        }
        registry
            .register_template_string(&t.name, &t.template)
            .map_err(|e| syntax(name, &t.name, &e))?;
        if !t.name.starts_with('_') {
            order.push(t.name.clone());
        }
    }
    Ok(order)
}

/// Register configRollout's names as templates: they may use the template context (e.g.
/// "{{release.name}}-controller").
fn register_rollout_names(
    registry: &mut Handlebars<'static>,
    name: &str,
    r: &ConfigRollout,
) -> Result<(), RenderError> {
    // Where the config is: said by exactly one of the two, else refused.
    if r.config_map.is_some() != r.config_kinds.is_empty() {
        return Err(RenderError::Syntax {
            app: name.to_string(),
            template: "configRollout".into(),
            line: None,
            column: None,
            message: "set exactly one of configMap and configKinds".into(),
        });
    }
    let config_map = r
        .config_map
        .iter()
        .map(|cm| ("configRollout.configMap".to_string(), cm));
    let restart = r
        .restart
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("configRollout.restart[{i}].name"), &t.name));
    for (field, src) in config_map.chain(restart) {
        registry
            .register_template_string(&rollout_template(&field), src)
            .map_err(|e| syntax(name, &field, &e))?;
    }
    Ok(())
}

impl CompiledApp {
    /// Compile an app definition. `name` is used in error messages.
    pub fn compile(name: &str, def: &AppDefinition) -> Result<Self, RenderError> {
        let defaults = values::parse(
            "spec.defaultValues",
            def.default_values.as_deref().unwrap_or_default(),
        )
        .map_err(|error| RenderError::DefaultValues {
            app: name.to_string(),
            error,
        })?;

        check_limits(name, def)?;
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(helpers::yaml_safe);
        helpers::register(&mut registry);
        let order = register_templates(&mut registry, name, def)?;
        if let Some(r) = &def.config_rollout {
            register_rollout_names(&mut registry, name, r)?;
        }
        Ok(CompiledApp {
            name: name.to_string(),
            id: def.app_id.clone(),
            version: def.version.clone(),
            defaults,
            cluster_scoped_kinds: def.cluster_scoped_kinds.clone(),
            order,
            rollout: def.config_rollout.clone(),
            schema: compile_schema(name, def.values_schema.as_deref())?,
            registry,
        })
    }

    /// The app's config rollout with names resolved for this release, if it has one.
    /// The names see the same merged `values` as the templates: a chart's names follow its
    /// values (`fullnameOverride`), and the rollout must name what the templates render.
    pub fn config_rollout(
        &self,
        values: Values,
        release: &Release,
        cluster: &ClusterInfo,
    ) -> Result<Option<ResolvedRollout>, RenderError> {
        let Some(r) = &self.rollout else {
            return Ok(None);
        };
        let ctx = self.context(values, release, cluster);
        let source = match &r.config_map {
            Some(_) => ConfigSource::ConfigMap {
                name: self.render_text(&rollout_template("configRollout.configMap"), &ctx)?,
                key: r.key.clone(),
            },
            None => ConfigSource::Kinds(r.config_kinds.clone()),
        };
        let mut restart = Vec::new();
        for (i, t) in r.restart.iter().enumerate() {
            let name = self.render_text(
                &rollout_template(&format!("configRollout.restart[{i}].name")),
                &ctx,
            )?;
            restart.push(RestartTarget {
                kind: t.kind.clone(),
                name,
            });
        }
        Ok(Some(ResolvedRollout {
            source,
            restart,
            safety_check: r.safety_check,
        }))
    }

    /// The template context, built once per render: handlebars would otherwise re-serialize
    /// the whole values tree for every template.
    fn context(&self, values: Values, release: &Release, cluster: &ClusterInfo) -> Context {
        // Built by hand: `json!` would run the values tree through the serializer.
        let labels: serde_json::Map<String, Value> = cluster
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut ctx = serde_json::Map::new();
        ctx.insert("values".into(), Value::Object(values));
        ctx.insert(
            "release".into(),
            json!({"name": release.name, "namespace": release.namespace}),
        );
        ctx.insert(
            "cluster".into(),
            json!({"name": cluster.name, "labels": Value::Object(labels)}),
        );
        ctx.insert(
            "app".into(),
            json!({"id": self.id, "version": self.version}),
        );
        Context::from(Value::Object(ctx))
    }

    /// Merge `layers` over the app's defaults, Helm-style.
    pub fn values(&self, layers: &[Values]) -> Values {
        values::merge(&self.defaults, layers)
    }

    /// Render every template with `values` and return the checked objects, in template order.
    pub fn render(
        &self,
        values: Values,
        release: &Release,
        cluster: &ClusterInfo,
    ) -> Result<Vec<ManifestObject>, RenderError> {
        let texts = self.render_texts(values, release, cluster)?;
        let placement = Placement {
            namespace: &release.namespace,
            release: &release.name,
            cluster_scoped_kinds: &self.cluster_scoped_kinds,
        };
        let mut objects: Vec<ManifestObject> = Vec::new();
        for (name, text) in &texts {
            let mut objs = manifest::parse_objects(name, text, &placement).map_err(|error| {
                RenderError::Output {
                    app: self.name.clone(),
                    template: name.clone(),
                    error: Box::new(error),
                }
            })?;
            objects.append(&mut objs);
            if objects.len() > limits::MAX_OBJECTS {
                return Err(RenderError::Limit {
                    app: self.name.clone(),
                    template: Some(name.clone()),
                    message: format!(
                        "renders more than the limit of {} objects",
                        limits::MAX_OBJECTS
                    ),
                });
            }
        }
        manifest::check_unique(&objects).map_err(|error| RenderError::Output {
            app: self.name.clone(),
            template: objects_template_of(&error, &objects),
            error: Box::new(error),
        })?;
        Ok(objects)
    }

    /// Objects from files Helm's engine rendered (`(chart path, YAML)`), placed and labelled
    /// like the app's own; `keep` marks each with `helm.sh/resource-policy: keep` (a chart's
    /// `crds/`, which Helm never deletes).
    pub fn chart_objects(
        &self,
        files: &[(String, String)],
        release: &Release,
        keep: bool,
    ) -> Result<Vec<ManifestObject>, RenderError> {
        let placement = Placement {
            namespace: &release.namespace,
            release: &release.name,
            cluster_scoped_kinds: &self.cluster_scoped_kinds,
        };
        let mut objects = Vec::new();
        for (path, text) in files {
            let parsed = manifest::parse_objects(path, text, &placement).map_err(|error| {
                RenderError::Output {
                    app: self.name.clone(),
                    template: path.clone(),
                    error: Box::new(error),
                }
            })?;
            objects.extend(parsed.into_iter().map(|mut o| {
                if keep {
                    o.body["metadata"]["annotations"][manifest::RESOURCE_POLICY] =
                        Value::from(manifest::KEEP);
                }
                o
            }));
        }
        Ok(objects)
    }

    /// The text of every template, in order, before it is parsed into objects.
    pub fn render_texts(
        &self,
        values: Values,
        release: &Release,
        cluster: &ClusterInfo,
    ) -> Result<Vec<(String, String)>, RenderError> {
        self.check_schema(&values)?;
        let ctx = self.context(values, release, cluster);
        self.order
            .iter()
            .map(|name| Ok((name.clone(), self.render_text(name, &ctx)?)))
            .collect()
    }

    /// Helm's schema check of the merged values: every problem, with its path.
    fn check_schema(&self, values: &Values) -> Result<(), RenderError> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let instance = Value::Object(values.clone());
        let problems: Vec<String> = schema
            .iter_errors(&instance)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .take(20)
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RenderError::Schema {
                app: self.name.clone(),
                problems,
            })
        }
    }

    fn render_text(&self, name: &str, ctx: &Context) -> Result<String, RenderError> {
        let mut out = limits::BoundedOutput::default();
        self.registry
            .render_with_context_to_write(name, ctx, &mut out)
            .map_err(|e| RenderError::Render {
                app: self.name.clone(),
                template: e.template_name.clone().unwrap_or_else(|| name.to_string()),
                line: e.line_no,
                column: e.column_no,
                message: e.reason().to_string(),
            })?;
        String::from_utf8(out.bytes).map_err(|_| RenderError::Render {
            app: self.name.clone(),
            template: name.to_string(),
            line: None,
            column: None,
            message: "rendered output is not UTF-8".into(),
        })
    }
}

/// Registry name of a configRollout field's template; `/` keeps it apart from app templates.
fn rollout_template(field: &str) -> String {
    format!("/{field}")
}

/// An app's config rollout with its names resolved for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRollout {
    /// Where the runtime config is.
    pub source: ConfigSource,
    /// Workloads to restart when the config changes.
    pub restart: Vec<RestartTarget>,
    /// The safety check guarding changes.
    pub safety_check: Option<SafetyCheck>,
}

/// The app's values schema, ready to validate with.
fn compile_schema(
    app: &str,
    text: Option<&str>,
) -> Result<Option<jsonschema::Validator>, RenderError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let bad = |message: String| RenderError::Syntax {
        app: app.to_string(),
        template: "spec.valuesSchema".into(),
        line: None,
        column: None,
        message,
    };
    let schema: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    jsonschema::validator_for(&schema)
        .map(Some)
        .map_err(|e| bad(format!("not a usable JSON Schema: {e}")))
}

/// Where an app's runtime config is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    /// One ConfigMap (name as rendered for this release).
    ConfigMap {
        /// Name.
        name: String,
        /// Its key holding the config; `None` means all of its data.
        key: Option<String>,
    },
    /// Every object of these kinds in the workspace namespace.
    Kinds(Vec<ConfigKind>),
}

/// The template that rendered the second copy of a duplicate object.
fn objects_template_of(error: &ManifestError, objects: &[ManifestObject]) -> String {
    match error {
        ManifestError::Duplicate(display) => objects
            .iter()
            .rev()
            .find(|o| &o.display_name() == display)
            .map(|o| o.template.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
