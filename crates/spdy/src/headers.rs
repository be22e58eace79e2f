//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! Uncompressed layout: a 32-bit pair count, then for each pair a 32-bit name length, the
//! name, a 32-bit value length and the value (several values for one name joined by NUL).
//!
//! Every block travels zlib-compressed (RFC 1950) with the SPDY/3 preset dictionary. There is
//! one compression context per direction for the whole connection: [`HeaderCompressor`] for
//! what we send and [`HeaderDecompressor`] for what we receive. Each block ends with a zlib
//! SYNC_FLUSH so that the receiver can decode it from the frame's bytes alone.
//!
//! This file only depends on `bytes`, `flate2` (feature `zlib-rs`, the backend that has
//! `set_dictionary`) and `thiserror` so that the fuzz crate can compile it on its own.

use bytes::{BufMut, Bytes};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY/3 zlib dictionary, transcribed from the `SPDY_dictionary_txt` array of the SPDY
/// draft 3 specification (section 2.6.10.1): length-prefixed header names and methods
/// followed by common values.
pub const SPDY3_DICTIONARY: &[u8] =
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\
    \x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-char\
    set\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-\
    ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\
    \x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10c\
    ontent-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\
    \x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\
    \x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\
    \x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\
    \x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\
    \x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\
    \x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\
    \x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0br\
    etry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\
    \x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04va\
    ry\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\
    \x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\
    \x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\
    \x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin10010120120220520630030230\
    3304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative In\
    formation204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden\
    404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb \
    Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
    chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,te\
    xt/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-\
    8859-1,utf-,*,enq=0.";

/// Adler-32 of [`SPDY3_DICTIONARY`]: the dictionary id carried in the zlib stream header.
pub const SPDY3_DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// Default cap on a decompressed header block.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Header names the Go peer (moby/spdystream) refuses in a SYN_REPLY; `Host` is additionally
/// refused in a SYN_STREAM. Never send them.
pub const FORBIDDEN_REPLY_HEADERS: [&str; 4] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// Why a header block could not be built, compressed or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("zlib compression failed: {0}")]
    Compress(String),
    #[error("zlib decompression failed: {0}")]
    Decompress(String),
    #[error("the header block asks for zlib dictionary {0:#010x}, not the SPDY/3 one")]
    WrongDictionary(u32),
    #[error("the peer ended its zlib stream")]
    StreamEnded,
    #[error("the decompressed header block exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
    #[error("empty header name")]
    EmptyName,
    #[error("header name {0:?} is not lowercase printable US-ASCII")]
    InvalidName(String),
    #[error("duplicate header name {0:?}")]
    DuplicateName(String),
    #[error("header {0:?} has an invalid value")]
    InvalidValue(String),
}

impl HeaderError {
    /// True when the error leaves the connection's compression state unusable (or the block
    /// framing untrustworthy): a session error. The other variants are stream errors: the
    /// block was fully decompressed but its content breaks the rules, so only the stream is
    /// refused (RST_STREAM PROTOCOL_ERROR).
    pub fn is_session_fatal(&self) -> bool {
        matches!(
            self,
            Self::Compress(_)
                | Self::Decompress(_)
                | Self::WrongDictionary(_)
                | Self::StreamEnded
                | Self::TooLarge { .. }
                | Self::Malformed(_)
        )
    }
}

/// An ordered set of header names (lowercase, unique) and values.
///
/// A value may hold several values separated by NUL, as SPDY encodes repeated headers.
/// Lookups are case-insensitive because Go canonicalises names (`Streamtype`) while the wire
/// carries them lowercase (`streamtype`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    entries: Vec<(String, String)>,
}

