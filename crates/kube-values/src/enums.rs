//! Typed forms of the string values of the Kubernetes API and of vk's flags that vk's crates
//! compare or produce. Each parses with `FromStr` (exact spelling, as the API server does),
//! prints with `Display`, and gives its wire spelling with `as_str`.

use std::fmt;

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (expected one of: {})", .expected.join(", "))]
pub struct UnknownValue {
    /// What was being parsed ("restart policy", …).
    pub what: &'static str,
    /// The input.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Defines a string enum: variants with their wire spelling, `VALUES`, `as_str`, `FromStr`,
/// `Display`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        expected: Self::VALUES,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// A pod's `spec.restartPolicy`.
    RestartPolicy, "restart policy" {
        /// Restart every container that exits (the API default).
        Always = "Always",
        /// Restart containers that exit with a non-zero code.
        OnFailure = "OnFailure",
        /// Never restart.
        Never = "Never",
    }
}

impl RestartPolicy {
    /// The policy of a pod spec's optional field: absent means `Always`, as the API server
    /// defaults it. An unknown spelling is `None`.
    pub fn of(field: Option<&str>) -> Option<Self> {
        field.map_or(Some(Self::Always), |s| s.parse().ok())
    }

    /// Whether a container that exited with `exit_code` is restarted under this policy.
    pub const fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

string_enum! {
    /// A pod's `status.phase`.
    PodPhase, "pod phase" {
        /// Accepted, not every container running yet.
        Pending = "Pending",
        /// Bound and at least one container running.
        Running = "Running",
        /// Every container terminated successfully and will not restart.
        Succeeded = "Succeeded",
        /// Every container terminated and at least one failed.
        Failed = "Failed",
        /// The state could not be obtained.
        Unknown = "Unknown",
    }
}

impl PodPhase {
    /// Whether a pod in this phase never runs again (`Succeeded` or `Failed`).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Whether a pod's optional `status.phase` is terminal (absent or unknown: no).
    pub fn is_terminal_field(phase: Option<&str>) -> bool {
        phase
            .and_then(|p| p.parse::<Self>().ok())
            .is_some_and(Self::is_terminal)
    }
}

string_enum! {
    /// A node taint's effect.
    TaintEffect, "taint effect" {
        /// New pods without a toleration are not scheduled.
        NoSchedule = "NoSchedule",
        /// The scheduler avoids the node.
        PreferNoSchedule = "PreferNoSchedule",
        /// Running pods without a toleration are evicted too.
        NoExecute = "NoExecute",
    }
}

string_enum! {
    /// How the kubelet API authorizes authenticated requests.
    AuthorizationMode, "authorization mode" {
        /// Ask the API server with a SubjectAccessReview.
        Webhook = "Webhook",
        /// Allow every authenticated request.
        AlwaysAllow = "AlwaysAllow",
    }
}

string_enum! {
    /// The format of log lines.
    LogFormat, "log format" {
        /// Human-readable text.
        Text = "text",
        /// One JSON object per line.
        Json = "json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in RestartPolicy::VALUES {
            assert_eq!(s.parse::<RestartPolicy>().map(|p| p.as_str()), Ok(*s));
        }
        for s in PodPhase::VALUES {
            assert_eq!(
                s.parse::<PodPhase>().map(|p| p.to_string()),
                Ok(s.to_string())
            );
        }
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("NoExecute".parse(), Ok(TaintEffect::NoExecute));
        assert_eq!("AlwaysAllow".parse(), Ok(AuthorizationMode::AlwaysAllow));
    }

    #[test]
    fn unknown_values_name_the_choices() {
        let err = "Sometimes".parse::<TaintEffect>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"Sometimes\" is not a valid taint effect (expected one of: NoSchedule, PreferNoSchedule, NoExecute)"
        );
        assert!(
            "always".parse::<RestartPolicy>().is_err(),
            "spelling is exact"
        );
    }

    #[test]
    fn absent_restart_policy_is_always_and_terminal_phases_are_known() {
        assert_eq!(RestartPolicy::of(None), Some(RestartPolicy::Always));
        assert_eq!(RestartPolicy::of(Some("Never")), Some(RestartPolicy::Never));
        assert_eq!(RestartPolicy::of(Some("bogus")), None);
        assert!(PodPhase::Failed.is_terminal() && PodPhase::Succeeded.is_terminal());
        assert!(!PodPhase::Running.is_terminal() && !PodPhase::Unknown.is_terminal());
        assert!(PodPhase::is_terminal_field(Some("Failed")));
        assert!(
            !PodPhase::is_terminal_field(Some("Running")) && !PodPhase::is_terminal_field(None)
        );
    }
}
