//! The image store: bytes arrive (uploaded, or fetched from an allow-listed
//! URL by an operation), are verified against the declared sha256 while they
//! stream to a staging file, are converted to raw with `qemu-img` when they
//! are qcow2, and are published with a rename as `images/<id>.raw` — served
//! back with Range support for deployment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tundra_api::catalog::{DiskFormat, Image};
use tundra_api::{ImageId, OperationId};
use tundra_store::{Actor, ImageImported, StoreError};

use crate::error::{Error, Result};
use crate::handle::{Conductor, WorkResult};
use crate::settings::ImageConvert;

pub fn raw_path(c: &Conductor, id: ImageId) -> PathBuf {
    c.settings().images_dir().join(format!("{id}.raw"))
}

fn staging_dir(c: &Conductor) -> PathBuf {
    c.settings().images_dir().join(".staging")
}

/// Whether `url` is under one of the allow-listed prefixes (compared as
/// parsed URLs: scheme, host, port and path prefix — never as raw strings).
pub fn allowed(url: &str, allow: &[String]) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https sources are fetched"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("source URLs must not carry credentials".into());
    }
    if allow.is_empty() {
        return Err("this tundrad fetches no URLs (image_source_allow is empty); upload the image to PUT /v1/images/{id}/file instead".into());
    }
    let ok = allow.iter().any(|p| {
        reqwest::Url::parse(p).is_ok_and(|p| {
            p.scheme() == u.scheme()
                && p.host_str() == u.host_str()
                && p.port_or_known_default() == u.port_or_known_default()
                && u.path().starts_with(p.path())
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not under any image_source_allow prefix ({}); ask the operators to allow it, or upload the image",
            allow.join(", ")
        ))
    }
}

/// Progress reporting, at most every 250 ms.
struct Progress<'a> {
    c: &'a Conductor,
    op: Option<OperationId>,
    last: Instant,
}

impl Progress<'_> {
    async fn report(&mut self, done: u64, total: Option<u64>, msg: &str, force: bool) {
        let Some(op) = self.op else { return };
        if force || self.last.elapsed() > Duration::from_millis(250) {
            self.last = Instant::now();
            let _ = self.c.store().operation_progress(op, done as i64, total.map(|t| t as i64), msg).await;
        }
    }
}

/// Stream `body` into the store as image `img`, verifying and converting.
/// Returns the raw size and digest, or a message for the image's `error`.
async fn ingest<S, E>(
    c: &Conductor,
    img: &Image,
    body: S,
    total: Option<u64>,
    op: Option<OperationId>,
) -> Result<ImageImported, String>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let staging = staging_dir(c);
    tokio::fs::create_dir_all(&staging).await.map_err(|e| format!("creating {}: {e}", staging.display()))?;
    let src = tempfile::Builder::new()
        .prefix(&format!("{}-", img.id))
        .suffix(".src")
        .tempfile_in(&staging)
        .map_err(|e| e.to_string())?;
    let max = c.settings().max_image_bytes;
    let mut file = tokio::fs::File::from_std(src.reopen().map_err(|e| e.to_string())?);
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut n: u64 = 0;
    let mut progress = Progress { c, op, last: Instant::now() };
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("the source stopped sending after {n} bytes: {e}"))?;
        n += chunk.len() as u64;
        if n > max {
            return Err(format!("the image is larger than max_image_bytes ({max} bytes)"));
        }
        ctx.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| format!("writing the staging file: {e}"))?;
        progress.report(n, total, "receiving", false).await;
    }
    file.sync_all().await.map_err(|e| e.to_string())?;
    drop(file);
    let got = hex(ctx.finish().as_ref());
    if got != img.sha256 {
        return Err(format!(
            "sha256 mismatch: the {n} bytes received hash to {got}, but the image declares {}; check the file and the checksum",
            img.sha256
        ));
    }
    progress.report(n, total, "verified", true).await;
    let raw = match img.disk_format {
        DiskFormat::Raw => src.into_temp_path(),
        DiskFormat::Qcow2 => {
            progress.report(n, total, "converting qcow2 to raw", true).await;
            let out = tempfile::Builder::new()
                .prefix(&format!("{}-", img.id))
                .suffix(".raw")
                .tempfile_in(&staging)
                .map_err(|e| e.to_string())?
                .into_temp_path();
            convert_qcow2(c, src.path(), &out).await?;
            out
        }
    };
    let (size, raw_sha) = digest_file(&raw).await?;
    let dest = raw_path(c, img.id);
    raw.persist(&dest).map_err(|e| format!("publishing {}: {e}", dest.display()))?;
    progress.report(n, total, "published", true).await;
    Ok(ImageImported { size_bytes: size as i64, raw_sha256: raw_sha })
}

