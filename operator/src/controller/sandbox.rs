//! Renders run in a child process (`kommander-operator render-worker`) with a deadline and
//! memory and CPU limits: a template that recurses, loops for minutes or allocates gigabytes
//! takes down that child, never the operator, and the tenant gets a condition saying which
//! bound was hit.

use crate::render::job::{JobResult, RenderJob, Rendered};
use crate::resources::ClusterPhase;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// How long one render may take.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a worker may answer, in bytes (rendered output is bounded well below this).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;
/// The hidden subcommand that runs one job.
pub const WORKER_COMMAND: &str = "render-worker";

/// How many render workers run at once in all, per core; and per workspace.
const WORKERS_PER_CORE: usize = 2;
const WORKERS_PER_WORKSPACE: usize = 2;

/// Bounds how many render workers run at once: a cold start of hundreds of AppDeployments
/// does not fork hundreds of processes, and one workspace (say, one with many Apps that burn
/// their whole deadline) never holds more than its share of the slots.
pub struct Workers {
    all: Semaphore,
    per_workspace: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for Workers {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Workers {
            all: Semaphore::new(cores.max(2) * WORKERS_PER_CORE),
            per_workspace: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// Why a render gave no objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderFailure {
    /// The app's templates or values are at fault: a template error, or a bound passed (time,
    /// memory, stack, output). Nothing changes until they do.
    #[error("{0}")]
    Input(String),
    /// The worker could not run (not started, no usable answer): the operator's fault, retried.
    #[error("{0}")]
    Worker(String),
}

impl RenderFailure {
    /// The phase a cluster stops in.
    pub fn phase(&self) -> ClusterPhase {
        match self {
            RenderFailure::Input(_) => ClusterPhase::Invalid,
            RenderFailure::Worker(_) => ClusterPhase::Failed,
        }
    }
}

impl Workers {
    /// Render `job` for `workspace` in a worker process, once a slot is free. The deadline
    /// counts from the start of the worker, not from the wait.
    pub async fn render(
        &self,
        workspace: &str,
        job: &RenderJob,
    ) -> Result<Rendered, RenderFailure> {
        let mine = {
            let mut map = self.per_workspace.lock().unwrap_or_else(|p| p.into_inner());
            // Forget idle workspaces, so the map follows the workspaces that are rendering.
            map.retain(|_, s| Arc::strong_count(s) > 1);
            map.entry(workspace.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(WORKERS_PER_WORKSPACE)))
                .clone()
        };
        let closed = |_| RenderFailure::Worker("the render worker pool is closed".into());
        let _workspace_slot = mine.acquire().await.map_err(closed)?;
        let _slot = self.all.acquire().await.map_err(closed)?;
        render(job).await
    }
}

/// Render `job` in a worker process.
async fn render(job: &RenderJob) -> Result<Rendered, RenderFailure> {
    let worker = RenderFailure::Worker;
    let input = serde_json::to_vec(job)
        .map_err(|e| worker(format!("cannot encode the render job: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| worker(format!("cannot find the operator binary: {e}")))?;
    let mut child = tokio::process::Command::new(exe)
        .arg(WORKER_COMMAND)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| worker(format!("cannot start the render worker: {e}")))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let work = async {
        let feed = async {
            if let Some(mut pipe) = stdin.take() {
                // A worker that dies early closes the pipe; its exit status says why.
                let _ = pipe.write_all(&input).await;
            }
        };
        let mut answer = Vec::new();
        let read = async {
            if let Some(pipe) = stdout.take() {
                let _ = pipe.take(MAX_ANSWER_BYTES).read_to_end(&mut answer).await;
            }
        };
        tokio::join!(feed, read);
        let status = child.wait().await.map_err(|e| worker(e.to_string()))?;
        Ok::<_, RenderFailure>((status, answer))
    };
    let (status, answer) = tokio::time::timeout(RENDER_TIMEOUT, work)
        .await
        .map_err(|_| {
            RenderFailure::Input(format!(
                "rendering took longer than the limit of {}s and was stopped (a template loops over too much?)",
                RENDER_TIMEOUT.as_secs()
            ))
        })??;
    if !status.success() {
        return Err(stopped(status));
    }
    let result: JobResult = serde_json::from_slice(&answer)
        .map_err(|_| worker("the render worker gave no usable answer".into()))?;
    result.map_err(RenderFailure::Input)
}

/// A worker that exited without an answer: a limit's signal is the input's fault.
fn stopped(status: std::process::ExitStatus) -> RenderFailure {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => RenderFailure::Input(format!(
            "rendering was stopped by signal {sig}: it passed the render worker's stack, memory ({} MiB) or CPU ({}s) limit (partials that recurse, or a template that builds too much?)",
            WORKER_MEMORY_BYTES / (1024 * 1024),
            WORKER_CPU_SECONDS
        )),
        None => RenderFailure::Worker(format!("the render worker failed ({status})")),
    }
}

/// The address space a worker may use.
pub const WORKER_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// The CPU time a worker may use.
pub const WORKER_CPU_SECONDS: u64 = 10;

/// Apply the worker's own limits to this process (called first thing in `render-worker`).
pub fn limit_this_process() -> Result<(), String> {
    for (resource, value) in [
        (libc::RLIMIT_AS, WORKER_MEMORY_BYTES),
        (libc::RLIMIT_CPU, WORKER_CPU_SECONDS),
    ] {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads a valid, initialised struct; it only lowers this process's limits.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_limit_is_the_inputs_fault_and_a_worker_that_fails_the_operators() {
        let killed = stopped(std::process::ExitStatus::from_raw(9));
        assert!(matches!(killed, RenderFailure::Input(ref m) if m.contains("signal 9")));
        assert_eq!(killed.phase(), ClusterPhase::Invalid);
        let failed = stopped(std::process::ExitStatus::from_raw(1 << 8));
        assert!(matches!(failed, RenderFailure::Worker(_)), "{failed:?}");
        assert_eq!(failed.phase(), ClusterPhase::Failed);
    }
}
