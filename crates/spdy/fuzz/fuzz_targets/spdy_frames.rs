//! Arbitrary bytes into the incremental frame decoder and the header-block decoders. Nothing
//! may panic; whatever decodes must re-encode to something that decodes the same.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vk_spdy::frame::{Frame, FrameDecoder};
use vk_spdy::headers::{HeaderBlock, HeaderDecompressor};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };

    // Frames, fed in chunks of 1..=16 bytes as they would arrive from a socket, with every
    // header block going through one shared decompressor as in a session.
    let decoder = FrameDecoder::new(1 << 16, 1 << 16);
    let mut headers = HeaderDecompressor::new(1 << 16);
    let chunk = usize::from(mode % 16) + 1;
    let mut buf = BytesMut::new();
    'feed: for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let block = match &frame {
                        Frame::SynStream(f) => Some(f.header_block.clone()),
                        Frame::SynReply(f) => Some(f.header_block.clone()),
                        Frame::Headers(f) => Some(f.header_block.clone()),
                        _ => None,
                    };
                    if let Some(block) = block {
                        let _ = headers.decompress(&block);
                    }
                    // Round trip: a decoded frame encodes and decodes to itself.
                    let mut wire = BytesMut::new();
                    if frame.encode(&mut wire).is_ok() {
                        let again = decoder.decode(&mut wire);
                        assert_eq!(again, Ok(Some(frame)));
                        assert!(wire.is_empty());
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }

    // Header blocks: compressed (fresh context) and uncompressed.
    let _ = HeaderDecompressor::new(1 << 16).decompress(input);
    if let Ok(block) = HeaderBlock::decode_uncompressed(input) {
        match block.encode_uncompressed() {
            Ok(raw) => assert_eq!(HeaderBlock::decode_uncompressed(&raw), Ok(block)),
            Err(e) => panic!("a decoded block must encode again: {e}"),
        }
    }
});
