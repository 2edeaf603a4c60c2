use alloc::string::String;
use core::fmt;

/// Why a network operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The local address and port are taken.
    AddrInUse,
    /// The local address is not one of this stack's addresses.
    AddrNotAvailable,
    /// Binding needs privileges the process lacks (hosted: ports below 1024).
    PermissionDenied,
    /// The peer refused the connection (RST in reply to SYN).
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// The operation did not complete within its timeout.
    TimedOut,
    /// No route to the destination.
    Unreachable,
    /// Writing after the stream was shut down, or using a closed socket.
    Closed,
    /// A datagram too large for the socket's buffer or the link.
    TooLarge,
    /// No socket or buffer space left.
    NoBuffers,
    /// An argument the operation cannot use (port 0 for connect, ...).
    InvalidInput(&'static str),
    /// The machine has no network device.
    NoDevice,
    /// Any other error reported by the host OS (hosted backend only).
    Host(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AddrInUse => f.write_str("address already in use"),
            Error::AddrNotAvailable => f.write_str("address not available"),
            Error::PermissionDenied => f.write_str("permission denied"),
            Error::ConnectionRefused => f.write_str("connection refused"),
            Error::ConnectionReset => f.write_str("connection reset by peer"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Unreachable => f.write_str("destination unreachable"),
            Error::Closed => f.write_str("socket closed"),
            Error::TooLarge => f.write_str("datagram too large"),
            Error::NoBuffers => f.write_str("no buffer space"),
            Error::InvalidInput(what) => write!(f, "invalid input: {what}"),
            Error::NoDevice => f.write_str("no network device"),
            Error::Host(msg) => f.write_str(msg),
        }
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            Error::AddrInUse => K::AddrInUse,
            Error::AddrNotAvailable => K::AddrNotAvailable,
            Error::PermissionDenied => K::PermissionDenied,
            Error::ConnectionRefused => K::ConnectionRefused,
            Error::ConnectionReset => K::ConnectionReset,
            Error::TimedOut => K::TimedOut,
            Error::Closed => K::BrokenPipe,
            Error::TooLarge | Error::InvalidInput(_) => K::InvalidInput,
            Error::NoBuffers => K::OutOfMemory,
            Error::Unreachable | Error::NoDevice | Error::Host(_) => K::Other,
        }
    }
}
