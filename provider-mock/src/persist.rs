//! The optional state file: every pod (as the host sent it) and its last status, so a restarted
//! mock keeps its pods. The file is a sequence of length-delimited protobuf messages, a
//! `CreatePodRequest` followed by a `GetPodStatusResponse` per pod, written atomically
//! (temporary file + rename) at most twice a second while pods change.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use prost::Message;
use vk_provider_sdk::pb;

use crate::store::Store;

/// Reads a state file. A missing file is an empty state.
pub fn load(path: &Path) -> io::Result<Vec<(pb::Pod, pb::PodStatus)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut buf = bytes.as_slice();
    let mut out = Vec::new();
    let bad = |e: prost::DecodeError| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    while !buf.is_empty() {
        let create = pb::CreatePodRequest::decode_length_delimited(&mut buf).map_err(bad)?;
        let status = pb::GetPodStatusResponse::decode_length_delimited(&mut buf).map_err(bad)?;
        if let (Some(pod), Some(status)) = (create.pod, status.status) {
            out.push((pod, status));
        }
    }
    Ok(out)
}

/// Writes a state file atomically.
pub fn save(path: &Path, pods: Vec<(pb::Pod, pb::PodStatus)>) -> io::Result<()> {
    let mut buf = Vec::new();
    for (pod, status) in pods {
        pb::CreatePodRequest { pod: Some(pod) }.encode_length_delimited(&mut buf)?;
        pb::GetPodStatusResponse {
            status: Some(status),
        }
        .encode_length_delimited(&mut buf)?;
    }
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::rename(&tmp, path)
}

/// Writes the state file whenever pods change, at most every 500 ms, until the store is dropped.
pub async fn keep_saving(store: Arc<Store>, path: PathBuf) {
    loop {
        store.changed().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let snapshot = store.snapshot();
        let path2 = path.clone();
        match tokio::task::spawn_blocking(move || save(&path2, snapshot)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(path = %path.display(), %error, "could not write state file")
            }
            Err(error) => tracing::warn!(%error, "state writer panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        assert!(load(&path).unwrap().is_empty());
        let pod = pb::Pod {
            uid: "u1".into(),
            name: "p".into(),
            ..Default::default()
        };
        let status = pb::PodStatus {
            uid: "u1".into(),
            revision: 4,
            ..Default::default()
        };
        save(&path, vec![(pod.clone(), status.clone())]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![(pod, status)]);
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        std::fs::write(&path, b"\xff\xff\xff").unwrap();
        assert!(load(&path).is_err());
    }
}
