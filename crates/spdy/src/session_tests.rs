//! Session tests over `tokio::io::duplex`, driven by a small SPDY client written with the
//! same codec.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::timeout;

use super::frame::{
    Data, Frame, GoAway, GoAwayStatus, Headers, Ping, RstStatus, RstStream,
    SETTINGS_INITIAL_WINDOW_SIZE, Setting, Settings, SynStream, UnknownControl, WindowUpdate,
    decode,
};
use super::headers::{HeaderBlock, HeaderCompressor, HeaderDecompressor};
use crate::{
    FlowControl, IncomingStream, Session, SessionConfig, SessionError, Stream, StreamError,
};

const STEP: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// The client side of a test connection.
struct Client {
    io: DuplexStream,
    buf: BytesMut,
    tx: HeaderCompressor,
    rx: HeaderDecompressor,
    next_id: u32,
}

impl Client {
    async fn write(&mut self, frame: Frame) {
        let bytes = frame.to_bytes().expect("encode");
        self.io.write_all(&bytes).await.expect("write");
    }

    fn block(&mut self, headers: &[(&str, &str)]) -> Bytes {
        let mut block = HeaderBlock::new();
        for (name, value) in headers {
            block.insert(name, value).expect("header");
        }
        self.tx.compress(&block).expect("compress")
    }

    async fn open_with(&mut self, headers: &[(&str, &str)], fin: bool) -> u32 {
        let stream_id = self.next_id;
        self.next_id += 2;
        let header_block = self.block(headers);
        self.write(Frame::SynStream(SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin,
            unidirectional: false,
            header_block,
        }))
        .await;
        stream_id
    }

    async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        self.open_with(headers, false).await
    }

    async fn data(&mut self, stream_id: u32, data: &[u8], fin: bool) {
        self.write(Frame::Data(Data {
            stream_id,
            fin,
            data: Bytes::copy_from_slice(data),
        }))
        .await;
    }

    /// The next frame, or `None` once the server closed the connection.
    async fn try_next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = decode(&mut self.buf).expect("the server writes valid frames") {
                return Some(frame);
            }
            let n = timeout(STEP, self.io.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for a frame")
                .unwrap_or(0);
            if n == 0 {
                assert!(self.buf.is_empty(), "connection closed mid-frame");
                return None;
            }
        }
    }

    /// The next frame if one arrives within `QUIET`.
    async fn next_within_quiet(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = decode(&mut self.buf).expect("valid frames") {
                return Some(frame);
            }
            match timeout(QUIET, self.io.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn next(&mut self) -> Frame {
        self.try_next().await.expect("connection closed")
    }

    /// The next frame that is not a WINDOW_UPDATE.
    async fn next_significant(&mut self) -> Frame {
        loop {
            match self.next().await {
                Frame::WindowUpdate(_) => continue,
                other => return other,
            }
        }
    }

    async fn expect_reply(&mut self, stream_id: u32) {
        match self.next_significant().await {
            Frame::SynReply(reply) => {
                assert_eq!(reply.stream_id, stream_id);
                assert!(!reply.fin, "SYN_REPLY must not carry FIN");
                let headers = self
                    .rx
                    .decompress(&reply.header_block)
                    .expect("reply block");
                assert!(headers.is_empty(), "the kubelet replies with no headers");
            }
            other => panic!("expected SYN_REPLY for {stream_id}, got {other:?}"),
        }
    }

    async fn expect_rst(&mut self, stream_id: u32, status: RstStatus) {
        match self.next_significant().await {
            Frame::RstStream(rst) => assert_eq!(rst, RstStream { stream_id, status }),
            other => panic!("expected RST_STREAM {status} for {stream_id}, got {other:?}"),
        }
    }

    /// Collects the DATA of one stream until its FIN, skipping WINDOW_UPDATEs.
    async fn read_stream(&mut self, stream_id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            match self.next_significant().await {
                Frame::Data(d) if d.stream_id == stream_id => {
                    out.extend_from_slice(&d.data);
                    if d.fin {
                        return out;
                    }
                }
                other => panic!("unexpected frame while reading {stream_id}: {other:?}"),
            }
        }
    }

    /// All frames until the server closes the connection.
    async fn drain_to_eof(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.try_next().await {
            frames.push(frame);
        }
        frames
    }
}

