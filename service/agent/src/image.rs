//! Writing an image onto a disk: the bytes stream from HTTP to the device
//! while their sha256 is computed, so nothing is read twice; a dropped
//! connection resumes with a `Range` request where it stopped. A mismatch
//! wipes the start of the disk so a half-written image never boots.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

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
    // HTTP hands over small chunks; a tokio file write is a trip to the
    // blocking pool, so gather 4 MiB per write.
    let mut file = tokio::io::BufWriter::with_capacity(4 << 20, file);
    let start = Instant::now();
    let mut ctx = digest::Context::new(&digest::SHA256);
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
            file.seek(std::io::SeekFrom::Start(0))
                .await
                .map_err(|source| ImageError::Write { path: path.clone(), source })?;
        }
        if !status.is_success() {
            return Err(ImageError::Fetch(format!("{url} answered {status}")));
        }
        if total.is_none() {
            total = resp.content_length().map(|l| l + written);
            if let Some(t) = total
                && t > disk
            {
                return Err(ImageError::TooLarge { path, image: t, disk });
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
                return Err(ImageError::TooLarge { path, image: written + chunk.len() as u64, disk });
            }
            file.write_all(&chunk).await.map_err(|source| ImageError::Write { path: path.clone(), source })?;
            ctx.update(&chunk);
            written += chunk.len() as u64;
            progress(written, total);
        }
        break;
    }
    file.flush().await.map_err(|source| ImageError::Write { path: path.clone(), source })?;
    file.get_mut().sync_all().await.map_err(|source| ImageError::Write { path: path.clone(), source })?;
    let got = hex(ctx.finish().as_ref());
    if got != sha256.to_ascii_lowercase() {
        crate::erase::wipe_signatures(target)
            .await
            .map_err(|source| ImageError::Write { path: path.clone(), source })?;
        return Err(ImageError::Mismatch { bytes: written, got, expected: sha256.into() });
    }
    Ok(Written { bytes: written, sha256: got, seconds: start.elapsed().as_secs_f64(), resumed })
}
