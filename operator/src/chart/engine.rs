//! Running Helm's engine: the `kommander-helm-render` helper as a child process with a deadline,
//! a memory bound and an output bound. A chart that loops, allocates without end or renders
//! gigabytes takes down that child, never the operator, and the error names the bound.
//!
//! Memory: Go reserves far more address space than it uses, so RLIMIT_AS stops it at start-up.
//! The helper watches its own runtime's memory (a clean answer naming the bound), and
//! RLIMIT_DATA, which Linux counts against the private writable mappings Go's heap lives in,
//! is the hard stop behind it (measured: a Go program under a 256 MiB RLIMIT_DATA dies with
//! "runtime: out of memory" between 192 and 256 MiB).

use super::error::ChartError;
use super::{ChartRender, ChartRequest, parse_answer};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The helper's file name, looked for beside the operator's binary.
pub const HELPER: &str = "kommander-helm-render";
/// The environment variable that names the helper (tests, or a layout of one's own).
pub const HELPER_ENV: &str = "KOMMANDER_HELM_RENDER";

/// The bounds of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from the start of the helper.
    pub deadline: Duration,
    /// Memory the helper's Go runtime may hold.
    pub memory_bytes: u64,
    /// Rendered text (manifests, hooks and CRDs together).
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            memory_bytes: 256 * 1024 * 1024,
            output_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Helm's engine, at a path, with bounds.
#[derive(Debug, Clone)]
pub struct HelmEngine {
    program: PathBuf,
    limits: Limits,
}

impl HelmEngine {
    /// The engine at `program`.
    pub fn new(program: PathBuf, limits: Limits) -> Self {
        HelmEngine { program, limits }
    }

    /// The helper named by `explicit`, else by `$KOMMANDER_HELM_RENDER`, else the one beside
    /// the running binary.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ChartError> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os(HELPER_ENV) {
            return Ok(PathBuf::from(p));
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join(HELPER)));
        match beside {
            Some(p) if p.is_file() => Ok(p),
            _ => Err(ChartError::Engine(format!(
                "{HELPER} was not found: put it beside the operator's binary or name it with ${HELPER_ENV}"
            ))),
        }
    }

    /// Render `req`. Blocking: call it from a blocking thread in async code.
    pub fn render(&self, req: &ChartRequest) -> Result<ChartRender, ChartError> {
        let input = req.to_wire(self.limits.output_bytes)?;
        let mut child = self.spawn()?;
        let mut stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(pipe) = stdin.as_mut() {
                // A helper that dies early closes the pipe; its exit says why.
                let _ = pipe.write_all(&input);
            }
        });
        // The answer holds the rendered text once more as JSON, plus the values: bound it
        // above the output bound, never unbounded.
        let answer_cap = self.limits.output_bytes.saturating_mul(3) + (4 << 20);
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut answer = Vec::new();
            if let Some(pipe) = stdout {
                let _ = pipe.take(answer_cap + 1).read_to_end(&mut answer);
            }
            answer
        });
        let status = self.wait(&mut child)?;
        let _ = writer.join();
        let answer = reader
            .join()
            .map_err(|_| ChartError::Engine("the answer reader panicked".into()))?;
        if answer.len() as u64 > answer_cap {
            return Err(self.output_bound());
        }
        if status.success() || status.code() == Some(1) {
            return parse_answer(&answer);
        }
        Err(self.stopped(status))
    }

    fn spawn(&self) -> Result<std::process::Child, ChartError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg(format!("--max-memory={}", self.limits.memory_bytes))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let data = hard_memory_stop(self.limits.memory_bytes);
        let cpu = self.limits.deadline.as_secs() + 1;
        use std::os::unix::process::CommandExt as _;
        // SAFETY: between fork and exec only async-signal-safe calls: setrlimit on this child.
        unsafe {
            cmd.pre_exec(move || limit(data, cpu));
        }
        cmd.spawn().map_err(|e| {
            ChartError::Engine(format!("cannot start {}: {e}", self.program.display()))
        })
    }

    /// Wait for the helper until the deadline; past it, kill it.
    fn wait(
        &self,
        child: &mut std::process::Child,
    ) -> Result<std::process::ExitStatus, ChartError> {
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if start.elapsed() >= self.limits.deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ChartError::Bound {
                        bound: format!(
                            "the render deadline of {}s",
                            self.limits.deadline.as_secs_f64()
                        ),
                        message: "rendering took longer and was stopped (a template that loops?)"
                            .into(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(ChartError::Engine(format!("waiting for the helper: {e}"))),
            }
        }
    }

    fn output_bound(&self) -> ChartError {
        ChartError::Bound {
            bound: format!(
                "the render output bound of {} MiB",
                self.limits.output_bytes >> 20
            ),
            message: "the answer was larger and was dropped".into(),
        }
    }

    fn stopped(&self, status: std::process::ExitStatus) -> ChartError {
        use std::os::unix::process::ExitStatusExt as _;
        match status.signal() {
            Some(sig) => ChartError::Bound {
                bound: format!(
                    "the render memory bound of {} MiB or CPU bound of {}s",
                    self.limits.memory_bytes >> 20,
                    self.limits.deadline.as_secs() + 1
                ),
                message: format!("the render was stopped by signal {sig}"),
            },
            // Go's runtime exits 2 on a fatal error, such as the hard memory stop.
            None if status.code() == Some(2) => ChartError::Bound {
                bound: format!(
                    "the render memory bound of {} MiB",
                    self.limits.memory_bytes >> 20
                ),
                message: "the Go runtime ran out of memory and stopped".into(),
            },
            None => ChartError::Engine(format!("the helper failed ({status})")),
        }
    }
}

/// RLIMIT_DATA behind the helper's own watchdog: the watchdog answers first; this stops a
/// runtime that grows faster than the watchdog samples.
fn hard_memory_stop(memory_bytes: u64) -> u64 {
    memory_bytes
        .saturating_add(memory_bytes / 2)
        .saturating_add(64 << 20)
}

fn limit(data: u64, cpu_seconds: u64) -> std::io::Result<()> {
    for (resource, value) in [(libc::RLIMIT_DATA, data), (libc::RLIMIT_CPU, cpu_seconds)] {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads a valid, initialised struct; it only lowers this process's limits.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
