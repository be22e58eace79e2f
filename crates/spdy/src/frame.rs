//! SPDY/3.1 frames: the in-memory representation, strict decoding from a byte buffer
//! (incremental: `Ok(None)` means "need more bytes") and encoding.
//!
//! Header blocks are carried here as opaque compressed bytes; `headers.rs` owns the
//! name/value format and the zlib contexts, because compression state spans frames and
//! therefore belongs to the connection, not to a frame.
//!
//! This file only depends on `bytes` and `thiserror` so that the fuzz crate can compile it
//! on its own.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The only protocol version spoken (SPDY/3.1 still puts 3 on the wire).
pub const SPDY_VERSION: u16 = 3;
/// Every frame starts with an 8-byte header.
pub const FRAME_HEADER_LEN: usize = 8;
/// The 24-bit length field caps every payload at 2^24 - 1 bytes.
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;
/// Stream ids are 31 bits.
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;
/// WINDOW_UPDATE deltas are 1..=2^31-1.
pub const MAX_WINDOW_DELTA: u32 = 0x7fff_ffff;
/// Default limit for control-frame payloads accepted by [`FrameDecoder`]. The spec requires
/// at least 8192; Kubernetes header blocks are a few dozen bytes.
pub const DEFAULT_MAX_CONTROL_PAYLOAD: usize = 256 * 1024;

/// Control frame type codes.
pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// CLEAR_SETTINGS on SETTINGS.
pub const FLAG_SETTINGS_CLEAR_SETTINGS: u8 = 0x01;
/// Per-entry SETTINGS flags.
pub const FLAG_SETTINGS_PERSIST_VALUE: u8 = 0x01;
pub const FLAG_SETTINGS_PERSISTED: u8 = 0x02;

/// SETTINGS ids (24 bits).
pub const SETTINGS_UPLOAD_BANDWIDTH: u32 = 1;
pub const SETTINGS_DOWNLOAD_BANDWIDTH: u32 = 2;
pub const SETTINGS_ROUND_TRIP_TIME: u32 = 3;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
pub const SETTINGS_CURRENT_CWND: u32 = 5;
pub const SETTINGS_DOWNLOAD_RETRANS_RATE: u32 = 6;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
pub const SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE: u32 = 8;

const CONTROL_BIT: u32 = 0x8000_0000;
const RESERVED_BIT: u32 = 0x8000_0000;

/// RST_STREAM status code. A newtype rather than an enum so that codes this implementation
/// does not know still round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INVALID_STREAM: Self = Self(2);
    pub const REFUSED_STREAM: Self = Self(3);
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    pub const CANCEL: Self = Self(5);
    pub const INTERNAL_ERROR: Self = Self(6);
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    pub const STREAM_IN_USE: Self = Self(8);
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    pub const INVALID_CREDENTIALS: Self = Self(10);
    pub const FRAME_TOO_LARGE: Self = Self(11);

    /// The spec name of a known code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            _ => return None,
        })
    }
}

impl fmt::Debug for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "status {}", self.0),
        }
    }
}

/// GOAWAY status code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    pub const OK: Self = Self(0);
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INTERNAL_ERROR: Self = Self(2);
}

impl fmt::Debug for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "OK(0)"),
            1 => write!(f, "PROTOCOL_ERROR(1)"),
            2 => write!(f, "INTERNAL_ERROR(2)"),
            other => write!(f, "status {other}"),
        }
    }
}

/// Which kind of frame an error or value is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    SynStream,
    SynReply,
    RstStream,
    Settings,
    Ping,
    GoAway,
    Headers,
    WindowUpdate,
    Data,
    /// A control frame type this implementation does not know (5 NOOP and 10 CREDENTIAL
    /// included).
    Unknown(u16),
}

impl FrameKind {
    /// Maps a control-frame type code.
    pub fn from_control_type(frame_type: u16) -> Self {
        match frame_type {
            TYPE_SYN_STREAM => Self::SynStream,
            TYPE_SYN_REPLY => Self::SynReply,
            TYPE_RST_STREAM => Self::RstStream,
            TYPE_SETTINGS => Self::Settings,
            TYPE_PING => Self::Ping,
            TYPE_GOAWAY => Self::GoAway,
            TYPE_HEADERS => Self::Headers,
            TYPE_WINDOW_UPDATE => Self::WindowUpdate,
            other => Self::Unknown(other),
        }
    }

    /// The flags a frame of this kind may carry.
    fn allowed_flags(self) -> u8 {
        match self {
            Self::SynStream => FLAG_FIN | FLAG_UNIDIRECTIONAL,
            Self::SynReply | Self::Headers | Self::Data => FLAG_FIN,
            Self::Settings => FLAG_SETTINGS_CLEAR_SETTINGS,
            Self::RstStream | Self::Ping | Self::GoAway | Self::WindowUpdate => 0,
            Self::Unknown(_) => 0xff,
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SynStream => f.write_str("SYN_STREAM"),
            Self::SynReply => f.write_str("SYN_REPLY"),
            Self::RstStream => f.write_str("RST_STREAM"),
            Self::Settings => f.write_str("SETTINGS"),
            Self::Ping => f.write_str("PING"),
            Self::GoAway => f.write_str("GOAWAY"),
            Self::Headers => f.write_str("HEADERS"),
            Self::WindowUpdate => f.write_str("WINDOW_UPDATE"),
            Self::Data => f.write_str("DATA"),
            Self::Unknown(t) => write!(f, "control type {t}"),
        }
    }
}

