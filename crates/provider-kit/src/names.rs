//! Backend names and tags for pods. A backend object (container group, task, job) gets a name
//! that is stable for a pod (the same UID always gives the same name, so a retried create finds
//! its object), readable (namespace and pod name come first), unique (a hash of the UID ends it)
//! and within the backend's length and character rules. Tags carry the pod's identity on the
//! object, so that a restarted provider can find its objects again ([`crate::adopt`]).

use std::collections::BTreeMap;

/// Tag key of the pod's UID.
pub const TAG_POD_UID: &str = "vk-pod-uid";
/// Tag key of the pod's namespace.
pub const TAG_NAMESPACE: &str = "vk-namespace";
/// Tag key of the pod's name.
pub const TAG_POD_NAME: &str = "vk-pod-name";
/// Tag key of the virtual node that owns the object.
pub const TAG_NODE: &str = "vk-node";

/// Characters a backend allows in a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Lower-case letters, digits and `-`; starts with a letter, does not end with `-` (DNS
    /// labels: ACI container groups, ECI container groups, Nomad job IDs used in DNS).
    DnsLabel,
    /// Letters, digits, `-` and `_` (ECS task-definition families).
    Word,
}

/// A backend's naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    /// Longest name.
    pub max_len: usize,
    /// Allowed characters.
    pub charset: Charset,
}

impl NameRules {
    /// A DNS label: 63 characters of `[a-z0-9-]`.
    pub const DNS_LABEL: Self = Self {
        max_len: 63,
        charset: Charset::DnsLabel,
    };
}

/// Hex digits of the UID hash that end every name.
const HASH_LEN: usize = 10;

/// The backend name of pod `namespace/name` with `uid`: `{namespace}-{name}` in the allowed
/// characters, shortened to fit, then `-` and a hash of the UID.
pub fn backend_name(namespace: &str, name: &str, uid: &str, rules: NameRules) -> String {
    let hash = format!("{:016x}", fnv1a(uid.as_bytes()));
    let hash = &hash[..HASH_LEN];
    let room = rules.max_len.saturating_sub(HASH_LEN + 1);
    let mut stem = String::with_capacity(room);
    for c in format!("{namespace}-{name}").chars() {
        if stem.len() >= room {
            break;
        }
        let c = match rules.charset {
            Charset::DnsLabel => match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            },
            Charset::Word => match c {
                c if c.is_ascii_alphanumeric() || c == '_' => c,
                _ => '-',
            },
        };
        if c == '-' && (stem.is_empty() || stem.ends_with('-')) {
            continue; // no leading or doubled separators
        }
        stem.push(c);
    }
    if rules.charset == Charset::DnsLabel && stem.starts_with(|c: char| c.is_ascii_digit()) {
        stem.insert(0, 'p');
        stem.truncate(room);
    }
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() || room == 0 {
        let mut only = format!("p{hash}");
        only.truncate(rules.max_len.max(1));
        return only;
    }
    format!("{stem}-{hash}")
}

/// 64-bit FNV-1a: stable across processes, releases and platforms (unlike `std`'s hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Who a backend object belongs to, as its tags say.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodIdentity {
    /// Pod UID.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The virtual node that created the object.
    pub node: String,
}

impl PodIdentity {
    /// The tags to put on the pod's backend objects. `prefix` is prepended to every key for
    /// backends that namespace tag keys (e.g. `"vk.io/"`); most use `""`.
    pub fn tags(&self, prefix: &str) -> BTreeMap<String, String> {
        [
            (TAG_POD_UID, &self.uid),
            (TAG_NAMESPACE, &self.namespace),
            (TAG_POD_NAME, &self.name),
            (TAG_NODE, &self.node),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
    }

    /// Reads the identity back from an object's tags (looked up by `tag`); `None` if the object
    /// was not made by vk.
    pub fn from_tags<'a>(prefix: &str, tag: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let get = |k: &str| tag(&format!("{prefix}{k}")).map(str::to_string);
        Some(Self {
            uid: get(TAG_POD_UID).filter(|u| !u.is_empty())?,
            namespace: get(TAG_NAMESPACE).unwrap_or_default(),
            name: get(TAG_POD_NAME).unwrap_or_default(),
            node: get(TAG_NODE).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_readable_and_fit() {
        let a = backend_name("shop", "web-0", "0d5c-11ef", NameRules::DNS_LABEL);
        assert_eq!(
            a,
            backend_name("shop", "web-0", "0d5c-11ef", NameRules::DNS_LABEL)
        );
        assert!(a.starts_with("shop-web-0-"), "{a}");
        assert_ne!(
            a,
            backend_name("shop", "web-0", "other-uid", NameRules::DNS_LABEL)
        );
        let long = "x".repeat(300);
        for rules in [
            NameRules::DNS_LABEL,
            NameRules {
                max_len: 20,
                charset: Charset::Word,
            },
            NameRules {
                max_len: 8,
                charset: Charset::DnsLabel,
            },
        ] {
            let n = backend_name(&long, "Web_App.1", "uid", rules);
            assert!(n.len() <= rules.max_len, "{n}");
        }
    }

    #[test]
    fn dns_labels_use_only_allowed_characters() {
        let n = backend_name("9ns", "My_Pod..x", "uid", NameRules::DNS_LABEL);
        assert!(n.starts_with("p9ns-my-pod-x-"), "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let w = backend_name(
            "ns",
            "My_Pod.x",
            "uid",
            NameRules {
                max_len: 255,
                charset: Charset::Word,
            },
        );
        assert!(w.starts_with("ns-My_Pod-x-"), "{w}");
    }

    #[test]
    fn tags_round_trip() {
        let id = PodIdentity {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
            node: "vk".into(),
        };
        let tags = id.tags("vk.io/");
        assert_eq!(tags.get("vk.io/vk-pod-uid").map(String::as_str), Some("u"));
        let back = PodIdentity::from_tags("vk.io/", |k| tags.get(k).map(String::as_str));
        assert_eq!(back, Some(id));
        assert_eq!(PodIdentity::from_tags("", |_| None), None);
    }
}
