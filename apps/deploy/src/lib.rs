//! How Morgana images are deployed on a host: a libvirt domain
//! ([`libvirt::Libvirt`], printed by `cargo xtask libvirt` and started by
//! Jitsu's libvirt launcher) and an `xl` configuration for Xen
//! ([`xl::Domain`], printed by `cargo xtask xl`, used by the Xen tests and
//! Jitsu's xl launcher). A host library: std, no I/O, text in, text out.
#![forbid(unsafe_code)]

pub mod libvirt;
pub mod xl;