/// Why a frame could not be decoded or encoded. Every decoding error is fatal for the
/// session: after it, the byte stream (and the header compression state) can no longer be
/// trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0} (only version 3 is spoken)")]
    UnsupportedVersion(u16),
    #[error("{kind} payload of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        kind: FrameKind,
        length: usize,
        max: usize,
    },
    #[error("{kind} frame has an invalid length of {length} bytes")]
    InvalidLength { kind: FrameKind, length: usize },
    #[error("{kind} frame has invalid flags {flags:#04x}")]
    InvalidFlags { kind: FrameKind, flags: u8 },
    #[error("{kind} frame has the reserved bit set in its {field}")]
    ReservedBit {
        kind: FrameKind,
        field: &'static str,
    },
    #[error("{kind} frame uses stream id 0")]
    ZeroStreamId { kind: FrameKind },
    #[error("{kind} frame has stream id {id}, beyond 2^31-1")]
    StreamIdOutOfRange { kind: FrameKind, id: u32 },
    #[error("PING id 0 is invalid")]
    ZeroPingId,
    #[error("RST_STREAM status 0 is invalid")]
    ZeroRstStatus,
    #[error("WINDOW_UPDATE delta {0} is outside 1..=2^31-1")]
    InvalidWindowDelta(u32),
    #[error("SYN_STREAM priority {0} exceeds 7")]
    InvalidPriority(u8),
    #[error("SETTINGS entry has flags {flags:#04x} or id {id} outside 24 bits")]
    InvalidSetting { flags: u8, id: u32 },
    #[error("control type {0} is a known type and cannot be encoded as an unknown frame")]
    NotUnknownType(u16),
}

/// SYN_STREAM: the client opens a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynStream {
    pub stream_id: u32,
    /// 0 unless the stream is pushed in association with another one.
    pub associated_to: u32,
    /// 0 (highest) to 7.
    pub priority: u8,
    pub slot: u8,
    pub fin: bool,
    pub unidirectional: bool,
    /// Compressed name/value header block.
    pub header_block: Bytes,
}

/// SYN_REPLY: the recipient accepts a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynReply {
    pub stream_id: u32,
    pub fin: bool,
    pub header_block: Bytes,
}

/// RST_STREAM: abnormal termination of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RstStream {
    pub stream_id: u32,
    pub status: RstStatus,
}

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24-bit id, see the `SETTINGS_*` constants.
    pub id: u32,
    pub value: u32,
}

/// SETTINGS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub clear_settings: bool,
    pub entries: Vec<Setting>,
}

impl Settings {
    /// The first value given for `id` (the spec says later duplicates are ignored).
    pub fn get(&self, id: u32) -> Option<u32> {
        self.entries.iter().find(|e| e.id == id).map(|e| e.value)
    }
}

/// PING. Client-initiated ids are odd, server-initiated ids even.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    pub id: u32,
}

/// GOAWAY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoAway {
    pub last_good_stream_id: u32,
    pub status: GoAwayStatus,
}

/// HEADERS: additional headers for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    pub stream_id: u32,
    pub fin: bool,
    pub header_block: Bytes,
}

/// WINDOW_UPDATE. Stream id 0 addresses the session window (SPDY/3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowUpdate {
    pub stream_id: u32,
    pub delta: u32,
}

/// DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    pub stream_id: u32,
    pub fin: bool,
    pub data: Bytes,
}

/// A control frame of a type this implementation does not handle. The spec asks receivers to
/// ignore those; the session does. The session never sends one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownControl {
    pub frame_type: u16,
    pub flags: u8,
    pub payload: Bytes,
}

/// Any SPDY/3.1 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream(SynStream),
    SynReply(SynReply),
    RstStream(RstStream),
    Settings(Settings),
    Ping(Ping),
    GoAway(GoAway),
    Headers(Headers),
    WindowUpdate(WindowUpdate),
    Data(Data),
    Unknown(UnknownControl),
}

