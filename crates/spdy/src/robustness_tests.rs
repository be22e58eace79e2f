//! Property-style robustness tests on stable Rust: thousands of pseudo-random and mutated
//! inputs go through the decoders, which must return errors, never panic. The cargo-fuzz
//! target in `vk-host/fuzz` explores the same entry points with coverage guidance.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::frame::{
    Data, Frame, FrameDecoder, GoAway, GoAwayStatus, Headers, Ping, RstStatus, RstStream, Setting,
    Settings, SynReply, SynStream, WindowUpdate,
};
use super::headers::{HeaderBlock, HeaderCompressor, HeaderDecompressor};
use crate::{Session, SessionConfig};

/// xorshift64*: deterministic, dependency-free pseudo-random numbers.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Decodes everything in `input` the way the session does; the result does not matter.
fn decode_all(input: &[u8], headers: &mut HeaderDecompressor) {
    let decoder = FrameDecoder::new(1 << 16, 1 << 16);
    let mut buf = BytesMut::from(input);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let block = match &frame {
            Frame::SynStream(f) => Some(&f.header_block),
            Frame::SynReply(f) => Some(&f.header_block),
            Frame::Headers(f) => Some(&f.header_block),
            _ => None,
        };
        if let Some(block) = block {
            let _ = headers.decompress(block);
        }
    }
}

/// A valid client byte stream exercising every frame type and shared header compression.
fn valid_stream() -> Vec<u8> {
    let mut tx = HeaderCompressor::new().expect("compressor");
    let mut block = |pairs: &[(&str, &str)]| {
        let mut b = HeaderBlock::new();
        for (n, v) in pairs {
            b.insert(n, v).expect("header");
        }
        tx.compress(&b).expect("compress")
    };
    let frames = vec![
        Frame::Settings(Settings {
            clear_settings: false,
            entries: vec![Setting {
                flags: 0,
                id: 7,
                value: 1 << 20,
            }],
        }),
        Frame::SynStream(SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block: block(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        }),
        Frame::SynStream(SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block: block(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
        }),
        Frame::Data(Data {
            stream_id: 3,
            fin: false,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        }),
        Frame::Ping(Ping { id: 1 }),
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: 1000,
        }),
        Frame::Headers(Headers {
            stream_id: 3,
            fin: false,
            header_block: block(&[("x", "y")]),
        }),
        Frame::SynReply(SynReply {
            stream_id: 5,
            fin: false,
            header_block: block(&[]),
        }),
        Frame::Data(Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        }),
        Frame::RstStream(RstStream {
            stream_id: 3,
            status: RstStatus::CANCEL,
        }),
        Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK,
        }),
    ];
    let mut out = BytesMut::new();
    for f in &frames {
        f.encode(&mut out).expect("encode");
    }
    out.to_vec()
}

#[test]
fn random_bytes_never_make_the_frame_decoder_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let mut input = rng.bytes(256);
        // Half of the inputs start with a plausible control header to get past the first
        // checks more often.
        if rng.below(2) == 0 && input.len() >= 4 {
            input[0] = 0x80;
            input[1] = 3;
            input[2] = 0;
            input[3] = (rng.below(11)) as u8;
        }
        decode_all(&input, &mut HeaderDecompressor::default());
    }
}

#[test]
fn random_bytes_never_make_the_header_decoders_panic() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let mut shared = HeaderDecompressor::new(4096);
    for _ in 0..5_000 {
        let input = rng.bytes(512);
        let _ = HeaderBlock::decode_uncompressed(&input);
        let _ = HeaderDecompressor::new(4096).decompress(&input);
        // The shared context is poisoned by the first bad block; it must keep returning
        // errors rather than panic.
        let _ = shared.decompress(&input);
    }
}

#[test]
fn random_uncompressed_blocks_with_plausible_structure_never_panic() {
    let mut rng = XorShift(42);
    for _ in 0..5_000 {
        let mut raw = Vec::new();
        let count = rng.below(5) as u32;
        raw.extend_from_slice(&count.to_be_bytes());
        for _ in 0..count + rng.below(2) as u32 {
            let name = rng.bytes(8);
            let name_len = if rng.below(4) == 0 {
                rng.next() as u32
            } else {
                name.len() as u32
            };
            raw.extend_from_slice(&name_len.to_be_bytes());
            raw.extend_from_slice(&name);
            let value = rng.bytes(8);
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(&value);
        }
        let _ = HeaderBlock::decode_uncompressed(&raw);
        // Whatever is accepted must survive a round trip.
        if let Ok(block) = HeaderBlock::decode_uncompressed(&raw) {
            let again = block.encode_uncompressed().expect("encode");
            assert_eq!(HeaderBlock::decode_uncompressed(&again), Ok(block));
        }
    }
}

#[test]
fn mutated_valid_streams_never_make_the_decoders_panic() {
    let valid = valid_stream();
    let mut rng = XorShift(7);
    for _ in 0..3_000 {
        let mut input = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(input.len());
            match rng.below(3) {
                0 => input[i] ^= 1 << rng.below(8),
                1 => input[i] = rng.next() as u8,
                _ => input.truncate(i),
            }
            if input.is_empty() {
                break;
            }
        }
        decode_all(&input, &mut HeaderDecompressor::default());
    }
}

#[test]
fn a_valid_stream_decodes_the_same_however_it_is_split() {
    let valid = valid_stream();
    let decoder = FrameDecoder::default();
    let whole: Vec<Frame> = {
        let mut buf = BytesMut::from(&valid[..]);
        std::iter::from_fn(|| decoder.decode(&mut buf).expect("valid")).collect()
    };
    assert_eq!(whole.len(), 11);
    let mut rng = XorShift(99);
    for _ in 0..500 {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut rest = &valid[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(40));
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(f) = decoder.decode(&mut buf).expect("valid") {
                frames.push(f);
            }
        }
        assert_eq!(frames, whole);
    }
}

#[tokio::test]
async fn a_session_fed_random_bytes_always_shuts_down_cleanly() {
    let valid = valid_stream();
    let mut rng = XorShift(2024);
    for round in 0..200 {
        let (server_io, mut client_io) = tokio::io::duplex(1 << 16);
        let mut session = Session::new(server_io, SessionConfig::default());
        let input = if round % 2 == 0 {
            rng.bytes(300)
        } else {
            let mut v = valid.clone();
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
            v
        };
        // The client may be cut off by a GOAWAY; write errors do not matter.
        let _ = client_io.write_all(&input).await;
        let _ = client_io.shutdown().await;
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client_io, &mut sink).await;
        });
        while let Ok(Some(incoming)) =
            tokio::time::timeout(Duration::from_secs(5), session.accept()).await
        {
            // Accept some, refuse some.
            if incoming.id() % 4 == 1 {
                drop(incoming.reply());
            }
        }
        // A panic in the reader or writer task would leave this pending forever.
        tokio::time::timeout(Duration::from_secs(5), session.closed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the session did not shut down"));
        drain.await.expect("drain");
    }
}
