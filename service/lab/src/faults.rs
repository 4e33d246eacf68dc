//! Fault-injecting proxies for the chaos suite (`scripts/chaos.sh`): put
//! one between tundrad and a peer (a BMC emulator, an emulated switch) and
//! tell it what to do to the traffic. They are loopback-only, like the lab.
//!
//! - [`tcp_requests`] judges each chunk the client sends (for HTTP, a
//!   request): pass it, hold it 1–11 s, answer `503` in the peer's place,
//!   hang (never forward, never answer: the client's timeout fires) or
//!   drop the connection.
//! - [`tcp_sessions`] judges each connection (for SSH, a session): refuse
//!   it, or cut it a random moment after it opened. It can also be pointed
//!   at another peer ([`Faults::retarget`]) — a switch whose host key
//!   changed.
//! - [`udp`] judges each datagram, both ways (IPMI over RMCP+): pass, hold
//!   1–11 s, or drop — a request lost, or its answer lost after the BMC
//!   acted.
//!
//! [`Mode::Down`] fails everything (connections closed at once, datagrams
//! dropped): a peer that is persistently away. [`Faults::partition`] cuts
//! `tcp_sessions` off without a word: open connections stop carrying
//! anything and new ones go nowhere, none is closed, until
//! [`Faults::heal`] — a network partition, which a client only notices by
//! its own timeouts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The chances, each in 0..=1, that a request (or session, or datagram)
/// meets a fault. What a kind of proxy cannot do is ignored (`udp` has no
/// error to give; `tcp_sessions` refuses where others would error or drop,
/// and cuts where others would delay or hang).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Odds {
    pub error: f64,
    pub delay: f64,
    pub hang: f64,
    pub drop: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Pass,
    Random(Odds),
    /// Everything fails.
    Down,
}

/// What a proxy did, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub errors: u64,
    pub delays: u64,
    pub hangs: u64,
    pub drops: u64,
}

/// The control of one proxy.
pub struct Faults {
    mode: Mutex<Mode>,
    target: Mutex<SocketAddr>,
    counts: [AtomicU64; 5],
    /// How long a hang holds (longer than any client waits).
    hang_for: Duration,
    /// A partition (`tcp_sessions`): nothing passes while it is `true`.
    partitioned: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    Error,
    Delay(Duration),
    Hang,
    Drop,
}

impl Faults {
    fn new(target: SocketAddr) -> Arc<Faults> {
        Arc::new(Faults {
            mode: Mutex::new(Mode::Pass),
            target: Mutex::new(target),
            counts: Default::default(),
            hang_for: Duration::from_secs(120),
            partitioned: tokio::sync::watch::channel(false).0,
        })
    }

    /// Cut the peer off (`tcp_sessions`): open connections carry nothing
    /// more either way, new ones are accepted and go nowhere, and none is
    /// closed.
    pub fn partition(&self) {
        self.partitioned.send_replace(true);
    }

    /// End a partition: the connections it held are closed (as a peer's
    /// TCP would give up on them), and new ones pass again.
    pub fn heal(&self) {
        self.partitioned.send_replace(false);
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    /// New connections go to `target` from now on.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    pub fn target(&self) -> SocketAddr {
        *self.target.lock().unwrap()
    }

    pub fn counts(&self) -> Counts {
        let c = |k: usize| self.counts[k].load(Ordering::Relaxed);
        Counts { passed: c(0), errors: c(1), delays: c(2), hangs: c(3), drops: c(4) }
    }

    fn judge(&self) -> Fate {
        let fate = match self.mode() {
            Mode::Pass => Fate::Pass,
            Mode::Down => Fate::Drop,
            Mode::Random(o) => {
                let x = unit();
                if x < o.error {
                    Fate::Error
                } else if x < o.error + o.delay {
                    Fate::Delay(Duration::from_millis(1000 + (unit() * 10_000.0) as u64))
                } else if x < o.error + o.delay + o.hang {
                    Fate::Hang
                } else if x < o.error + o.delay + o.hang + o.drop {
                    Fate::Drop
                } else {
                    Fate::Pass
                }
            }
        };
        let k = match fate {
            Fate::Pass => 0,
            Fate::Error => 1,
            Fate::Delay(_) => 2,
            Fate::Hang => 3,
            Fate::Drop => 4,
        };
        self.counts[k].fetch_add(1, Ordering::Relaxed);
        fate
    }
}

/// A uniform number in [0, 1).
pub fn unit() -> f64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nfault injected: busy\r\n";

