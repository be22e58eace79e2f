//! Resolving a path inside a container to the volume files vk-host delivered, through the
//! container's `volumeMounts` (mount path, sub-path), so `cat` and `ls` in exec see what a real
//! container would.

use std::collections::BTreeSet;

use vk_provider_sdk::pb;

use vk_provider_kit::pod::Mount;

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file and its content.
    File(Vec<u8>),
    /// A folder and the names of its entries.
    Dir(Vec<String>),
    /// Nothing (or a path outside every file-backed mount).
    Missing,
}

/// Looks `path` up in the container with `mounts`, in the pod's `volumes`.
pub fn lookup(volumes: &[pb::Volume], mounts: &[Mount], path: &str) -> Entry {
    let path = normalize(path);
    let best = mounts
        .iter()
        .filter(|m| {
            let mp = normalize(&m.mount_path);
            mp == "/" || path == mp || path.starts_with(&format!("{mp}/"))
        })
        .max_by_key(|m| normalize(&m.mount_path).len());
    let Some(mount) = best else {
        // Folders above mount points exist too, so `ls /etc` shows `config`.
        let children: BTreeSet<String> = mounts
            .iter()
            .filter_map(|m| child_name(&path, &normalize(&m.mount_path)))
            .collect();
        return if children.is_empty() {
            Entry::Missing
        } else {
            Entry::Dir(children.into_iter().collect())
        };
    };
    let Some(volume) = volumes.iter().find(|v| v.name == mount.volume) else {
        return Entry::Missing;
    };
    let mp = normalize(&mount.mount_path);
    let rest = path.strip_prefix(&mp).unwrap_or("").trim_start_matches('/');
    let rel = match (mount.sub_path.trim_matches('/'), rest) {
        ("", r) => r.to_string(),
        (s, "") => s.to_string(),
        (s, r) => format!("{s}/{r}"),
    };
    if let Some(f) = volume.files.iter().find(|f| f.path == rel) {
        return Entry::File(f.content.clone());
    }
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let children: BTreeSet<String> = volume
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&prefix))
        .filter_map(|r| {
            r.split('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .collect();
    if children.is_empty() {
        Entry::Missing
    } else {
        Entry::Dir(children.into_iter().collect())
    }
}

/// `/a//b/` → `/a/b`; relative paths are taken from `/`.
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// If `dir` is an ancestor of `mount`, the name of the child of `dir` on the way to it.
fn child_name(dir: &str, mount: &str) -> Option<String> {
    let rest = if dir == "/" {
        mount.strip_prefix('/')?
    } else {
        mount.strip_prefix(dir)?.strip_prefix('/')?
    };
    rest.split('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volumes() -> Vec<pb::Volume> {
        vec![pb::Volume {
            name: "config".into(),
            files: vec![
                pb::VolumeFile {
                    path: "app.conf".into(),
                    content: b"debug=true\n".to_vec(),
                    mode: 0o644,
                },
                pb::VolumeFile {
                    path: "nested/key".into(),
                    content: b"v".to_vec(),
                    mode: 0o644,
                },
            ],
        }]
    }

    fn mount(path: &str, sub: &str) -> Vec<Mount> {
        vec![Mount {
            volume: "config".into(),
            mount_path: path.into(),
            sub_path: sub.into(),
            read_only: true,
        }]
    }

    #[test]
    fn file_under_mount() {
        assert_eq!(
            lookup(
                &volumes(),
                &mount("/etc/config", ""),
                "/etc/config/app.conf"
            ),
            Entry::File(b"debug=true\n".to_vec())
        );
        assert_eq!(
            lookup(
                &volumes(),
                &mount("/etc/config/", ""),
                "/etc//config/nested/key"
            ),
            Entry::File(b"v".to_vec())
        );
    }

    #[test]
    fn folder_listing() {
        assert_eq!(
            lookup(&volumes(), &mount("/etc/config", ""), "/etc/config"),
            Entry::Dir(vec!["app.conf".into(), "nested".into()])
        );
        assert_eq!(
            lookup(&volumes(), &mount("/etc/config", ""), "/etc"),
            Entry::Dir(vec!["config".into()])
        );
    }

    #[test]
    fn sub_path_mount_of_a_file() {
        assert_eq!(
            lookup(&volumes(), &mount("/app.conf", "app.conf"), "/app.conf"),
            Entry::File(b"debug=true\n".to_vec())
        );
    }

    #[test]
    fn missing() {
        assert_eq!(
            lookup(&volumes(), &mount("/etc/config", ""), "/etc/config/nope"),
            Entry::Missing
        );
        assert_eq!(
            lookup(&volumes(), &mount("/etc/config", ""), "/var"),
            Entry::Missing
        );
    }
}
