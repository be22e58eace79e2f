//! The writer task of a session: owns the sending zlib context and the write half; every
//! outgoing frame goes through its single FIFO queue ([`WriteCmd`]), so frames never
//! interleave and a stream's SYN_REPLY always precedes its DATA.

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::SessionError;
use crate::frame::{Data, Frame, SynReply};
use crate::headers::{HeaderBlock, HeaderCompressor};
use crate::shared::Shared;

/// A frame for the writer task.
pub(crate) enum WriteCmd {
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
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
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

pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
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
pub(crate) async fn guarded<T>(
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
