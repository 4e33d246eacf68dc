//! GlusterFS (legacy): one volume per share, with a single brick on a
//! GlusterFS server tundrad logs into over SSH — glusterd takes changes only
//! from its own host, the `gluster` CLI's `--remote-host` is read-only. The
//! quota is the volume's `limit-usage /`; the address rules are its
//! `auth.allow` (the server's own address always kept in it, so its quota
//! daemon can mount). GlusterFS does not read CIDRs there, so a rule's CIDR
//! becomes addresses or `a.b.c.*` wildcards that cover exactly it.
//!
//! Deleting a share stops and deletes the volume, then removes its brick
//! directory: GlusterFS itself leaves the bytes on the server.

use std::net::Ipv4Addr;

use super::remote::{Failed, Remote, Server, q};
use super::{Grant, Progress, ShareBackend, ShareError, ShareInfo, ShareRef};

/// What `gluster` says when it could not do it now (not: will not do it).
const BUSY: &[&str] =
    &["Another transaction is in progress", "Locking failed", "Connection failed", "glusterd is not running"];

#[derive(Debug, Clone)]
pub struct Gluster {
    pub remote: Remote,
    /// The server's address as GlusterFS knows it (the brick's host; clients
    /// fetch the volume from it).
    pub server: String,
    /// The directory on the server each share's brick goes under.
    pub root: String,
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + end])
}

/// A volume's reconfigured option, from `volume info --xml`.
fn option<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let at = xml.find(&format!("<name>{name}</name>"))?;
    tag(&xml[at..], "value")
}

/// The `auth.allow` patterns that let in exactly `cidr`'s addresses.
pub fn patterns(cidr: &str) -> Vec<String> {
    let (ip, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Ok(ip), Ok(len)) = (ip.parse::<Ipv4Addr>(), len.parse::<u32>()) else { return Vec::new() };
    let len = len.min(32);
    if len == 0 {
        return vec!["*".to_string()];
    }
    let base = u32::from(ip) & if len == 0 { 0 } else { u32::MAX << (32 - len) };
    // Whole octets become wildcards; the rest is spelled out, at most 256 entries.
    let unit = if len > 24 { 32 } else { len.div_ceil(8) * 8 };
    let count = 1u32 << (unit - len);
    let step = if unit == 32 { 1 } else { 1u32 << (32 - unit) };
    (0..count)
        .map(|k| {
            let o = Ipv4Addr::from(base + k * step).octets();
            match unit {
                32 => format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
                24 => format!("{}.{}.{}.*", o[0], o[1], o[2]),
                16 => format!("{}.{}.*", o[0], o[1]),
                8 => format!("{}.*", o[0]),
                _ => "*".to_string(),
            }
        })
        .collect()
}

impl Gluster {
    fn volume(s: &ShareRef) -> String {
        format!("tundra-{}-{}", s.group, s.name)
    }

    fn brick(&self, s: &ShareRef) -> String {
        format!("{}/{}", self.root, Self::volume(s))
    }

    async fn gluster(&self, s: &mut Server, args: &str) -> Result<Result<String, Failed>, ShareError> {
        s.run(&format!("gluster --mode=script {args}"), None).await
    }

    /// `volume info --xml`, or `None` when there is no such volume.
    async fn info_xml(&self, s: &mut Server, vol: &str) -> Result<Option<String>, ShareError> {
        match self.gluster(s, &format!("--xml volume info {}", q(vol))).await? {
            Ok(xml) if tag(&xml, "opRet") == Some("0") && xml.contains("<volume>") => Ok(Some(xml)),
            Ok(xml) if xml.contains("does not exist") => Ok(None),
            Err(f) if f.output.contains("does not exist") => Ok(None),
            Ok(out) | Err(Failed { output: out, .. }) => {
                Err(ShareError::Unavailable(format!("gluster volume info {vol}: {}", out.trim())))
            }
        }
    }

    async fn must(&self, s: &mut Server, args: &str) -> Result<String, ShareError> {
        match self.gluster(s, args).await? {
            Ok(out) => Ok(out),
            // glusterd busy with another transaction, or down: try again later.
            Err(f) if BUSY.iter().any(|b| f.output.contains(b)) => {
                Err(ShareError::Unavailable(format!("gluster {args}: {}", f.output.trim())))
            }
            Err(f) => Err(ShareError::Refused(format!("gluster {args}: {}", f.output.trim()))),
        }
    }
}

