//! The application's side of one accepted stream: [`Stream`] (`AsyncRead + AsyncWrite`), or its
//! two halves [`RecvStream`] and [`SendStream`]; flow-control credit is returned as data is
//! read, and dropping the last half resets or finishes the stream.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::StreamError;
use crate::frame::RstStatus;
use crate::headers::HeaderBlock;
use crate::shared::{Owner, Shared};
use crate::writer::WriteCmd;

/// What both halves of a stream share; dropping the last half ends the stream.
pub(crate) struct StreamCore {
    pub(crate) id: u32,
    pub(crate) headers: HeaderBlock,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _owner: Arc<Owner>,
}

impl StreamCore {
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamError>> {
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
    pub(crate) fn poll_send_with(
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

    pub(crate) fn close(&self) -> Result<(), StreamError> {
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

    pub(crate) fn reset(&self, status: RstStatus) {
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

    pub(crate) fn stop_reading(&self) {
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
    pub(crate) recv: RecvStream,
    pub(crate) send: SendStream,
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
    pub(crate) core: Arc<StreamCore>,
    /// Rest of a chunk partly consumed through `AsyncRead`.
    pub(crate) leftover: Bytes,
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
    pub(crate) core: Arc<StreamCore>,
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
