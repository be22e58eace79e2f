//! Reading gRPC response streams with deadlines.
//!
//! A [`Pump`] runs one streaming call in a background task and forwards what happens (headers
//! received, each message, the end, an error status) over a channel. Checks read it with
//! [`Pump::next`], which takes a deadline, so no wait on a provider is ever unbounded. Opening
//! the call happens inside the task too: some gRPC servers (grpc-go, for example) only send
//! response headers with the first message, so "the call has not returned yet" must not block
//! a check. Dropping the pump aborts the task, which cancels the RPC.

use std::future::Future;

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tonic::{Status, Streaming};
use vk_provider_sdk::pb::Capability;

use crate::client::status_text;

/// One thing that happened on a stream.
#[derive(Debug)]
pub(crate) enum Recv<T> {
    /// The call returned response headers: the stream is open.
    Opened,
    /// A message arrived.
    Msg(T),
    /// The stream ended with status OK.
    End,
    /// The call or the stream failed with this status.
    Status(Status),
}

/// A streaming call running in the background; see the module documentation.
pub(crate) struct Pump<T> {
    rpc: &'static str,
    capability: Option<Capability>,
    rx: mpsc::UnboundedReceiver<Recv<T>>,
    task: JoinHandle<()>,
}

impl<T> Drop for Pump<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Send + 'static> Pump<T> {
    /// Starts `open` (a streaming call) in the background.
    pub(crate) fn spawn<F>(rpc: &'static str, capability: Option<Capability>, open: F) -> Self
    where
        F: Future<Output = Result<tonic::Response<Streaming<T>>, Status>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = match open.await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = tx.send(Recv::Status(status));
                    return;
                }
            };
            if tx.send(Recv::Opened).is_err() {
                return;
            }
            loop {
                let event = match stream.message().await {
                    Ok(Some(m)) => Recv::Msg(m),
                    Ok(None) => Recv::End,
                    Err(status) => Recv::Status(status),
                };
                let terminal = !matches!(event, Recv::Msg(_));
                if tx.send(event).is_err() || terminal {
                    return;
                }
            }
        });
        Self {
            rpc,
            capability,
            rx,
            task,
        }
    }
}

impl<T> Pump<T> {
    /// The next event, or `None` if nothing happened before `until`. After the stream's terminal
    /// event (`End` or `Status`) every further call returns `End`.
    pub(crate) async fn next(&mut self, until: Instant) -> Option<Recv<T>> {
        match tokio::time::timeout_at(until, self.rx.recv()).await {
            Err(_) => None,
            Ok(Some(event)) => Some(event),
            Ok(None) => Some(Recv::End),
        }
    }

    /// The next event that is not [`Recv::Opened`], or `None` at the deadline. Returns whether
    /// the stream was seen open (headers or a message) along the way via `opened`.
    pub(crate) async fn next_data(&mut self, until: Instant, opened: &mut bool) -> Option<Recv<T>> {
        loop {
            match self.next(until).await {
                Some(Recv::Opened) => *opened = true,
                Some(Recv::Msg(m)) => {
                    *opened = true;
                    return Some(Recv::Msg(m));
                }
                other => return other,
            }
        }
    }

    /// Describes a status received on this stream, naming the RPC (and the declared capability
    /// when the status is UNIMPLEMENTED).
    pub(crate) fn describe(&self, status: &Status) -> String {
        status_text(self.rpc, self.capability, status)
    }

    /// The RPC this pump runs.
    pub(crate) fn rpc(&self) -> &'static str {
        self.rpc
    }
}
