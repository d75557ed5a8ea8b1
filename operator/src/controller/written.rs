//! The statuses this replica wrote, until its cache shows them.
//!
//! A reconcile can start before the watch has brought back the status the one before it
//! wrote: another trigger was queued meanwhile. Judged from the cache, it would take the old
//! status for the last word, write the new one a second time and publish its Events again
//! (a cold start of 1,000 clusters published 2,804 `Applied` Events for 2,000 clusters). So
//! a reconcile judges from what this replica last wrote while the cache still shows the
//! object at a version from before that write, and from the cache once it shows the write or
//! anything after it.

use crate::targets::FIELD_MANAGER;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// How many superseded versions of one object are remembered (the cache lags by a write or two).
const KEPT: usize = 8;

/// Add `version` to `older` once, keeping the last `KEPT`.
fn keep(older: &mut Vec<String>, version: &str) {
    if !older.iter().any(|v| v == version) {
        older.push(version.to_string());
    }
    let excess = older.len().saturating_sub(KEPT);
    older.drain(..excess);
}

struct Entry<S> {
    /// Versions of the object from before the last write: the cache showing one is behind.
    older: Vec<String>,
    /// The resourceVersion the last write returned, and what it wrote (none yet when only an
    /// older version is known, see `passed`).
    written: Option<(String, S)>,
}

/// The last status written per object (by uid), while the cache has not shown it yet.
pub struct LastWritten<S> {
    entries: Mutex<HashMap<String, Entry<S>>>,
}

impl<S> Default for LastWritten<S> {
    fn default() -> Self {
        LastWritten {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<S: Clone> LastWritten<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<S>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status to judge object `uid` from when the cache shows it at `cached`: the one
    /// last written, while `cached` is from before that write. `None` once the cache shows the
    /// write or a later change (someone else's included): then the cache's status is the last
    /// word, and the entry goes.
    fn ahead_of_cache(&self, uid: &str, cached: &str) -> Option<S> {
        let mut entries = self.lock();
        let entry = entries.get(uid)?;
        let (_, status) = entry.written.as_ref()?;
        if entry.older.iter().any(|v| v == cached) {
            return Some(status.clone());
        }
        entries.remove(uid);
        None
    }

    /// `obj` as the cache showed it, with the status this replica last wrote while the cache
    /// is behind that write (`with` puts it into a copy).
    pub fn freshest<K>(&self, obj: Arc<K>, with: impl FnOnce(&mut K, S)) -> Arc<K>
    where
        K: Resource + Clone,
    {
        let uid = obj.uid().unwrap_or_default();
        let cached = obj.resource_version().unwrap_or_default();
        match self.ahead_of_cache(&uid, &cached) {
            Some(status) => {
                let mut copy = (*obj).clone();
                with(&mut copy, status);
                Arc::new(copy)
            }
            None => obj,
        }
    }

    /// A reconcile wrote `now` itself (its finalizer) after the cache showed it at version
    /// `seen`: that version is behind what the reconcile goes on from.
    pub fn moved<K: Resource>(&self, seen: &str, now: &K) {
        let version = now.resource_version().unwrap_or_default();
        if version != seen {
            self.passed(&now.uid().unwrap_or_default(), seen);
        }
    }

    /// Version `older` of object `uid` is behind the one a reconcile now judges from (the
    /// reconcile wrote the object first, e.g. its finalizer).
    fn passed(&self, uid: &str, older: &str) {
        let mut entries = self.lock();
        let entry = entries.entry(uid.to_string()).or_insert_with(|| Entry {
            older: Vec::new(),
            written: None,
        });
        keep(&mut entry.older, older);
    }

    /// `status` was written to object `uid`, judged from its version `cached`; the write
    /// returned version `written`.
    fn record(&self, uid: &str, cached: &str, written: &str, status: S) {
        let mut entries = self.lock();
        let mut older = match entries.remove(uid) {
            // Judged from the last write, or from a version after those known to be behind:
            // every one of them is still behind.
            Some(e) => match e.written {
                None => e.older,
                Some((w, _)) if w == cached || e.older.iter().any(|v| v == cached) => {
                    let mut o = e.older;
                    o.push(w);
                    o
                }
                Some(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        keep(&mut older, cached);
        entries.insert(
            uid.to_string(),
            Entry {
                older,
                written: Some((written.to_string(), status)),
            },
        );
    }

    /// Server-side apply `status` to the status of `obj` (as the cache showed it), and
    /// remember it as written.
    pub async fn patch_status<K>(&self, api: &Api<K>, obj: &K, status: S) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
        S: Serialize,
    {
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = api
            .patch_status(&obj.name_any(), &params, &Patch::Apply(&patch))
            .await?;
        self.record(
            &obj.uid().unwrap_or_default(),
            &obj.resource_version().unwrap_or_default(),
            &after.resource_version().unwrap_or_default(),
            status,
        );
        Ok(())
    }

    /// Forget object `uid` (it is gone).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_write_counts_until_the_cache_shows_it() {
        // (what happens, the cache's version at the next reconcile, the status judged from)
        let w: LastWritten<&str> = LastWritten::default();
        w.record("u", "1", "2", "s2");
        assert_eq!(
            w.ahead_of_cache("u", "1"),
            Some("s2"),
            "cache behind the write"
        );
        // A second write judged from the first (the cache still at 1).
        w.record("u", "1", "3", "s3");
        assert_eq!(w.ahead_of_cache("u", "1"), Some("s3"));
        assert_eq!(
            w.ahead_of_cache("u", "2"),
            Some("s3"),
            "cache at the first write only"
        );
        assert_eq!(w.ahead_of_cache("u", "3"), None, "cache caught up");
        assert_eq!(
            w.ahead_of_cache("u", "1"),
            None,
            "caught up once is forgotten"
        );

        // Someone else's change after the write: the cache's status is the last word.
        w.record("v", "1", "2", "s2");
        assert_eq!(w.ahead_of_cache("v", "7"), None);
        assert_eq!(w.ahead_of_cache("v", "1"), None);

        // A write judged from a cache the entry knows nothing of starts afresh.
        w.record("x", "1", "2", "a");
        w.record("x", "5", "6", "b");
        assert_eq!(w.ahead_of_cache("x", "1"), None);

        // The reconcile added its finalizer first (1 -> 2), then wrote the status (3): the
        // cache at 1 or at 2 is behind.
        w.passed("f", "1");
        assert_eq!(w.ahead_of_cache("f", "1"), None, "nothing written yet");
        w.record("f", "2", "3", "s3");
        assert_eq!(w.ahead_of_cache("f", "1"), Some("s3"));
        assert_eq!(w.ahead_of_cache("f", "2"), Some("s3"));
        assert_eq!(w.ahead_of_cache("f", "3"), None);

        w.record("y", "1", "2", "s");
        w.forget("y");
        assert_eq!(w.ahead_of_cache("y", "1"), None);
    }

    #[test]
    fn only_the_last_few_versions_are_kept() {
        let w: LastWritten<u32> = LastWritten::default();
        for i in 0..20u32 {
            w.record("u", &i.to_string(), &(i + 1).to_string(), i + 1);
        }
        assert_eq!(w.ahead_of_cache("u", "19"), Some(20));
        assert_eq!(w.lock()["u"].older.len(), KEPT);
        assert_eq!(w.ahead_of_cache("u", "3"), None, "too old to know");
    }
}