fn setup(config: SessionConfig) -> (Session, Client) {
    let (server_io, client_io) = duplex(1 << 20);
    let session = Session::new(server_io, config);
    let client = Client {
        io: client_io,
        buf: BytesMut::new(),
        tx: HeaderCompressor::new().expect("compressor"),
        rx: HeaderDecompressor::default(),
        next_id: 1,
    };
    (session, client)
}

async fn accept(session: &mut Session) -> IncomingStream {
    timeout(STEP, session.accept())
        .await
        .expect("timed out waiting for a stream")
        .expect("the session ended")
}

async fn open_and_reply(session: &mut Session, client: &mut Client) -> (u32, Stream) {
    let id = client.open(&[("streamType", "data")]).await;
    let stream = accept(session).await.reply().expect("reply");
    client.expect_reply(id).await;
    (id, stream)
}

fn strict() -> SessionConfig {
    SessionConfig {
        flow_control: FlowControl::Strict,
        ..SessionConfig::default()
    }
}

#[tokio::test]
async fn a_client_stream_is_accepted_with_its_headers_and_answered_with_an_empty_syn_reply() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let id = client
        .open(&[
            ("streamType", "error"),
            ("port", "8080"),
            ("requestID", "0"),
        ])
        .await;
    let incoming = accept(&mut session).await;
    assert_eq!(incoming.id(), id);
    assert_eq!(incoming.headers().get("streamtype"), Some("error"));
    assert_eq!(incoming.headers().get("Port"), Some("8080"));
    assert_eq!(incoming.headers().get("requestid"), Some("0"));
    assert!(!incoming.is_remote_closed());
    let stream = incoming.reply().expect("reply");
    assert_eq!(stream.id(), id);
    assert_eq!(stream.headers().get("streamType"), Some("error"));
    client.expect_reply(id).await;
}

#[tokio::test]
async fn data_flows_both_ways_and_fin_half_closes_each_direction() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, b"hello ", false).await;
    client.data(id, b"world", true).await;
    let mut got = Vec::new();
    while let Some(chunk) = stream.recv().await.expect("recv") {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"hello world");
    // The client's side is closed; ours is still open.
    stream
        .send(Bytes::from_static(b"HELLO WORLD"))
        .await
        .expect("send");
    stream.close().expect("close");
    stream.close().expect("closing twice is harmless");
    assert_eq!(client.read_stream(id).await, b"HELLO WORLD");
    assert_eq!(
        stream.send(Bytes::from_static(b"late")).await,
        Err(StreamError::SendClosed)
    );
}

#[tokio::test]
async fn the_syn_reply_precedes_data_sent_right_after_accepting() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let ids = [
        client.open(&[("streamType", "stdout")]).await,
        client.open(&[("streamType", "stderr")]).await,
    ];
    let mut streams = Vec::new();
    for expected in ids {
        let mut stream = accept(&mut session).await.reply().expect("reply");
        assert_eq!(stream.id(), expected);
        stream.send(Bytes::from_static(b"out")).await.expect("send");
        stream.close().expect("close");
        streams.push(stream);
    }
    for id in ids {
        client.expect_reply(id).await;
        assert_eq!(client.read_stream(id).await, b"out");
    }
}

#[tokio::test]
async fn a_syn_stream_with_fin_yields_a_stream_that_is_already_at_end_of_input() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let id = client.open_with(&[("streamType", "error")], true).await;
    let incoming = accept(&mut session).await;
    assert!(incoming.is_remote_closed());
    let mut stream = incoming.reply().expect("reply");
    client.expect_reply(id).await;
    assert_eq!(stream.recv().await, Ok(None));
    stream
        .send(Bytes::from_static(b"status"))
        .await
        .expect("send");
    stream.close().expect("close");
    assert_eq!(client.read_stream(id).await, b"status");
}

