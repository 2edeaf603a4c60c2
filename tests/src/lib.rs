//! Helpers for Morgana's end-to-end tests: real echo clients, app processes,
//! network namespaces, test prerequisites, and a virtual-time platform for
//! in-process stacks.
#![forbid(unsafe_code)]

pub mod client;
pub mod dnsmsg;
pub mod dnspeers;
pub mod frames;
pub mod jitsu;
pub mod libvirtd;
pub mod netns;
pub mod prereq;
pub mod process;
pub mod vtime;
