//! The reader task of a session: decodes frames, owns the receiving zlib context, keeps the
//! stream table up to date, queues new streams for [`Session::accept`](crate::Session::accept),
//! echoes PINGs, answers protocol errors, and stops reading while a stream's unread data is
//! over its buffer (backpressure).

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::error::{SessionError, StreamError};
use crate::flow::MAX_WINDOW;
use crate::frame::{
    Data, Frame, FrameDecoder, GoAwayStatus, Headers, Ping, RstStatus, RstStream,
    SETTINGS_INITIAL_WINDOW_SIZE, Settings, SynReply, SynStream, WindowUpdate,
};
use crate::headers::{HeaderBlock, HeaderDecompressor, HeaderError};
use crate::session::IncomingStream;
use crate::shared::{Shared, StreamState};

pub(crate) struct Reader<R> {
    pub(crate) io: R,
    pub(crate) buf: BytesMut,
    pub(crate) decoder: FrameDecoder,
    pub(crate) headers: HeaderDecompressor,
    pub(crate) shared: Arc<Shared>,
    pub(crate) accept_tx: Option<mpsc::Sender<IncomingStream>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) async fn run(mut self) {
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

    pub(crate) async fn read_loop(&mut self) -> Result<(), SessionError> {
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

    pub(crate) async fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
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
    pub(crate) fn decode_block(
        &mut self,
        block: &[u8],
    ) -> Result<Result<HeaderBlock, HeaderError>, SessionError> {
        match self.headers.decompress(block) {
            Ok(h) => Ok(Ok(h)),
            Err(e) if e.is_session_fatal() => Err(SessionError::Header(e)),
            Err(e) => Ok(Err(e)),
        }
    }

    pub(crate) fn on_syn_stream(&mut self, f: SynStream) -> Result<(), SessionError> {
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

    pub(crate) fn on_syn_reply(&mut self, f: SynReply) -> Result<(), SessionError> {
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

    pub(crate) fn on_headers(&mut self, f: Headers) -> Result<(), SessionError> {
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

    pub(crate) async fn on_data(&mut self, f: Data) -> Result<(), SessionError> {
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
    pub(crate) fn on_rst_stream(&mut self, f: RstStream) {
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

    pub(crate) fn on_settings(&mut self, f: &Settings) {
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

    pub(crate) fn on_ping(&mut self, f: Ping) {
        if !f.id.is_multiple_of(2) {
            // Client-initiated: echo it unchanged.
            self.shared.send_frame(Frame::Ping(f));
        } else if let Some(tx) = self.shared.lock().pings.remove(&f.id) {
            let _ = tx.send(());
        }
        // An even id we did not send is ignored, as the spec asks.
    }

    pub(crate) fn on_window_update(&mut self, f: WindowUpdate) -> Result<(), SessionError> {
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
pub(crate) async fn wait_for_space(shared: &Shared, id: u32) {
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
pub(crate) fn unknown_stream(shared: &Shared, highest_stream_id: u32, id: u32) {
    if id.is_multiple_of(2) || id > highest_stream_id {
        shared.send_rst(id, RstStatus::INVALID_STREAM);
    }
}

/// Resolves when no frame went either way for `idle` (never when `idle` is `None`).
pub(crate) async fn idle_expired(shared: &Shared, idle: Option<Duration>) -> Duration {
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
