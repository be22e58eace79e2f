//! The server side of a SPDY/3.1 session over any byte stream (what `hyper::upgrade::on`
//! hands over after the `101 Switching Protocols`): [`Session`] starts one reader task
//! ([`crate::reader`]) and one writer task ([`crate::writer`]) and hands out the streams the
//! client opens ([`IncomingStream`], accepted into a [`Stream`]); [`SessionHandle`] pings and
//! closes it.
//!
//! Flow control: both 64 KiB windows (stream and session) are tracked in both directions and
//! WINDOW_UPDATEs are sent as the application consumes data. Whether the peer's window is
//! *enforced* is [`FlowControl`]: Go's `moby/spdystream` (the peer in every Kubernetes
//! deployment) neither sends WINDOW_UPDATE nor honours ours, so the default
//! ([`FlowControl::Lenient`]) never blocks on the peer's window and never punishes an overrun
//! of ours; [`FlowControl::Strict`] follows the SPDY/3.1 text. In both modes memory stays
//! bounded: outgoing data waits for room in a per-session write buffer, and when a stream
//! holds more unread data than [`SessionConfig::stream_recv_buffer`] the reader stops reading
//! the connection until the application catches up (TCP backpressure, as the Go
//! implementation does).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::error::{SessionError, StreamError};
use crate::flow::{DEFAULT_INITIAL_WINDOW, RecvWindow, SendWindow};
use crate::frame::{Frame, FrameDecoder, GoAwayStatus, Ping, RstStatus};
use crate::headers::{HeaderBlock, HeaderDecompressor};
use crate::reader::Reader;
use crate::shared::{Owner, Shared, State};
use crate::stream::{RecvStream, SendStream, Stream, StreamCore};
use crate::writer::{WriteCmd, run_writer};

/// A server-side SPDY/3.1 session. Create it on the upgraded connection, then call
/// [`Session::accept`] for each stream the client opens.
///
/// The session stays open while this value or any stream from it is alive; when all are
/// dropped it closes (GOAWAY OK). [`SessionHandle::close`] closes it at once.
pub struct Session {
    // Dropped first: streams still waiting to be accepted are refused.
    pub(crate) incoming: mpsc::Receiver<IncomingStream>,
    pub(crate) owner: Arc<Owner>,
    pub(crate) handle: SessionHandle,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Starts the session's reader and writer tasks on the current tokio runtime.
    pub fn new<T>(io: T, config: SessionConfig) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = config.normalized();
        let (read_half, write_half) = tokio::io::split(io);
        let (tx, rx) = mpsc::unbounded_channel();
        let (accept_tx, accept_rx) = mpsc::channel(config.accept_backlog);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                streams: HashMap::new(),
                conn_send: SendWindow::new(DEFAULT_INITIAL_WINDOW),
                conn_recv: RecvWindow::new(DEFAULT_INITIAL_WINDOW),
                initial_send_window: DEFAULT_INITIAL_WINDOW,
                highest_stream_id: 0,
                queued_data: 0,
                budget_waiters: Vec::new(),
                conn_window_waiters: Vec::new(),
                reader_waker: None,
                closing: false,
                close_deadline: None,
                peer_goaway: false,
                error: None,
                next_ping_id: 2,
                pings: HashMap::new(),
            }),
            tx,
            closing: CancellationToken::new(),
            kill: CancellationToken::new(),
            reader_done: CancellationToken::new(),
            writer_done: CancellationToken::new(),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            config,
        });
        let reader = Reader {
            decoder: FrameDecoder::new(
                shared.config.max_data_payload,
                shared.config.max_control_payload,
            ),
            headers: HeaderDecompressor::new(shared.config.max_header_block),
            io: read_half,
            buf: BytesMut::with_capacity(16 * 1024),
            shared: shared.clone(),
            accept_tx: Some(accept_tx),
        };
        tokio::spawn(reader.run());
        tokio::spawn(run_writer(write_half, rx, shared.clone()));
        Self {
            incoming: accept_rx,
            owner: Arc::new(Owner {
                shared: shared.clone(),
            }),
            handle: SessionHandle { shared },
        }
    }

    /// The next stream opened by the client, or `None` once no more can come (the
    /// connection closed, the client sent GOAWAY, or the session was closed). Cancel-safe.
    pub async fn accept(&mut self) -> Option<IncomingStream> {
        let mut incoming = self.incoming.recv().await?;
        incoming.owner = Some(self.owner.clone());
        Some(incoming)
    }

    /// A cloneable handle for pings and closing; it does not keep the session open.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// See [`SessionHandle::ping`].
    pub async fn ping(&self) -> Result<Duration, SessionError> {
        self.handle.ping().await
    }

    /// See [`SessionHandle::close`].
    pub async fn close(&self) {
        self.handle.close().await;
    }

    /// See [`SessionHandle::closed`].
    pub async fn closed(&self) {
        self.handle.closed().await;
    }
}

