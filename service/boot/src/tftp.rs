//! Read-only TFTP (RFC 1350, with the blksize and tsize options of RFC 2347–
//! 2349) for the one thing firmware fetches over it: the iPXE binary. Each
//! transfer runs on its own socket with retransmission, reading the file a
//! block at a time; writes are refused, and names can never leave the
//! served directory. Anyone on the provisioning network can ask, so the work
//! is bounded: at most [`MAX_TRANSFERS`] at once, [`MAX_PER_PEER`] per
//! address; requests beyond that are dropped (firmware retries).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::UdpSocket;

/// Transfers running at once, in all.
pub const MAX_TRANSFERS: usize = 64;
/// Transfers running at once for one peer address.
pub const MAX_PER_PEER: usize = 4;

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// A request parsed from the first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub opcode: u16,
    pub filename: String,
    pub mode: String,
    pub blksize: Option<usize>,
    pub tsize: bool,
}

pub fn parse_request(p: &[u8]) -> Option<Request> {
    if p.len() < 4 {
        return None;
    }
    let opcode = u16::from_be_bytes([p[0], p[1]]);
    let mut fields = p[2..].split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    let filename = fields.next()?;
    let mode = fields.next()?.to_ascii_lowercase();
    let (mut blksize, mut tsize) = (None, false);
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        match k.to_ascii_lowercase().as_str() {
            "blksize" => blksize = v.parse::<usize>().ok().map(|b| b.clamp(8, 65464)),
            "tsize" => tsize = true,
            _ => {}
        }
    }
    Some(Request { opcode, filename, mode, blksize, tsize })
}

/// The file a request names, if it stays inside `root`.
pub fn resolve(root: &Path, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let p = root.join(rel);
    p.is_file().then_some(p)
}

fn error(code: u16, msg: &str) -> Vec<u8> {
    let mut v = vec![0, ERROR as u8];
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(msg.as_bytes());
    v.push(0);
    v
}

/// Serve files under `root` to requests arriving on `socket`.
pub async fn serve(root: PathBuf, socket: &UdpSocket, bind_device: Option<String>) {
    let mut buf = [0u8; 1500];
    let running: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        let Some(req) = parse_request(&buf[..n]) else { continue };
        let Some(slot) = Slot::take(&running, peer.ip()) else {
            tracing::debug!(%peer, "TFTP request dropped: too many transfers running");
            continue;
        };
        let (root, device) = (root.clone(), bind_device.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = transfer(&root, req, peer, device.as_deref()).await {
                tracing::debug!(%peer, error = %e, "TFTP transfer ended");
            }
        });
    }
}

/// A running transfer's place in the limits, given back on drop.
struct Slot {
    running: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl Slot {
    fn take(running: &Arc<Mutex<HashMap<IpAddr, usize>>>, peer: IpAddr) -> Option<Slot> {
        let mut r = running.lock().expect("tftp limits lock");
        let total: usize = r.values().sum();
        let mine = r.get(&peer).copied().unwrap_or(0);
        if total >= MAX_TRANSFERS || mine >= MAX_PER_PEER {
            return None;
        }
        r.insert(peer, mine + 1);
        Some(Slot { running: running.clone(), peer })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = self.running.lock().expect("tftp limits lock");
        if let Some(n) = r.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.peer);
            }
        }
    }
}

