//! Text that a remote server chose (error messages, versions, bodies) is only ever logged or
//! stored as a short, single-line excerpt: a tenant's API server cannot fill logs or status.

/// The most of a remote answer that is ever logged or stored.
pub const EXCERPT_CHARS: usize = 200;

/// A short, single-line excerpt of text a remote server chose: control characters become
/// spaces and anything past [`EXCERPT_CHARS`] is cut.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A kube error in one line, for status messages: bounded, whatever the server sent.
pub fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => excerpt(&format!("{} ({})", s.message, s.reason)),
        other => {
            // Walk to the root cause: "connection refused" beats "client error (Connect)".
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            excerpt(&msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_one_line() {
        let long = format!("a\nb{}", "x".repeat(10_000));
        let e = excerpt(&long);
        assert!(e.chars().count() <= EXCERPT_CHARS + 1);
        assert!(!e.contains('\n'));
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("v1.34.4"), "v1.34.4");
    }
}
