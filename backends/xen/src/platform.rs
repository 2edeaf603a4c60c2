//! Bringing up Xen's PV devices at boot: the grant table, xenstore, the
//! console, and the first vif and vbd.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use morgana_devices::Instant;
use morgana_x86::xen::{self, Port};

use crate::grant::GrantTable;
use crate::page::SharedPage;
use crate::xenstore::{Channel, Client};
use crate::{Blkfront, Netfront, PvConsole, XenbusState};

/// Entries per grant frame (8-byte v1 entries).
const PER_FRAME: u32 = 512;
/// Grant frames mapped.
const FRAMES: u32 = 4;

/// The grant table every driver shares.
pub(crate) struct Grants(pub(crate) GrantTable);

// SAFETY: Morgana runs one CPU and no threads; the table is used only from
// task context, under this mutex.
unsafe impl Send for Grants {}

pub(crate) static GRANTS: spin::Mutex<Option<Grants>> = spin::Mutex::new(None);

/// Runs `f` with the grant table.
pub(crate) fn with_grants<R>(f: impl FnOnce(&mut GrantTable) -> R) -> R {
    let mut g = GRANTS.lock();
    f(&mut g.as_mut().expect("grant table set up at boot").0)
}

/// The xenstore channel: its event port, and the platform's wait (for the
/// synchronous requests of boot device setup).
pub struct StoreChannel {
    port: Port,
    deadline: Instant,
}

impl Channel for StoreChannel {
    fn notify(&mut self) {
        self.port.notify();
    }

    fn wait(&mut self) -> bool {
        let now = morgana_x86::clock::now();
        if now >= self.deadline {
            return false;
        }
        // Halts until an event or 10 ms; boot-time only.
        morgana_runtime::Platform::wait(&morgana_x86::Machine, Some(now + Duration::from_millis(10)));
        true
    }

    fn register(&mut self, waker: &core::task::Waker) {
        self.port.register(waker);
    }
}

impl StoreChannel {
    /// Allows `d` more time for the next operations.
    pub fn extend(&mut self, d: Duration) {
        self.deadline = morgana_x86::clock::now() + d;
    }
}

/// The xenstore client.
pub type Store = Client<StoreChannel>;

/// What was found.
pub struct Devices {
    /// The first vif.
    pub net: Option<Netfront>,
    /// The first vbd.
    pub block: Option<Blkfront>,
    /// The PV console.
    pub console: Option<PvConsole>,
    /// Xenstore, watching `control/shutdown`. After boot, use only its
    /// async requests (`read_async`, `poll_watch`...).
    pub store: Store,
    /// The xenstore event port.
    pub store_port: Port,
}

fn param(index: u32, what: &str) -> Result<u64, String> {
    xen::hvm_param(index).filter(|v| *v != 0).ok_or_else(|| format!("Xen gave no {what}"))
}

/// Waits until the backend at `backend` reaches `want` (or beyond).
pub(crate) fn wait_backend(xs: &mut Store, backend: &str, want: XenbusState) -> Result<(), String> {
    xs.channel().extend(Duration::from_secs(10));
    let path = format!("{backend}/state");
    for _ in 0..2000 {
        let state = xs.read(&path).ok().and_then(|s| XenbusState::parse(&s));
        match state {
            Some(s) if s as u8 >= want as u8 && s as u8 <= XenbusState::Connected as u8 => return Ok(()),
            Some(XenbusState::Closing | XenbusState::Closed) => return Err(format!("backend {backend} closed")),
            _ => {}
        }
        if !xs.channel().wait() {
            break;
        }
    }
    Err(format!("backend {backend} never reached {want:?}"))
}

/// Sets up grants and xenstore and connects the devices.
pub fn start() -> Result<Devices, String> {
    let table = SharedPage::contiguous(FRAMES as usize);
    for i in 0..FRAMES {
        xen::add_to_physmap(xen::XENMAPSPACE_GRANT_TABLE, i as u64, table.gfn() + i as u64)
            .map_err(|e| format!("mapping grant frame {i}: error {e}"))?;
    }
    // SAFETY: Xen mapped FRAMES grant frames over these pages, which were
    // allocated for this and leaked; nothing else uses them.
    *GRANTS.lock() = Some(Grants(unsafe { GrantTable::new(table.ptr(), FRAMES * PER_FRAME) }));

    log::debug!("xen: {FRAMES} grant frames at {:#x}", table.addr());
    let store_page = param(xen::HVM_PARAM_STORE_PFN, "xenstore ring")? << 12;
    let store_port = param(xen::HVM_PARAM_STORE_EVTCHN, "xenstore event channel")?;
    let store_port =
        Port::checked(store_port).ok_or_else(|| format!("xenstore event channel {store_port} out of range"))?;
    store_port.unmask();
    // SAFETY: the xenstore ring frame Xen named in HVM_PARAM_STORE_PFN:
    // guest RAM below 4 GiB (identity mapped), set aside by the toolstack
    // for the ring, outside the heap and image.
    let page = unsafe { SharedPage::at(store_page as usize) }.ok_or("xenstore ring not page aligned")?;
    let mut xs = Client::new(page, StoreChannel { port: store_port, deadline: morgana_x86::clock::now() });
    xs.channel().extend(Duration::from_secs(10));
    log::debug!("xen: xenstore ring at {store_page:#x}, port {}", store_port.0);

    let console = match (xen::hvm_param(xen::HVM_PARAM_CONSOLE_PFN), xen::hvm_param(xen::HVM_PARAM_CONSOLE_EVTCHN)) {
        (Some(pfn), Some(port)) if pfn != 0 => match Port::checked(port) {
            Some(port) => PvConsole::new(pfn << 12, port),
            None => {
                log::warn!("Xen console event channel {port} out of range: no PV console");
                None
            }
        },
        _ => None,
    };

    let first = |xs: &mut Store, class: &str| -> Option<String> {
        xs.directory(&format!("device/{class}"))
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|id| format!("device/{class}/{id}"))
    };
    let vif = first(&mut xs, "vif");
    log::debug!("xen: console {}, vif {vif:?}", console.is_some());
    let net = match vif {
        Some(node) => Some(Netfront::connect(&mut xs, &node)?),
        None => None,
    };
    let block = match first(&mut xs, "vbd") {
        Some(node) => Some(Blkfront::connect(&mut xs, &node)?),
        None => None,
    };
    xs.watch("control/shutdown", "shutdown").map_err(|e| format!("watching control/shutdown: {e}"))?;
    // Tells the toolstack that `xl shutdown` is understood.
    if let Err(e) = xs.write(0, "control/feature-poweroff", "1") {
        log::warn!("control/feature-poweroff: {e}");
    }
    Ok(Devices { net, block, console, store: xs, store_port })
}