/// A TCP proxy judging every chunk a client sends (see the module's text).
/// `503` answers are HTTP's, so this is for HTTP peers.
pub async fn tcp_requests(target: SocketAddr) -> std::io::Result<Proxy> {
    tcp(target, |client, f| async move {
        if f.mode() == Mode::Down {
            f.judge();
            return; // closed at once
        }
        let Ok(upstream) = TcpStream::connect(f.target()).await else { return };
        let (mut cr, cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let cw = Arc::new(tokio::sync::Mutex::new(cw));
        let back = {
            let cw = cw.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 || cw.lock().await.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.lock().await.shutdown().await;
            })
        };
        let mut buf = vec![0u8; 64 << 10];
        // Whether the client ended its side itself (not cut by a fault).
        let finished = loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) => break true,
                Err(_) => break false,
                Ok(n) => n,
            };
            match f.judge() {
                Fate::Pass => {}
                Fate::Delay(d) => tokio::time::sleep(d).await,
                Fate::Error => {
                    // In the peer's place, and the connection closed:
                    // what followed the chunk is not sent half-way.
                    let _ = cw.lock().await.write_all(UNAVAILABLE).await;
                    break false;
                }
                Fate::Hang => {
                    tokio::time::sleep(f.hang_for).await;
                    break false;
                }
                Fate::Drop => break false,
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break false;
            }
        };
        if finished {
            // Let the answer under way come back (for a minute at most).
            let _ = uw.shutdown().await;
            let abort = back.abort_handle();
            if tokio::time::timeout(Duration::from_secs(60), back).await.is_err() {
                abort.abort();
            }
        } else {
            back.abort(); // both sides close as the halves drop
        }
    })
    .await
}

/// A TCP proxy judging every connection: `error` and `drop` odds refuse it
/// (closed at once), `delay` and `hang` odds cut it 0.2–3 s after it
/// opened, whatever it was doing (see the module's text).
pub async fn tcp_sessions(target: SocketAddr) -> std::io::Result<Proxy> {
    tcp(target, |mut client, f| async move {
        let mut cut = f.partitioned.subscribe();
        if *cut.borrow_and_update() {
            let _ = cut.wait_for(|p| !*p).await; // goes nowhere; closed once healed
            return;
        }
        let fate = f.judge();
        if matches!(fate, Fate::Error | Fate::Drop) {
            return; // refused: closed at once
        }
        let Ok(mut upstream) = TcpStream::connect(f.target()).await else { return };
        let copy = async {
            let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
            match fate {
                Fate::Delay(_) | Fate::Hang => {
                    let after = Duration::from_millis(200 + (unit() * 2800.0) as u64);
                    let _ = tokio::time::timeout(after, copy).await;
                }
                _ => {
                    let _ = copy.await;
                }
            }
        };
        let partitioned = tokio::select! {
            () = copy => false,
            _ = cut.wait_for(|p| *p) => true,
        };
        if partitioned {
            // Both sockets stay open and silent until the partition heals.
            let _ = cut.wait_for(|p| !*p).await;
        }
    })
    .await
}

/// A TCP proxy on a free loopback port that hands every connection, with
/// the proxy's control, to `serve` on a task of its own.
async fn tcp<F, Fut>(target: SocketAddr, serve: F) -> std::io::Result<Proxy>
where
    F: Fn(TcpStream, Arc<Faults>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let faults = Faults::new(target);
    let f = faults.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await; // out of descriptors, or an aborted connection
                continue;
            };
            tokio::spawn(serve(client, f.clone()));
        }
    });
    Ok(Proxy { addr, faults, task })
}

