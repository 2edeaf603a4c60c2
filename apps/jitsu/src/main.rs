//! Jitsu: unikernels summoned on demand (after Madhavapeddy et al.,
//! NSDI 2015). An authoritative DNS server for the `--zone` files that
//! boots the unikernel behind a name (`--unikernel`) when the name is
//! looked up, answers with its address once it serves, and stops it after
//! `--idle-stop` seconds without queries or traffic.
//!
//! A host tool: it launches VMs on `--bridge` (`--launcher`: QEMU microvm
//! under TCG on TAP devices, transient libvirt domains, or Xen domains with
//! `xl`), so it runs as a Linux process and does not build for the VM
//! target. It serves DNS through the framework (`morgana::main!`, the
//! framework's sockets and executor, morgana-dns for zones and answers);
//! starting VMs, the `ip`/`virsh`/`xl` commands and reading the guest
//! consoles use std directly, on threads, so the DNS server never waits for
//! them.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
compile_error!("jitsu launches VMs on the host: build it as a process (cargo build -p jitsu), not for a VM target");

#[cfg(not(target_os = "none"))]
mod flags;
#[cfg(not(target_os = "none"))]
mod front;
#[cfg(not(target_os = "none"))]
mod launcher;
#[cfg(not(target_os = "none"))]
mod registry;
#[cfg(not(target_os = "none"))]
mod serve;

#[cfg(not(target_os = "none"))]
morgana::main!(flags::config, serve::serve, morgana::Options::DEFAULT.without_content());