#[tokio::test]
async fn client_pings_are_echoed_with_the_same_id() {
    let (_session, mut client) = setup(SessionConfig::default());
    for id in [1, 3, 0xffff_ffff] {
        client.write(Frame::Ping(Ping { id })).await;
        assert_eq!(client.next().await, Frame::Ping(Ping { id }));
    }
    // An even id the server did not send is ignored.
    client.write(Frame::Ping(Ping { id: 4 })).await;
    assert_eq!(client.next_within_quiet().await, None);
}

#[tokio::test]
async fn a_server_ping_uses_an_even_id_and_completes_when_echoed() {
    let (session, mut client) = setup(SessionConfig::default());
    let handle = session.handle();
    let ping = tokio::spawn(async move { handle.ping().await });
    let Frame::Ping(Ping { id }) = client.next().await else {
        panic!("expected a PING");
    };
    assert_eq!(id % 2, 0, "server ping ids are even");
    client.write(Frame::Ping(Ping { id })).await;
    let rtt = timeout(STEP, ping)
        .await
        .expect("ping timed out")
        .expect("join")
        .expect("ping answered");
    assert!(rtt < STEP);
}

#[tokio::test]
async fn a_reset_from_the_client_fails_reads_and_writes_of_the_stream() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, b"discarded", false).await;
    client
        .write(Frame::RstStream(RstStream {
            stream_id: id,
            status: RstStatus::CANCEL,
        }))
        .await;
    let err = timeout(STEP, stream.recv()).await.expect("recv");
    assert_eq!(err, Err(StreamError::ResetByPeer(RstStatus::CANCEL)));
    assert_eq!(
        stream.send(Bytes::from_static(b"x")).await,
        Err(StreamError::ResetByPeer(RstStatus::CANCEL))
    );
    assert_eq!(
        stream.close(),
        Err(StreamError::ResetByPeer(RstStatus::CANCEL))
    );
    // No RST in answer to a RST.
    drop(stream);
    assert!(matches!(
        client.next_within_quiet().await,
        None | Some(Frame::WindowUpdate(_))
    ));
}

#[tokio::test]
async fn resetting_a_stream_sends_rst_stream_with_the_given_status() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    stream.reset(RstStatus::INTERNAL_ERROR);
    client.expect_rst(id, RstStatus::INTERNAL_ERROR).await;
    assert_eq!(
        stream.recv().await,
        Err(StreamError::ResetLocally(RstStatus::INTERNAL_ERROR))
    );
    // Further client data for the reset stream is dropped silently.
    client.data(id, b"in flight", false).await;
    drop(stream);
    assert!(matches!(
        client.next_within_quiet().await,
        None | Some(Frame::WindowUpdate(_))
    ));
}

#[tokio::test]
async fn a_rejected_stream_gets_rst_stream_and_the_session_goes_on() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let id = client.open(&[("streamType", "data")]).await;
    let incoming = accept(&mut session).await;
    assert_eq!(incoming.headers().get("port"), None);
    incoming.reject(RstStatus::CANCEL);
    client.expect_rst(id, RstStatus::CANCEL).await;
    let (next, _stream) = open_and_reply(&mut session, &mut client).await;
    assert_eq!(next, id + 2);
}

#[tokio::test]
async fn dropping_an_unanswered_incoming_stream_refuses_it() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let id = client.open(&[("streamType", "data")]).await;
    drop(accept(&mut session).await);
    client.expect_rst(id, RstStatus::REFUSED_STREAM).await;
}

#[tokio::test]
async fn dropping_a_stream_that_was_not_closed_resets_it_with_cancel() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, stream) = open_and_reply(&mut session, &mut client).await;
    drop(stream);
    client.expect_rst(id, RstStatus::CANCEL).await;

    // After close(), dropping only stops reading: no reset.
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    stream.close().expect("close");
    drop(stream);
    match client.next_significant().await {
        Frame::Data(d) => assert!(d.stream_id == id && d.fin && d.data.is_empty()),
        other => panic!("expected the FIN, got {other:?}"),
    }
    client.data(id, b"ignored", true).await;
    assert!(matches!(
        client.next_within_quiet().await,
        None | Some(Frame::WindowUpdate(_))
    ));
}