/// A UDP proxy judging every datagram, both ways: a request lost, or its
/// answer lost after the peer acted on it. Each client address gets its
/// own socket towards the peer, forgotten after 30 s of quiet (ipmitool
/// uses a new source port per run).
pub async fn udp(target: SocketAddr) -> std::io::Result<Proxy> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let addr = front.local_addr()?;
    let faults = Faults::new(target);
    let f = faults.clone();
    let task = tokio::spawn(async move {
        let mut backs: std::collections::HashMap<SocketAddr, (Arc<UdpSocket>, Instant, AbortOnDrop)> =
            Default::default();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, client)) = front.recv_from(&mut buf).await {
            let back = match backs.get_mut(&client) {
                Some((s, used, _)) => {
                    *used = Instant::now();
                    s.clone()
                }
                None => {
                    backs.retain(|_, (_, used, _)| used.elapsed() < Duration::from_secs(30));
                    let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                    if s.connect(f.target()).await.is_err() {
                        continue;
                    }
                    let s = Arc::new(s);
                    let (s2, front2, f2) = (s.clone(), front.clone(), f.clone());
                    let relay = tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = s2.recv(&mut buf).await {
                            let answer = buf[..n].to_vec();
                            let front = front2.clone();
                            pass_on(f2.judge(), async move {
                                let _ = front.send_to(&answer, client).await;
                            });
                        }
                    });
                    backs.insert(client, (s.clone(), Instant::now(), AbortOnDrop(relay)));
                    s
                }
            };
            let datagram = buf[..n].to_vec();
            pass_on(f.judge(), async move {
                let _ = back.send(&datagram).await;
            });
        }
    });
    Ok(Proxy { addr, faults, task })
}

/// Send now, later, or never, as judged.
fn pass_on(fate: Fate, send: impl Future<Output = ()> + Send + 'static) {
    match fate {
        Fate::Pass | Fate::Error => {
            tokio::spawn(send);
        }
        Fate::Delay(d) => {
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                send.await;
            });
        }
        Fate::Hang | Fate::Drop => {}
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        a
    }

    async fn ask(addr: SocketAddr, what: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(what).await.unwrap();
        let mut b = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.unwrap().unwrap_or(0);
        b.truncate(n);
        b
    }

    #[tokio::test]
    async fn requests_pass_fail_and_drop_as_told() {
        let p = tcp_requests(echo().await).await.unwrap();
        assert_eq!(ask(p.addr, b"hello").await, b"hello");
        p.faults.set(Mode::Random(Odds { error: 1.0, ..Odds::default() }));
        assert!(ask(p.addr, b"hello").await.starts_with(b"HTTP/1.1 503"));
        p.faults.set(Mode::Down);
        assert_eq!(ask(p.addr, b"hello").await, b"");
        p.faults.set(Mode::Pass);
        assert_eq!(ask(p.addr, b"again").await, b"again");
        assert_eq!(p.faults.counts(), Counts { passed: 2, errors: 1, drops: 1, ..Counts::default() });
    }

    #[tokio::test]
    async fn sessions_are_refused_and_retargeted() {
        let p = tcp_sessions(echo().await).await.unwrap();
        assert_eq!(ask(p.addr, b"one").await, b"one");
        p.faults.set(Mode::Random(Odds { drop: 1.0, ..Odds::default() }));
        assert_eq!(ask(p.addr, b"two").await, b"");
        p.faults.set(Mode::Pass);
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        p.faults.retarget(other.local_addr().unwrap());
        let accepted = tokio::spawn(async move { other.accept().await.is_ok() });
        let _s = TcpStream::connect(p.addr).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), accepted).await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_partition_holds_connections_silent_until_it_heals() {
        let p = tcp_sessions(echo().await).await.unwrap();
        let mut open = TcpStream::connect(p.addr).await.unwrap();
        open.write_all(b"one").await.unwrap();
        let mut b = [0u8; 16];
        assert_eq!(open.read(&mut b).await.unwrap(), 3);
        p.faults.partition();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Neither an answer nor a close, on the open connection or a new one.
        open.write_all(b"two").await.unwrap();
        let silent = tokio::time::timeout(Duration::from_millis(500), open.read(&mut b)).await;
        assert!(silent.is_err(), "the open connection answered or closed: {silent:?}");
        let mut new = TcpStream::connect(p.addr).await.unwrap();
        new.write_all(b"three").await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(500), new.read(&mut b)).await.is_err());
        // Healed: the held connections are closed, new ones pass.
        p.faults.heal();
        let closed = tokio::time::timeout(Duration::from_secs(5), open.read(&mut b)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        assert_eq!(ask(p.addr, b"four").await, b"four");
    }

    #[tokio::test]
    async fn datagrams_pass_or_drop() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let p = udp(peer.local_addr().unwrap()).await.unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            while let Ok((n, from)) = peer.recv_from(&mut b).await {
                let _ = peer.send_to(&b[..n], from).await;
            }
        });
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(p.addr).await.unwrap();
        c.send(b"ping").await.unwrap();
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut b)).await.unwrap().unwrap();
        assert_eq!(&b[..n], b"ping");
        p.faults.set(Mode::Down);
        c.send(b"lost").await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(500), c.recv(&mut b)).await.is_err());
    }
}
