//! The logging set-up shared by vk-host and the providers: `tracing` to standard error as text
//! or one JSON object per line, filtered by `RUST_LOG` (default `info`), so every process of a
//! virtual node logs alike.

pub use kube_values::LogFormat;

/// Installs the global `tracing` subscriber. Call once, at the start of `main`; a second call
/// leaves the first subscriber in place.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
