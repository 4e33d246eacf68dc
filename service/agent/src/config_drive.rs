//! The config drive: after the image is on the disk, a new partition at the
//! disk's end holding a FAT filesystem labelled `config-2` with the
//! OpenStack layout (`openstack/latest/meta_data.json`, …), which cloud-init
//! (and Ignition, and Glean) read on first boot.
//!
//! The image brings its partition table; the drive is added to it: a free
//! primary slot of an MBR, or a free entry of a GPT — whose backup header and
//! entries move to the disk's real end (the image was made for a smaller
//! disk), as `sgdisk -e` would. Whatever does not fit is refused with the
//! reason, never half-written: the table is changed only after the
//! filesystem is complete.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Size of the config drive partition (what Ironic uses too).
pub const SIZE: u64 = 64 << 20;
const SECTOR: u64 = 512;
const ALIGN: u64 = 2048; // 1 MiB in sectors

/// Where the drive went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// `mbr` or `gpt`.
    pub table: &'static str,
    /// 1-based partition number.
    pub partition: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub files: usize,
}

/// Add the config drive to the partitioned image on `disk`.
pub fn write(disk: &Path, files: &BTreeMap<String, String>) -> Result<Written, String> {
    let mut f = OpenOptions::new().read(true).write(true).open(disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    let disk_bytes = f.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let sectors = disk_bytes / SECTOR;
    let mut head = vec![0u8; 2 * SECTOR as usize];
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    f.read_exact(&mut head).map_err(|e| format!("reading the partition table: {e}"))?;
    if head[510] != 0x55 || head[511] != 0xAA {
        return Err("the image has no partition table (no MBR signature); a config drive needs an image with an MBR or GPT partition table".into());
    }
    let gpt = &head[512..520] == b"EFI PART";
    let plan = if gpt { Gpt::read(&mut f, sectors)?.plan() } else { mbr_plan(&head, sectors) }?;
    // The filesystem first: a failure here leaves the table as the image had it.
    let mut slice = Slice {
        f: f.try_clone().map_err(|e| e.to_string())?,
        start: plan.start * SECTOR,
        len: plan.len * SECTOR,
        pos: 0,
    };
    format(&mut slice, files).map_err(|e| format!("making the config drive's filesystem: {e}"))?;
    let partition = match plan.kind {
        Kind::Mbr { slot } => {
            mbr_add(&mut f, &mut head, slot, plan.start, plan.len)?;
            slot as u32 + 1
        }
        Kind::Gpt(g, slot) => {
            g.add(&mut f, slot, plan.start, plan.start + plan.len - 1)?;
            slot as u32 + 1
        }
    };
    f.sync_all().map_err(|e| e.to_string())?;
    Ok(Written {
        table: if gpt { "gpt" } else { "mbr" },
        partition,
        start_bytes: plan.start * SECTOR,
        size_bytes: plan.len * SECTOR,
        files: files.len(),
    })
}

struct Plan {
    start: u64,
    len: u64,
    kind: Kind,
}

enum Kind {
    Mbr { slot: usize },
    Gpt(Box<Gpt>, usize),
}

/// The last `SIZE` bytes before `end` (exclusive, in sectors), aligned, after `used_end`.
fn place(end: u64, used_end: u64) -> Result<(u64, u64), String> {
    let want = SIZE / SECTOR;
    let start = end.checked_sub(want).map(|s| s / ALIGN * ALIGN).unwrap_or(0);
    if start == 0 || start < used_end {
        return Err(format!(
            "no room for a {} MiB config drive after the image's partitions (they end at {} MiB of a {} MiB disk)",
            SIZE >> 20,
            (used_end * SECTOR) >> 20,
            (end * SECTOR) >> 20
        ));
    }
    Ok((start, end - start))
}

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn mbr_plan(head: &[u8], sectors: u64) -> Result<Plan, String> {
    let mut free = None;
    let mut used_end = 1;
    for slot in 0..4 {
        let e = &head[446 + slot * 16..446 + slot * 16 + 16];
        if e[4] == 0 {
            free.get_or_insert(slot);
        } else {
            used_end = used_end.max(le32(e, 8) + le32(e, 12));
        }
    }
    let slot = free.ok_or("the image's MBR has 4 primary partitions; the config drive needs a free one")?;
    let end = sectors.min(u32::MAX as u64);
    let (start, len) = place(end, used_end)?;
    Ok(Plan { start, len, kind: Kind::Mbr { slot } })
}

fn mbr_add(f: &mut File, head: &mut [u8], slot: usize, start: u64, len: u64) -> Result<(), String> {
    let e = &mut head[446 + slot * 16..446 + slot * 16 + 16];
    e.fill(0);
    // CHS fields say "use LBA"; type 0x0C is FAT32 (LBA), what FAT readers expect.
    e[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[4] = 0x0C;
    e[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    f.write_all(&head[..512]).map_err(|e| format!("writing the MBR: {e}"))
}

/// A GPT as read from the disk: the primary header and its entries.
struct Gpt {
    header: Vec<u8>,
    entries: Vec<u8>,
    entry_size: usize,
    count: usize,
    sectors: u64,
}

/// Microsoft basic data: what a FAT partition is typed as.
const BASIC_DATA: [u8; 16] = guid_bytes(0xEBD0A0A2, 0xB9E5, 0x4433, [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7]);

/// A GUID's on-disk form: the first three fields little-endian.
const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}

impl Gpt {
    fn read(f: &mut File, sectors: u64) -> Result<Gpt, String> {
        let mut header = vec![0u8; SECTOR as usize];
        f.seek(SeekFrom::Start(SECTOR)).map_err(|e| e.to_string())?;
        f.read_exact(&mut header).map_err(|e| e.to_string())?;
        let size = le32(&header, 12) as usize;
        if !(92..=512).contains(&size) {
            return Err(format!("the GPT header has an odd size ({size}); is the image's table damaged?"));
        }
        let mut check = header[..size].to_vec();
        check[16..20].fill(0);
        if crc32(&check) as u64 != le32(&header, 16) {
            return Err("the GPT header's checksum is wrong; is the image's table damaged?".into());
        }
        let (entries_lba, count, entry_size) =
            (le64(&header, 72), le32(&header, 80) as usize, le32(&header, 84) as usize);
        if entry_size < 128 || count == 0 || count > 1024 {
            return Err(format!(
                "the GPT has {count} entries of {entry_size} bytes; expected up to 1024 of at least 128"
            ));
        }
        let mut entries = vec![0u8; count * entry_size];
        f.seek(SeekFrom::Start(entries_lba * SECTOR)).map_err(|e| e.to_string())?;
        f.read_exact(&mut entries).map_err(|e| e.to_string())?;
        if crc32(&entries) as u64 != le32(&header, 88) {
            return Err("the GPT entries' checksum is wrong; is the image's table damaged?".into());
        }
        Ok(Gpt { header, entries, entry_size, count, sectors })
    }

    fn entry_sectors(&self) -> u64 {
        (self.count * self.entry_size) as u64 / SECTOR
    }

    fn plan(self) -> Result<Plan, String> {
        let mut free = None;
        let mut used_end = le64(&self.header, 40); // first usable LBA
        for i in 0..self.count {
            let e = &self.entries[i * self.entry_size..(i + 1) * self.entry_size];
            if e[..16].iter().all(|b| *b == 0) {
                free.get_or_insert(i);
            } else {
                used_end = used_end.max(le64(e, 40) + 1);
            }
        }
        let slot = free.ok_or("the image's GPT has no free entry for the config drive")?;
        // The backup table moves to the disk's end: the last usable LBA is before it.
        let last_usable = self.sectors - 2 - self.entry_sectors();
        let (start, len) = place(last_usable + 1, used_end)?;
        Ok(Plan { start, len, kind: Kind::Gpt(Box::new(self), slot) })
    }

    fn add(mut self, f: &mut File, slot: usize, first: u64, last: u64) -> Result<(), String> {
        let mut unique = [0u8; 16];
        aws_lc_rs::rand::fill(&mut unique).map_err(|_| "no randomness for the partition GUID")?;
        unique[6] = (unique[6] & 0x0F) | 0x40; // version 4
        unique[8] = (unique[8] & 0x3F) | 0x80;
        let e = &mut self.entries[slot * self.entry_size..(slot + 1) * self.entry_size];
        e.fill(0);
        e[..16].copy_from_slice(&BASIC_DATA);
        e[16..32].copy_from_slice(&unique);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (i, u) in "config-2".encode_utf16().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        let last_lba = self.sectors - 1;
        let backup_entries = last_lba - self.entry_sectors();
        let old_backup = le64(&self.header, 32);
        let entries_crc = crc32(&self.entries);
        let size = le32(&self.header, 12) as usize;
        let seal = |h: &mut Vec<u8>| {
            h[16..20].fill(0);
            let c = crc32(&h[..size]);
            h[16..20].copy_from_slice(&c.to_le_bytes());
        };
        let mut primary = self.header.clone();
        primary[32..40].copy_from_slice(&last_lba.to_le_bytes());
        primary[48..56].copy_from_slice(&(backup_entries - 1).to_le_bytes());
        primary[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        seal(&mut primary);
        let mut backup = primary.clone();
        backup[24..32].copy_from_slice(&last_lba.to_le_bytes());
        backup[32..40].copy_from_slice(&1u64.to_le_bytes());
        backup[72..80].copy_from_slice(&backup_entries.to_le_bytes());
        seal(&mut backup);
        let at = |f: &mut File, lba: u64, b: &[u8]| -> Result<(), String> {
            f.seek(SeekFrom::Start(lba * SECTOR)).map_err(|e| e.to_string())?;
            f.write_all(b).map_err(|e| format!("writing the GPT at LBA {lba}: {e}"))
        };
        // Backup first, primary last: until the primary is written the disk reads as the image had it.
        if old_backup != last_lba && old_backup > 1 && old_backup < self.sectors {
            at(f, old_backup, &[0u8; SECTOR as usize])?;
        }
        at(f, backup_entries, &self.entries)?;
        at(f, last_lba, &backup)?;
        at(f, le64(&self.header, 72), &self.entries)?;
        at(f, 1, &primary)?;
        // The protective MBR covers the whole disk again.
        let mut mbr = vec![0u8; SECTOR as usize];
        f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        f.read_exact(&mut mbr).map_err(|e| e.to_string())?;
        if mbr[446 + 4] == 0xEE {
            let n = (self.sectors - 1).min(u32::MAX as u64) as u32;
            mbr[446 + 12..446 + 16].copy_from_slice(&n.to_le_bytes());
            at(f, 0, &mbr)?;
        }
        Ok(())
    }
}

/// CRC-32 (IEEE), as GPT uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// A window of the disk, as a file of its own.
struct Slice {
    f: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.f.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.f.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "past the config drive's end"));
        }
        self.f.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.f.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.f.flush()
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 || p > self.len as i128 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "seek outside the config drive"));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

