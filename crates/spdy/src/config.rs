//! The tunables of a [`Session`](crate::Session): buffer and frame limits, the flow-control
//! mode, idle and close timeouts. Plain data with defaults that suit the Kubernetes streaming
//! protocols.

use std::time::Duration;

use crate::frame::{DEFAULT_MAX_CONTROL_PAYLOAD, MAX_FRAME_PAYLOAD};
use crate::headers::DEFAULT_MAX_HEADER_BLOCK;

/// How the peer's flow-control windows are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowControl {
    /// Track windows and send WINDOW_UPDATEs, but never wait for the peer's window and never
    /// reset a stream whose sender overruns ours. Required for Go's spdystream, which ignores
    /// WINDOW_UPDATE entirely.
    #[default]
    Lenient,
    /// SPDY/3.1 as written: sending waits for window, and an overrun of our window resets the
    /// stream (or, for the session window, ends the session).
    Strict,
}

/// Tunables of a [`Session`](crate::Session). The defaults suit the Kubernetes streaming protocols.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Largest DATA payload accepted (the protocol maximum by default, since the Go writer
    /// puts a whole `Write` call into one frame).
    pub max_data_payload: usize,
    /// Largest control-frame payload accepted.
    pub max_control_payload: usize,
    /// Largest decompressed header block accepted.
    pub max_header_block: usize,
    /// Outgoing data is cut into DATA frames of at most this many bytes.
    pub max_send_frame: usize,
    /// Outgoing data bytes that may wait in the write queue before senders wait.
    pub write_buffer: usize,
    /// Unread bytes a stream may hold before the reader stops reading the connection.
    pub stream_recv_buffer: usize,
    /// Open streams allowed; further SYN_STREAMs are refused with REFUSED_STREAM.
    pub max_concurrent_streams: usize,
    /// New streams that may wait for [`Session::accept`](crate::Session::accept); further ones are refused.
    pub accept_backlog: usize,
    pub flow_control: FlowControl,
    /// Close the session (GOAWAY OK) after this long without any frame in either direction.
    pub idle_timeout: Option<Duration>,
    /// How long closing may spend flushing queued frames to a peer that stopped reading.
    pub close_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_data_payload: MAX_FRAME_PAYLOAD,
            max_control_payload: DEFAULT_MAX_CONTROL_PAYLOAD,
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
            max_send_frame: 32 * 1024,
            write_buffer: 512 * 1024,
            stream_recv_buffer: 1024 * 1024,
            max_concurrent_streams: 1000,
            accept_backlog: 128,
            flow_control: FlowControl::Lenient,
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl SessionConfig {
    /// The configuration with every limit clamped to a usable value.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_send_frame = self.max_send_frame.clamp(1, MAX_FRAME_PAYLOAD);
        self.write_buffer = self.write_buffer.max(self.max_send_frame);
        self.stream_recv_buffer = self.stream_recv_buffer.max(1);
        self.max_concurrent_streams = self.max_concurrent_streams.max(1);
        self.accept_backlog = self.accept_backlog.max(1);
        self
    }
}