impl Frame {
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::SynStream(_) => FrameKind::SynStream,
            Self::SynReply(_) => FrameKind::SynReply,
            Self::RstStream(_) => FrameKind::RstStream,
            Self::Settings(_) => FrameKind::Settings,
            Self::Ping(_) => FrameKind::Ping,
            Self::GoAway(_) => FrameKind::GoAway,
            Self::Headers(_) => FrameKind::Headers,
            Self::WindowUpdate(_) => FrameKind::WindowUpdate,
            Self::Data(_) => FrameKind::Data,
            Self::Unknown(u) => FrameKind::Unknown(u.frame_type),
        }
    }

    /// Appends the wire form of the frame to `dst`. The frame is validated first; on error
    /// nothing is written.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Self::SynStream(f) => {
                let kind = FrameKind::SynStream;
                check_stream_id(kind, f.stream_id)?;
                check_id_range(kind, f.associated_to)?;
                if f.priority > 7 {
                    return Err(FrameError::InvalidPriority(f.priority));
                }
                let len = check_len(kind, 10 + f.header_block.len())?;
                let mut flags = 0;
                if f.fin {
                    flags |= FLAG_FIN;
                }
                if f.unidirectional {
                    flags |= FLAG_UNIDIRECTIONAL;
                }
                dst.reserve(FRAME_HEADER_LEN + len);
                put_control_header(dst, TYPE_SYN_STREAM, flags, len);
                dst.put_u32(f.stream_id);
                dst.put_u32(f.associated_to);
                dst.put_u8(f.priority << 5);
                dst.put_u8(f.slot);
                dst.put_slice(&f.header_block);
            }
            Self::SynReply(f) => encode_stream_block(
                dst,
                FrameKind::SynReply,
                f.stream_id,
                f.fin,
                &f.header_block,
            )?,
            Self::Headers(f) => {
                encode_stream_block(dst, FrameKind::Headers, f.stream_id, f.fin, &f.header_block)?
            }
            Self::RstStream(f) => {
                check_stream_id(FrameKind::RstStream, f.stream_id)?;
                if f.status.0 == 0 {
                    return Err(FrameError::ZeroRstStatus);
                }
                put_control_header(dst, TYPE_RST_STREAM, 0, 8);
                dst.put_u32(f.stream_id);
                dst.put_u32(f.status.0);
            }
            Self::Settings(f) => {
                for e in &f.entries {
                    if e.id > 0x00ff_ffff
                        || e.flags & !(FLAG_SETTINGS_PERSIST_VALUE | FLAG_SETTINGS_PERSISTED) != 0
                    {
                        return Err(FrameError::InvalidSetting {
                            flags: e.flags,
                            id: e.id,
                        });
                    }
                }
                let len = check_len(
                    FrameKind::Settings,
                    f.entries.len().saturating_mul(8).saturating_add(4),
                )?;
                let count = u32::try_from(f.entries.len()).map_err(|_| FrameError::TooLarge {
                    kind: FrameKind::Settings,
                    length: usize::MAX,
                    max: MAX_FRAME_PAYLOAD,
                })?;
                let flags = if f.clear_settings {
                    FLAG_SETTINGS_CLEAR_SETTINGS
                } else {
                    0
                };
                dst.reserve(FRAME_HEADER_LEN + len);
                put_control_header(dst, TYPE_SETTINGS, flags, len);
                dst.put_u32(count);
                for e in &f.entries {
                    dst.put_u32((u32::from(e.flags) << 24) | e.id);
                    dst.put_u32(e.value);
                }
            }
            Self::Ping(f) => {
                if f.id == 0 {
                    return Err(FrameError::ZeroPingId);
                }
                put_control_header(dst, TYPE_PING, 0, 4);
                dst.put_u32(f.id);
            }
            Self::GoAway(f) => {
                check_id_range(FrameKind::GoAway, f.last_good_stream_id)?;
                put_control_header(dst, TYPE_GOAWAY, 0, 8);
                dst.put_u32(f.last_good_stream_id);
                dst.put_u32(f.status.0);
            }
            Self::WindowUpdate(f) => {
                check_id_range(FrameKind::WindowUpdate, f.stream_id)?;
                if f.delta == 0 || f.delta > MAX_WINDOW_DELTA {
                    return Err(FrameError::InvalidWindowDelta(f.delta));
                }
                put_control_header(dst, TYPE_WINDOW_UPDATE, 0, 8);
                dst.put_u32(f.stream_id);
                dst.put_u32(f.delta);
            }
            Self::Data(f) => {
                check_stream_id(FrameKind::Data, f.stream_id)?;
                let len = check_len(FrameKind::Data, f.data.len())?;
                let flags = if f.fin { FLAG_FIN } else { 0 };
                dst.reserve(FRAME_HEADER_LEN + len);
                dst.put_u32(f.stream_id);
                dst.put_u32((u32::from(flags) << 24) | len_u32(len));
                dst.put_slice(&f.data);
            }
            Self::Unknown(f) => {
                let kind = FrameKind::from_control_type(f.frame_type);
                if kind != FrameKind::Unknown(f.frame_type) {
                    return Err(FrameError::NotUnknownType(f.frame_type));
                }
                let len = check_len(kind, f.payload.len())?;
                dst.reserve(FRAME_HEADER_LEN + len);
                put_control_header(dst, f.frame_type, f.flags, len);
                dst.put_slice(&f.payload);
            }
        }
        Ok(())
    }

    /// Convenience: the encoded bytes of one frame.
    pub fn to_bytes(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}

