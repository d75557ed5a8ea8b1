//! Helm hooks as steps of a cluster's deploy: which hooks run before and after the apply of an
//! install or an upgrade, in Helm's order, and what to do next given what each hook's object
//! is on the cluster. Pure; `controller::hooks` reads the objects and acts.
//!
//! Helm's rules (v3.22.0, `pkg/action/hooks.go`), kept here:
//! - the hooks of one event run one by one, by `helm.sh/hook-weight`, then by name, after the
//!   order of kinds Helm installs in;
//! - before a hook is created, an old object of the same name is deleted when its delete
//!   policies include `before-hook-creation` (the default when it names none); else it must
//!   not exist;
//! - a Job is done when it completes and failed when it fails, a Pod likewise by its phase;
//!   any other kind is done once created;
//! - a failed hook fails the event: the hook is deleted if it says `hook-failed`, the ones done
//!   before it if they say `hook-succeeded`, and nothing after it runs;
//! - when all succeed, those that say `hook-succeeded` are deleted, last first;
//! - a CustomResourceDefinition hook is never deleted.

use crate::manifest::ManifestObject;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Annotation on a hook object this operator created: the run it belongs to, as [`run`]
/// writes it (a hook of both pre- and post-install runs twice for one revision).
pub const RUN_ANNOTATION: &str = "apps.kommander.d2iq.io/hook-run";

/// The run of `event`'s hooks for `revision` (a render hash), e.g. `pre-install 1f2e…`.
pub fn run(event: &str, revision: &str) -> String {
    format!("{event} {revision}")
}

/// One rendered hook, placed and labelled like the app's other objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookObject {
    /// The object.
    pub object: ManifestObject,
    /// `helm.sh/hook`, e.g. `pre-install`.
    pub events: Vec<String>,
    /// `helm.sh/hook-weight`.
    pub weight: i64,
    /// `helm.sh/hook-delete-policy`.
    pub delete_policies: Vec<String>,
}

impl HookObject {
    fn says(&self, policy: &str) -> bool {
        if self.object.kind == "CustomResourceDefinition" {
            return false;
        }
        if self.delete_policies.is_empty() {
            return policy == "before-hook-creation";
        }
        self.delete_policies.iter().any(|p| p == policy)
    }

    /// `Kind name (event, weight w)`, for messages.
    pub fn describe(&self, event: &str) -> String {
        format!(
            "{} {} ({event}, weight {})",
            self.object.kind, self.object.name, self.weight
        )
    }
}

impl HookObject {
    /// The object as the operator creates it for run `run`: marked with the run, and a
    /// Job without `ttlSecondsAfterFinished` (Helm watches a hook Job until it finishes; the
    /// operator reads its outcome on a later look, so the Job must still be there to tell it,
    /// and the hook's delete policy removes it).
    pub fn to_create(&self, run: &str) -> ManifestObject {
        let mut o = self.object.clone();
        o.body["metadata"]["annotations"][RUN_ANNOTATION] = Value::from(run);
        if o.kind == "Job"
            && let Some(spec) = o.body["spec"].as_object_mut()
        {
            spec.remove("ttlSecondsAfterFinished");
        }
        o
    }
}

/// When hooks run: before or after the release's objects are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Before the apply.
    Pre,
    /// After the release's objects are applied and ready.
    Post,
}

/// The event a cluster's deploy is: the release's first apply there, or a later one.
pub fn event(stage: Stage, upgrade: bool) -> &'static str {
    match (stage, upgrade) {
        (Stage::Pre, false) => "pre-install",
        (Stage::Post, false) => "post-install",
        (Stage::Pre, true) => "pre-upgrade",
        (Stage::Post, true) => "post-upgrade",
    }
}