#[tokio::test]
async fn closing_the_session_sends_goaway_with_the_last_stream_id_and_ends_the_connection() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (_, mut first) = open_and_reply(&mut session, &mut client).await;
    let (last, _second) = open_and_reply(&mut session, &mut client).await;
    first
        .send(Bytes::from_static(b"queued before close"))
        .await
        .expect("send");
    first.close().expect("close");
    timeout(STEP, session.close())
        .await
        .expect("close finishes");
    let frames = client.drain_to_eof().await;
    let significant: Vec<&Frame> = frames
        .iter()
        .filter(|f| !matches!(f, Frame::WindowUpdate(_)))
        .collect();
    assert_eq!(significant.len(), 3, "{frames:?}");
    assert!(matches!(significant[0], Frame::Data(d) if &d.data[..] == b"queued before close"));
    assert!(matches!(significant[1], Frame::Data(d) if d.fin));
    assert_eq!(
        significant[2],
        &Frame::GoAway(GoAway {
            last_good_stream_id: last,
            status: GoAwayStatus::OK
        }),
        "GOAWAY is the last frame"
    );
    assert_eq!(session.accept().await.map(|s| s.id()), None);
    assert!(session.handle().is_closed());
    assert_eq!(session.handle().error(), None);
}

#[tokio::test]
async fn a_client_goaway_ends_accept_but_open_streams_keep_working() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client
        .write(Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK,
        }))
        .await;
    assert!(
        timeout(STEP, session.accept())
            .await
            .expect("accept")
            .is_none()
    );
    assert!(session.handle().peer_went_away());
    client.data(id, b"still here", true).await;
    assert_eq!(
        stream.recv().await.expect("recv").as_deref(),
        Some(&b"still here"[..])
    );
    stream.send(Bytes::from_static(b"bye")).await.expect("send");
    stream.close().expect("close");
    assert_eq!(client.read_stream(id).await, b"bye");
}

#[tokio::test]
async fn when_the_connection_closes_accept_returns_none_and_streams_fail() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, b"last words", false).await;
    drop(client);
    assert!(
        timeout(STEP, session.accept())
            .await
            .expect("accept")
            .is_none()
    );
    // Data received before the close is still delivered, then the stream fails.
    assert_eq!(
        stream.recv().await.expect("recv").as_deref(),
        Some(&b"last words"[..])
    );
    assert_eq!(stream.recv().await, Err(StreamError::SessionClosed));
    assert_eq!(
        stream.send(Bytes::from_static(b"x")).await,
        Err(StreamError::SessionClosed)
    );
    timeout(STEP, session.closed()).await.expect("session ends");
}

#[tokio::test]
async fn dropping_the_session_and_every_stream_closes_the_connection() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, stream) = open_and_reply(&mut session, &mut client).await;
    drop(session);
    // The stream keeps the session alive.
    client.data(id, b"ping", false).await;
    assert!(matches!(
        client.next_within_quiet().await,
        None | Some(Frame::WindowUpdate(_))
    ));
    drop(stream);
    let frames = client.drain_to_eof().await;
    assert!(matches!(
        frames.last(),
        Some(Frame::GoAway(GoAway {
            status: GoAwayStatus::OK,
            ..
        }))
    ));
}

#[tokio::test]
async fn consumed_data_is_announced_with_window_updates_for_stream_and_session() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, &[7; 20_000], false).await;
    let chunk = stream.recv().await.expect("recv").expect("data");
    assert_eq!(chunk.len(), 20_000);
    assert_eq!(
        client.next_within_quiet().await,
        None,
        "below half a window"
    );
    client.data(id, &[7; 20_000], false).await;
    assert_eq!(
        stream.recv().await.expect("recv").map(|c| c.len()),
        Some(20_000)
    );
    let mut updates = vec![client.next().await, client.next().await];
    updates.sort_by_key(|f| match f {
        Frame::WindowUpdate(w) => w.stream_id,
        _ => u32::MAX,
    });
    assert_eq!(
        updates,
        vec![
            Frame::WindowUpdate(WindowUpdate {
                stream_id: 0,
                delta: 40_000
            }),
            Frame::WindowUpdate(WindowUpdate {
                stream_id: id,
                delta: 40_000
            }),
        ]
    );
}

