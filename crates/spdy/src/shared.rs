//! The state a session's reader task, writer task and every handle share: the stream table
//! with each stream's buffers, windows and wakers ([`StreamState`]), the session-wide windows,
//! budgets and close bookkeeping ([`State`]), and [`Shared`], which owns it behind one mutex
//! together with the writer's queue and the cancellation tokens. [`Owner`] closes the session
//! when the last application handle is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{FlowControl, SessionConfig};
use crate::error::{SessionError, StreamError};
use crate::flow::{DEFAULT_INITIAL_WINDOW, RecvWindow, SendWindow};
use crate::frame::{Frame, GoAway, GoAwayStatus, RstStatus, RstStream, WindowUpdate};
use crate::writer::WriteCmd;

/// One stream's side of the shared state.
pub(crate) struct StreamState {
    pub(crate) inbound: VecDeque<Bytes>,
    pub(crate) buffered: usize,
    pub(crate) remote_fin: bool,
    pub(crate) local_fin: bool,
    /// Set once the stream can no longer be used (reset either way, or session closed).
    pub(crate) error: Option<StreamError>,
    pub(crate) send_window: SendWindow,
    pub(crate) recv_window: RecvWindow,
    pub(crate) recv_waker: Option<Waker>,
    pub(crate) send_waker: Option<Waker>,
    /// Nobody will read: incoming data is discarded (and its window given back).
    pub(crate) reader_dropped: bool,
    /// No handle (IncomingStream, Stream or halves) is left.
    pub(crate) handles_dropped: bool,
}

impl StreamState {
    pub(crate) fn new(send_window: u32, remote_fin: bool, local_fin: bool) -> Self {
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

    pub(crate) fn finished(&self) -> bool {
        self.error.is_some() || (self.local_fin && self.remote_fin)
    }

    /// Drops unread data, returning how many bytes it held.
    pub(crate) fn clear_inbound(&mut self) -> usize {
        self.inbound.clear();
        std::mem::take(&mut self.buffered)
    }

    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
        if let Some(w) = self.send_waker.take() {
            w.wake();
        }
    }
}

/// Everything behind the session's mutex.
pub(crate) struct State {
    pub(crate) streams: HashMap<u32, StreamState>,
    pub(crate) conn_send: SendWindow,
    pub(crate) conn_recv: RecvWindow,
    /// The peer's SETTINGS_INITIAL_WINDOW_SIZE: the send window new streams start with.
    pub(crate) initial_send_window: u32,
    pub(crate) highest_stream_id: u32,
    pub(crate) queued_data: usize,
    pub(crate) budget_waiters: Vec<Waker>,
    pub(crate) conn_window_waiters: Vec<Waker>,
    /// The reader, paused because a stream's buffer is full.
    pub(crate) reader_waker: Option<Waker>,
    /// GOAWAY and shutdown are queued; no new work is accepted.
    pub(crate) closing: bool,
    pub(crate) close_deadline: Option<tokio::time::Instant>,
    pub(crate) peer_goaway: bool,
    pub(crate) error: Option<SessionError>,
    pub(crate) next_ping_id: u32,
    pub(crate) pings: HashMap<u32, oneshot::Sender<()>>,
}

impl State {
    pub(crate) fn fail_all_streams(&mut self) {
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

    pub(crate) fn wake_reader(&mut self) {
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
    }

    /// Forgets a stream once no handle is left and it is finished.
    pub(crate) fn maybe_remove(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.handles_dropped && s.finished())
        {
            self.streams.remove(&id);
        }
    }
}

/// What the reader, the writer and every handle of one session hold.
pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) tx: mpsc::UnboundedSender<WriteCmd>,
    /// Local close started: the reader stops, the writer drains up to the GOAWAY.
    pub(crate) closing: CancellationToken,
    /// Hard stop of both tasks.
    pub(crate) kill: CancellationToken,
    pub(crate) reader_done: CancellationToken,
    pub(crate) writer_done: CancellationToken,
    pub(crate) started: Instant,
    pub(crate) last_activity_ms: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn strict(&self) -> bool {
        self.config.flow_control == FlowControl::Strict
    }

    pub(crate) fn send_cmd(&self, cmd: WriteCmd) {
        // Fails only once the writer is gone, when nothing can be sent anyway.
        let _ = self.tx.send(cmd);
    }

    pub(crate) fn send_frame(&self, frame: Frame) {
        self.send_cmd(WriteCmd::Frame(frame));
    }

    pub(crate) fn send_rst(&self, stream_id: u32, status: RstStatus) {
        self.send_frame(Frame::RstStream(RstStream { stream_id, status }));
    }

    pub(crate) fn send_window_update(&self, stream_id: u32, delta: u32) {
        self.send_frame(Frame::WindowUpdate(WindowUpdate { stream_id, delta }));
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// Starts closing: GOAWAY (with the highest stream id seen) and shutdown are queued
    /// behind everything already queued; every stream fails from now on.
    pub(crate) fn begin_close(&self, status: GoAwayStatus, error: Option<SessionError>) {
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
    pub(crate) fn credit_conn(&self, conn_recv: &mut RecvWindow, n: usize) {
        if let Some(delta) = conn_recv.on_consumed(n) {
            self.send_window_update(0, delta);
        }
    }

    /// Gives consumed bytes back to a stream window (unless the peer already finished).
    pub(crate) fn credit_stream(&self, id: u32, s: &mut StreamState, n: usize) {
        if let Some(delta) = s.recv_window.on_consumed(n)
            && !s.remote_fin
            && s.error.is_none()
        {
            self.send_window_update(id, delta);
        }
    }

    /// Stream error: RST_STREAM to the peer and the stream fails locally.
    pub(crate) fn reset_stream(
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

    pub(crate) fn reject_stream(&self, id: u32, status: RstStatus) {
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
pub(crate) struct Owner {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.begin_close(GoAwayStatus::OK, None);
    }
}
