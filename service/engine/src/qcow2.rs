//! Which qcow2 images tundrad converts: the header read by our own code
//! before `qemu-img` opens the file at all. A qcow2 can name other files —
//! a backing file (any path, or a `json:` block-driver description) and an
//! external data file — and `qemu-img convert` would read them from *this*
//! host. It can also declare a virtual size far beyond its bytes (a 2 MB
//! file of 100 TiB), which conversion would write out. Each is refused here
//! with what to do instead. (Layout: QEMU's docs/interop/qcow2.txt.)

const MAGIC: &[u8; 4] = b"QFI\xfb";

/// Incompatible feature bits (header offset 72, version 3).
const DIRTY: u64 = 1 << 0;
const CORRUPT: u64 = 1 << 1;
const EXTERNAL_DATA_FILE: u64 = 1 << 2;
const COMPRESSION_TYPE: u64 = 1 << 3;
const EXTENDED_L2: u64 = 1 << 4;
const KNOWN: u64 = DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;

/// What a header declares, once it passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    /// The raw image's size, in bytes.
    pub virtual_size: u64,
    pub cluster_bits: u32,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

/// Check the first bytes of a qcow2 file (at least 104; more is ignored)
/// for an image tundrad may convert: no backing file, no external data
/// file, not encrypted or marked corrupt, no feature this code does not
/// know, a virtual size of at most `max_virtual` bytes.
pub fn check(head: &[u8], max_virtual: u64) -> Result<Header, String> {
    if head.len() < 72 || &head[..4] != MAGIC {
        return Err(
            "the bytes are not a valid qcow2 image (no QFI\\xfb magic); was disk_format meant to be raw?".into()
        );
    }
    let version = be32(head, 4);
    if version != 2 && version != 3 {
        return Err(format!("qcow2 version {version} is not supported (2 and 3 are)"));
    }
    if be64(head, 8) != 0 || be32(head, 16) != 0 {
        return Err(
            "qcow2 images with a backing file are refused (it names a file or json: description that would be read \
             on tundrad's host); flatten it with `qemu-img convert -O qcow2` first"
                .into(),
        );
    }
    let cluster_bits = be32(head, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(format!("qcow2 cluster_bits {cluster_bits} is out of range (9..=21)"));
    }
    let virtual_size = be64(head, 24);
    if virtual_size > max_virtual {
        return Err(format!(
            "the qcow2 image's virtual size is {virtual_size} bytes, more than max_image_bytes ({max_virtual}); \
             its raw form would not fit"
        ));
    }
    if be32(head, 32) != 0 {
        return Err("encrypted qcow2 images are refused; convert it unencrypted first".into());
    }
    if version == 3 {
        if head.len() < 104 {
            return Err("the qcow2 version 3 header is cut short".into());
        }
        let incompatible = be64(head, 72);
        if incompatible & EXTERNAL_DATA_FILE != 0 {
            return Err("qcow2 images with an external data file are refused (it names a file that would be read on \
                 tundrad's host); convert it to a self-contained qcow2 or raw first"
                .into());
        }
        if incompatible & CORRUPT != 0 {
            return Err("the qcow2 image is marked corrupt; repair it with `qemu-img check -r all` first".into());
        }
        if incompatible & !KNOWN != 0 {
            return Err(format!(
                "the qcow2 image needs features tundrad does not know (incompatible bits {:#x})",
                incompatible & !KNOWN
            ));
        }
    }
    Ok(Header { version, virtual_size, cluster_bits })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header: 1 GiB, 64 KiB clusters, nothing else.
    fn header() -> Vec<u8> {
        let mut h = vec![0u8; 112];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    #[test]
    fn a_plain_image_passes() {
        let h = check(&header(), 1 << 30).unwrap();
        assert_eq!(h, Header { version: 3, virtual_size: 1 << 30, cluster_bits: 16 });
    }

    #[test]
    fn what_names_other_files_or_is_too_big_is_refused() {
        let refused = |f: &dyn Fn(&mut Vec<u8>), why: &str| {
            let mut h = header();
            f(&mut h);
            let e = check(&h, 1 << 30).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        };
        refused(&|h| h[8..16].copy_from_slice(&512u64.to_be_bytes()), "backing file");
        refused(&|h| h[16..20].copy_from_slice(&9u32.to_be_bytes()), "backing file");
        refused(&|h| h[79] |= 0x04, "external data file");
        refused(&|h| h[79] |= 0x02, "corrupt");
        refused(&|h| h[78] |= 0x01, "does not know");
        refused(&|h| h[24..32].copy_from_slice(&((1u64 << 30) + 1).to_be_bytes()), "virtual size");
        refused(&|h| h[32..36].copy_from_slice(&1u32.to_be_bytes()), "encrypted");
        refused(&|h| h[0] = b'X', "not a valid qcow2");
        refused(&|h| h[4..8].copy_from_slice(&4u32.to_be_bytes()), "version 4");
        refused(&|h| h[20..24].copy_from_slice(&40u32.to_be_bytes()), "cluster_bits");
        refused(&|h| h.truncate(90), "cut short");
        refused(&|h| h.truncate(10), "not a valid qcow2");
    }
}
