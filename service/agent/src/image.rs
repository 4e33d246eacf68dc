//! Writing an image onto a disk: the bytes stream from HTTP to the device
//! while their sha256 is computed, so nothing is read twice; a dropped
//! connection resumes with a `Range` request where it stopped. A mismatch
//! wipes the start of the disk so a half-written image never boots.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use futures_util::StreamExt;
use tokio::io::AsyncSeekExt;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("opening {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("the image ({image} bytes) does not fit on {path} ({disk} bytes); pick a machine with a bigger disk")]
    TooLarge { path: String, image: u64, disk: u64 },
    #[error("fetching the image: {0}")]
    Fetch(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("sha256 mismatch: wrote {bytes} bytes hashing to {got}, expected {expected}; the disk's start was wiped")]
    Mismatch { bytes: u64, got: String, expected: String },
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
    /// How many times the download resumed after a dropped connection.
    pub resumed: u32,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The size of a disk: a block device's capacity, or a file's length (a lab
/// disk file is created at its full, sparse size).
async fn capacity(file: &mut tokio::fs::File) -> std::io::Result<u64> {
    let end = file.seek(std::io::SeekFrom::End(0)).await?;
    file.seek(std::io::SeekFrom::Start(0)).await?;
    Ok(end)
}

/// How much is gathered before one write: HTTP hands over small chunks.
const WRITE_BUF: usize = 4 << 20;
/// How many gathered buffers may wait for the disk: the download and the
/// hash run this far ahead of the writes. The buffers go round (the writer
/// hands each back), so memory is touched once, not once per write.
const WRITES_AHEAD: usize = 4;

enum Write {
    Data(Vec<u8>),
    /// The server could not resume: start again at the disk's first byte.
    Rewind,
}

/// The disk side of a write, on a thread of its own so that the download
/// and the hash go on while a buffer is being written. Each buffer's
/// writeback starts as soon as it is written (`POSIX_FADV_DONTNEED` starts
/// it and then drops the pages once clean), so dirty pages never pile up in
/// the agent's RAM-disk system and the final fsync has little left to flush.
fn write_disk(
    mut file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<Write>,
    spare: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
) -> std::io::Result<()> {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    use std::io::{Seek, Write as _};
    let mut at: u64 = 0;
    while let Some(w) = rx.blocking_recv() {
        match w {
            Write::Rewind => at = file.seek(std::io::SeekFrom::Start(0))?,
            Write::Data(mut buf) => {
                file.write_all(&buf)?;
                // Only a hint: a target that cannot take it is still flushed
                // by the fsync below.
                if let (Ok(off), Ok(len)) = (at.try_into(), buf.len().try_into()) {
                    let _ = posix_fadvise(&file, off, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
                }
                at += buf.len() as u64;
                buf.clear();
                let _ = spare.send(buf);
            }
        }
    }
    file.sync_all()
}

/// Stream `url` onto `target`, verifying `sha256` (hex) inline. `bearer` is
/// sent as the Authorization header when given.
pub async fn write_image(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    sha256: &str,
    target: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Written, ImageError> {
    let path = target.display().to_string();
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(target)
        .await
        .map_err(|source| ImageError::Open { path: path.clone(), source })?;
    let disk = capacity(&mut file).await.map_err(|source| ImageError::Open { path: path.clone(), source })?;
    let (tx, rx) = tokio::sync::mpsc::channel(WRITES_AHEAD);
    let (spare_tx, mut spare) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..=WRITES_AHEAD {
        let _ = spare_tx.send(Vec::with_capacity(WRITE_BUF));
    }
    let file = file.into_std().await;
    let writer = tokio::task::spawn_blocking(move || write_disk(file, rx, spare_tx));
    let result = fetch(http, url, bearer, disk, &path, (&tx, &mut spare), &mut progress).await;
    drop(tx);
    // The writer's own error is the cause when it stopped taking buffers.
    let wrote = writer.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let (written, total_hash, resumed, start) = match (result, wrote) {
        (_, Err(source)) => return Err(ImageError::Write { path, source }),
        (Err(e), Ok(())) => return Err(e),
        (Ok(r), Ok(())) => r,
    };
    let got = hex(total_hash.as_ref());
    if got != sha256.to_ascii_lowercase() {
        crate::erase::wipe_signatures(target)
            .await
            .map_err(|source| ImageError::Write { path: path.clone(), source })?;
        return Err(ImageError::Mismatch { bytes: written, got, expected: sha256.into() });
    }
    Ok(Written { bytes: written, sha256: got, seconds: start.elapsed().as_secs_f64(), resumed })
}

/// The download side of [`write_image`]: fetch (resuming with `Range`),
/// hash, and hand buffers to the writer. Returns the bytes written, their
/// digest, how often the download resumed, and when it started.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    disk: u64,
    path: &str,
    (tx, spare): (&tokio::sync::mpsc::Sender<Write>, &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>),
    progress: &mut impl FnMut(u64, Option<u64>),
) -> Result<(u64, digest::Digest, u32, Instant), ImageError> {
    // A closed channel means the writer failed; write_image reports why.
    let gone = || ImageError::Write { path: path.into(), source: std::io::Error::other("the disk writer stopped") };
    let start = Instant::now();
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = spare.recv().await.ok_or_else(gone)?;
    let mut written: u64 = 0;
    let mut total: Option<u64> = None;
    let mut resumed = 0;
    'fetch: loop {
        let mut req = http.get(url);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if written > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={written}-"));
        }
        let resp = req.send().await.map_err(|e| ImageError::Fetch(e.to_string()))?;
        let status = resp.status();
        if written > 0 && status != reqwest::StatusCode::PARTIAL_CONTENT {
            // The server cannot resume: start over.
            ctx = digest::Context::new(&digest::SHA256);
            written = 0;
            buf.clear();
            tx.send(Write::Rewind).await.map_err(|_| gone())?;
        }
        if !status.is_success() {
            return Err(ImageError::Fetch(format!("{url} answered {status}")));
        }
        if total.is_none() {
            total = resp.content_length().map(|l| l + written);
            if let Some(t) = total
                && t > disk
            {
                return Err(ImageError::TooLarge { path: path.into(), image: t, disk });
            }
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) if resumed < 5 => {
                    resumed += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(resumed))).await;
                    continue 'fetch;
                }
                Err(e) => return Err(ImageError::Fetch(format!("the download broke off after {written} bytes: {e}"))),
            };
            if written + chunk.len() as u64 > disk {
                return Err(ImageError::TooLarge { path: path.into(), image: written + chunk.len() as u64, disk });
            }
            ctx.update(&chunk);
            written += chunk.len() as u64;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let (now, later) = rest.split_at(rest.len().min(WRITE_BUF - buf.len()));
                buf.extend_from_slice(now);
                rest = later;
                if buf.len() == WRITE_BUF {
                    tx.send(Write::Data(std::mem::take(&mut buf))).await.map_err(|_| gone())?;
                    buf = spare.recv().await.ok_or_else(gone)?;
                }
            }
            progress(written, total);
        }
        break;
    }
    if !buf.is_empty() {
        tx.send(Write::Data(buf)).await.map_err(|_| gone())?;
    }
    Ok((written, ctx.finish(), resumed, start))
}
