//! Why a session ended ([`SessionError`], with the GOAWAY status it maps to) and why an
//! operation on a stream failed ([`StreamError`], convertible to `io::Error` for the
//! `AsyncRead`/`AsyncWrite` impls).

use std::io;
use std::time::Duration;

use crate::flow::FlowError;
use crate::frame::{FrameError, GoAwayStatus, RstStatus};
use crate::headers::HeaderError;

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
    pub(crate) fn io(e: io::Error) -> Self {
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    pub(crate) fn goaway_status(&self) -> GoAwayStatus {
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