impl ShareBackend for Gluster {
    async fn ensure(
        &self,
        share: &ShareRef,
        bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> Result<Progress<String>, ShareError> {
        if from.is_some() {
            return Err(ShareError::Refused("GlusterFS shares take no snapshots in Tundra".into()));
        }
        self.remote
            .session(async |s| {
                let vol = Self::volume(share);
                let xml = match self.info_xml(s, &vol).await? {
                    Some(xml) => xml,
                    None => {
                        let brick = format!("{}:{}", self.server, self.brick(share));
                        self.must(s, &format!("volume create {} {} force", q(&vol), q(&brick))).await?;
                        self.info_xml(s, &vol).await?.unwrap_or_default()
                    }
                };
                // Nobody but the server itself until a rule says so (GlusterFS's default is everyone).
                if option(&xml, "auth.allow").is_none() {
                    self.must(s, &format!("volume set {} auth.allow {}", q(&vol), q(&self.server))).await?;
                }
                if tag(&xml, "status") != Some("1") {
                    self.must(s, &format!("volume start {} force", q(&vol))).await?;
                }
                if option(&xml, "features.quota") != Some("on") {
                    self.must(s, &format!("volume quota {} enable", q(&vol))).await?;
                }
                self.must(s, &format!("volume quota {} limit-usage / {bytes}", q(&vol))).await?;
                Ok(Progress::Done(format!("/{vol}")))
            })
            .await
    }

    async fn info(&self, share: &ShareRef) -> Result<ShareInfo, ShareError> {
        self.remote
            .session(async |s| {
                let vol = Self::volume(share);
                if self.info_xml(s, &vol).await?.is_none() {
                    return Err(ShareError::Missing(format!("volume {vol}")));
                }
                let xml = self.must(s, &format!("--xml volume quota {} list /", q(&vol))).await?;
                let num = |t: &str| tag(&xml, t).and_then(|v| v.trim().parse::<u64>().ok());
                Ok(ShareInfo {
                    path: format!("/{vol}"),
                    quota_bytes: num("hard_limit"),
                    used_bytes: num("used_space").unwrap_or(0),
                })
            })
            .await
    }

    async fn resize(&self, share: &ShareRef, bytes: u64) -> Result<(), ShareError> {
        self.remote
            .session(async |s| {
                self.must(s, &format!("volume quota {} limit-usage / {bytes}", q(&Self::volume(share)))).await?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, share: &ShareRef) -> Result<(), ShareError> {
        self.remote
            .session(async |s| {
                let vol = Self::volume(share);
                if let Some(xml) = self.info_xml(s, &vol).await? {
                    if tag(&xml, "status") == Some("1") {
                        self.must(s, &format!("volume stop {} force", q(&vol))).await?;
                    }
                    self.must(s, &format!("volume delete {}", q(&vol))).await?;
                }
                s.must(&format!("rm -rf {}", q(&self.brick(share))), None).await?;
                Ok(())
            })
            .await
    }

    async fn snapshot(&self, _: &ShareRef, _: &str) -> Result<Progress<()>, ShareError> {
        Err(ShareError::Refused("GlusterFS shares take no snapshots in Tundra".into()))
    }

    async fn delete_snapshot(&self, _: &ShareRef, _: &str) -> Result<(), ShareError> {
        Ok(())
    }

    async fn authorize(&self, _: &ShareRef, _: &str, _: bool) -> Result<Grant, ShareError> {
        Err(ShareError::Refused("GlusterFS shares take address rules, not cephx IDs".into()))
    }

    async fn deauthorize(&self, _: &ShareRef, _: &str) -> Result<(), ShareError> {
        Err(ShareError::Refused("GlusterFS shares take address rules, not cephx IDs".into()))
    }

    async fn allow(&self, share: &ShareRef, clients: &[(String, bool)]) -> Result<(), ShareError> {
        if clients.iter().any(|c| c.1) {
            return Err(ShareError::Refused("GlusterFS rules are read-write only".into()));
        }
        self.remote
            .session(async |s| {
                let vol = Self::volume(share);
                let Some(xml) = self.info_xml(s, &vol).await? else {
                    return Err(ShareError::Missing(format!("volume {vol}")));
                };
                let mut want = vec![self.server.clone()];
                for (cidr, _) in clients {
                    for p in patterns(cidr) {
                        if !want.contains(&p) {
                            want.push(p);
                        }
                    }
                }
                let want = want.join(",");
                if option(&xml, "auth.allow") != Some(want.as_str()) {
                    self.must(s, &format!("volume set {} auth.allow {}", q(&vol), q(&want))).await?;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cidr_becomes_patterns_covering_exactly_it() {
        assert_eq!(patterns("10.1.2.3/32"), ["10.1.2.3"]);
        assert_eq!(patterns("10.1.2.0/24"), ["10.1.2.*"]);
        assert_eq!(patterns("10.1.0.0/16"), ["10.1.*"]);
        assert_eq!(patterns("10.1.2.4/30"), ["10.1.2.4", "10.1.2.5", "10.1.2.6", "10.1.2.7"]);
        assert_eq!(patterns("10.1.4.0/22"), ["10.1.4.*", "10.1.5.*", "10.1.6.*", "10.1.7.*"]);
        assert_eq!(patterns("0.0.0.0/0"), ["*"]);
        assert_eq!(patterns("10.1.2.0/25").len(), 128);
    }

    #[test]
    fn volume_info_is_read_from_its_xml() {
        let xml = "<cliOutput><opRet>0</opRet><volInfo><volumes><volume><name>v</name><status>1</status>\
                   <options><option><name>auth.allow</name><value>10.0.0.2,10.1.*</value></option></options>\
                   </volume></volumes></volInfo></cliOutput>";
        assert_eq!(tag(xml, "status"), Some("1"));
        assert_eq!(option(xml, "auth.allow"), Some("10.0.0.2,10.1.*"));
        assert_eq!(option(xml, "features.quota"), None);
    }
}
