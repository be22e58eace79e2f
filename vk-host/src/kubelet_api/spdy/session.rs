//! The server side of a SPDY/3.1 session over any byte stream (what `hyper::upgrade::on`
//! hands over after the `101 Switching Protocols`).
//!
//! Two tasks run per session:
//! - the **reader** decodes frames, owns the receiving zlib context, keeps the stream table
//!   up to date, queues new streams for [`Session::accept`], echoes PINGs and answers
//!   protocol errors;
//! - the **writer** owns the sending zlib context and the write half; every outgoing frame
//!   goes through its single FIFO queue, so frames never interleave and a stream's SYN_REPLY
//!   always precedes its DATA.
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

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::flow::{DEFAULT_INITIAL_WINDOW, FlowError, MAX_WINDOW, RecvWindow, SendWindow};
use super::frame::{
    Data, Frame, FrameDecoder, FrameError, GoAway, GoAwayStatus, Headers, MAX_FRAME_PAYLOAD, Ping,
    RstStatus, RstStream, SETTINGS_INITIAL_WINDOW_SIZE, Settings, SynReply, SynStream,
    WindowUpdate,
};
use super::headers::{
    DEFAULT_MAX_HEADER_BLOCK, HeaderBlock, HeaderCompressor, HeaderDecompressor, HeaderError,
};

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

/// Tunables of a [`Session`]. The defaults suit the Kubernetes streaming protocols.
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
    /// New streams that may wait for [`Session::accept`]; further ones are refused.
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
            max_control_payload: super::frame::DEFAULT_MAX_CONTROL_PAYLOAD,
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
    fn normalized(mut self) -> Self {
        self.max_send_frame = self.max_send_frame.clamp(1, MAX_FRAME_PAYLOAD);
        self.write_buffer = self.write_buffer.max(self.max_send_frame);
        self.stream_recv_buffer = self.stream_recv_buffer.max(1);
        self.max_concurrent_streams = self.max_concurrent_streams.max(1);
        self.accept_backlog = self.accept_backlog.max(1);
        self
    }
}

