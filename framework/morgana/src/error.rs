use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

/// Any error an app's `main` returns. Printed as one line when the app exits.
pub type Error = Box<dyn core::error::Error>;

/// `Result` with [`Error`], the return type of an app's `main`.
pub type Result<T = ()> = core::result::Result<T, Error>;

struct WithContext {
    context: String,
    source: Error,
}

impl fmt::Debug for WithContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for WithContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl core::error::Error for WithContext {}

/// Adds what was being done to an error: `listen(..).context("TCP port 7")?`
/// fails with "TCP port 7: address already in use".
pub trait Context<T> {
    /// Prefixes the error with `context`.
    fn context(self, context: impl fmt::Display) -> Result<T>;
}

impl<T, E: core::error::Error + 'static> Context<T> for core::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Box::new(WithContext { context: alloc::format!("{context}"), source: Box::new(e) }) as Error)
    }
}
