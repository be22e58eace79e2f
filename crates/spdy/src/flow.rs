//! SPDY/3.1 flow-control window arithmetic, kept free of I/O so it can be tested alone.
//!
//! Two windows exist per direction: one per stream and one for the whole session (stream
//! id 0 in WINDOW_UPDATE). Both start at 64 KiB. Only DATA payload bytes count.

/// The SPDY/3.1 initial window for streams and for the session.
pub const DEFAULT_INITIAL_WINDOW: u32 = 65_536;
/// A window may never exceed 2^31 - 1.
pub const MAX_WINDOW: i64 = 0x7fff_ffff;

/// A flow-control violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("a WINDOW_UPDATE or SETTINGS change would grow the window beyond 2^31-1")]
    Overflow,
    #[error("the peer sent {len} bytes with only {available} bytes of window left")]
    Exceeded { len: usize, available: i64 },
}

/// What we may still send. Can go negative when the peer shrinks the initial window with
/// SETTINGS (or, in lenient mode, when we send past a window the peer never replenishes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendWindow {
    available: i64,
}

impl SendWindow {
    pub fn new(initial: u32) -> Self {
        Self {
            available: i64::from(initial),
        }
    }

    pub fn available(&self) -> i64 {
        self.available
    }

    /// Bytes that may be sent now (0 when the window is exhausted or negative).
    pub fn sendable(&self) -> usize {
        usize::try_from(self.available.max(0)).unwrap_or(usize::MAX)
    }

    /// Accounts for `n` bytes sent.
    pub fn consume(&mut self, n: usize) {
        self.available = self
            .available
            .saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Applies a WINDOW_UPDATE. On overflow the window is left unchanged.
    pub fn grant(&mut self, delta: u32) -> Result<(), FlowError> {
        let next = self.available + i64::from(delta);
        if next > MAX_WINDOW {
            return Err(FlowError::Overflow);
        }
        self.available = next;
        Ok(())
    }

    /// Applies a change of SETTINGS_INITIAL_WINDOW_SIZE from `old` to `new` to an existing
    /// stream window. On overflow the window is left unchanged.
    pub fn apply_initial_change(&mut self, old: u32, new: u32) -> Result<(), FlowError> {
        let next = self.available + i64::from(new) - i64::from(old);
        if next > MAX_WINDOW {
            return Err(FlowError::Overflow);
        }
        self.available = next;
        Ok(())
    }
}

/// What the peer may still send us, and what we consumed but have not yet announced with a
/// WINDOW_UPDATE. Updates are batched: one is due once half the initial window has been
/// consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvWindow {
    window: i64,
    unannounced: u64,
    initial: u32,
}

impl RecvWindow {
    pub fn new(initial: u32) -> Self {
        Self {
            window: i64::from(initial),
            unannounced: 0,
            initial,
        }
    }

    pub fn window(&self) -> i64 {
        self.window
    }

    /// Consumed bytes not yet given back with a WINDOW_UPDATE.
    pub fn unannounced(&self) -> u64 {
        self.unannounced
    }

    /// Accounts for `len` bytes of DATA received. The window shrinks regardless; an error
    /// reports that the peer overran it.
    pub fn on_data(&mut self, len: usize) -> Result<(), FlowError> {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let available = self.window;
        self.window = self.window.saturating_sub(len_i);
        if len_i > available {
            return Err(FlowError::Exceeded { len, available });
        }
        Ok(())
    }

    /// Accounts for `n` bytes consumed by the application (or discarded). Returns the delta
    /// of a WINDOW_UPDATE to send now, if one is due; the window is re-opened by that delta.
    pub fn on_consumed(&mut self, n: usize) -> Option<u32> {
        self.unannounced = self.unannounced.saturating_add(n as u64);
        if self.unannounced == 0 || self.unannounced < u64::from(self.initial / 2).max(1) {
            return None;
        }
        let room = u64::try_from(MAX_WINDOW - self.window.max(0)).unwrap_or(0);
        let delta = self.unannounced.min(room).min(u64::from(u32::MAX));
        if delta == 0 {
            return None;
        }
        self.unannounced -= delta;
        self.window += i64::try_from(delta).unwrap_or(0);
        u32::try_from(delta).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_window_shrinks_as_data_is_sent_and_grows_with_updates() {
        let mut w = SendWindow::new(DEFAULT_INITIAL_WINDOW);
        w.consume(60_000);
        assert_eq!(w.sendable(), 5_536);
        w.consume(10_000);
        assert_eq!(w.available(), -4_464);
        assert_eq!(w.sendable(), 0);
        w.grant(32_768).expect("grant");
        assert_eq!(w.available(), 28_304);
    }

    #[test]
    fn a_send_window_refuses_to_grow_beyond_two_to_the_thirty_one_minus_one() {
        let mut w = SendWindow::new(DEFAULT_INITIAL_WINDOW);
        assert_eq!(w.grant(0x7fff_ffff), Err(FlowError::Overflow));
        assert_eq!(w.available(), 65_536, "unchanged on overflow");
        w.grant(0x7fff_ffff - 65_536).expect("exactly the maximum");
        assert_eq!(w.available(), MAX_WINDOW);
    }

    #[test]
    fn a_settings_change_of_the_initial_window_moves_existing_windows_by_the_difference() {
        let mut w = SendWindow::new(DEFAULT_INITIAL_WINDOW);
        w.consume(60_000);
        w.apply_initial_change(65_536, 16_384).expect("shrink");
        assert_eq!(w.available(), -43_616, "the spec's negative-window case");
        w.apply_initial_change(16_384, 1 << 20).expect("grow");
        assert_eq!(w.available(), (1 << 20) - 60_000);
        assert_eq!(
            w.apply_initial_change(0, 0x7fff_ffff),
            Err(FlowError::Overflow)
        );
    }

    #[test]
    fn a_receive_window_announces_consumed_bytes_once_half_the_window_is_used() {
        let mut r = RecvWindow::new(DEFAULT_INITIAL_WINDOW);
        r.on_data(40_000).expect("within window");
        assert_eq!(r.window(), 25_536);
        assert_eq!(r.on_consumed(20_000), None, "below the 32 KiB threshold");
        assert_eq!(r.on_consumed(12_768), Some(32_768));
        assert_eq!(r.window(), 58_304);
        assert_eq!(r.unannounced(), 0);
        assert_eq!(r.on_consumed(7_232), None);
        assert_eq!(r.unannounced(), 7_232);
    }

    #[test]
    fn a_receive_window_reports_a_peer_that_overruns_it() {
        let mut r = RecvWindow::new(1_000);
        r.on_data(600).expect("fits");
        assert_eq!(
            r.on_data(500),
            Err(FlowError::Exceeded {
                len: 500,
                available: 400
            })
        );
        assert_eq!(r.window(), -100, "still accounted");
        // Consuming everything re-opens the window to its initial size.
        assert_eq!(r.on_consumed(1_100), Some(1_100));
        assert_eq!(r.window(), 1_000);
    }

    #[test]
    fn empty_data_never_triggers_a_window_update() {
        let mut r = RecvWindow::new(DEFAULT_INITIAL_WINDOW);
        r.on_data(0).expect("empty");
        assert_eq!(r.on_consumed(0), None);
    }
}