/// Why a session ended (or an operation on it failed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("I/O error: {message}")]
    Io {
        kind: io::ErrorKind,
        message: String,
    },
    #[error("invalid frame: {0}")]
    Frame(#[from] FrameError),
    #[error("invalid header block: {0}")]
    Header(#[from] HeaderError),
    #[error("flow-control violation: {0}")]
    FlowControl(#[from] FlowError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("no frame for {0:?}")]
    IdleTimeout(Duration),
    #[error("the session is closed")]
    Closed,
}

impl SessionError {
    fn io(e: io::Error) -> Self {
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    fn goaway_status(&self) -> GoAwayStatus {
        match self {
            Self::Frame(_) | Self::Header(_) | Self::FlowControl(_) | Self::Protocol(_) => {
                GoAwayStatus::PROTOCOL_ERROR
            }
            Self::Io { .. } => GoAwayStatus::INTERNAL_ERROR,
            Self::IdleTimeout(_) | Self::Closed => GoAwayStatus::OK,
        }
    }
}

/// Why an operation on a stream failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the peer reset the stream with {0}")]
    ResetByPeer(RstStatus),
    #[error("the stream was reset locally with {0}")]
    ResetLocally(RstStatus),
    #[error("the sending side of the stream is already closed")]
    SendClosed,
    #[error("the SPDY session is closed")]
    SessionClosed,
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> Self {
        let kind = match e {
            StreamError::ResetByPeer(_) => io::ErrorKind::ConnectionReset,
            StreamError::ResetLocally(_) => io::ErrorKind::ConnectionAborted,
            StreamError::SendClosed => io::ErrorKind::BrokenPipe,
            StreamError::SessionClosed => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// A frame for the writer task.
enum WriteCmd {
    /// A frame that needs no header compression.
    Frame(Frame),
    /// SYN_REPLY with an empty header block (compressed by the writer, in wire order).
    Reply { stream_id: u32, fin: bool },
    /// DATA whose payload counts against the write buffer.
    Data {
        stream_id: u32,
        data: Bytes,
        fin: bool,
    },
    /// Flush, shut the write side down and stop.
    Shutdown,
}

/// Bytes the writer gathers before a write call.
const WRITE_BATCH: usize = 64 * 1024;

struct StreamState {
    inbound: VecDeque<Bytes>,
    buffered: usize,
    remote_fin: bool,
    local_fin: bool,
    /// Set once the stream can no longer be used (reset either way, or session closed).
    error: Option<StreamError>,
    send_window: SendWindow,
    recv_window: RecvWindow,
    recv_waker: Option<Waker>,
    send_waker: Option<Waker>,
    /// Nobody will read: incoming data is discarded (and its window given back).
    reader_dropped: bool,
    /// No handle (IncomingStream, Stream or halves) is left.
    handles_dropped: bool,
}

impl StreamState {
    fn new(send_window: u32, remote_fin: bool, local_fin: bool) -> Self {
        Self {
            inbound: VecDeque::new(),
            buffered: 0,
            remote_fin,
            local_fin,
            error: None,
            send_window: SendWindow::new(send_window),
            recv_window: RecvWindow::new(DEFAULT_INITIAL_WINDOW),
            recv_waker: None,
            send_waker: None,
            reader_dropped: false,
            handles_dropped: false,
        }
    }

    fn finished(&self) -> bool {
        self.error.is_some() || (self.local_fin && self.remote_fin)
    }

    /// Drops unread data, returning how many bytes it held.
    fn clear_inbound(&mut self) -> usize {
        self.inbound.clear();
        std::mem::take(&mut self.buffered)
    }

    fn wake(&mut self) {
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
        if let Some(w) = self.send_waker.take() {
            w.wake();
        }
    }
}

struct State {
    streams: HashMap<u32, StreamState>,
    conn_send: SendWindow,
    conn_recv: RecvWindow,
    /// The peer's SETTINGS_INITIAL_WINDOW_SIZE: the send window new streams start with.
    initial_send_window: u32,
    highest_stream_id: u32,
    queued_data: usize,
    budget_waiters: Vec<Waker>,
    conn_window_waiters: Vec<Waker>,
    /// The reader, paused because a stream's buffer is full.
    reader_waker: Option<Waker>,
    /// GOAWAY and shutdown are queued; no new work is accepted.
    closing: bool,
    close_deadline: Option<tokio::time::Instant>,
    peer_goaway: bool,
    error: Option<SessionError>,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
}

impl State {
    fn fail_all_streams(&mut self) {
        for s in self.streams.values_mut() {
            if !s.finished() {
                s.error = Some(StreamError::SessionClosed);
            }
            s.wake();
        }
        for w in self.budget_waiters.drain(..) {
            w.wake();
        }
        for w in self.conn_window_waiters.drain(..) {
            w.wake();
        }
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
        self.pings.clear();
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
    }

    /// Forgets a stream once no handle is left and it is finished.
    fn maybe_remove(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.handles_dropped && s.finished())
        {
            self.streams.remove(&id);
        }
    }
}

struct Shared {
    config: SessionConfig,
    state: Mutex<State>,
    tx: mpsc::UnboundedSender<WriteCmd>,
    /// Local close started: the reader stops, the writer drains up to the GOAWAY.
    closing: CancellationToken,
    /// Hard stop of both tasks.
    kill: CancellationToken,
    reader_done: CancellationToken,
    writer_done: CancellationToken,
    started: Instant,
    last_activity_ms: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn strict(&self) -> bool {
        self.config.flow_control == FlowControl::Strict
    }

    fn send_cmd(&self, cmd: WriteCmd) {
        // Fails only once the writer is gone, when nothing can be sent anyway.
        let _ = self.tx.send(cmd);
    }

    fn send_frame(&self, frame: Frame) {
        self.send_cmd(WriteCmd::Frame(frame));
    }

    fn send_rst(&self, stream_id: u32, status: RstStatus) {
        self.send_frame(Frame::RstStream(RstStream { stream_id, status }));
    }

    fn send_window_update(&self, stream_id: u32, delta: u32) {
        self.send_frame(Frame::WindowUpdate(WindowUpdate { stream_id, delta }));
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// Starts closing: GOAWAY (with the highest stream id seen) and shutdown are queued
    /// behind everything already queued; every stream fails from now on.
    fn begin_close(&self, status: GoAwayStatus, error: Option<SessionError>) {
        let mut st = self.lock();
        if st.error.is_none() {
            st.error = error;
        }
        if st.closing {
            return;
        }
        st.closing = true;
        st.close_deadline = Some(tokio::time::Instant::now() + self.config.close_timeout);
        st.fail_all_streams();
        let last_good_stream_id = st.highest_stream_id;
        drop(st);
        self.send_frame(Frame::GoAway(GoAway {
            last_good_stream_id,
            status,
        }));
        self.send_cmd(WriteCmd::Shutdown);
        self.closing.cancel();
    }

    /// Gives consumed (or discarded) bytes back to the session window.
    fn credit_conn(&self, conn_recv: &mut RecvWindow, n: usize) {
        if let Some(delta) = conn_recv.on_consumed(n) {
            self.send_window_update(0, delta);
        }
    }

    /// Gives consumed bytes back to a stream window (unless the peer already finished).
    fn credit_stream(&self, id: u32, s: &mut StreamState, n: usize) {
        if let Some(delta) = s.recv_window.on_consumed(n)
            && !s.remote_fin
            && s.error.is_none()
        {
            self.send_window_update(id, delta);
        }
    }

    /// Stream error: RST_STREAM to the peer and the stream fails locally.
    fn reset_stream(
        &self,
        conn_recv: &mut RecvWindow,
        id: u32,
        s: &mut StreamState,
        status: RstStatus,
    ) {
        if matches!(
            s.error,
            Some(StreamError::ResetByPeer(_) | StreamError::ResetLocally(_))
        ) {
            return;
        }
        self.send_rst(id, status);
        s.error = Some(StreamError::ResetLocally(status));
        let discarded = s.clear_inbound();
        self.credit_conn(conn_recv, discarded);
        s.wake();
    }

    fn reject_stream(&self, id: u32, status: RstStatus) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(mut s) = st.streams.remove(&id) {
            let discarded = s.clear_inbound();
            self.credit_conn(&mut st.conn_recv, discarded);
            if s.error.is_none() {
                self.send_rst(id, status);
            }
            st.wake_reader();
        }
    }
}

/// Keeps the session alive while the application holds a [`Session`] or a stream; the last
/// one dropped closes the session.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.begin_close(GoAwayStatus::OK, None);
    }
}

/// A server-side SPDY/3.1 session. Create it on the upgraded connection, then call
/// [`Session::accept`] for each stream the client opens.
///
/// The session stays open while this value or any stream from it is alive; when all are
/// dropped it closes (GOAWAY OK). [`SessionHandle::close`] closes it at once.
pub struct Session {
    // Dropped first: streams still waiting to be accepted are refused.
    incoming: mpsc::Receiver<IncomingStream>,
    owner: Arc<Owner>,
    handle: SessionHandle,
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
    shared: Arc<Shared>,
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
    id: u32,
    headers: HeaderBlock,
    remote_fin: bool,
    unidirectional: bool,
    shared: Arc<Shared>,
    owner: Option<Arc<Owner>>,
    answered: bool,
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

/// What both halves of a stream share; dropping the last half ends the stream.
struct StreamCore {
    id: u32,
    headers: HeaderBlock,
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl StreamCore {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        let shared = &*self.shared;
        let limit = shared.config.stream_recv_buffer;
        let mut guard = shared.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(StreamError::SessionClosed));
        };
        if let Some(chunk) = s.inbound.pop_front() {
            let n = chunk.len();
            s.buffered -= n;
            shared.credit_stream(self.id, s, n);
            let below_limit = s.buffered <= limit;
            shared.credit_conn(&mut st.conn_recv, n);
            if below_limit {
                st.wake_reader();
            }
            return Poll::Ready(Ok(Some(chunk)));
        }
        if s.remote_fin {
            return Poll::Ready(Ok(None));
        }
        if let Some(e) = &s.error {
            return Poll::Ready(Err(e.clone()));
        }
        s.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Queues up to `want` bytes (produced by `take`) as one DATA frame once the write buffer
    /// (and, in strict mode, the windows) have room. Returns how many bytes were queued.
    fn poll_send_with(
        &self,
        cx: &mut Context<'_>,
        want: usize,
        take: impl FnOnce(usize) -> Bytes,
    ) -> Poll<Result<usize, StreamError>> {
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let shared = &*self.shared;
        let config = &shared.config;
        let mut guard = shared.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(StreamError::SessionClosed));
        };
        if let Some(e) = &s.error {
            return Poll::Ready(Err(e.clone()));
        }
        if s.local_fin {
            return Poll::Ready(Err(StreamError::SendClosed));
        }
        let budget = config.write_buffer.saturating_sub(st.queued_data);
        if budget == 0 {
            st.budget_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        let mut n = want.min(budget).min(config.max_send_frame);
        if shared.strict() {
            let stream_room = s.send_window.sendable();
            let conn_room = st.conn_send.sendable();
            if stream_room == 0 {
                s.send_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if conn_room == 0 {
                st.conn_window_waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(stream_room).min(conn_room);
        }
        s.send_window.consume(n);
        st.conn_send.consume(n);
        st.queued_data += n;
        shared.send_cmd(WriteCmd::Data {
            stream_id: self.id,
            data: take(n),
            fin: false,
        });
        Poll::Ready(Ok(n))
    }

    fn close(&self) -> Result<(), StreamError> {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Err(StreamError::SessionClosed);
        };
        if s.local_fin {
            return Ok(());
        }
        if let Some(e) = &s.error {
            return Err(e.clone());
        }
        s.local_fin = true;
        self.shared.send_cmd(WriteCmd::Data {
            stream_id: self.id,
            data: Bytes::new(),
            fin: true,
        });
        st.maybe_remove(self.id);
        Ok(())
    }

    fn reset(&self, status: RstStatus) {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if let Some(s) = st.streams.get_mut(&self.id)
            && !s.finished()
        {
            self.shared
                .reset_stream(&mut st.conn_recv, self.id, s, status);
        }
        st.wake_reader();
    }

    fn stop_reading(&self) {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.reader_dropped = true;
            let discarded = s.clear_inbound();
            self.shared.credit_stream(self.id, s, discarded);
            self.shared.credit_conn(&mut st.conn_recv, discarded);
        }
        st.wake_reader();
    }
}

impl Drop for StreamCore {
    fn drop(&mut self) {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.handles_dropped = true;
            s.reader_dropped = true;
            // Dropped without FIN: tell the peer nothing more will come.
            if s.error.is_none() && !s.local_fin {
                self.shared
                    .reset_stream(&mut st.conn_recv, self.id, s, RstStatus::CANCEL);
            }
        }
        st.maybe_remove(self.id);
        st.wake_reader();
    }
}