#[tokio::test]
async fn lenient_flow_control_keeps_sending_past_a_window_the_peer_never_replenishes() {
    // Go's spdystream never sends WINDOW_UPDATE.
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    let payload = Bytes::from(vec![0x5a; 300 * 1024]);
    let sender = tokio::spawn(async move {
        stream.send(payload).await.expect("send");
        stream.close().expect("close");
        stream
    });
    let received = client.read_stream(id).await;
    assert_eq!(received.len(), 300 * 1024);
    let _stream = sender.await.expect("join");
}

#[tokio::test]
async fn lenient_flow_control_accepts_data_beyond_our_window() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    for _ in 0..5 {
        client.data(id, &[1; 50_000], false).await;
    }
    client.data(id, &[], true).await;
    let mut total = 0;
    while let Some(chunk) = stream.recv().await.expect("recv") {
        total += chunk.len();
    }
    assert_eq!(total, 250_000);
}

#[tokio::test]
async fn strict_flow_control_waits_for_window_updates() {
    let (mut session, mut client) = setup(strict());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    let sender = tokio::spawn(async move {
        stream
            .send(Bytes::from(vec![1; 100 * 1024]))
            .await
            .expect("send");
        stream.close().expect("close");
        stream
    });
    let mut received = 0;
    while received < 65_536 {
        match client.next().await {
            Frame::Data(d) => received += d.data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, 65_536, "exactly one initial window");
    assert_eq!(
        client.next_within_quiet().await,
        None,
        "then the sender waits"
    );
    // Opening only the stream window is not enough: the session window is empty too.
    client
        .write(Frame::WindowUpdate(WindowUpdate {
            stream_id: id,
            delta: 50_000,
        }))
        .await;
    assert_eq!(client.next_within_quiet().await, None);
    client
        .write(Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: 50_000,
        }))
        .await;
    let rest = client.read_stream(id).await;
    assert_eq!(received + rest.len(), 100 * 1024);
    let _stream = sender.await.expect("join");
}

#[tokio::test]
async fn a_settings_initial_window_change_applies_to_open_streams() {
    let (mut session, mut client) = setup(strict());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    client
        .write(Frame::Settings(Settings {
            clear_settings: false,
            entries: vec![Setting {
                flags: 0,
                id: SETTINGS_INITIAL_WINDOW_SIZE,
                value: 16_384,
            }],
        }))
        .await;
    // Let the SETTINGS land before sending.
    client.write(Frame::Ping(Ping { id: 1 })).await;
    assert_eq!(client.next().await, Frame::Ping(Ping { id: 1 }));
    let sender = tokio::spawn(async move {
        stream
            .send(Bytes::from(vec![2; 40_000]))
            .await
            .expect("send");
        stream
    });
    let mut received = 0;
    while received < 16_384 {
        match client.next().await {
            Frame::Data(d) => received += d.data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, 16_384);
    assert_eq!(
        client.next_within_quiet().await,
        None,
        "then the sender waits"
    );
    client
        .write(Frame::WindowUpdate(WindowUpdate {
            stream_id: id,
            delta: 30_000,
        }))
        .await;
    while received < 40_000 {
        match client.next().await {
            Frame::Data(d) => received += d.data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let _stream = timeout(STEP, sender).await.expect("sent").expect("join");
}

#[tokio::test]
async fn strict_flow_control_ends_the_session_when_the_peer_overruns_the_session_window() {
    let (mut session, mut client) = setup(strict());
    let (id, _stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, &[0; 60_000], false).await;
    client.data(id, &[0; 10_000], false).await;
    let frames = client.drain_to_eof().await;
    assert!(matches!(
        frames.last(),
        Some(Frame::GoAway(GoAway {
            status: GoAwayStatus::PROTOCOL_ERROR,
            ..
        }))
    ));
    assert!(matches!(
        session.handle().error(),
        Some(SessionError::FlowControl(_))
    ));
}

#[tokio::test]
async fn data_for_a_stream_that_was_never_opened_is_answered_with_invalid_stream() {
    let (_session, mut client) = setup(SessionConfig::default());
    client.data(9, b"who?", false).await;
    client.expect_rst(9, RstStatus::INVALID_STREAM).await;
}

#[tokio::test]
async fn data_after_the_clients_fin_is_answered_with_stream_already_closed() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, _stream) = open_and_reply(&mut session, &mut client).await;
    client.data(id, b"done", true).await;
    client.data(id, b"more", false).await;
    client
        .expect_rst(id, RstStatus::STREAM_ALREADY_CLOSED)
        .await;
}

#[tokio::test]
async fn a_headers_frame_with_fin_half_closes_the_stream() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    let header_block = client.block(&[("trailer", "x")]);
    client
        .write(Frame::Headers(Headers {
            stream_id: id,
            fin: true,
            header_block,
        }))
        .await;
    assert_eq!(timeout(STEP, stream.recv()).await.expect("recv"), Ok(None));
    // The zlib contexts are still in step: the next stream's headers decode.
    let next = client.open(&[("streamType", "error")]).await;
    let incoming = accept(&mut session).await;
    assert_eq!(incoming.id(), next);
    assert_eq!(incoming.headers().get("streamtype"), Some("error"));
}