/// Session-wide operations, usable from any task.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl SessionHandle {
    /// Sends a PING (even id, as the server) and waits for the echo. Wrap it in a timeout:
    /// a peer that never answers keeps it pending until the session ends.
    pub async fn ping(&self) -> Result<Duration, SessionError> {
        let rx = {
            let mut st = self.shared.lock();
            if st.closing {
                return Err(st.error.clone().unwrap_or(SessionError::Closed));
            }
            let id = st.next_ping_id;
            st.next_ping_id = if id >= u32::MAX - 1 { 2 } else { id + 2 };
            let (tx, rx) = oneshot::channel();
            st.pings.insert(id, tx);
            self.shared.send_frame(Frame::Ping(Ping { id }));
            rx
        };
        let started = Instant::now();
        rx.await.map_err(|_| SessionError::Closed)?;
        Ok(started.elapsed())
    }

    /// Closes the session: every open stream fails, GOAWAY (status OK, last-good = the
    /// highest stream id seen) is written after the frames already queued, the write side is
    /// shut down. Waits until both tasks have stopped (at most about `close_timeout` when the
    /// peer stopped reading).
    ///
    /// There is deliberately no "GOAWAY but keep serving": the Go peer stops reading frames
    /// once it sees GOAWAY, so GOAWAY must be the last frame.
    pub async fn close(&self) {
        self.shared.begin_close(GoAwayStatus::OK, None);
        self.closed().await;
    }

    /// Resolves once the session has ended, whichever side ended it.
    pub async fn closed(&self) {
        self.shared.reader_done.cancelled().await;
        self.shared.writer_done.cancelled().await;
    }

    /// True once the session is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closing
    }

    /// Why the session ended, when it ended abnormally.
    pub fn error(&self) -> Option<SessionError> {
        self.shared.lock().error.clone()
    }

    /// True once the client sent GOAWAY (it will open no more streams).
    pub fn peer_went_away(&self) -> bool {
        self.shared.lock().peer_goaway
    }
}

/// A stream the client opened (SYN_STREAM), waiting for the application to accept it with
/// [`IncomingStream::reply`] or refuse it with [`IncomingStream::reject`]. Dropping it refuses
/// it with REFUSED_STREAM.
pub struct IncomingStream {
    pub(crate) id: u32,
    pub(crate) headers: HeaderBlock,
    pub(crate) remote_fin: bool,
    pub(crate) unidirectional: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) owner: Option<Arc<Owner>>,
    pub(crate) answered: bool,
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .field("remote_fin", &self.remote_fin)
            .finish()
    }
}

impl IncomingStream {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The SYN_STREAM headers (names lowercase; lookups are case-insensitive).
    pub fn headers(&self) -> &HeaderBlock {
        &self.headers
    }

    /// True when the SYN_STREAM carried FIN (the client will send no data).
    pub fn is_remote_closed(&self) -> bool {
        self.remote_fin
    }

    /// Accepts the stream: queues a SYN_REPLY with an empty header block (no SYN_REPLY for a
    /// unidirectional stream, which we may not send on). The stream counts as established
    /// once this returns. Fails if the client already reset the stream or the session ended.
    pub fn reply(mut self) -> Result<Stream, StreamError> {
        self.answered = true;
        let id = self.id;
        {
            let mut guard = self.shared.lock();
            let st = &mut *guard;
            let error = match st.streams.get_mut(&id) {
                None => Some(StreamError::SessionClosed),
                Some(s) => s.error.clone(),
            };
            if let Some(error) = error {
                if let Some(s) = st.streams.get_mut(&id) {
                    s.handles_dropped = true;
                }
                st.maybe_remove(id);
                return Err(error);
            }
            if !self.unidirectional {
                self.shared.send_cmd(WriteCmd::Reply {
                    stream_id: id,
                    fin: false,
                });
            }
        }
        let owner = match self.owner.take() {
            Some(owner) => owner,
            // Only reachable for an IncomingStream that never went through accept().
            None => Arc::new(Owner {
                shared: self.shared.clone(),
            }),
        };
        let core = Arc::new(StreamCore {
            id,
            headers: std::mem::take(&mut self.headers),
            shared: self.shared.clone(),
            _owner: owner,
        });
        Ok(Stream {
            recv: RecvStream {
                core: core.clone(),
                leftover: Bytes::new(),
            },
            send: SendStream { core },
        })
    }

    /// Refuses the stream with RST_STREAM `status` (the kubelet uses CANCEL).
    pub fn reject(mut self, status: RstStatus) {
        self.answered = true;
        self.shared.reject_stream(self.id, status);
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if !self.answered {
            self.shared
                .reject_stream(self.id, RstStatus::REFUSED_STREAM);
        }
    }
}
