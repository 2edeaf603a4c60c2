//! An HTTP/1.1 static-file server for Morgana, over any stream that
//! implements `embedded_io_async::Read + Write` (plain TCP or TLS).
//!
//! * [`site`]: the files served, with content types, ETags and
//!   precompressed `.gz` variants;
//! * [`challenges`]: ACME HTTP-01 answers;
//! * [`date`]: HTTP dates;
//! * [`metrics`]: responses by status code;
//! * [`server`]: one connection: request parsing (httparse), limits and
//!   timeouts, GET/HEAD, keep-alive and pipelining, conditional requests,
//!   single ranges, error responses.
//!
//! Not implemented: methods other than GET and HEAD (405), request bodies
//! (a GET body is read and discarded up to a limit; chunked request bodies
//! are refused), multiple byte ranges (the whole file is sent), HTTP/2,
//! `Expect: 100-continue`, directory listings, dynamic content.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod challenges;
pub mod date;
pub mod metrics;
pub mod server;
pub mod site;

pub use challenges::Challenges;
pub use server::{serve_connection, Config, Outcome};
pub use site::{Body, Entry, Site};
