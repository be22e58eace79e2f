//! The kubelet HTTPS API a virtual node serves (logs, exec, attach, port-forward, stats,
//! metrics). So far: the SPDY/3.1 codec the streaming endpoints run on.

pub mod spdy;