/// `qemu-img`, bounded: killed after `limits.timeout` (wall clock, and as
/// much CPU), and with `limits.memory_bytes` of address space (`prlimit`).
async fn qemu_img(limits: ImageConvert, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, String> {
    let secs = limits.timeout.as_secs().max(1);
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.arg(format!("--as={}", limits.memory_bytes))
        .arg(format!("--cpu={secs}"))
        .args(["--", "qemu-img"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(limits.timeout, cmd.output()).await {
        Ok(out) => out.map_err(|e| format!("running qemu-img under prlimit (install qemu-utils and util-linux): {e}")),
        Err(_) => Err(format!(
            "qemu-img ran longer than image_convert_timeout ({}) and was stopped",
            humantime::format_duration(limits.timeout)
        )),
    }
}

/// Convert a qcow2 to raw — only a self-contained one: its header is
/// checked by our own code first (`tundra_engine::qcow2`: no backing or
/// external data file, which qemu-img would read from this host; a virtual
/// size within `max_image_bytes`), then qemu-img's own reading of it, then
/// `qemu-img convert`, all under the conversion limits.
async fn convert_qcow2(c: &Conductor, src: &Path, dst: &Path) -> Result<(), String> {
    let max = c.settings().max_image_bytes;
    let limits = c.settings().image_convert;
    let mut head = vec![0u8; 512];
    let n = {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(src).await.map_err(|e| e.to_string())?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).await.map_err(|e| e.to_string())? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    tundra_engine::qcow2::check(&head[..n], max)?;
    let info = qemu_img(
        limits,
        &["info".as_ref(), "--output=json".as_ref(), "-f".as_ref(), "qcow2".as_ref(), src.as_os_str()],
    )
    .await?;
    if !info.status.success() {
        return Err(format!(
            "the bytes are not a valid qcow2 image ({}); was disk_format meant to be raw?",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&info.stdout).map_err(|e| format!("qemu-img info output: {e}"))?;
    // What qemu-img makes of it must agree with the header check.
    if v.get("backing-filename").is_some() || v.get("full-backing-filename").is_some() {
        return Err("qcow2 images with a backing file are refused; flatten it with qemu-img convert first".into());
    }
    if v.pointer("/format-specific/data/data-file").is_some() {
        return Err(
            "qcow2 images with an external data file are refused; convert it to a self-contained image first".into()
        );
    }
    if v["virtual-size"].as_u64().is_none_or(|s| s > max) {
        return Err(format!("the qcow2 image's virtual size is over max_image_bytes ({max})"));
    }
    let out = qemu_img(
        limits,
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-O".as_ref(),
            "raw".as_ref(),
            src.as_os_str(),
            dst.as_os_str(),
        ],
    )
    .await?;
    if !out.status.success() {
        return Err(format!("qemu-img convert failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

async fn digest_file(path: &Path) -> Result<(u64, String), String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = f.read(&mut buf).map_err(|e| e.to_string())?;
            if k == 0 {
                break;
            }
            n += k as u64;
            ctx.update(&buf[..k]);
        }
        Ok((n, hex(ctx.finish().as_ref())))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Upload: the request body is the image.
pub async fn upload<S, E>(c: &Conductor, actor: &Actor, img: &Image, body: S, total: Option<u64>) -> Result<Image>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let img = c.store().begin_image_upload(actor, img.id).await?;
    let outcome = ingest(c, &img, body, total, None).await;
    let failed = outcome.as_ref().err().cloned();
    let img = match c.store().finish_image_import(actor, img.id, outcome).await {
        Ok(img) => img,
        Err(e) => {
            // Over the project's quota: the bytes are not kept.
            let _ = tokio::fs::remove_file(raw_path(c, img.id)).await;
            return Err(e.into());
        }
    };
    match failed {
        Some(msg) => Err(Error::Failed(msg)),
        None => Ok(img),
    }
}

/// The `image.import` operation: fetch, verify, convert, publish.
pub async fn run_import(c: &Conductor, op: OperationId, id: ImageId) -> WorkResult {
    let img = match c.store().image(id).await {
        Ok(i) => i,
        Err(StoreError::NotFound { .. }) => return Err("the image was deleted".into()),
        Err(e) => return Err(e.to_string()),
    };
    let url = img.source_url.clone().ok_or("the image has no source_url")?;
    let outcome = async {
        allowed(&url, &c.settings().image_source_allow)?;
        let limit = c.settings().image_fetch_timeout;
        let fetch = async {
            let resp = c.http().get(&url).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("fetching {url}: HTTP {}", resp.status()));
            }
            let total = resp.content_length();
            ingest(c, &img, Box::pin(resp.bytes_stream()), total, Some(op)).await
        };
        tokio::time::timeout(limit, fetch).await.unwrap_or_else(|_| {
            Err(format!(
                "fetching {url} took longer than image_fetch_timeout ({}); a faster source, or a larger limit",
                humantime::format_duration(limit)
            ))
        })
    }
    .await;
    let failed = outcome.as_ref().err().cloned();
    match c.store().finish_image_import(&Actor::service(), id, outcome).await {
        Ok(_) => {}
        Err(StoreError::Quota(m)) => {
            let _ = tokio::fs::remove_file(raw_path(c, id)).await;
            return Err(m);
        }
        Err(StoreError::NotFound { .. }) => {
            // Deleted while importing: do not leave its bytes behind.
            let _ = tokio::fs::remove_file(raw_path(c, id)).await;
            return Err("the image was deleted during the import".into());
        }
        Err(e) => return Err(e.to_string()),
    }
    match failed {
        Some(m) => Err(m),
        None => Ok(()),
    }
}

/// Delete an image and its stored bytes (not while an upload streams in).
pub async fn delete(c: &Conductor, actor: &Actor, img: &Image) -> Result<()> {
    if img.status == tundra_api::catalog::ImageStatus::Importing && img.operation_id.is_none() {
        return Err(Error::conflict("an upload of this image is in progress; delete it after the upload ends"));
    }
    c.store().delete_image(actor, img.id).await?;
    match tokio::fs::remove_file(raw_path(c, img.id)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, image = %img.id, "could not remove image file"),
    }
    Ok(())
}

/// After a restart: uploads cut off by it failed (staging files are never resumed).
pub async fn recover(c: &Conductor) -> Result<()> {
    clean_staging(c).await;
    for id in c.store().orphaned_importing_images().await? {
        let why = "the upload was interrupted by a tundrad restart; upload again";
        c.store().finish_image_import(&Actor::service(), id, Err(why.into())).await?;
    }
    Ok(())
}

/// Remove leftovers of interrupted imports (staging files are never resumed).
async fn clean_staging(c: &Conductor) {
    let _ = tokio::fs::remove_dir_all(staging_dir(c)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_compares_parsed_urls() {
        let allow = vec!["http://127.0.0.1:8000/images/".to_string()];
        assert!(allowed("http://127.0.0.1:8000/images/rocky.qcow2", &allow).is_ok());
        assert!(allowed("http://127.0.0.1:8000/etc/passwd", &allow).is_err());
        assert!(allowed("http://127.0.0.1:8001/images/x", &allow).is_err());
        assert!(allowed("http://127.0.0.1:8000@evil.example/images/x", &allow).is_err());
        assert!(allowed("file:///etc/passwd", &allow).is_err());
        assert!(allowed("http://127.0.0.1:8000/images/x", &[]).unwrap_err().contains("upload"));
    }
}