/// An accepted stream: read what the client sends, write back, half-close with
/// [`Stream::close`]. Also usable as `AsyncRead + AsyncWrite` (shutdown = FIN), and
/// splittable for concurrent reading and writing.
///
/// Dropping a stream whose sending side was not closed resets it with CANCEL; dropping it
/// after `close()` just discards further incoming data.
pub struct Stream {
    recv: RecvStream,
    send: SendStream,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id())
            .field("headers", self.headers())
            .finish()
    }
}

impl Stream {
    pub fn id(&self) -> u32 {
        self.send.core.id
    }

    pub fn headers(&self) -> &HeaderBlock {
        &self.send.core.headers
    }

    /// The next chunk the client sent, `Ok(None)` after its FIN.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, StreamError> {
        self.recv.recv().await
    }

    /// Sends `data` (cut into DATA frames), waiting for room in the write buffer.
    pub async fn send(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.send.send(data).await
    }

    /// Half-closes the sending side (an empty DATA frame with FIN). Idempotent.
    pub fn close(&mut self) -> Result<(), StreamError> {
        self.send.close()
    }

    /// Aborts the stream with RST_STREAM `status`.
    pub fn reset(&mut self, status: RstStatus) {
        self.send.reset(status);
    }

    /// Separates the reading and writing sides.
    pub fn split(self) -> (RecvStream, SendStream) {
        (self.recv, self.send)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

/// The reading side of a [`Stream`]. Dropping it discards further incoming data.
pub struct RecvStream {
    core: Arc<StreamCore>,
    /// Rest of a chunk partly consumed through `AsyncRead`.
    leftover: Bytes,
}

impl std::fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("id", &self.core.id)
            .finish()
    }
}

