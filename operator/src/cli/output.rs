//! What the command line prints and fails with, and the files it reads.

use std::io::Write as _;
use std::path::Path;

/// What a subcommand can fail with.
pub enum CliError {
    /// A message for the user.
    Message(String),
    /// Whoever reads our output stopped reading (`| head`): not an error, just stop.
    ClosedOutput,
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Message(s)
    }
}

/// Print a line to stdout; a closed pipe ends the command quietly instead of panicking.
pub(super) fn say(line: impl std::fmt::Display) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::ClosedOutput),
        Err(e) => Err(CliError::Message(format!("cannot write output: {e}"))),
    }
}

pub(super) fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