/// Format `dev` as FAT labelled `config-2` and write `files` into it.
fn format(dev: &mut Slice, files: &BTreeMap<String, String>) -> io::Result<()> {
    // A fresh FAT must not see old directory entries: zero its first MiB.
    dev.seek(SeekFrom::Start(0))?;
    dev.write_all(&vec![0u8; 1 << 20])?;
    dev.seek(SeekFrom::Start(0))?;
    fatfs::format_volume(&mut *dev, fatfs::FormatVolumeOptions::new().volume_label(*b"config-2   "))?;
    dev.seek(SeekFrom::Start(0))?;
    let fs = fatfs::FileSystem::new(&mut *dev, fatfs::FsOptions::new())?;
    for (path, body) in files {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad config drive path {path:?}")));
        }
        let mut dir = fs.root_dir();
        for d in &parts[..parts.len() - 1] {
            dir = match dir.open_dir(d) {
                Ok(x) => x,
                Err(_) => dir.create_dir(d)?,
            };
        }
        let mut file = dir.create_file(parts[parts.len() - 1])?;
        file.truncate()?;
        file.write_all(body.as_bytes())?;
        file.flush()?;
    }
    fs.unmount()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("openstack/latest/meta_data.json".to_string(), "{\"uuid\": \"x\"}".to_string()),
            ("openstack/latest/user_data".to_string(), "#cloud-config\n".to_string()),
        ])
    }

    fn disk(mib: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("disk");
        File::create(&p).unwrap().set_len(mib << 20).unwrap();
        (d, p)
    }

    fn read_back(p: &Path, w: &Written) -> String {
        let mut f = File::open(p).unwrap();
        let mut s = Slice { f: f.try_clone().unwrap(), start: w.start_bytes, len: w.size_bytes, pos: 0 };
        let fs = fatfs::FileSystem::new(&mut s, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.volume_label(), "config-2");
        let mut out = String::new();
        fs.root_dir().open_file("openstack/latest/meta_data.json").unwrap().read_to_string(&mut out).unwrap();
        let _ = f.flush();
        out
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn an_mbr_image_gets_a_new_primary_partition_at_the_end() {
        let (_d, p) = disk(200);
        let mut f = OpenOptions::new().write(true).open(&p).unwrap();
        let mut mbr = [0u8; 512];
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&8192u32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        f.write_all(&mbr).unwrap();
        let w = write(&p, &files()).unwrap();
        assert_eq!((w.table, w.partition), ("mbr", 2));
        assert_eq!(w.start_bytes + w.size_bytes, 200 << 20);
        assert!(w.size_bytes >= SIZE && w.start_bytes.is_multiple_of(1 << 20));
        assert_eq!(read_back(&p, &w), "{\"uuid\": \"x\"}");
    }

    fn tool(name: &str) -> std::path::PathBuf {
        ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} is not installed: run scripts/setup.sh"))
    }

    /// A GPT image made by sfdisk for a 16 MiB disk, written to a 200 MiB
    /// one: the drive becomes partition 2, the backup table moves to the
    /// real end, and sgdisk and sfdisk agree the result is sound.
    #[test]
    fn a_gpt_image_gets_a_new_entry_and_its_backup_moves_to_the_end() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("img");
        File::create(&img).unwrap().set_len(16 << 20).unwrap();
        let mut c = std::process::Command::new(tool("sfdisk"))
            .arg("-q")
            .arg(&img)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b"label: gpt\n,8MiB,L\n").unwrap();
        assert!(c.wait().unwrap().success());
        let (_d2, p) = disk(200);
        let mut f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all(&std::fs::read(&img).unwrap()).unwrap();
        let w = write(&p, &files()).unwrap();
        assert_eq!((w.table, w.partition), ("gpt", 2));
        assert_eq!(w.start_bytes + w.size_bytes, (200 << 20) - 33 * 512, "up to the backup table");
        let v = std::process::Command::new(tool("sgdisk")).arg("-v").arg(&p).output().unwrap();
        let v = String::from_utf8_lossy(&v.stdout);
        assert!(v.contains("No problems found"), "{v}");
        let j = std::process::Command::new(tool("sfdisk")).arg("-J").arg(&p).output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        let parts = j["partitiontable"]["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{j}");
        assert_eq!(parts[1]["name"], "config-2");
        assert_eq!(parts[1]["start"].as_u64().unwrap() * 512, w.start_bytes);
        assert_eq!(read_back(&p, &w), "{\"uuid\": \"x\"}");
    }

    #[test]
    fn images_without_a_table_or_room_are_refused_untouched() {
        let (_d, p) = disk(100);
        let e = write(&p, &files()).unwrap_err();
        assert!(e.contains("no partition table"), "{e}");
        let mut f = OpenOptions::new().write(true).open(&p).unwrap();
        let mut mbr = [0u8; 512];
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&((90u32 << 20) / 512).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        f.write_all(&mbr).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = write(&p, &files()).unwrap_err();
        assert!(e.contains("no room"), "{e}");
        assert!(std::fs::read(&p).unwrap() == before, "nothing written");
    }
}
