//! SPDY/3.1 (in progress).
