//! Captures every tracing event (all levels, with span fields) of one future into a buffer, so
//! a check can assert what was and was not logged. Scoped to the future: parallel tests do not mix.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::instrument::WithSubscriber;
use tracing_subscriber::fmt::MakeWriter;

/// A buffer that collects formatted log lines.
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a future with every event it emits (at any level) written to this capture.
    pub async fn capture<F: Future>(&self, future: F) -> F::Output {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .finish();
        future.with_subscriber(subscriber).await
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves plain bytes behind: still readable.
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes into a [`LogCapture`].
#[derive(Debug)]
pub struct CaptureWriter(LogCapture);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.clone())
    }
}