impl HeaderBlock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header. The name is lowercased; a name already present is an error (use
    /// [`HeaderBlock::append`] for a second value).
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        let name = name.to_ascii_lowercase();
        validate_name(&name)?;
        validate_single_value(&name, value)?;
        if self.position(&name).is_some() {
            return Err(HeaderError::DuplicateName(name));
        }
        self.entries.push((name, value.to_owned()));
        Ok(())
    }

    /// Adds a value to a header, creating it if needed (values are joined with NUL).
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        let name = name.to_ascii_lowercase();
        validate_name(&name)?;
        validate_single_value(&name, value)?;
        match self.position(&name) {
            Some(i) => {
                if value.is_empty() || self.entries[i].1.is_empty() {
                    // An empty value cannot be one of several NUL-separated values.
                    return Err(HeaderError::InvalidValue(name));
                }
                let slot = &mut self.entries[i].1;
                slot.push('\0');
                slot.push_str(value);
            }
            None => self.entries.push((name, value.to_owned())),
        }
        Ok(())
    }

    /// Builder form of [`HeaderBlock::insert`].
    pub fn with(mut self, name: &str, value: &str) -> Result<Self, HeaderError> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// The first value of a header, matched case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_raw(name)
            .map(|v| v.split('\0').next().unwrap_or(v))
    }

    /// All values of a header.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_raw(name).into_iter().flat_map(|v| v.split('\0'))
    }

    /// The value as carried on the wire (NUL-joined when repeated).
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `(name, raw value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, lowercase_name: &str) -> Option<usize> {
        self.entries.iter().position(|(n, _)| n == lowercase_name)
    }

    /// The uncompressed wire form.
    pub fn encode_uncompressed(&self) -> Result<Vec<u8>, HeaderError> {
        let size = self.entries.iter().fold(4usize, |acc, (n, v)| {
            acc.saturating_add(8 + n.len() + v.len())
        });
        let mut out = Vec::with_capacity(size);
        out.put_u32(len32(self.entries.len())?);
        for (name, value) in &self.entries {
            out.put_u32(len32(name.len())?);
            out.put_slice(name.as_bytes());
            out.put_u32(len32(value.len())?);
            out.put_slice(value.as_bytes());
        }
        Ok(out)
    }

    /// Parses an uncompressed block. Structural problems (truncation, trailing bytes) are
    /// [`HeaderError::Malformed`]; rule violations (empty or uppercase names, duplicates, bad
    /// values) have their own variants.
    pub fn decode_uncompressed(mut src: &[u8]) -> Result<Self, HeaderError> {
        let count = take_u32(&mut src)?;
        // Each pair needs at least 8 bytes; refuse counts the input cannot hold before
        // allocating anything.
        if u64::from(count).saturating_mul(8) > src.len() as u64 {
            return Err(HeaderError::Malformed("pair count exceeds the block size"));
        }
        let mut raw = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name_len = take_u32(&mut src)? as usize;
            let name = take(&mut src, name_len)?;
            let value_len = take_u32(&mut src)? as usize;
            let value = take(&mut src, value_len)?;
            raw.push((name, value));
        }
        if !src.is_empty() {
            return Err(HeaderError::Malformed("trailing bytes after the last pair"));
        }
        // The block is structurally sound; now apply the content rules.
        let mut block = HeaderBlock {
            entries: Vec::with_capacity(raw.len()),
        };
        for (name, value) in raw {
            let name = match std::str::from_utf8(name) {
                Ok(n) => n,
                Err(_) => {
                    return Err(HeaderError::InvalidName(
                        String::from_utf8_lossy(name).into(),
                    ));
                }
            };
            validate_name(name)?;
            let value = std::str::from_utf8(value)
                .map_err(|_| HeaderError::InvalidValue(name.to_owned()))?;
            validate_wire_value(name, value)?;
            if block.position(name).is_some() {
                return Err(HeaderError::DuplicateName(name.to_owned()));
            }
            block.entries.push((name.to_owned(), value.to_owned()));
        }
        Ok(block)
    }
}

fn len32(n: usize) -> Result<u32, HeaderError> {
    u32::try_from(n).map_err(|_| HeaderError::TooLarge {
        max: u32::MAX as usize,
    })
}

fn take_u32(src: &mut &[u8]) -> Result<u32, HeaderError> {
    let bytes = take(src, 4)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn take<'a>(src: &mut &'a [u8], n: usize) -> Result<&'a [u8], HeaderError> {
    if src.len() < n {
        return Err(HeaderError::Malformed("truncated header block"));
    }
    let (head, tail) = src.split_at(n);
    *src = tail;
    Ok(head)
}

/// Names: non-empty, printable US-ASCII without uppercase letters.
fn validate_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    if !name
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !b.is_ascii_uppercase())
    {
        return Err(HeaderError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// A single value given through the API may not contain NUL (that is the separator).
fn validate_single_value(name: &str, value: &str) -> Result<(), HeaderError> {
    if value.contains('\0') {
        return Err(HeaderError::InvalidValue(name.to_owned()));
    }
    Ok(())
}

/// A wire value is empty or NUL-separated non-empty values: it never starts or ends with NUL
/// and never holds two NULs in a row.
fn validate_wire_value(name: &str, value: &str) -> Result<(), HeaderError> {
    if value.starts_with('\0') || value.ends_with('\0') || value.contains("\0\0") {
        return Err(HeaderError::InvalidValue(name.to_owned()));
    }
    Ok(())
}

/// The sending side's zlib context: one per connection, shared by every SYN_STREAM,
/// SYN_REPLY and HEADERS frame we write, in the order they are written.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor")
            .field("total_in", &self.zlib.total_in())
            .field("total_out", &self.zlib.total_out())
            .finish()
    }
}

impl HeaderCompressor {
    pub fn new() -> Result<Self, HeaderError> {
        let mut zlib = Compress::new(Compression::default(), true);
        // Must precede the first compress call: the zlib header then carries FDICT and the
        // dictionary's Adler-32, which Go's zlib.NewReaderDict checks.
        let id = zlib
            .set_dictionary(SPDY3_DICTIONARY)
            .map_err(|e| HeaderError::Compress(e.to_string()))?;
        if id != SPDY3_DICTIONARY_ID {
            return Err(HeaderError::WrongDictionary(id));
        }
        Ok(Self { zlib })
    }

    /// Compresses one block and sync-flushes, returning exactly the bytes that belong in the
    /// frame.
    pub fn compress(&mut self, block: &HeaderBlock) -> Result<Bytes, HeaderError> {
        let raw = block.encode_uncompressed()?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            consumed += usize::try_from(self.zlib.total_in() - before)
                .map_err(|_| HeaderError::Compress("input counter overflow".into()))?;
            // Done once all input is in and zlib stopped with output space to spare: the sync
            // flush is then complete.
            if consumed >= raw.len() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(Bytes::from(out))
    }
}

/// The receiving side's zlib context: one per connection. Every received header block must
/// go through it, in order, even blocks of streams that are about to be refused, or the
/// shared state falls out of step with the peer's compressor.
pub struct HeaderDecompressor {
    zlib: Decompress,
    max_block: usize,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("total_in", &self.zlib.total_in())
            .field("total_out", &self.zlib.total_out())
            .field("max_block", &self.max_block)
            .finish()
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HEADER_BLOCK)
    }
}

impl HeaderDecompressor {
    /// `max_block` caps the decompressed size of one block (a guard against zlib bombs).
    pub fn new(max_block: usize) -> Self {
        Self {
            zlib: Decompress::new(true),
            max_block: max_block.max(4),
        }
    }

    /// Decompresses and parses one block. See [`HeaderError::is_session_fatal`] for which
    /// errors end the session.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<HeaderBlock, HeaderError> {
        let raw = self.decompress_raw(compressed)?;
        HeaderBlock::decode_uncompressed(&raw)
    }

    /// Decompresses one block without parsing it.
    pub fn decompress_raw(&mut self, compressed: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out: Vec<u8> =
            Vec::with_capacity(compressed.len().saturating_mul(4).clamp(64, self.max_block));
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= self.max_block {
                    return Err(HeaderError::TooLarge {
                        max: self.max_block,
                    });
                }
                let grow = out.capacity().max(64).min(self.max_block - out.len());
                out.reserve_exact(grow);
            }
            let before_in = self.zlib.total_in();
            let before_out = self.zlib.total_out();
            let result =
                self.zlib
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            let used = usize::try_from(self.zlib.total_in() - before_in)
                .map_err(|_| HeaderError::Decompress("input counter overflow".into()))?;
            consumed += used;
            let produced = self.zlib.total_out() - before_out;
            match result {
                Ok(Status::StreamEnd) => return Err(HeaderError::StreamEnded),
                Ok(Status::Ok) | Ok(Status::BufError) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(id) if id == SPDY3_DICTIONARY_ID => {
                        self.zlib
                            .set_dictionary(SPDY3_DICTIONARY)
                            .map_err(|e| HeaderError::Decompress(e.to_string()))?;
                        continue;
                    }
                    Some(id) => return Err(HeaderError::WrongDictionary(id)),
                    None => return Err(HeaderError::Decompress(e.to_string())),
                },
            }
            if consumed >= compressed.len() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() {
                // No progress with room to spare: zlib wants input we do not have.
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k8s_headers(stream_type: &str, request_id: &str) -> HeaderBlock {
        HeaderBlock::new()
            .with("streamType", stream_type)
            .and_then(|b| b.with("port", "8080"))
            .and_then(|b| b.with("requestID", request_id))
            .expect("valid headers")
    }

    /// Adler-32 as defined by RFC 1950, to check the dictionary without trusting zlib.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    fn decode_hex(hex: &str) -> Vec<u8> {
        let clean: Vec<u8> = hex.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        clean
            .chunks(2)
            .map(|pair| {
                let s = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(s, 16).expect("hex")
            })
            .collect()
    }

    #[test]
    fn the_dictionary_has_the_length_and_checksum_of_the_spec_dictionary() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        assert_eq!(adler32(SPDY3_DICTIONARY), SPDY3_DICTIONARY_ID);
        assert!(SPDY3_DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post"));
        assert!(SPDY3_DICTIONARY.ends_with(b"charset=iso-8859-1,utf-,*,enq=0."));
    }

    #[test]
    fn an_uncompressed_block_matches_the_byte_layout_of_the_spec() {
        let block = HeaderBlock::new().with("port", "80").expect("valid");
        let raw = block.encode_uncompressed().expect("encode");
        assert_eq!(
            raw,
            b"\x00\x00\x00\x01\x00\x00\x00\x04port\x00\x00\x00\x0280".to_vec()
        );
        assert_eq!(HeaderBlock::decode_uncompressed(&raw), Ok(block));
        let empty = HeaderBlock::new().encode_uncompressed().expect("encode");
        assert_eq!(empty, vec![0, 0, 0, 0]);
    }

    #[test]
    fn names_are_lowercased_and_looked_up_case_insensitively() {
        let block = k8s_headers("error", "0");
        let names: Vec<&str> = block.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["streamtype", "port", "requestid"]);
        assert_eq!(block.get("StreamType"), Some("error"));
        assert_eq!(block.get("Streamtype"), Some("error"));
        assert_eq!(block.get("REQUESTID"), Some("0"));
        assert_eq!(block.get("missing"), None);
    }

    #[test]
    fn repeated_values_are_nul_joined_and_duplicate_inserts_are_refused() {
        let mut block = HeaderBlock::new();
        block.append("accept", "a").expect("first");
        block.append("Accept", "b").expect("second");
        assert_eq!(block.get_raw("accept"), Some("a\0b"));
        assert_eq!(block.get("accept"), Some("a"));
        assert_eq!(block.get_all("accept").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            block.insert("ACCEPT", "c"),
            Err(HeaderError::DuplicateName("accept".into()))
        );
        assert_eq!(block.insert("", "x"), Err(HeaderError::EmptyName));
        assert!(matches!(
            block.insert("a b", "x"),
            Err(HeaderError::InvalidName(_))
        ));
        assert!(matches!(
            block.insert("x", "a\0b"),
            Err(HeaderError::InvalidValue(_))
        ));
    }

    #[test]
    fn a_header_block_survives_compression_and_decompression() {
        let mut tx = HeaderCompressor::new().expect("compressor");
        let mut rx = HeaderDecompressor::default();
        let block = k8s_headers("data", "7");
        let compressed = tx.compress(&block).expect("compress");
        // zlib header with FDICT set, then the dictionary id.
        assert_eq!(compressed[0], 0x78);
        assert_ne!(compressed[1] & 0x20, 0, "FDICT");
        assert_eq!(&compressed[2..6], &SPDY3_DICTIONARY_ID.to_be_bytes());
        // Sync flush: the block ends with an empty stored block.
        assert!(compressed.ends_with(&[0x00, 0x00, 0xff, 0xff]));
        assert_eq!(rx.decompress(&compressed), Ok(block));
    }

    #[test]
    fn consecutive_blocks_share_one_zlib_context_in_each_direction() {
        let mut tx = HeaderCompressor::new().expect("compressor");
        let mut rx = HeaderDecompressor::default();
        let blocks: Vec<HeaderBlock> = (0..20)
            .map(|i| k8s_headers(["error", "data", "stdin", "stdout"][i % 4], &i.to_string()))
            .chain([HeaderBlock::new(), HeaderBlock::new()])
            .collect();
        let mut sizes = Vec::new();
        for block in &blocks {
            let compressed = tx.compress(block).expect("compress");
            sizes.push(compressed.len());
            assert_eq!(&rx.decompress(&compressed).expect("decompress"), block);
        }
        // Later blocks reference earlier ones through the shared window and are smaller than
        // the first, which also carries the zlib header.
        assert!(sizes[4] < sizes[0], "sizes: {sizes:?}");
        // Only the first block carries the zlib stream header.
        let mut fresh = HeaderDecompressor::default();
        let mut tx2 = HeaderCompressor::new().expect("compressor");
        let _first = tx2.compress(&blocks[0]).expect("compress");
        let second = tx2.compress(&blocks[1]).expect("compress");
        assert!(
            fresh
                .decompress(&second)
                .expect_err("no zlib header")
                .is_session_fatal()
        );
    }

    #[test]
    fn an_empty_header_block_is_still_compressed() {
        let mut tx = HeaderCompressor::new().expect("compressor");
        let mut rx = HeaderDecompressor::default();
        for _ in 0..3 {
            let compressed = tx.compress(&HeaderBlock::new()).expect("compress");
            assert!(!compressed.is_empty());
            assert_eq!(rx.decompress(&compressed), Ok(HeaderBlock::new()));
        }
    }

    /// SYN_STREAM header blocks written by Go's `moby/spdystream` framer (v0.5.0,
    /// `spdy.Framer.WriteFrame`) for the streams client-go opens for
    /// `kubectl port-forward` (error stream, then data stream) and then an exec stdin
    /// stream, in one connection. Captured by running the Go framer; the frame headers
    /// (18 bytes each) are stripped.
    const GO_CAPTURED_BLOCKS: [&str; 3] = [
        "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60616061c0c0c0c0590489c64c50f2663400000000ffff",
        "c2aa19540e2512d60b000000ffff",
        "021198161797a464e601000000ffff",
    ];

    #[test]
    fn header_blocks_captured_from_the_go_framer_decode() {
        let mut rx = HeaderDecompressor::default();
        let decoded: Vec<HeaderBlock> = GO_CAPTURED_BLOCKS
            .iter()
            .map(|hex| rx.decompress(&decode_hex(hex)).expect("decode Go block"))
            .collect();
        assert_eq!(decoded[0].get("streamType"), Some("error"));
        assert_eq!(decoded[0].get("port"), Some("8080"));
        assert_eq!(decoded[0].get("requestID"), Some("0"));
        assert_eq!(decoded[1].get("streamType"), Some("data"));
        assert_eq!(decoded[1].get("port"), Some("8080"));
        assert_eq!(decoded[1].get("requestID"), Some("0"));
        assert_eq!(decoded[2].get("streamtype"), Some("stdin"));
        assert_eq!(decoded[2].len(), 1);
    }

    #[test]
    fn structural_damage_is_session_fatal_and_rule_violations_are_not() {
        let cases: Vec<(&[u8], bool)> = vec![
            (b"\x00\x00\x00", true),                       // truncated count
            (b"\x00\x00\x00\x01\x00\x00\x00\x05ab", true), // truncated name
            (b"\x00\x00\x00\x00extra", true),              // trailing bytes
            (b"\xff\xff\xff\xff\x00\x00\x00\x00", true),   // absurd count
            (b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00", false), // empty name
            (b"\x00\x00\x00\x01\x00\x00\x00\x01P\x00\x00\x00\x00", false), // uppercase
            (
                b"\x00\x00\x00\x01\x00\x00\x00\x01p\x00\x00\x00\x02\x00a",
                false,
            ), // leading NUL
            (
                b"\x00\x00\x00\x01\x00\x00\x00\x01p\x00\x00\x00\x03a\x00\x00",
                false,
            ), // NUL NUL
        ];
        for (raw, fatal) in cases {
            let err = HeaderBlock::decode_uncompressed(raw).expect_err("invalid block");
            assert_eq!(err.is_session_fatal(), fatal, "{raw:?}: {err}");
        }
        let dup =
            b"\x00\x00\x00\x02\x00\x00\x00\x01p\x00\x00\x00\x01a\x00\x00\x00\x01p\x00\x00\x00\x01b";
        assert_eq!(
            HeaderBlock::decode_uncompressed(dup),
            Err(HeaderError::DuplicateName("p".into()))
        );
    }

    #[test]
    fn a_malformed_block_does_not_desynchronise_the_shared_decompressor() {
        // The uppercase name is a stream error; the next block must still decode because the
        // bad one was fully decompressed.
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(SPDY3_DICTIONARY).expect("dictionary");
        let mut compress_raw = |raw: &[u8]| {
            let mut out = Vec::with_capacity(raw.len() + 128);
            zlib.compress_vec(raw, &mut out, FlushCompress::Sync)
                .expect("compress");
            out
        };
        let bad = compress_raw(b"\x00\x00\x00\x01\x00\x00\x00\x04Port\x00\x00\x00\x0280");
        let good = compress_raw(b"\x00\x00\x00\x01\x00\x00\x00\x04port\x00\x00\x00\x0280");
        let mut rx = HeaderDecompressor::default();
        let err = rx.decompress(&bad).expect_err("uppercase");
        assert!(!err.is_session_fatal());
        assert_eq!(
            rx.decompress(&good).expect("decode").get("port"),
            Some("80")
        );
    }

    #[test]
    fn a_block_compressed_with_another_dictionary_is_rejected() {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(b"not the spdy dictionary")
            .expect("dictionary");
        let mut out = Vec::with_capacity(256);
        zlib.compress_vec(b"\0\0\0\0", &mut out, FlushCompress::Sync)
            .expect("compress");
        let err = HeaderDecompressor::default()
            .decompress(&out)
            .expect_err("wrong dictionary");
        assert!(matches!(err, HeaderError::WrongDictionary(_)));
        assert!(err.is_session_fatal());
    }

    #[test]
    fn a_zlib_bomb_is_stopped_at_the_size_limit() {
        let mut block = HeaderBlock::new();
        block.insert("x", &"a".repeat(100_000)).expect("valid");
        let compressed = HeaderCompressor::new()
            .expect("compressor")
            .compress(&block)
            .expect("compress");
        assert!(compressed.len() < 1000);
        let err = HeaderDecompressor::new(10_000)
            .decompress(&compressed)
            .expect_err("too large");
        assert_eq!(err, HeaderError::TooLarge { max: 10_000 });
        assert!(err.is_session_fatal());
    }

    #[test]
    fn garbage_instead_of_zlib_is_a_session_error() {
        let err = HeaderDecompressor::default()
            .decompress(b"\x00\x01\x02\x03garbage")
            .expect_err("not zlib");
        assert!(err.is_session_fatal());
    }
}