fn encode_stream_block(
    dst: &mut BytesMut,
    kind: FrameKind,
    stream_id: u32,
    fin: bool,
    block: &Bytes,
) -> Result<(), FrameError> {
    check_stream_id(kind, stream_id)?;
    let len = check_len(kind, 4 + block.len())?;
    let frame_type = if kind == FrameKind::SynReply {
        TYPE_SYN_REPLY
    } else {
        TYPE_HEADERS
    };
    dst.reserve(FRAME_HEADER_LEN + len);
    put_control_header(dst, frame_type, if fin { FLAG_FIN } else { 0 }, len);
    dst.put_u32(stream_id);
    dst.put_slice(block);
    Ok(())
}

fn check_stream_id(kind: FrameKind, id: u32) -> Result<(), FrameError> {
    if id == 0 {
        return Err(FrameError::ZeroStreamId { kind });
    }
    check_id_range(kind, id)
}

fn check_id_range(kind: FrameKind, id: u32) -> Result<(), FrameError> {
    if id > MAX_STREAM_ID {
        return Err(FrameError::StreamIdOutOfRange { kind, id });
    }
    Ok(())
}

fn check_len(kind: FrameKind, len: usize) -> Result<usize, FrameError> {
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLarge {
            kind,
            length: len,
            max: MAX_FRAME_PAYLOAD,
        });
    }
    Ok(len)
}

/// `len` has been checked against [`MAX_FRAME_PAYLOAD`], so it fits in 24 bits.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(0x00ff_ffff) & 0x00ff_ffff
}

fn put_control_header(dst: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    dst.put_u32(CONTROL_BIT | (u32::from(SPDY_VERSION) << 16) | u32::from(frame_type));
    dst.put_u32((u32::from(flags) << 24) | len_u32(len));
}

/// Incremental frame decoder with size limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDecoder {
    max_data_payload: usize,
    max_control_payload: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            max_data_payload: MAX_FRAME_PAYLOAD,
            max_control_payload: DEFAULT_MAX_CONTROL_PAYLOAD,
        }
    }
}

impl FrameDecoder {
    /// A decoder accepting DATA payloads up to `max_data_payload` and control payloads up to
    /// `max_control_payload` bytes (both capped at 2^24 - 1; the control limit is raised to
    /// the spec minimum of 8192 if set lower).
    pub fn new(max_data_payload: usize, max_control_payload: usize) -> Self {
        Self {
            max_data_payload: max_data_payload.min(MAX_FRAME_PAYLOAD),
            max_control_payload: max_control_payload.clamp(8192, MAX_FRAME_PAYLOAD),
        }
    }

    pub fn max_data_payload(&self) -> usize {
        self.max_data_payload
    }

    pub fn max_control_payload(&self) -> usize {
        self.max_control_payload
    }

    /// Takes one complete frame off the front of `src`. Returns `Ok(None)` when `src` does
    /// not hold a whole frame yet (nothing is consumed then, but capacity may be reserved for
    /// the rest). Header checks (version, flags, fixed lengths, size limit, stream id 0 on
    /// DATA) are applied as soon as the 8-byte header is present, before the payload arrives.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let word0 = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let flags = src[4];
        let length = (usize::from(src[5]) << 16) | (usize::from(src[6]) << 8) | usize::from(src[7]);

        if word0 & CONTROL_BIT != 0 {
            let version = ((word0 >> 16) & 0x7fff) as u16;
            let frame_type = (word0 & 0xffff) as u16;
            if version != SPDY_VERSION {
                return Err(FrameError::UnsupportedVersion(version));
            }
            let kind = FrameKind::from_control_type(frame_type);
            if length > self.max_control_payload {
                return Err(FrameError::TooLarge {
                    kind,
                    length,
                    max: self.max_control_payload,
                });
            }
            check_control_header(kind, flags, length)?;
            if src.len() < FRAME_HEADER_LEN + length {
                src.reserve(FRAME_HEADER_LEN + length - src.len());
                return Ok(None);
            }
            src.advance(FRAME_HEADER_LEN);
            let payload = src.split_to(length).freeze();
            parse_control(kind, frame_type, flags, payload).map(Some)
        } else {
            let kind = FrameKind::Data;
            let stream_id = word0;
            if length > self.max_data_payload {
                return Err(FrameError::TooLarge {
                    kind,
                    length,
                    max: self.max_data_payload,
                });
            }
            if flags & !kind.allowed_flags() != 0 {
                return Err(FrameError::InvalidFlags { kind, flags });
            }
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId { kind });
            }
            if src.len() < FRAME_HEADER_LEN + length {
                src.reserve(FRAME_HEADER_LEN + length - src.len());
                return Ok(None);
            }
            src.advance(FRAME_HEADER_LEN);
            let data = src.split_to(length).freeze();
            Ok(Some(Frame::Data(Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data,
            })))
        }
    }
}

/// Decodes one frame with the default limits (see [`FrameDecoder`]).
pub fn decode(src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    FrameDecoder::default().decode(src)
}

