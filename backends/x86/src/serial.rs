//! The COM1 serial port: the console and the log sink.

use core::task::{Context, Poll};

use morgana_devices::{Console, ConsoleError};
use morgana_runtime::logger::LogSink;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
/// COM1's ISA interrupt.
const COM1_GSI: u32 = 4;

static RX_LINE: spin::Once<Option<crate::IrqLine>> = spin::Once::new();

static PORT: spin::Mutex<Option<Uart16550<PioBackend>>> = spin::Mutex::new(None);

/// Initialises COM1 (115200 8N1). Without a UART, output is dropped.
pub(crate) fn init() {
    if crate::xen::present() {
        return; // PVH has no UART; output goes to Xen's debug port
    }
    // SAFETY: 0x3f8..0x400 is COM1's register block on PC-compatible
    // machines, and only this module drives it.
    if let Ok(mut uart) = unsafe { Uart16550::new_port(COM1) } {
        if uart.init(Config::default()).is_ok() {
            *PORT.lock() = Some(uart);
        }
    }
}

/// Writes bytes without taking the port's lock: for panics and exception
/// reports, which may interrupt a writer holding it.
pub fn write_raw(bytes: &[u8]) {
    if crate::xen::present() {
        crate::xen::debug_write(bytes);
        return;
    }
    let mut data: Port<u8> = Port::new(COM1);
    let mut status: Port<u8> = Port::new(COM1 + 5);
    for &b in bytes {
        let mut spins = 0u32;
        // SAFETY: reading the line status register and writing the data
        // register of COM1 have no effect beyond the serial line.
        unsafe {
            while status.read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
            }
            data.write(b);
        }
    }
}

fn write_locked(bytes: &[u8]) {
    if crate::xen::present() {
        crate::xen::debug_write(bytes);
        return;
    }
    let mut port = PORT.lock();
    match port.as_mut() {
        Some(uart) => uart.send_bytes_exact(bytes),
        None => write_raw(bytes),
    }
}

/// `core::fmt` output to the serial port, translating `\n` to `\r\n`.
pub struct Writer;

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                write_locked(b"\r\n");
            }
            write_locked(line.as_bytes());
        }
        Ok(())
    }
}

/// COM1 as a [`Console`] and a log sink.
#[derive(Debug, Default)]
pub struct Serial;

impl LogSink for Serial {
    fn write_str(&mut self, s: &str) {
        let _ = core::fmt::Write::write_str(&mut Writer, s);
    }
}

impl Console for Serial {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        write_locked(bytes);
        Ok(())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>> {
        let mut port = PORT.lock();
        let Some(uart) = port.as_mut() else { return Poll::Ready(Ok(0)) };
        let line = *RX_LINE.call_once(|| {
            let line = crate::IrqLine::route(COM1_GSI, false);
            if line.is_some() {
                uart.enable_interrupts(uart_16550::spec::registers::IER::DATA_READY);
            }
            line
        });
        let Some(line) = line else { return Poll::Ready(Ok(0)) };
        // Register before looking, so a byte arriving in between still wakes.
        line.register(cx.waker());
        let n = uart.receive_bytes(buf);
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        Poll::Pending
    }
}