impl RecvStream {
    pub fn id(&self) -> u32 {
        self.core.id
    }

    pub fn headers(&self) -> &HeaderBlock {
        &self.core.headers
    }

    /// The next chunk the client sent, `Ok(None)` after its FIN. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, StreamError> {
        if !self.leftover.is_empty() {
            return Ok(Some(std::mem::take(&mut self.leftover)));
        }
        poll_fn(|cx| self.core.poll_recv(cx)).await
    }

    /// Aborts the stream with RST_STREAM `status`.
    pub fn reset(&mut self, status: RstStatus) {
        self.core.reset(status);
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.leftover.is_empty() {
            match ready!(this.core.poll_recv(cx)) {
                Ok(Some(chunk)) => this.leftover = chunk,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        let n = this.leftover.len().min(buf.remaining());
        let chunk = this.leftover.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        self.core.stop_reading();
    }
}

/// The writing side of a [`Stream`].
pub struct SendStream {
    core: Arc<StreamCore>,
}

impl std::fmt::Debug for SendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStream")
            .field("id", &self.core.id)
            .finish()
    }
}

impl SendStream {
    pub fn id(&self) -> u32 {
        self.core.id
    }

    pub fn headers(&self) -> &HeaderBlock {
        &self.core.headers
    }

    /// Sends `data` (cut into DATA frames), waiting for room in the write buffer (and, in
    /// strict flow control, in the peer's windows). If cancelled, a prefix of `data` may
    /// have been queued.
    pub async fn send(&mut self, mut data: Bytes) -> Result<(), StreamError> {
        while !data.is_empty() {
            let want = data.len();
            poll_fn(|cx| self.core.poll_send_with(cx, want, |n| data.split_to(n))).await?;
        }
        Ok(())
    }