async fn transfer(root: &Path, req: Request, peer: SocketAddr, device: Option<&str>) -> std::io::Result<()> {
    let sock = UdpSocket::from_std(crate::bind_udp(device, 0).map_err(std::io::Error::other)?)?;
    sock.connect(peer).await?;
    if req.opcode == WRQ {
        sock.send(&error(2, "this TFTP server is read-only")).await?;
        return Ok(());
    }
    if req.opcode != RRQ || req.mode != "octet" {
        sock.send(&error(4, "only octet-mode reads are served")).await?;
        return Ok(());
    }
    let Some(path) = resolve(root, &req.filename) else {
        tracing::info!(%peer, file = %req.filename, "TFTP file not found");
        sock.send(&error(1, "file not found")).await?;
        return Ok(());
    };
    let mut file = tokio::fs::File::open(&path).await?;
    let size = file.metadata().await?.len() as usize;
    let blksize = req.blksize.unwrap_or(512);
    let mut ack = [0u8; 516];
    if req.blksize.is_some() || req.tsize {
        let mut oack = vec![0, OACK as u8];
        if req.blksize.is_some() {
            oack.extend_from_slice(format!("blksize\0{blksize}\0").as_bytes());
        }
        if req.tsize {
            oack.extend_from_slice(format!("tsize\0{size}\0").as_bytes());
        }
        if !send_and_wait(&sock, &oack, 0, &mut ack).await? {
            return Ok(());
        }
    }
    let blocks = size / blksize + 1;
    let mut chunk = vec![0u8; blksize];
    for i in 0..blocks {
        let block = ((i + 1) % 65536) as u16;
        let want = blksize.min(size - i * blksize);
        file.seek(std::io::SeekFrom::Start((i * blksize) as u64)).await?;
        file.read_exact(&mut chunk[..want]).await?;
        let mut pkt = Vec::with_capacity(4 + want);
        pkt.extend_from_slice(&DATA.to_be_bytes());
        pkt.extend_from_slice(&block.to_be_bytes());
        pkt.extend_from_slice(&chunk[..want]);
        if !send_and_wait(&sock, &pkt, block, &mut ack).await? {
            return Ok(());
        }
    }
    tracing::info!(%peer, file = %req.filename, bytes = size, "TFTP transfer done");
    Ok(())
}

/// Send `pkt` until the peer acknowledges `block` (5 tries, 1 s apart).
async fn send_and_wait(sock: &UdpSocket, pkt: &[u8], block: u16, buf: &mut [u8]) -> std::io::Result<bool> {
    for _ in 0..5 {
        sock.send(pkt).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(n)) if n >= 4 => {
                    let op = u16::from_be_bytes([buf[0], buf[1]]);
                    let b = u16::from_be_bytes([buf[2], buf[3]]);
                    if op == ACK && b == block {
                        return Ok(true);
                    }
                    if op == ERROR {
                        return Ok(false);
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of requests from one address starts at most MAX_PER_PEER
    /// transfers (each its own socket): the rest are dropped.
    #[tokio::test]
    async fn one_peer_gets_a_bounded_number_of_transfers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("snponly.efi"), vec![7u8; 4096]).unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = server.local_addr().unwrap();
        let root = d.path().to_path_buf();
        let task = tokio::spawn(async move { serve(root, &server, None).await });
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..50 {
            client.send_to(b"\x00\x01snponly.efi\x00octet\x00", at).await.unwrap();
        }
        // Every transfer sends its first block (and resends it, unacknowledged):
        // count the distinct transfer sockets that answered.
        let mut from = std::collections::HashSet::new();
        let mut buf = [0u8; 600];
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Ok((_, src))) = tokio::time::timeout_at(until, client.recv_from(&mut buf)).await {
            assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), DATA);
            from.insert(src);
        }
        assert_eq!(from.len(), MAX_PER_PEER, "{from:?}");
        task.abort();
    }

    #[test]
    fn requests_and_paths() {
        let r = parse_request(b"\x00\x01snponly.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00").unwrap();
        assert_eq!(
            r,
            Request {
                opcode: RRQ,
                filename: "snponly.efi".into(),
                mode: "octet".into(),
                blksize: Some(1468),
                tsize: true
            }
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("undionly.kpxe"), b"x").unwrap();
        assert!(resolve(d.path(), "undionly.kpxe").is_some());
        assert!(resolve(d.path(), "/undionly.kpxe").is_some());
        assert!(resolve(d.path(), "../etc/passwd").is_none());
        assert!(resolve(d.path(), "a/../../x").is_none());
        assert!(resolve(d.path(), "missing").is_none());
    }
}