/// Checks that only need the frame header.
fn check_control_header(kind: FrameKind, flags: u8, length: usize) -> Result<(), FrameError> {
    if flags & !kind.allowed_flags() != 0 {
        return Err(FrameError::InvalidFlags { kind, flags });
    }
    let ok = match kind {
        FrameKind::SynStream => length >= 10,
        FrameKind::SynReply | FrameKind::Headers => length >= 4,
        FrameKind::RstStream | FrameKind::GoAway | FrameKind::WindowUpdate => length == 8,
        FrameKind::Ping => length == 4,
        FrameKind::Settings => length >= 4 && (length - 4).is_multiple_of(8),
        FrameKind::Data | FrameKind::Unknown(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(FrameError::InvalidLength { kind, length })
    }
}

/// Reads a 31-bit id whose top bit is reserved.
fn get_id(p: &mut Bytes, kind: FrameKind, field: &'static str) -> Result<u32, FrameError> {
    let raw = p.get_u32();
    if raw & RESERVED_BIT != 0 {
        return Err(FrameError::ReservedBit { kind, field });
    }
    Ok(raw)
}

fn get_stream_id(p: &mut Bytes, kind: FrameKind) -> Result<u32, FrameError> {
    let id = get_id(p, kind, "stream id")?;
    if id == 0 {
        return Err(FrameError::ZeroStreamId { kind });
    }
    Ok(id)
}

/// Parses a control payload whose length already passed [`check_control_header`], so the
/// fixed-size reads below cannot run past the end.
fn parse_control(
    kind: FrameKind,
    frame_type: u16,
    flags: u8,
    mut p: Bytes,
) -> Result<Frame, FrameError> {
    let fin = flags & FLAG_FIN != 0;
    Ok(match kind {
        FrameKind::SynStream => {
            let stream_id = get_stream_id(&mut p, kind)?;
            let associated_to = get_id(&mut p, kind, "associated-to stream id")?;
            // The five bits below the priority are "unused"; they are ignored, like the
            // reference implementations do.
            let priority = p.get_u8() >> 5;
            let slot = p.get_u8();
            Frame::SynStream(SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                fin,
                unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                header_block: p,
            })
        }
        FrameKind::SynReply => {
            let stream_id = get_stream_id(&mut p, kind)?;
            Frame::SynReply(SynReply {
                stream_id,
                fin,
                header_block: p,
            })
        }
        FrameKind::Headers => {
            let stream_id = get_stream_id(&mut p, kind)?;
            Frame::Headers(Headers {
                stream_id,
                fin,
                header_block: p,
            })
        }
        FrameKind::RstStream => {
            let stream_id = get_stream_id(&mut p, kind)?;
            let status = p.get_u32();
            if status == 0 {
                return Err(FrameError::ZeroRstStatus);
            }
            Frame::RstStream(RstStream {
                stream_id,
                status: RstStatus(status),
            })
        }
        FrameKind::Settings => {
            let count = p.get_u32();
            let present = p.len() / 8;
            if u64::from(count) != present as u64 {
                return Err(FrameError::InvalidLength {
                    kind,
                    length: p.len() + 4,
                });
            }
            let mut entries = Vec::with_capacity(present);
            for _ in 0..present {
                let word = p.get_u32();
                let entry_flags = (word >> 24) as u8;
                let id = word & 0x00ff_ffff;
                if entry_flags & !(FLAG_SETTINGS_PERSIST_VALUE | FLAG_SETTINGS_PERSISTED) != 0 {
                    return Err(FrameError::InvalidSetting {
                        flags: entry_flags,
                        id,
                    });
                }
                entries.push(Setting {
                    flags: entry_flags,
                    id,
                    value: p.get_u32(),
                });
            }
            Frame::Settings(Settings {
                clear_settings: flags & FLAG_SETTINGS_CLEAR_SETTINGS != 0,
                entries,
            })
        }
        FrameKind::Ping => {
            let id = p.get_u32();
            if id == 0 {
                return Err(FrameError::ZeroPingId);
            }
            Frame::Ping(Ping { id })
        }
        FrameKind::GoAway => {
            let last_good_stream_id = get_id(&mut p, kind, "last-good stream id")?;
            Frame::GoAway(GoAway {
                last_good_stream_id,
                status: GoAwayStatus(p.get_u32()),
            })
        }
        FrameKind::WindowUpdate => {
            let stream_id = get_id(&mut p, kind, "stream id")?;
            let raw = p.get_u32();
            if raw & RESERVED_BIT != 0 {
                return Err(FrameError::ReservedBit {
                    kind,
                    field: "delta window size",
                });
            }
            if raw == 0 {
                return Err(FrameError::InvalidWindowDelta(0));
            }
            Frame::WindowUpdate(WindowUpdate {
                stream_id,
                delta: raw,
            })
        }
        FrameKind::Data | FrameKind::Unknown(_) => Frame::Unknown(UnknownControl {
            frame_type,
            flags,
            payload: p,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: Frame) -> Frame {
        let bytes = frame.to_bytes().expect("encode");
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = decode(&mut buf).expect("decode").expect("complete frame");
        assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
        assert_eq!(decoded, frame);
        decoded
    }

    fn decode_bytes(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn every_frame_type_survives_an_encode_decode_round_trip() {
        roundtrip(Frame::SynStream(SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 7,
            slot: 3,
            fin: true,
            unidirectional: true,
            header_block: Bytes::from_static(b"\x78\xbb compressed"),
        }));
        roundtrip(Frame::SynReply(SynReply {
            stream_id: 3,
            fin: false,
            header_block: Bytes::from_static(b"block"),
        }));
        roundtrip(Frame::RstStream(RstStream {
            stream_id: 5,
            status: RstStatus::CANCEL,
        }));
        roundtrip(Frame::Settings(Settings {
            clear_settings: true,
            entries: vec![
                Setting {
                    flags: FLAG_SETTINGS_PERSIST_VALUE,
                    id: SETTINGS_MAX_CONCURRENT_STREAMS,
                    value: 100,
                },
                Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                },
            ],
        }));
        roundtrip(Frame::Settings(Settings::default()));
        roundtrip(Frame::Ping(Ping { id: u32::MAX }));
        roundtrip(Frame::GoAway(GoAway {
            last_good_stream_id: 7,
            status: GoAwayStatus::INTERNAL_ERROR,
        }));
        roundtrip(Frame::Headers(Headers {
            stream_id: MAX_STREAM_ID,
            fin: true,
            header_block: Bytes::new(),
        }));
        roundtrip(Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: MAX_WINDOW_DELTA,
        }));
        roundtrip(Frame::Data(Data {
            stream_id: 9,
            fin: true,
            data: Bytes::new(),
        }));
        roundtrip(Frame::Data(Data {
            stream_id: 11,
            fin: false,
            data: Bytes::from(vec![0xab; 70_000]),
        }));
        roundtrip(Frame::Unknown(UnknownControl {
            frame_type: 10,
            flags: 0x42,
            payload: Bytes::from_static(b"credential"),
        }));
    }

    #[test]
    fn a_syn_stream_matches_the_byte_layout_of_the_spec() {
        let frame = Frame::SynStream(SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 2,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block: Bytes::from_static(&[0xaa, 0xbb]),
        });
        let expected: &[u8] = &[
            0x80, 0x03, 0x00, 0x01, // control bit, version 3, type 1
            0x00, 0x00, 0x00, 0x0c, // flags 0, length 10 + 2
            0x00, 0x00, 0x00, 0x01, // stream id 1
            0x00, 0x00, 0x00, 0x00, // associated-to 0
            0x40, 0x00, // priority 2 in the top 3 bits, slot 0
            0xaa, 0xbb, // header block
        ];
        assert_eq!(&frame.to_bytes().expect("encode")[..], expected);
        assert_eq!(decode_bytes(expected).expect("decode"), Some(frame));
    }

    #[test]
    fn a_syn_stream_written_by_the_go_framer_decodes() {
        // moby/spdystream v0.5.0 `Framer.WriteFrame(&SynStreamFrame{StreamId: 1, ...})` for
        // a port-forward error stream; see headers.rs for the block's content.
        let hex = "800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625ac\
                   a9a0808614cb45e01c60616061c0c0c0c0590489c64c50f2663400000000ffff";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let Some(Frame::SynStream(syn)) = decode_bytes(&bytes).expect("decode") else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!(syn.stream_id, 1);
        assert_eq!(syn.associated_to, 0);
        assert_eq!(syn.priority, 0);
        assert!(!syn.fin && !syn.unidirectional);
        assert_eq!(syn.header_block.len(), 0x3e - 10);
    }

    #[test]
    fn fixed_size_control_frames_match_the_byte_layout_of_the_spec() {
        let cases: Vec<(Frame, Vec<u8>)> = vec![
            (
                Frame::SynReply(SynReply {
                    stream_id: 3,
                    fin: true,
                    header_block: Bytes::from_static(&[0x01]),
                }),
                vec![0x80, 3, 0, 2, 0x01, 0, 0, 5, 0, 0, 0, 3, 0x01],
            ),
            (
                Frame::RstStream(RstStream {
                    stream_id: 5,
                    status: RstStatus::REFUSED_STREAM,
                }),
                vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 3],
            ),
            (
                Frame::Settings(Settings {
                    clear_settings: false,
                    entries: vec![Setting {
                        flags: 0,
                        id: SETTINGS_INITIAL_WINDOW_SIZE,
                        value: 0x0001_0000,
                    }],
                }),
                vec![
                    0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
                ],
            ),
            (
                Frame::Ping(Ping { id: 1 }),
                vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
            ),
            (
                Frame::GoAway(GoAway {
                    last_good_stream_id: 9,
                    status: GoAwayStatus::OK,
                }),
                vec![0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0],
            ),
            (
                Frame::Headers(Headers {
                    stream_id: 7,
                    fin: false,
                    header_block: Bytes::new(),
                }),
                vec![0x80, 3, 0, 8, 0, 0, 0, 4, 0, 0, 0, 7],
            ),
            (
                Frame::WindowUpdate(WindowUpdate {
                    stream_id: 1,
                    delta: 0x8000,
                }),
                vec![0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0x80, 0],
            ),
            (
                Frame::Data(Data {
                    stream_id: 1,
                    fin: true,
                    data: Bytes::from_static(b"hi"),
                }),
                vec![0, 0, 0, 1, 0x01, 0, 0, 2, b'h', b'i'],
            ),
        ];
        for (frame, bytes) in cases {
            assert_eq!(
                frame.to_bytes().expect("encode").to_vec(),
                bytes,
                "{frame:?}"
            );
            assert_eq!(decode_bytes(&bytes).expect("decode"), Some(frame));
        }
    }

    #[test]
    fn a_partial_frame_yields_none_and_consumes_nothing() {
        let bytes = Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello world"),
        })
        .to_bytes()
        .expect("encode");
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn frames_fed_one_byte_at_a_time_decode_in_order() {
        let frames = vec![
            Frame::Ping(Ping { id: 1 }),
            Frame::Data(Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"abc"),
            }),
            Frame::RstStream(RstStream {
                stream_id: 1,
                status: RstStatus::CANCEL,
            }),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).expect("encode");
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(f) = decode(&mut buf).expect("decode") {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn a_version_other_than_three_is_rejected() {
        let bytes = [0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1];
        assert_eq!(decode_bytes(&bytes), Err(FrameError::UnsupportedVersion(2)));
    }

    #[test]
    fn fixed_length_frames_with_a_wrong_length_are_rejected_before_the_payload_arrives() {
        // PING claiming 5 bytes; only the header is present.
        let err = decode_bytes(&[0x80, 3, 0, 6, 0, 0, 0, 5]).expect_err("invalid");
        assert_eq!(
            err,
            FrameError::InvalidLength {
                kind: FrameKind::Ping,
                length: 5
            }
        );
        let err = decode_bytes(&[0x80, 3, 0, 3, 0, 0, 0, 4]).expect_err("invalid");
        assert!(matches!(
            err,
            FrameError::InvalidLength {
                kind: FrameKind::RstStream,
                ..
            }
        ));
        let err = decode_bytes(&[0x80, 3, 0, 1, 0, 0, 0, 9]).expect_err("invalid");
        assert!(matches!(
            err,
            FrameError::InvalidLength {
                kind: FrameKind::SynStream,
                ..
            }
        ));
        let err = decode_bytes(&[0x80, 3, 0, 4, 0, 0, 0, 7]).expect_err("invalid");
        assert!(matches!(
            err,
            FrameError::InvalidLength {
                kind: FrameKind::Settings,
                ..
            }
        ));
    }

    #[test]
    fn a_settings_count_that_disagrees_with_the_length_is_rejected() {
        let bytes = [
            0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 7, 0, 1, 0, 0,
        ];
        assert!(matches!(
            decode_bytes(&bytes),
            Err(FrameError::InvalidLength {
                kind: FrameKind::Settings,
                ..
            })
        ));
    }

    #[test]
    fn undefined_flags_are_rejected() {
        // PING with flags 1.
        assert_eq!(
            decode_bytes(&[0x80, 3, 0, 6, 0x01, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::InvalidFlags {
                kind: FrameKind::Ping,
                flags: 1
            })
        );
        // DATA with the SPDY/2 COMPRESS flag.
        assert_eq!(
            decode_bytes(&[0, 0, 0, 1, 0x02, 0, 0, 0]),
            Err(FrameError::InvalidFlags {
                kind: FrameKind::Data,
                flags: 2
            })
        );
        // SYN_REPLY may only carry FIN.
        assert!(matches!(
            decode_bytes(&[0x80, 3, 0, 2, 0x02, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::InvalidFlags { .. })
        ));
    }

    #[test]
    fn stream_id_zero_is_rejected_where_the_spec_forbids_it() {
        assert_eq!(
            decode_bytes(&[0, 0, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::ZeroStreamId {
                kind: FrameKind::Data
            })
        );
        let syn = [0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_bytes(&syn),
            Err(FrameError::ZeroStreamId {
                kind: FrameKind::SynStream
            })
        );
        let rst = [0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5];
        assert!(matches!(
            decode_bytes(&rst),
            Err(FrameError::ZeroStreamId { .. })
        ));
        let reply = [0x80, 3, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0];
        assert!(matches!(
            decode_bytes(&reply),
            Err(FrameError::ZeroStreamId { .. })
        ));
        let headers = [0x80, 3, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0];
        assert!(matches!(
            decode_bytes(&headers),
            Err(FrameError::ZeroStreamId { .. })
        ));
        // WINDOW_UPDATE on stream 0 is the SPDY/3.1 session window: allowed.
        let wu = [0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            decode_bytes(&wu),
            Ok(Some(Frame::WindowUpdate(WindowUpdate {
                stream_id: 0,
                delta: 1
            })))
        );
        // GOAWAY with last-good 0 means "no stream was accepted": allowed.
        let goaway = [0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode_bytes(&goaway), Ok(Some(Frame::GoAway(_)))));
    }

    #[test]
    fn reserved_bits_in_stream_ids_and_deltas_are_rejected() {
        let syn = [0x80, 3, 0, 1, 0, 0, 0, 10, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            decode_bytes(&syn),
            Err(FrameError::ReservedBit {
                field: "stream id",
                ..
            })
        ));
        let syn = [0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0];
        assert!(matches!(
            decode_bytes(&syn),
            Err(FrameError::ReservedBit {
                field: "associated-to stream id",
                ..
            })
        ));
        let wu = [0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0x80, 0, 0, 1];
        assert!(matches!(
            decode_bytes(&wu),
            Err(FrameError::ReservedBit {
                field: "delta window size",
                ..
            })
        ));
        let goaway = [0x80, 3, 0, 7, 0, 0, 0, 8, 0x80, 0, 0, 1, 0, 0, 0, 0];
        assert!(matches!(
            decode_bytes(&goaway),
            Err(FrameError::ReservedBit { .. })
        ));
    }

    #[test]
    fn zero_ping_ids_rst_statuses_and_window_deltas_are_rejected() {
        assert_eq!(
            decode_bytes(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 0]),
            Err(FrameError::ZeroPingId)
        );
        assert_eq!(
            decode_bytes(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(FrameError::ZeroRstStatus)
        );
        assert_eq!(
            decode_bytes(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(FrameError::InvalidWindowDelta(0))
        );
    }

    #[test]
    fn frames_above_the_size_limit_are_rejected_from_the_header_alone() {
        let decoder = FrameDecoder::new(1024, 8192);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, 0, 0, 0x04, 0x01][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLarge {
                kind: FrameKind::Data,
                length: 1025,
                max: 1024
            })
        );
        let mut buf = BytesMut::from(&[0x80u8, 3, 0, 1, 0, 0, 0x20, 0x01][..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLarge {
                kind: FrameKind::SynStream,
                length: 8193,
                ..
            })
        ));
    }

    #[test]
    fn unknown_control_types_decode_as_unknown_frames() {
        let bytes = [0x80, 3, 0, 5, 0x07, 0, 0, 2, 0xde, 0xad];
        assert_eq!(
            decode_bytes(&bytes),
            Ok(Some(Frame::Unknown(UnknownControl {
                frame_type: 5,
                flags: 7,
                payload: Bytes::from_static(&[0xde, 0xad]),
            })))
        );
    }

    #[test]
    fn encoding_rejects_values_the_wire_format_cannot_carry() {
        let bad = [
            (
                Frame::Data(Data {
                    stream_id: 0,
                    fin: false,
                    data: Bytes::new(),
                }),
                FrameError::ZeroStreamId {
                    kind: FrameKind::Data,
                },
            ),
            (
                Frame::RstStream(RstStream {
                    stream_id: MAX_STREAM_ID + 1,
                    status: RstStatus::CANCEL,
                }),
                FrameError::StreamIdOutOfRange {
                    kind: FrameKind::RstStream,
                    id: MAX_STREAM_ID + 1,
                },
            ),
            (
                Frame::RstStream(RstStream {
                    stream_id: 1,
                    status: RstStatus(0),
                }),
                FrameError::ZeroRstStatus,
            ),
            (Frame::Ping(Ping { id: 0 }), FrameError::ZeroPingId),
            (
                Frame::WindowUpdate(WindowUpdate {
                    stream_id: 1,
                    delta: MAX_WINDOW_DELTA + 1,
                }),
                FrameError::InvalidWindowDelta(MAX_WINDOW_DELTA + 1),
            ),
            (
                Frame::SynStream(SynStream {
                    stream_id: 1,
                    associated_to: 0,
                    priority: 8,
                    slot: 0,
                    fin: false,
                    unidirectional: false,
                    header_block: Bytes::new(),
                }),
                FrameError::InvalidPriority(8),
            ),
            (
                Frame::Unknown(UnknownControl {
                    frame_type: TYPE_PING,
                    flags: 0,
                    payload: Bytes::new(),
                }),
                FrameError::NotUnknownType(TYPE_PING),
            ),
            (
                Frame::Data(Data {
                    stream_id: 1,
                    fin: false,
                    data: Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]),
                }),
                FrameError::TooLarge {
                    kind: FrameKind::Data,
                    length: MAX_FRAME_PAYLOAD + 1,
                    max: MAX_FRAME_PAYLOAD,
                },
            ),
        ];
        for (frame, err) in bad {
            let mut buf = BytesMut::new();
            assert_eq!(frame.encode(&mut buf), Err(err));
            assert!(buf.is_empty(), "nothing is written on error");
        }
    }

    #[test]
    fn status_codes_print_their_spec_names() {
        assert_eq!(RstStatus::CANCEL.to_string(), "CANCEL(5)");
        assert_eq!(RstStatus(99).to_string(), "status 99");
        assert_eq!(
            GoAwayStatus::PROTOCOL_ERROR.to_string(),
            "PROTOCOL_ERROR(1)"
        );
    }
}
