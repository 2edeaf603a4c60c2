//! Parsing the ACPI tables the platform reads (the DSDT's `\_S5` package,
//! the MADT's interrupt overrides, checksums): plain safe code over byte
//! slices, so it is unit-tested on the host too.

pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// SLP_TYPa and SLP_TYPb from the DSDT's `\_S5` package: `NameOp "_S5_"
/// PackageOp PkgLength NumElements` then two integers (ByteConst, Zero or
/// One). Only this fixed shape is read; there is no AML interpreter.
pub(crate) fn s5(dsdt: &[u8]) -> Option<(u8, u8)> {
    let at = dsdt.windows(4).position(|w| w == b"_S5_")?;
    let mut rest = dsdt.get(at + 4..)?;
    if *rest.first()? != 0x12 {
        return None; // not a package
    }
    let len_bytes = (rest.get(1)? >> 6) as usize;
    rest = rest.get(2 + len_bytes + 1..)?; // PkgLength, NumElements
    let mut int = || -> Option<u8> {
        let (v, used) = match *rest.first()? {
            0x0a => (*rest.get(1)?, 2),
            0x00 => (0, 1),
            0x01 => (1, 1),
            _ => return None,
        };
        rest = rest.get(used..)?;
        Some(v)
    };
    let a = int()?;
    Some((a, int().unwrap_or(a)))
}

/// The MADT's override of ISA interrupt `irq`: (GSI, level, active low).
pub(crate) fn sci_route(madt: Option<&[u8]>, irq: u16) -> (u32, bool, bool) {
    let default = (irq as u32, true, true);
    let Some(mut entries) = madt.and_then(|m| m.get(44..)) else { return default };
    while let [kind, len, ..] = *entries {
        let len = len as usize;
        if len < 2 || len > entries.len() {
            break;
        }
        if kind == 2 && len >= 10 && entries[3] as u16 == irq {
            let gsi = u32_at(entries, 4).unwrap_or(irq as u32);
            let flags = u16_at(entries, 8).unwrap_or(0);
            let active_low = flags & 3 != 1; // 0 conforms: low for the SCI
            let level = (flags >> 2) & 3 != 1;
            return (gsi, level, active_low);
        }
        entries = &entries[len..];
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_package_shapes() {
        // NameOp "_S5_" Package(4) {Zero, Zero, Zero, Zero}: QEMU's shape.
        assert_eq!(s5(b"\x08_S5_\x12\x06\x04\x00\x00\x00\x00"), Some((0, 0)));
        // ByteConst values after a two-byte PkgLength.
        assert_eq!(s5(b"\x08_S5_\x12\x46\x00\x02\x0a\x05\x0a\x07"), Some((5, 7)));
        // One value only: used for both.
        assert_eq!(s5(b"\x08_S5_\x12\x04\x01\x01"), Some((1, 1)));
        // Not a package, cut short, an unknown element, absent: none.
        assert_eq!(s5(b"\x08_S5_\x14\x04"), None);
        assert_eq!(s5(b"\x08_S5_\x12"), None);
        assert_eq!(s5(b"\x08_S5_\x12\x04\x02\x0b\x00"), None);
        assert_eq!(s5(b"no sleep states here"), None);
    }

    #[test]
    fn sci_override_from_the_madt() {
        let mut madt = [0u8; 44].to_vec();
        // A LAPIC entry, then ISA IRQ 9 overridden to GSI 20, level, active high.
        madt.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        madt.extend_from_slice(&[2, 10, 0, 9, 20, 0, 0, 0, 0b1101, 0]);
        assert_eq!(sci_route(Some(&madt), 9), (20, true, false));
        assert_eq!(sci_route(Some(&madt), 5), (5, true, true), "no override: the SCI's level, active low");
        assert_eq!(sci_route(None, 9), (9, true, true));
        // "Conforms to the bus" (0) means the SCI's own: level, active low.
        let mut conforming = [0u8; 44].to_vec();
        conforming.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0, 0]);
        assert_eq!(sci_route(Some(&conforming), 9), (9, true, true));
    }

    #[test]
    fn broken_madt_entries_end_the_walk() {
        for tail in [&[2u8, 0, 0, 9][..], &[2, 1], &[2, 200, 0, 9, 20], &[2]] {
            let mut madt = [0u8; 44].to_vec();
            madt.extend_from_slice(tail);
            assert_eq!(sci_route(Some(&madt), 9), (9, true, true), "{tail:?}");
        }
        assert_eq!(sci_route(Some(&[0u8; 10]), 9), (9, true, true), "shorter than the header");
    }

    #[test]
    fn checksums_and_fields() {
        assert_eq!(checksum(&[0x10, 0xf0]), 0);
        assert_eq!(u16_at(&[1, 2, 3], 1), Some(0x0302));
        assert_eq!(u32_at(&[1, 2, 3], 0), None);
        assert_eq!(u64_at(&[0; 7], 0), None);
        assert_eq!(u32_at(&[0; 4], usize::MAX), None, "no overflow on a huge offset");
    }
}
