//! The SPDY/3.1 codec files of vk-host (`src/kubelet_api/spdy/frame.rs` and `headers.rs`),
//! compiled on their own for fuzzing. Both files depend only on `bytes`, `flate2` and
//! `thiserror` for exactly this reason.

#[path = "../../src/kubelet_api/spdy/frame.rs"]
pub mod frame;
#[path = "../../src/kubelet_api/spdy/headers.rs"]
pub mod headers;
