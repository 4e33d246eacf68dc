//! Writing images onto disk files from a real HTTP server (tower-http's
//! ServeFile, as tundrad serves images, with Range): inline verification,
//! resuming after a dropped connection, refusing images that do not fit, and
//! wiping the disk's start on a checksum mismatch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use tundra_agent::image::{ImageError, write_image};

const MIB: usize = 1 << 20;

fn sha(b: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// Serve `file` at /image; the first `breaks` requests hang up after `cut`
/// bytes. A server that does not `resume` ignores Range and sends it all.
/// Returns the URL, the request count and the Range headers seen.
async fn serve(
    file: &Path,
    breaks: usize,
    cut: usize,
    resume: bool,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let n = Arc::new(AtomicUsize::new(0));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let (file, counter, seen_ranges) = (file.to_path_buf(), n.clone(), ranges.clone());
    let app = axum::Router::new().route(
        "/image",
        axum::routing::get(move |mut req: Request| {
            let (file, counter, seen_ranges) = (file.clone(), counter.clone(), seen_ranges.clone());
            async move {
                if let Some(r) = req.headers().get("range") {
                    seen_ranges.lock().unwrap().push(r.to_str().unwrap().to_string());
                }
                if !resume {
                    req.headers_mut().remove("range");
                }
                let i = counter.fetch_add(1, Ordering::SeqCst);
                if i < breaks {
                    let bytes = std::fs::read(&file).unwrap();
                    let len = bytes.len();
                    let first = axum::body::Bytes::copy_from_slice(&bytes[..cut]);
                    // The cut comes once the bytes before it are on the
                    // wire: an abort right behind them may discard some of
                    // them in flight, and the resume point would vary.
                    let cable_pulled = async {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        Err(std::io::Error::other("cable pulled"))
                    };
                    let stream = futures_util::StreamExt::chain(
                        futures_util::stream::iter(vec![Ok(first)]),
                        futures_util::stream::once(cable_pulled),
                    );
                    return axum::response::Response::builder()
                        .header("content-length", len)
                        .body(Body::from_stream(stream))
                        .unwrap();
                }
                let resp = tower::ServiceExt::oneshot(tower_http::services::ServeFile::new(&file), req).await.unwrap();
                resp.map(Body::new)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/image"), n, ranges)
}

fn disk(dir: &Path, size: u64) -> std::path::PathBuf {
    let p = dir.join("disk.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    p
}

fn image(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let p = dir.join("image.raw");
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

#[tokio::test]
async fn writes_verifies_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let (img, data) = image(d.path(), 5 * MIB + 333);
    let target = disk(d.path(), 8 * MIB as u64);
    let http = reqwest::Client::new();
    let (url, seen, ranges) = serve(&img, 1, MIB, true).await;
    let mut last = 0;
    let w = write_image(&http, &url, None, &sha(&data), &target, |done, total| {
        assert!(done >= last);
        last = done;
        assert_eq!(total, Some(data.len() as u64));
    })
    .await
    .unwrap();
    assert_eq!(w.bytes, data.len() as u64);
    assert_eq!(w.sha256, sha(&data));
    assert_eq!(w.resumed, 1, "the broken first download resumed with a Range request");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(*ranges.lock().unwrap(), vec![format!("bytes={MIB}-")], "resumed where it stopped");
    let on_disk = std::fs::read(&target).unwrap();
    assert_eq!(on_disk.len(), 8 * MIB, "the disk keeps its size");
    assert_eq!(sha(&on_disk[..data.len()]), sha(&data), "the image reads back from the disk");
}

/// A server that cannot resume sends the image again from its first byte:
/// what was already written (more than one write buffer) is written over,
/// and the hash starts again.
#[tokio::test]
async fn starts_over_when_the_server_cannot_resume() {
    let d = tempfile::tempdir().unwrap();
    let (img, data) = image(d.path(), 11 * MIB + 5);
    let target = disk(d.path(), 12 * MIB as u64);
    std::fs::write(&target, vec![0xee; 12 * MIB]).unwrap();
    let http = reqwest::Client::new();
    let (url, seen, ranges) = serve(&img, 1, 9 * MIB + 17, false).await;
    let w = write_image(&http, &url, None, &sha(&data), &target, |_, _| {}).await.unwrap();
    assert_eq!((w.bytes, w.resumed), (data.len() as u64, 1));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(*ranges.lock().unwrap(), vec![format!("bytes={}-", 9 * MIB + 17)], "it asked to resume");
    let on_disk = std::fs::read(&target).unwrap();
    assert_eq!(sha(&on_disk[..data.len()]), sha(&data), "the image reads back from the disk");
    assert!(on_disk[data.len()..].iter().all(|b| *b == 0xee), "nothing past the image is touched");
}

#[tokio::test]
async fn refuses_what_does_not_fit_and_wipes_on_mismatch() {
    let d = tempfile::tempdir().unwrap();
    let (img, data) = image(d.path(), 3 * MIB);
    let http = reqwest::Client::new();
    let (url, _, _) = serve(&img, 0, 0, true).await;
    let small = disk(d.path(), 2 * MIB as u64);
    let e = write_image(&http, &url, None, &sha(&data), &small, |_, _| {}).await.unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("bigger disk"));

    let target = disk(d.path(), 4 * MIB as u64);
    let e = write_image(&http, &url, None, &"0".repeat(64), &target, |_, _| {}).await.unwrap_err();
    assert!(matches!(e, ImageError::Mismatch { .. }), "{e}");
    let on_disk = std::fs::read(&target).unwrap();
    assert!(on_disk[..MIB].iter().all(|b| *b == 0), "a half-trusted image never boots: the start is wiped");
    let e = write_image(&http, &format!("{url}-missing"), None, &sha(&data), &target, |_, _| {}).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}