/// The hooks of `event`, in the order Helm runs them: by weight, then name, the order of
/// kinds kept between equals (the render lists them in Helm's install order).
pub fn ordered<'a>(hooks: &'a [HookObject], event: &str) -> Vec<&'a HookObject> {
    let mut out: Vec<&HookObject> = hooks
        .iter()
        .filter(|h| h.events.iter().any(|e| e == event))
        .collect();
    out.sort_by(|a, b| {
        a.weight
            .cmp(&b.weight)
            .then_with(|| a.object.name.cmp(&b.object.name))
    });
    out
}

/// What a hook's object is on the cluster, for the run under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Not there.
    Absent,
    /// There, but not created for this run (an earlier run's, or someone else's).
    Stale,
    /// Being deleted.
    Deleting,
    /// Created for this run and still running.
    Running,
    /// Created for this run and done.
    Succeeded,
    /// Created for this run and failed, and why.
    Failed(String),
}

/// Classify the live object of a hook of `kind` (`None`: not found) for run `run`.
pub fn live(kind: &str, object: Option<&Value>, run: &str) -> Live {
    let Some(o) = object else {
        return Live::Absent;
    };
    let meta = &o["metadata"];
    if !meta["deletionTimestamp"].is_null() {
        return Live::Deleting;
    }
    if meta["annotations"][RUN_ANNOTATION].as_str() != Some(run) {
        return Live::Stale;
    }
    match kind {
        "Job" => job(&o["status"]),
        "Pod" => match o["status"]["phase"].as_str() {
            Some("Succeeded") => Live::Succeeded,
            Some("Failed") => Live::Failed(
                o["status"]["message"]
                    .as_str()
                    .unwrap_or("the pod failed")
                    .to_string(),
            ),
            _ => Live::Running,
        },
        _ => Live::Succeeded,
    }
}

fn job(status: &Value) -> Live {
    let condition = |t: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t && c["status"] == "True")
    };
    if condition("Complete").is_some() {
        return Live::Succeeded;
    }
    if let Some(c) = condition("Failed") {
        let why = [&c["reason"], &c["message"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(": ");
        return Live::Failed(if why.is_empty() {
            "the job failed".into()
        } else {
            why
        });
    }
    Live::Running
}

/// What to do next for the hooks of one event (indexes into the ordered hooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete an old object before its hook is created.
    Delete(usize),
    /// Create the hook.
    Create(usize),
    /// Wait for this hook (running, or its old object being deleted).
    Wait(usize),
    /// The hook failed: the event fails, after deleting these (by their policies).
    Failed {
        /// The hook that failed.
        hook: usize,
        /// Why.
        message: String,
        /// What to delete now.
        delete: Vec<usize>,
    },
    /// Every hook succeeded: delete these (last first), and the event is done.
    Done {
        /// What to delete now.
        delete: Vec<usize>,
    },
}

/// The next step, given each ordered hook's live state.
pub fn next(hooks: &[&HookObject], states: &[Live]) -> Step {
    for (i, (h, state)) in hooks.iter().zip(states).enumerate() {
        match state {
            Live::Succeeded => continue,
            Live::Absent => return Step::Create(i),
            Live::Running | Live::Deleting => return Step::Wait(i),
            Live::Stale if h.says("before-hook-creation") => return Step::Delete(i),
            Live::Stale => {
                return Step::Failed {
                    hook: i,
                    message: "an object of that name exists and the hook's delete policy does not include before-hook-creation".into(),
                    delete: succeeded_before(hooks, i),
                };
            }
            Live::Failed(message) => {
                let mut delete = succeeded_before(hooks, i);
                if h.says("hook-failed") {
                    delete.push(i);
                }
                return Step::Failed {
                    hook: i,
                    message: message.clone(),
                    delete,
                };
            }
        }
    }
    Step::Done {
        delete: succeeded_before(hooks, hooks.len())
            .into_iter()
            .rev()
            .collect(),
    }
}

fn succeeded_before(hooks: &[&HookObject], end: usize) -> Vec<usize> {
    (0..end)
        .filter(|&i| hooks[i].says("hook-succeeded"))
        .collect()
}

#[cfg(test)]
mod tests;
