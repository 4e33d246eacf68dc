//! Erasing disks between tenants. A block device that supports it is
//! discarded (`blkdiscard`, secure when the device can); a disk file (every
//! lab machine's) has its blocks given back to its filesystem (a punched
//! hole: a file's discard, which reads as zeros and leaves the file sparse);
//! anything else is overwritten with zeros. Either way the first and
//! last MiB (partition tables, GPT backup, filesystem and RAID signatures) are
//! zeroed explicitly, and `verify_zero` can prove the result.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const MIB: u64 = 1 << 20;

/// How a disk was erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    SecureDiscard,
    Discard,
    /// A disk file's blocks returned to its filesystem.
    Punched,
    Zeroed,
}

async fn size_of(f: &mut tokio::fs::File) -> std::io::Result<u64> {
    let n = f.seek(std::io::SeekFrom::End(0)).await?;
    f.seek(std::io::SeekFrom::Start(0)).await?;
    Ok(n)
}

async fn zero_range(f: &mut tokio::fs::File, from: u64, len: u64) -> std::io::Result<()> {
    let buf = vec![0u8; MIB as usize];
    f.seek(std::io::SeekFrom::Start(from)).await?;
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&buf[..n as usize]).await?;
        left -= n;
    }
    Ok(())
}

/// Zero the first and last MiB.
pub async fn wipe_signatures(path: &Path) -> std::io::Result<()> {
    let mut f = tokio::fs::OpenOptions::new().write(true).read(true).open(path).await?;
    let size = size_of(&mut f).await?;
    zero_range(&mut f, 0, size.min(MIB)).await?;
    if size > MIB {
        let tail = size.saturating_sub(MIB).max(MIB.min(size));
        zero_range(&mut f, tail, size - tail).await?;
    }
    f.sync_all().await
}

async fn blkdiscard(path: &Path, secure: bool) -> bool {
    let mut c = tokio::process::Command::new("blkdiscard");
    if secure {
        c.arg("--secure");
    }
    c.arg(path).output().await.is_ok_and(|o| o.status.success())
}

/// Punch a hole over the whole of a regular file: its blocks go back to
/// the filesystem and it reads as zeros, its size kept. False where the
/// filesystem cannot (the caller then writes zeros).
async fn punch(path: &Path) -> bool {
    use nix::fcntl::{FallocateFlags, fallocate};
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) else { return false };
        let Ok(len) = f.metadata().map(|m| m.len()) else { return false };
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        len > 0 && fallocate(&f, flags, 0, len as i64).is_ok() && f.sync_all().is_ok()
    })
    .await
    .unwrap_or(false)
}

/// Erase `path` (a block device or a disk file).
pub async fn erase(path: &Path) -> std::io::Result<Method> {
    let kind = tokio::fs::metadata(path).await?.file_type();
    let is_block = kind.is_block_device();
    let method = if is_block && blkdiscard(path, true).await {
        Method::SecureDiscard
    } else if is_block && blkdiscard(path, false).await {
        Method::Discard
    } else if kind.is_file() && punch(path).await {
        Method::Punched
    } else {
        let mut f = tokio::fs::OpenOptions::new().write(true).read(true).open(path).await?;
        let size = size_of(&mut f).await?;
        zero_range(&mut f, 0, size).await?;
        f.sync_all().await?;
        Method::Zeroed
    };
    wipe_signatures(path).await?;
    Ok(method)
}

/// The size of a disk (block device or file), in bytes.
pub async fn size(path: &Path) -> std::io::Result<u64> {
    size_of(&mut tokio::fs::File::open(path).await?).await
}

/// Whether every byte of `path` is zero (reads it all).
pub async fn verify_zero(path: &Path) -> std::io::Result<bool> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; MIB as usize];
    // Compared a MiB at a time with zeros: slice equality is a memcmp,
    // where a byte loop costs seconds per GiB in an unoptimised build (the
    // lab's agent) and a minute under an emulated CPU.
    let zeros = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n] != zeros[..n] {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn erases_a_disk_file_to_zero_and_keeps_its_size() {
        let d = tempfile::tempdir().unwrap();
        let disk = d.path().join("disk.img");
        let data: Vec<u8> = (0..(3 * MIB + 12345)).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::write(&disk, &data).unwrap();
        assert!(!verify_zero(&disk).await.unwrap());
        assert_eq!(erase(&disk).await.unwrap(), Method::Punched);
        assert!(verify_zero(&disk).await.unwrap());
        let meta = std::fs::metadata(&disk).unwrap();
        assert_eq!(meta.len(), data.len() as u64);
        // Sparse again: only the two signature MiBs written back hold blocks.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 <= 2 * MIB + 64 * 1024, "{} bytes still allocated", meta.blocks() * 512);
    }

    #[tokio::test]
    async fn signature_wipe_clears_both_ends_only() {
        let d = tempfile::tempdir().unwrap();
        let disk = d.path().join("disk.img");
        std::fs::write(&disk, vec![0xaau8; (4 * MIB) as usize]).unwrap();
        wipe_signatures(&disk).await.unwrap();
        let b = std::fs::read(&disk).unwrap();
        assert!(b[..MIB as usize].iter().all(|x| *x == 0));
        assert!(b[(3 * MIB) as usize..].iter().all(|x| *x == 0));
        assert!(b[(MIB as usize)..(3 * MIB) as usize].iter().all(|x| *x == 0xaa));
    }
}