    /// Half-closes the sending side (an empty DATA frame with FIN). Idempotent.
    pub fn close(&mut self) -> Result<(), StreamError> {
        self.core.close()
    }

    /// Aborts the stream with RST_STREAM `status`.
    pub fn reset(&mut self, status: RstStatus) {
        self.core.reset(status);
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.core
            .poll_send_with(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
            .map_err(io::Error::from)
    }

    /// Frames are handed to the writer task immediately; there is nothing to flush here.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.core.close().map_err(io::Error::from))
    }
}

struct Reader<R> {
    io: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    headers: HeaderDecompressor,
    shared: Arc<Shared>,
    accept_tx: Option<mpsc::Sender<IncomingStream>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn run(mut self) {
        let result = self.read_loop().await;
        self.accept_tx = None;
        let shared = self.shared.clone();
        match result {
            Ok(()) => shared.begin_close(GoAwayStatus::OK, None),
            Err(e) => {
                tracing::debug!(error = %e, "SPDY session ends with an error");
                shared.begin_close(e.goaway_status(), Some(e));
            }
        }
        shared.lock().fail_all_streams();
        shared.reader_done.cancel();
    }

    async fn read_loop(&mut self) -> Result<(), SessionError> {
        let idle = self.shared.config.idle_timeout;
        loop {
            while let Some(frame) = self.decoder.decode(&mut self.buf)? {
                self.shared.touch();
                self.handle(frame).await?;
                if self.shared.closing.is_cancelled() || self.shared.kill.is_cancelled() {
                    return Ok(());
                }
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            let read = tokio::select! {
                biased;
                _ = self.shared.kill.cancelled() => return Ok(()),
                _ = self.shared.closing.cancelled() => return Ok(()),
                timeout = idle_expired(&self.shared, idle) => {
                    return Err(SessionError::IdleTimeout(timeout));
                }
                read = self.io.read_buf(&mut self.buf) => read,
            };
            match read {
                Ok(0) if self.buf.is_empty() => return Ok(()),
                Ok(0) => {
                    return Err(SessionError::Io {
                        kind: io::ErrorKind::UnexpectedEof,
                        message: "connection closed in the middle of a frame".into(),
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(SessionError::io(e)),
            }
        }
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
        match frame {
            Frame::SynStream(f) => self.on_syn_stream(f),
            Frame::SynReply(f) => self.on_syn_reply(f),
            Frame::Headers(f) => self.on_headers(f),
            Frame::Data(f) => self.on_data(f).await,
            Frame::RstStream(f) => {
                self.on_rst_stream(f);
                Ok(())
            }
            Frame::Settings(f) => {
                self.on_settings(&f);
                Ok(())
            }
            Frame::Ping(f) => {
                self.on_ping(f);
                Ok(())
            }
            Frame::GoAway(f) => {
                tracing::debug!(last_good = f.last_good_stream_id, status = %f.status, "peer sent GOAWAY");
                self.shared.lock().peer_goaway = true;
                self.accept_tx = None;
                Ok(())
            }
            Frame::WindowUpdate(f) => self.on_window_update(f),
            Frame::Unknown(f) => {
                tracing::debug!(frame_type = f.frame_type, "ignoring unknown control frame");
                Ok(())
            }
        }
    }

    /// Decompresses a header block. Every block must pass through the shared decompressor,
    /// even for streams about to be refused. The outer error is fatal; the inner one is a
    /// stream error.
    fn decode_block(
        &mut self,
        block: &[u8],
    ) -> Result<Result<HeaderBlock, HeaderError>, SessionError> {
        match self.headers.decompress(block) {
            Ok(h) => Ok(Ok(h)),
            Err(e) if e.is_session_fatal() => Err(SessionError::Header(e)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn on_syn_stream(&mut self, f: SynStream) -> Result<(), SessionError> {
        let headers = self.decode_block(&f.header_block)?;
        let id = f.stream_id;
        let shared = &*self.shared;
        let mut guard = shared.lock();
        let st = &mut *guard;
        if st.closing {
            // After our GOAWAY, new streams are ignored.
            return Ok(());
        }
        if id.is_multiple_of(2) {
            shared.send_rst(id, RstStatus::PROTOCOL_ERROR);
            return Ok(());
        }
        if let Some(s) = st.streams.get_mut(&id) {
            shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::PROTOCOL_ERROR);
            st.maybe_remove(id);
            return Ok(());
        }
        if id <= st.highest_stream_id {
            return Err(SessionError::Protocol(format!(
                "SYN_STREAM {id} after SYN_STREAM {}: stream ids must increase",
                st.highest_stream_id
            )));
        }
        st.highest_stream_id = id;
        let headers = match headers {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(stream = id, error = %e, "refusing stream with invalid headers");
                shared.send_rst(id, RstStatus::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        let Some(accept_tx) = self.accept_tx.as_ref() else {
            shared.send_rst(id, RstStatus::REFUSED_STREAM);
            return Ok(());
        };
        if st.streams.len() >= shared.config.max_concurrent_streams {
            shared.send_rst(id, RstStatus::REFUSED_STREAM);
            return Ok(());
        }
        st.streams.insert(
            id,
            StreamState::new(st.initial_send_window, f.fin, f.unidirectional),
        );
        drop(guard);
        let incoming = IncomingStream {
            id,
            headers,
            remote_fin: f.fin,
            unidirectional: f.unidirectional,
            shared: self.shared.clone(),
            owner: None,
            answered: false,
        };
        // A full backlog or a dropped Session refuses the stream (IncomingStream's Drop).
        if let Err(e) = accept_tx.try_send(incoming) {
            tracing::debug!(stream = id, "refusing stream: nobody accepts");
            drop(e);
        }
        Ok(())
    }

    fn on_syn_reply(&mut self, f: SynReply) -> Result<(), SessionError> {
        // We never open streams, so any SYN_REPLY is a stream error; its block still has to
        // go through the decompressor.
        let _ = self.decode_block(&f.header_block)?;
        let shared = &*self.shared;
        let mut guard = shared.lock();
        let st = &mut *guard;
        match st.streams.get_mut(&f.stream_id) {
            Some(s) => {
                shared.reset_stream(&mut st.conn_recv, f.stream_id, s, RstStatus::STREAM_IN_USE);
                st.maybe_remove(f.stream_id);
            }
            None => shared.send_rst(f.stream_id, RstStatus::INVALID_STREAM),
        }
        Ok(())
    }

    fn on_headers(&mut self, f: Headers) -> Result<(), SessionError> {
        let headers = self.decode_block(&f.header_block)?;
        let id = f.stream_id;
        let shared = &*self.shared;
        let mut guard = shared.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&id) else {
            unknown_stream(shared, st.highest_stream_id, id);
            return Ok(());
        };
        if s.error.is_some() {
            return Ok(());
        }
        if s.remote_fin {
            shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::STREAM_ALREADY_CLOSED);
        } else if headers.is_err() {
            shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::PROTOCOL_ERROR);
        } else if f.fin {
            // The headers themselves carry nothing the Kubernetes protocols use.
            s.remote_fin = true;
            s.wake();
        }
        st.maybe_remove(id);
        Ok(())
    }

    async fn on_data(&mut self, f: Data) -> Result<(), SessionError> {
        let id = f.stream_id;
        let len = f.data.len();
        let pause = {
            let shared = &*self.shared;
            let strict = shared.strict();
            let mut guard = shared.lock();
            let st = &mut *guard;
            if let Err(e) = st.conn_recv.on_data(len)
                && strict
            {
                return Err(SessionError::FlowControl(e));
            }
            let Some(s) = st.streams.get_mut(&id) else {
                shared.credit_conn(&mut st.conn_recv, len);
                unknown_stream(shared, st.highest_stream_id, id);
                return Ok(());
            };
            if s.error.is_some() {
                // Reset or closing: drop it, but keep the session window open.
                shared.credit_conn(&mut st.conn_recv, len);
                return Ok(());
            }
            if s.remote_fin {
                shared.credit_conn(&mut st.conn_recv, len);
                shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::STREAM_ALREADY_CLOSED);
                st.maybe_remove(id);
                return Ok(());
            }
            if s.recv_window.on_data(len).is_err() && strict {
                shared.credit_conn(&mut st.conn_recv, len);
                shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::FLOW_CONTROL_ERROR);
                st.maybe_remove(id);
                return Ok(());
            }
            if f.fin {
                s.remote_fin = true;
            }
            if s.reader_dropped {
                shared.credit_stream(id, s, len);
                shared.credit_conn(&mut st.conn_recv, len);
            } else if len > 0 {
                s.inbound.push_back(f.data);
                s.buffered += len;
            }
            let pause = !s.reader_dropped && s.buffered > shared.config.stream_recv_buffer;
            s.wake();
            st.maybe_remove(id);
            pause
        };
        if pause {
            wait_for_space(&self.shared, id).await;
        }
        Ok(())
    }
    fn on_rst_stream(&mut self, f: RstStream) {
        let shared = &*self.shared;
        let mut guard = shared.lock();
        let st = &mut *guard;
        if let Some(s) = st.streams.get_mut(&f.stream_id) {
            if !matches!(
                s.error,
                Some(StreamError::ResetByPeer(_) | StreamError::ResetLocally(_))
            ) {
                s.error = Some(StreamError::ResetByPeer(f.status));
            }
            let discarded = s.clear_inbound();
            s.wake();
            shared.credit_conn(&mut st.conn_recv, discarded);
            st.maybe_remove(f.stream_id);
            st.wake_reader();
        }
    }

    fn on_settings(&mut self, f: &Settings) {
        let Some(new) = f.get(SETTINGS_INITIAL_WINDOW_SIZE) else {
            return;
        };
        if i64::from(new) > MAX_WINDOW {
            tracing::debug!(
                value = new,
                "ignoring SETTINGS_INITIAL_WINDOW_SIZE beyond 2^31-1"
            );
            return;
        }
        let shared = &*self.shared;
        let strict = shared.strict();
        let mut guard = shared.lock();
        let st = &mut *guard;
        let old = std::mem::replace(&mut st.initial_send_window, new);
        let mut overflowed = Vec::new();
        for (id, s) in &mut st.streams {
            if s.send_window.apply_initial_change(old, new).is_err() && strict {
                overflowed.push(*id);
            }
            s.wake();
        }
        for id in overflowed {
            if let Some(s) = st.streams.get_mut(&id) {
                shared.reset_stream(&mut st.conn_recv, id, s, RstStatus::FLOW_CONTROL_ERROR);
            }
            st.maybe_remove(id);
        }
    }

    fn on_ping(&mut self, f: Ping) {
        if !f.id.is_multiple_of(2) {
            // Client-initiated: echo it unchanged.
            self.shared.send_frame(Frame::Ping(f));
        } else if let Some(tx) = self.shared.lock().pings.remove(&f.id) {
            let _ = tx.send(());
        }
        // An even id we did not send is ignored, as the spec asks.
    }

    fn on_window_update(&mut self, f: WindowUpdate) -> Result<(), SessionError> {
        let shared = &*self.shared;
        let strict = shared.strict();
        let mut guard = shared.lock();
        let st = &mut *guard;
        if f.stream_id == 0 {
            match st.conn_send.grant(f.delta) {
                Ok(()) => {
                    for w in st.conn_window_waiters.drain(..) {
                        w.wake();
                    }
                }
                Err(e) if strict => return Err(SessionError::FlowControl(e)),
                Err(_) => {}
            }
            return Ok(());
        }
        if let Some(s) = st.streams.get_mut(&f.stream_id) {
            if s.error.is_some() || s.local_fin {
                return Ok(());
            }
            match s.send_window.grant(f.delta) {
                Ok(()) => s.wake(),
                Err(_) if strict => {
                    shared.reset_stream(
                        &mut st.conn_recv,
                        f.stream_id,
                        s,
                        RstStatus::FLOW_CONTROL_ERROR,
                    );
                    st.maybe_remove(f.stream_id);
                }
                Err(_) => {}
            }
        }
        Ok(())
    }
}

/// Stops the reader until stream `id` has been drained below its buffer limit (or is gone).
/// A free function so that the reader (and its read half) need not be `Sync`.
async fn wait_for_space(shared: &Shared, id: u32) {
    let limit = shared.config.stream_recv_buffer;
    let drained = poll_fn(|cx| {
        let mut st = shared.lock();
        let done = st.closing
            || st
                .streams
                .get(&id)
                .is_none_or(|s| s.error.is_some() || s.reader_dropped || s.buffered <= limit);
        if done {
            Poll::Ready(())
        } else {
            st.reader_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    });
    tokio::select! {
        _ = drained => {}
        _ = shared.kill.cancelled() => {}
        _ = shared.closing.cancelled() => {}
    }
}

/// A frame for a stream we do not know: a stream we never saw (or an even id, which only we
/// could open) gets INVALID_STREAM; a stream that already ended is ignored, since frames may
/// still be in flight after a reset.
fn unknown_stream(shared: &Shared, highest_stream_id: u32, id: u32) {
    if id.is_multiple_of(2) || id > highest_stream_id {
        shared.send_rst(id, RstStatus::INVALID_STREAM);
    }
}

/// Resolves when no frame went either way for `idle` (never when `idle` is `None`).
async fn idle_expired(shared: &Shared, idle: Option<Duration>) -> Duration {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        let last = Duration::from_millis(shared.last_activity_ms.load(Ordering::Relaxed));
        let deadline = shared.started + last + idle;
        if Instant::now() >= deadline {
            return idle;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    }
}

async fn run_writer<W: AsyncWrite + Unpin>(
    mut io: W,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    shared: Arc<Shared>,
) {
    let result = write_loop(&mut io, &mut rx, &shared).await;
    {
        let mut st = shared.lock();
        if let Err(e) = result
            && !st.closing
            && st.error.is_none()
        {
            tracing::debug!(error = %e, "SPDY session writer failed");
            st.error = Some(e);
        }
        st.closing = true;
        st.fail_all_streams();
    }
    // Stops the reader too if it is still running.
    shared.kill.cancel();
    shared.closing.cancel();
    shared.writer_done.cancel();
}

async fn write_loop<W: AsyncWrite + Unpin>(
    io: &mut W,
    rx: &mut mpsc::UnboundedReceiver<WriteCmd>,
    shared: &Shared,
) -> Result<(), SessionError> {
    let mut compressor = HeaderCompressor::new()?;
    let mut out = BytesMut::with_capacity(WRITE_BATCH);
    let mut goaway_written = false;
    loop {
        let first = tokio::select! {
            biased;
            _ = shared.kill.cancelled() => return Ok(()),
            cmd = rx.recv() => cmd,
        };
        let Some(first) = first else {
            return Ok(());
        };
        let mut data_bytes = 0usize;
        let mut shutdown = false;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            if let WriteCmd::Data { data, .. } = &cmd {
                data_bytes += data.len();
            }
            if let WriteCmd::Shutdown = cmd {
                shutdown = true;
                break;
            }
            // Nothing may follow GOAWAY: the Go peer stops reading when it sees it.
            if !goaway_written {
                match cmd {
                    WriteCmd::Frame(frame) => {
                        goaway_written = matches!(frame, Frame::GoAway(_));
                        frame.encode(&mut out)?;
                    }
                    WriteCmd::Reply { stream_id, fin } => {
                        let header_block = compressor.compress(&HeaderBlock::new())?;
                        Frame::SynReply(SynReply {
                            stream_id,
                            fin,
                            header_block,
                        })
                        .encode(&mut out)?;
                    }
                    WriteCmd::Data {
                        stream_id,
                        data,
                        fin,
                    } => Frame::Data(Data {
                        stream_id,
                        fin,
                        data,
                    })
                    .encode(&mut out)?,
                    WriteCmd::Shutdown => {}
                }
            }
            if out.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !out.is_empty() {
            guarded(shared, io.write_all(&out)).await?;
            guarded(shared, io.flush()).await?;
            out.clear();
            shared.touch();
        }
        if data_bytes > 0 {
            let mut st = shared.lock();
            st.queued_data = st.queued_data.saturating_sub(data_bytes);
            for w in st.budget_waiters.drain(..) {
                w.wake();
            }
        }
        if shutdown {
            // Best effort: the peer may already be gone.
            let _ = guarded(shared, io.shutdown()).await;
            return Ok(());
        }
    }
}

/// Runs an I/O operation of the writer, giving up on a hard stop or when a close has been
/// waiting longer than `close_timeout`.
async fn guarded<T>(
    shared: &Shared,
    op: impl Future<Output = io::Result<T>>,
) -> Result<T, SessionError> {
    let close_deadline = async {
        shared.closing.cancelled().await;
        let deadline = shared.lock().close_deadline;
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        result = op => result.map_err(SessionError::io),
        _ = shared.kill.cancelled() => Err(SessionError::Closed),
        _ = close_deadline => Err(SessionError::Io {
            kind: io::ErrorKind::TimedOut,
            message: "gave up flushing to a peer that stopped reading".into(),
        }),
    }
}
