//! A GUID partition table written from scratch (UEFI 2.10, chapter 5):
//! the protective MBR, the primary header and entry array at LBA 1, and
//! their backup at the end of the disk; and the two patches that
//! `grub-bios-setup` makes to put GRUB's BIOS stage 1 (`boot.img`) in the
//! MBR and its `core.img` in a BIOS boot partition, so no device (and no
//! root) is needed.

/// Bytes in a logical block.
pub const SECTOR: u64 = 512;

/// Entries in the partition entry array (the minimum the spec allows,
/// which every tool writes): 128 of 128 bytes, 32 sectors.
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;
/// Sectors the entry array takes.
pub const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;

/// The EFI system partition's type.
pub const EFI_SYSTEM: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// The BIOS boot partition's type ("Hah!IdontNeedEFI"), where GRUB's
/// core.img lives on a GPT disk.
pub const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";

/// CRC-32 as GPT uses it (IEEE 802.3, reflected, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A GUID in its on-disk form from its text form: the first three groups
/// are stored little-endian, the last two as written.
pub fn guid(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "GUID {text}");
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex GUID");
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// A random-looking (version 4, RFC 4122 variant) GUID from 16 bytes of a
/// hash, so that the same inputs make the same disk.
pub fn guid_from(bytes: &[u8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    // Version in the high nibble of the third group (stored little-endian).
    b[7] = (b[7] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// One partition.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Type GUID, on-disk form.
    pub type_guid: [u8; 16],
    /// Unique GUID, on-disk form.
    pub guid: [u8; 16],
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Name (UTF-16LE on disk, at most 36 code units).
    pub name: String,
}

/// The protective MBR: one partition of type 0xEE over the whole disk (as
/// far as 32 bits reach), no boot code (see [`bios_boot_sector`]).
pub fn protective_mbr(disk_sectors: u64) -> [u8; 512] {
    let mut m = [0u8; 512];
    let e = &mut m[446..462];
    e[0] = 0x00; // not active
    e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    e[4] = 0xEE;
    e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = (disk_sectors - 1).min(u32::MAX as u64) as u32;
    e[12..16].copy_from_slice(&size.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

/// A GPT for a disk of `disk_sectors`: the primary header (for LBA 1),
/// the entry array (LBA 2 and at the end), and the backup header (the
/// last LBA).
pub struct Gpt {
    /// The header at LBA 1.
    pub primary: [u8; 512],
    /// The entry array, at LBA 2 and just before the backup header.
    pub entries: Vec<u8>,
    /// The header at the last LBA.
    pub backup: [u8; 512],
    /// Where the backup entry array starts.
    pub backup_entries_lba: u64,
}

/// The first sector partitions may use.
pub const FIRST_USABLE: u64 = 2 + ENTRY_SECTORS;

/// The GPT for `parts` on a disk of `disk_sectors`. Partitions must lie
/// within the usable sectors.
pub fn gpt(disk_sectors: u64, disk_guid: [u8; 16], parts: &[Partition]) -> Result<Gpt, String> {
    let last = disk_sectors - 1;
    let backup_entries_lba = last - ENTRY_SECTORS;
    let last_usable = backup_entries_lba - 1;
    let mut entries = vec![0u8; ENTRIES * ENTRY_SIZE];
    if parts.len() > ENTRIES {
        return Err("too many partitions".into());
    }
    for (i, p) in parts.iter().enumerate() {
        if p.first_lba < FIRST_USABLE || p.last_lba > last_usable || p.first_lba > p.last_lba {
            return Err(format!(
                "partition {} ({}..={}) outside {FIRST_USABLE}..={last_usable}",
                i + 1,
                p.first_lba,
                p.last_lba
            ));
        }
        let e = &mut entries[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE];
        e[0..16].copy_from_slice(&p.type_guid);
        e[16..32].copy_from_slice(&p.guid);
        e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        // Attributes (48..56) stay 0.
        let name: Vec<u16> = p.name.encode_utf16().collect();
        if name.len() > 36 {
            return Err(format!("partition name '{}' is too long", p.name));
        }
        for (j, u) in name.iter().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let entries_crc = crc32(&entries);
    let header = |my_lba: u64, alternate_lba: u64, entries_lba: u64| {
        let mut h = [0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes()); // revision 1.0
        h[12..16].copy_from_slice(&92u32.to_le_bytes()); // header size
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    Ok(Gpt { primary: header(1, last, 2), backup: header(last, 1, backup_entries_lba), entries, backup_entries_lba })
}

/// Offsets in GRUB's i386-pc `boot.img` (grub-core/boot/i386/pc/boot.S,
/// include/grub/i386/pc/boot.h).
const KERNEL_SECTOR: usize = 0x5c;
const DRIVE_CHECK: usize = 0x66;
const NT_MAGIC: usize = 0x1b8;

/// The MBR sector with GRUB's `boot.img` as its boot code, loading
/// `core.img` from `core_lba`, with the disk signature and partition table
/// of `mbr` (as `grub-bios-setup` writes it).
pub fn bios_boot_sector(boot_img: &[u8], mbr: &[u8; 512], core_lba: u64) -> Result<[u8; 512], String> {
    if boot_img.len() != 512 || boot_img[510..] != [0x55, 0xAA] {
        return Err(format!("boot.img is {} bytes, not one boot sector", boot_img.len()));
    }
    let mut s = *mbr;
    s[..NT_MAGIC].copy_from_slice(&boot_img[..NT_MAGIC]);
    s[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    // On a hard disk, grub-bios-setup replaces the jump over the drive
    // check with two NOPs: a BIOS that hands over a floppy number gets 0x80.
    s[DRIVE_CHECK..DRIVE_CHECK + 2].copy_from_slice(&[0x90, 0x90]);
    Ok(s)
}

/// Patches `core.img` (its first sector is GRUB's `diskboot.img`) to load
/// the rest of itself from the sectors after `core_lba`: the one blocklist
/// entry at the end of that sector (grub-core/boot/i386/pc/diskboot.S).
pub fn patch_core(core: &mut [u8], core_lba: u64) -> Result<(), String> {
    let sectors = core.len().div_ceil(SECTOR as usize);
    if sectors < 2 || sectors > u16::MAX as usize {
        return Err(format!("core.img of {} bytes", core.len()));
    }
    let at = SECTOR as usize - 12;
    let segment = u16::from_le_bytes([core[at + 10], core[at + 11]]);
    if segment != 0x820 {
        return Err(format!("core.img's blocklist segment is {segment:#x}, not 0x820: not an i386-pc core.img"));
    }
    core[at..at + 8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    core[at + 8..at + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guids_are_mixed_endian() {
        assert_eq!(
            guid(EFI_SYSTEM),
            [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]
        );
        assert_eq!(&guid(BIOS_BOOT), b"Hah!IdontNeedEFI");
        let g = guid_from(&[0xff; 32]);
        assert_eq!((g[7] >> 4, g[8] >> 6), (4, 2));
    }

    #[test]
    fn headers_check_out() {
        let parts = [Partition {
            type_guid: guid(EFI_SYSTEM),
            guid: guid_from(&[7; 16]),
            first_lba: 2048,
            last_lba: 4095,
            name: "EFI system".into(),
        }];
        let g = gpt(8192, guid_from(&[1; 16]), &parts).unwrap();
        for (h, me, alt, entries) in [(&g.primary, 1u64, 8191u64, 2u64), (&g.backup, 8191, 1, 8191 - 32)] {
            let mut copy = *h;
            copy[16..20].fill(0);
            assert_eq!(crc32(&copy[..92]).to_le_bytes(), h[16..20]);
            let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
            assert_eq!((u64_at(24), u64_at(32), u64_at(72)), (me, alt, entries));
            assert_eq!((u64_at(40), u64_at(48)), (34, 8191 - 33));
            assert_eq!(h[88..92], crc32(&g.entries).to_le_bytes());
        }
        assert_eq!(g.backup_entries_lba, 8191 - 32);
        assert_eq!(&g.entries[56..58], &[b'E', 0]);
        let too_far = Partition { last_lba: 8191 - 32, ..parts[0].clone() };
        assert!(gpt(8192, [0; 16], &[too_far]).is_err());
    }

    #[test]
    fn mbr_and_grub_patches() {
        let mbr = protective_mbr(8192);
        assert_eq!(mbr[450], 0xEE);
        assert_eq!(u32::from_le_bytes(mbr[458..462].try_into().unwrap()), 8191);
        let mut boot = [0x11u8; 512];
        boot[510..].copy_from_slice(&[0x55, 0xAA]);
        let s = bios_boot_sector(&boot, &mbr, 2048).unwrap();
        assert_eq!(u64::from_le_bytes(s[0x5c..0x64].try_into().unwrap()), 2048);
        assert_eq!(&s[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(s[0x1b7], 0x11);
        assert_eq!(s[0x1b8..], mbr[0x1b8..]);
        assert!(bios_boot_sector(&boot[..100], &mbr, 2048).is_err());

        let mut core = vec![0u8; 3 * 512 + 7];
        core[500..512].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x20, 0x08]);
        patch_core(&mut core, 2048).unwrap();
        assert_eq!(core[500..512], [0x01, 0x08, 0, 0, 0, 0, 0, 0, 3, 0, 0x20, 0x08]);
        assert!(patch_core(&mut vec![0u8; 2048], 2048).is_err());
    }
}
