//! The `metav1.Status` documents the kubelet writes on the error stream (or channel) of an exec
//! or attach session, serialised exactly like Go's `encoding/json` does for `metav1.Status`
//! (field order `metadata`, `status`, `message`, `reason`, `details`, `code`; empty fields
//! omitted, `metadata` always present), and the plain-text form of protocols v1–v3.

use serde::Serialize;

/// How a remotecommand session ended, as reported to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with `code` (0 is success).
    Exited {
        /// Exit code.
        code: i32,
        /// What ran, for the failure message (`error executing command [sh -c exit 3]`).
        what: String,
    },
    /// The session could not run (provider error, missing container, …).
    Failed(String),
}

#[derive(Serialize)]
struct Metadata {}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: Metadata,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

fn to_json(status: &Status<'_>) -> Vec<u8> {
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(status).unwrap_or_default()
}

impl Outcome {
    /// True for exit code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Exited { code: 0, .. })
    }

    /// The human-readable failure message (`None` on success): what v1–v3 write on the error
    /// stream, and the `message` of the v4+ Status.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::Exited { code: 0, .. } => None,
            Self::Exited { code, what } => Some(format!(
                "command terminated with non-zero exit code: {what}, exit code {code}"
            )),
            Self::Failed(e) => Some(format!(
                "Internal error occurred: error executing command in container: {e}"
            )),
        }
    }

    /// The v4/v5 `metav1.Status` JSON.
    pub fn status_json(&self) -> Vec<u8> {
        let message = self.message();
        match self {
            Self::Exited { code: 0, .. } => to_json(&Status {
                metadata: Metadata {},
                status: "Success",
                message: None,
                reason: None,
                details: None,
                code: None,
            }),
            Self::Exited { code, .. } => {
                let code = code.to_string();
                to_json(&Status {
                    metadata: Metadata {},
                    status: "Failure",
                    message: message.as_deref(),
                    reason: Some("NonZeroExitCode"),
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: Some("ExitCode"),
                            message: Some(&code),
                        }],
                    }),
                    code: None,
                })
            }
            Self::Failed(e) => {
                let cause = format!("error executing command in container: {e}");
                to_json(&Status {
                    metadata: Metadata {},
                    status: "Failure",
                    message: message.as_deref(),
                    reason: Some("InternalError"),
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: None,
                            message: Some(&cause),
                        }],
                    }),
                    code: Some(500),
                })
            }
        }
    }

    /// What to write on the error stream for a protocol: JSON for v4+, the message text
    /// (nothing on success) before.
    pub fn error_stream_bytes(&self, json_status: bool) -> Option<Vec<u8>> {
        if json_status {
            Some(self.status_json())
        } else {
            self.message().map(String::into_bytes)
        }
    }
}

/// Go's `fmt` rendering of a `[]string` (`[sh -c exit 3]`), as the kubelet puts the command in
/// its failure message.
pub fn go_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Outcome {
        Outcome::Exited {
            code,
            what: format!(
                "error executing command {}",
                go_slice(&["sh".into(), "-c".into(), "exit 3".into()])
            ),
        }
    }

    #[test]
    fn success_is_byte_exact() {
        assert_eq!(
            String::from_utf8(exited(0).status_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert!(exited(0).is_success());
        assert_eq!(exited(0).message(), None);
        assert_eq!(exited(0).error_stream_bytes(false), None);
    }

    #[test]
    fn non_zero_exit_is_byte_exact() {
        assert_eq!(
            String::from_utf8(exited(3).status_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            exited(3).error_stream_bytes(false).unwrap(),
            b"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn internal_error_is_byte_exact() {
        let o = Outcome::Failed("container \"x\" is not running".into());
        assert_eq!(
            String::from_utf8(o.status_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: container \"x\" is not running","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: container \"x\" is not running"}]},"code":500}"#
        );
    }

    #[test]
    fn status_parses_as_k8s_status() {
        let s: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_slice(&exited(3).status_json()).unwrap();
        assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"));
        let causes = s.details.unwrap().causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
        assert_eq!(causes[0].message.as_deref(), Some("3"));
    }
}