#[tokio::test]
async fn a_malformed_frame_ends_the_session_with_a_protocol_error_goaway() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    // PING with a 5-byte length.
    client
        .io
        .write_all(&[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0])
        .await
        .expect("write");
    let frames = client.drain_to_eof().await;
    assert_eq!(
        frames.last(),
        Some(&Frame::GoAway(GoAway {
            last_good_stream_id: id,
            status: GoAwayStatus::PROTOCOL_ERROR
        }))
    );
    assert!(matches!(
        session.handle().error(),
        Some(SessionError::Frame(_))
    ));
    assert_eq!(stream.recv().await, Err(StreamError::SessionClosed));
    assert!(session.accept().await.is_none());
}

#[tokio::test]
async fn decreasing_stream_ids_end_the_session_with_a_protocol_error() {
    let (mut session, mut client) = setup(SessionConfig::default());
    client.next_id = 5;
    let (_, _stream) = open_and_reply(&mut session, &mut client).await;
    client.next_id = 3;
    client.open(&[("streamType", "data")]).await;
    let frames = client.drain_to_eof().await;
    assert!(matches!(
        frames.last(),
        Some(Frame::GoAway(GoAway {
            last_good_stream_id: 5,
            status: GoAwayStatus::PROTOCOL_ERROR
        }))
    ));
    assert!(matches!(
        session.handle().error(),
        Some(SessionError::Protocol(_))
    ));
}

#[tokio::test]
async fn a_stream_with_invalid_headers_is_refused_but_the_session_continues() {
    let (mut session, mut client) = setup(SessionConfig::default());
    // A hand-driven compressor, since the codec refuses to build an uppercase name.
    let mut zlib = flate2::Compress::new(flate2::Compression::default(), true);
    zlib.set_dictionary(super::headers::SPDY3_DICTIONARY)
        .expect("dictionary");
    let mut compress = |raw: &[u8]| {
        let mut block = Vec::with_capacity(raw.len() + 256);
        zlib.compress_vec(raw, &mut block, flate2::FlushCompress::Sync)
            .expect("compress");
        Bytes::from(block)
    };
    let syn = |stream_id: u32, header_block: Bytes| {
        Frame::SynStream(SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block,
        })
    };
    // An uppercase name is a stream error, not a session error...
    let bad = compress(b"\x00\x00\x00\x01\x00\x00\x00\x04Port\x00\x00\x00\x0280");
    client.write(syn(1, bad)).await;
    client.expect_rst(1, RstStatus::PROTOCOL_ERROR).await;
    // ...and the shared zlib context stays in step for the next stream.
    let good = compress(b"\x00\x00\x00\x01\x00\x00\x00\x04port\x00\x00\x00\x0280");
    client.write(syn(3, good)).await;
    let incoming = accept(&mut session).await;
    assert_eq!(incoming.id(), 3);
    assert_eq!(incoming.headers().get("port"), Some("80"));
    assert_eq!(session.handle().error(), None);
}

