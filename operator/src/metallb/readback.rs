//! MetalLB's own verdict on the configuration, read back after an apply. MetalLB 0.16's
//! controller writes it to the `ConfigurationState` named `controller` in its namespace
//! (`status.result`: `Valid`, `Invalid` with `status.errorSummary`, or `Unknown`). The
//! operator's check predicts that verdict before the apply; when MetalLB disagrees, it wins
//! and the status names both. Pure: the object in, a verdict out.

use serde_json::Value;

/// The ConfigurationState the controller writes.
pub const CONTROLLER_STATE: &str = "controller";

/// What MetalLB says of the configuration it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Says {
    /// No ConfigurationState (no 0.16 controller running, or not yet started).
    NotReported,
    /// It has not judged it yet.
    Unknown,
    /// Loaded.
    Valid,
    /// Refused, and why.
    Invalid(String),
}

/// The verdict a ConfigurationState object (`None`: not there) holds.
pub fn says(state: Option<&Value>) -> Says {
    let Some(status) = state.map(|s| &s["status"]) else {
        return Says::NotReported;
    };
    match status["result"].as_str() {
        Some("Valid") => Says::Valid,
        Some("Invalid") => Says::Invalid(
            status["errorSummary"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("no error summary")
                .replace('\n', "; "),
        ),
        _ => Says::Unknown,
    }
}

/// The disagreement in words, when MetalLB refuses what the operator's check let through.
pub fn disagreement(says: &Says) -> Option<String> {
    match says {
        Says::Invalid(why) => Some(format!(
            "MetalLB reports the configuration Invalid (ConfigurationState {CONTROLLER_STATE}: {why}), though the operator's check found it valid when it was applied"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_controllers_state_is_read_as_metallb_writes_it() {
        assert_eq!(says(None), Says::NotReported);
        assert_eq!(says(Some(&json!({"status": {}}))), Says::Unknown);
        assert_eq!(
            says(Some(&json!({"status": {"result": "Unknown"}}))),
            Says::Unknown
        );
        assert_eq!(
            says(Some(&json!({"status": {"result": "Valid"}}))),
            Says::Valid
        );
        let invalid = says(Some(&json!({"status": {
            "result": "Invalid",
            "errorSummary": "CIDR \"10.0.50.30/31\" in pool \"sneaky\" overlaps with already defined CIDR \"10.0.50.28/30\"\nsecond"
        }})));
        assert_eq!(
            invalid,
            Says::Invalid("CIDR \"10.0.50.30/31\" in pool \"sneaky\" overlaps with already defined CIDR \"10.0.50.28/30\"; second".into())
        );
        let message = disagreement(&invalid).unwrap();
        assert!(
            message.starts_with(
                "MetalLB reports the configuration Invalid (ConfigurationState controller: CIDR"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("though the operator's check found it valid when it was applied")
        );
        assert_eq!(disagreement(&Says::Valid), None);
        assert_eq!(disagreement(&Says::NotReported), None);
    }
}
