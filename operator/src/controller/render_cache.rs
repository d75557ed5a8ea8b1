//! Renders already done, by job: a render is a pure function of its job (app, override layers,
//! release, cluster name and labels), so the same job need not fork a worker again. A rollout
//! in steps reconciles an AppDeployment once per step, and each reconcile renders every target
//! cluster: without this, a workspace of n clusters rolled out k at a time forks n * n / k
//! workers.

use crate::render::job::{RenderJob, Rendered};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The most rendered output kept, in bytes of its JSON: past it the oldest entries go.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// A job's identity: SHA-256 of its JSON.
pub type Key = [u8; 32];

/// The key of `job`; `None` when it cannot be encoded (then it is not cached).
pub fn key(job: &RenderJob) -> Option<Key> {
    let bytes = serde_json::to_vec(job).ok()?;
    Some(Sha256::digest(&bytes).into())
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Arc<Rendered>, usize)>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// Successful renders, bounded by the bytes of their output, oldest out first.
pub struct RenderCache {
    budget: usize,
    entries: Mutex<Entries>,
}

impl Default for RenderCache {
    fn default() -> Self {
        RenderCache::new(DEFAULT_BUDGET_BYTES)
    }
}

impl RenderCache {
    /// A cache keeping at most `budget` bytes of output.
    pub fn new(budget: usize) -> Self {
        RenderCache {
            budget,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The render of the job with `key`, if kept.
    pub fn get(&self, key: &Key) -> Option<Arc<Rendered>> {
        self.lock().map.get(key).map(|(r, _)| r.clone())
    }

    /// Keep `rendered` as the render of the job with `key`. Output larger than the whole
    /// budget is not kept.
    pub fn insert(&self, key: Key, rendered: Arc<Rendered>) {
        let size = serde_json::to_vec(&*rendered).map_or(usize::MAX, |b| b.len());
        if size > self.budget {
            return;
        }
        let mut e = self.lock();
        if let Some((_, old)) = e.map.insert(key, (rendered, size)) {
            e.bytes -= old;
        } else {
            e.order.push_back(key);
        }
        e.bytes += size;
        while e.bytes > self.budget {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            if let Some((_, s)) = e.map.remove(&oldest) {
                e.bytes -= s;
            }
        }
    }

    /// (entries, bytes) kept.
    pub fn usage(&self) -> (usize, usize) {
        let e = self.lock();
        (e.map.len(), e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{ClusterInfo, Release};
    use crate::resources::AppDefinition;

    fn job(cluster: &str) -> RenderJob {
        RenderJob {
            app_name: "app".into(),
            definition: AppDefinition::default(),
            layers: vec![],
            release: Release {
                name: "r".into(),
                namespace: "ws".into(),
            },
            cluster: ClusterInfo {
                name: cluster.into(),
                labels: Default::default(),
            },
            chart: None,
        }
    }

    fn rendered() -> Arc<Rendered> {
        Arc::new(Rendered {
            objects: vec![],
            rollout: None,
            hooks: vec![],
        })
    }

    #[test]
    fn a_job_is_its_whole_input() {
        let a = key(&job("c1")).unwrap();
        assert_eq!(key(&job("c1")), Some(a));
        assert_ne!(key(&job("c2")), Some(a));
        let mut labelled = job("c1");
        labelled
            .cluster
            .labels
            .insert("stage".into(), "canary".into());
        assert_ne!(key(&labelled), Some(a));
        let mut other_workspace = job("c1");
        other_workspace.release.namespace = "ws-b".into();
        assert_ne!(key(&other_workspace), Some(a));
    }

    #[test]
    fn the_oldest_renders_go_once_the_budget_is_spent() {
        let size = serde_json::to_vec(&*rendered()).unwrap().len();
        let cache = RenderCache::new(size * 2);
        let keys: Vec<Key> = ["c1", "c2", "c3"]
            .iter()
            .map(|c| key(&job(c)).unwrap())
            .collect();
        for k in &keys {
            cache.insert(*k, rendered());
        }
        assert!(cache.get(&keys[0]).is_none());
        assert!(cache.get(&keys[1]).is_some() && cache.get(&keys[2]).is_some());
        assert_eq!(cache.usage(), (2, size * 2));
        // The same key again replaces, it does not count twice.
        cache.insert(keys[2], rendered());
        assert_eq!(cache.usage(), (2, size * 2));
        let tiny = RenderCache::new(size - 1);
        tiny.insert(keys[0], rendered());
        assert_eq!(tiny.usage(), (0, 0));
    }
}