#[tokio::test]
async fn even_stream_ids_from_the_client_are_refused() {
    let (_session, mut client) = setup(SessionConfig::default());
    client.next_id = 2;
    client.open(&[("streamType", "data")]).await;
    client.expect_rst(2, RstStatus::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn streams_beyond_the_concurrency_limit_are_refused() {
    let (mut session, mut client) = setup(SessionConfig {
        max_concurrent_streams: 2,
        ..SessionConfig::default()
    });
    let (_, _a) = open_and_reply(&mut session, &mut client).await;
    let (_, _b) = open_and_reply(&mut session, &mut client).await;
    let id = client.open(&[("streamType", "data")]).await;
    client.expect_rst(id, RstStatus::REFUSED_STREAM).await;
}

#[tokio::test]
async fn unknown_control_frames_are_ignored() {
    let (_session, mut client) = setup(SessionConfig::default());
    client
        .write(Frame::Unknown(UnknownControl {
            frame_type: 10,
            flags: 0,
            payload: Bytes::from_static(b"credential"),
        }))
        .await;
    client.write(Frame::Ping(Ping { id: 7 })).await;
    assert_eq!(client.next().await, Frame::Ping(Ping { id: 7 }));
}

#[tokio::test]
async fn large_sends_are_cut_into_frames_of_the_configured_size() {
    let (mut session, mut client) = setup(SessionConfig {
        max_send_frame: 1000,
        ..SessionConfig::default()
    });
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    stream.send(Bytes::from(vec![3; 2500])).await.expect("send");
    stream.close().expect("close");
    let mut sizes = Vec::new();
    loop {
        match client.next_significant().await {
            Frame::Data(d) => {
                assert_eq!(d.stream_id, id);
                sizes.push(d.data.len());
                if d.fin {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sizes, [1000, 1000, 500, 0]);
}

#[tokio::test]
async fn streams_work_as_async_read_and_async_write() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let id = client.open(&[("streamType", "data")]).await;
    let stream = accept(&mut session).await.reply().expect("reply");
    let echo = tokio::spawn(async move {
        let (mut recv, mut send) = stream.split();
        let copied = tokio::io::copy(&mut recv, &mut send).await.expect("copy");
        send.shutdown().await.expect("shutdown");
        (copied, recv, send)
    });
    client.expect_reply(id).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for chunk in payload.chunks(30_000) {
        client.data(id, chunk, false).await;
    }
    client.data(id, &[], true).await;
    assert_eq!(client.read_stream(id).await, payload);
    let (copied, _recv, _send) = timeout(STEP, echo).await.expect("echo").expect("join");
    assert_eq!(copied, 200_000);
}

#[tokio::test]
async fn many_concurrent_streams_are_multiplexed_independently() {
    let (mut session, mut client) = setup(SessionConfig::default());
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        while let Some(incoming) = session.accept().await {
            let mut stream = incoming.reply().expect("reply");
            tasks.push(tokio::spawn(async move {
                let mut body = Vec::new();
                while let Some(chunk) = stream.recv().await.expect("recv") {
                    body.extend_from_slice(&chunk);
                }
                body.reverse();
                stream.send(Bytes::from(body)).await.expect("send");
                stream.close().expect("close");
                stream
            }));
        }
        let mut streams = Vec::new();
        for task in tasks {
            streams.push(task.await.expect("join"));
        }
        streams
    });
    let mut expected = HashMap::new();
    for i in 0..20u8 {
        let id = client
            .open(&[("streamType", "data"), ("requestID", &i.to_string())])
            .await;
        let body: Vec<u8> = (0..1000)
            .map(|j| i.wrapping_mul(31).wrapping_add(j as u8))
            .collect();
        client.data(id, &body[..500], false).await;
        client.data(id, &body[500..], true).await;
        let mut reversed = body;
        reversed.reverse();
        expected.insert(id, reversed);
    }
    let mut replies = 0;
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut finished = 0;
    while finished < expected.len() {
        match client.next().await {
            Frame::SynReply(r) => {
                client.rx.decompress(&r.header_block).expect("reply block");
                replies += 1;
            }
            Frame::Data(d) => {
                bodies
                    .entry(d.stream_id)
                    .or_default()
                    .extend_from_slice(&d.data);
                if d.fin {
                    finished += 1;
                }
            }
            Frame::WindowUpdate(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(replies, 20);
    assert_eq!(bodies, expected);
    client
        .write(Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK,
        }))
        .await;
    let streams = timeout(STEP, server).await.expect("server").expect("join");
    assert_eq!(streams.len(), 20);
}

#[tokio::test]
async fn a_slow_reader_pauses_the_connection_instead_of_buffering_without_bound() {
    let (mut session, mut client) = setup(SessionConfig {
        stream_recv_buffer: 10_000,
        ..SessionConfig::default()
    });
    let (id, mut stream) = open_and_reply(&mut session, &mut client).await;
    for _ in 0..3 {
        client.data(id, &[9; 8_000], false).await;
    }
    client.write(Frame::Ping(Ping { id: 1 })).await;
    // Two chunks (16 000 bytes > 10 000) are buffered; the reader waits before the third
    // chunk, so the PING is not read yet.
    assert_eq!(client.next_within_quiet().await, None);
    assert_eq!(
        stream.recv().await.expect("recv").map(|c| c.len()),
        Some(8_000)
    );
    // The third chunk is read, which fills the buffer again.
    assert_eq!(client.next_within_quiet().await, None);
    assert_eq!(
        stream.recv().await.expect("recv").map(|c| c.len()),
        Some(8_000)
    );
    // The reader resumed once the stream was drained.
    assert_eq!(client.next_significant().await, Frame::Ping(Ping { id: 1 }));
    assert_eq!(
        stream.recv().await.expect("recv").map(|c| c.len()),
        Some(8_000)
    );
}

#[tokio::test]
async fn an_idle_session_is_closed_after_the_idle_timeout() {
    let (session, mut client) = setup(SessionConfig {
        idle_timeout: Some(Duration::from_millis(400)),
        ..SessionConfig::default()
    });
    // Activity keeps it open.
    for id in [1, 3, 5] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write(Frame::Ping(Ping { id })).await;
        assert_eq!(client.next().await, Frame::Ping(Ping { id }));
    }
    let frames = client.drain_to_eof().await;
    assert_eq!(
        frames,
        vec![Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK
        })]
    );
    assert_eq!(
        session.handle().error(),
        Some(SessionError::IdleTimeout(Duration::from_millis(400)))
    );
}

#[tokio::test]
async fn a_ping_fails_once_the_session_is_closed() {
    let (session, client) = setup(SessionConfig::default());
    drop(client);
    timeout(STEP, session.closed()).await.expect("closed");
    assert_eq!(session.ping().await, Err(SessionError::Closed));
}

#[tokio::test]
async fn streams_opened_with_frames_captured_from_the_go_framer_are_accepted() {
    // Three SYN_STREAMs written by moby/spdystream v0.5.0's framer on one connection
    // (port-forward error and data streams, then an exec stdin stream), sharing one zlib
    // stream.
    const GO_FRAMES: &str = "\
        800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625ac\
        a9a0808614cb45e01c60616061c0c0c0c0590489c64c50f2663400000000ffff\
        800300010000001800000003000000000000c2aa19540e2512d60b000000ffff\
        800300010000001900000005000000000000021198161797a464e601000000ffff";
    let bytes: Vec<u8> = (0..GO_FRAMES.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GO_FRAMES[i..i + 2], 16).expect("hex"))
        .collect();
    let (mut session, mut client) = setup(SessionConfig::default());
    client.io.write_all(&bytes).await.expect("write");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let incoming = accept(&mut session).await;
        seen.push((
            incoming.id(),
            incoming.headers().get("streamType").map(str::to_owned),
            incoming.headers().get("port").map(str::to_owned),
        ));
        drop(incoming.reply().expect("reply"));
    }
    assert_eq!(
        seen,
        [
            (1, Some("error".into()), Some("8080".into())),
            (3, Some("data".into()), Some("8080".into())),
            (5, Some("stdin".into()), None),
        ]
    );
}
