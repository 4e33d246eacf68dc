//! The rules of shares, pure: which names, sizes, rules and mount points
//! are acceptable, and how a node's mounts become cloud-init on its config
//! drive — the user's own user data kept whole, with tundrad's part beside
//! it in one MIME multipart whose `merge_how` appends rather than replaces.

use std::net::Ipv4Addr;

use tundra_api::FieldError;

fn field(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError { pointer: pointer.into(), detail: detail.into() }
}

/// Largest share: 1 PiB.
pub const MAX_SIZE_GIB: u32 = 1 << 20;

pub fn check_size(pointer: &str, gib: u32) -> Result<(), FieldError> {
    if gib == 0 || gib > MAX_SIZE_GIB {
        return Err(field(pointer, format!("a size in GiB from 1 to {MAX_SIZE_GIB}")));
    }
    Ok(())
}

/// A cephx name asked for (the project's namespace is put before it).
pub fn check_cephx_name(pointer: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with("node-");
    if ok {
        Ok(())
    } else {
        Err(field(
            pointer,
            format!(
                "{name:?} is not a cephx name: 1–48 letters, digits, '-' or '_' (names starting node- are tundrad's own); \
                 an address or CIDR belongs to an `ip` rule of an NFS or GlusterFS share"
            ),
        ))
    }
}

/// An IPv4 address or CIDR, as `a.b.c.d/n` (an address alone is `/32`).
pub fn check_cidr(pointer: &str, s: &str) -> Result<String, FieldError> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, p.parse::<u8>().ok().filter(|p| *p <= 32)),
        None => (s, Some(32)),
    };
    match (ip.parse::<Ipv4Addr>(), prefix) {
        (Ok(ip), Some(p)) => {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p as u32) };
            if u32::from(ip) & !mask != 0 {
                return Err(field(pointer, format!("{s}: the address has bits outside the /{p} prefix")));
            }
            Ok(format!("{ip}/{p}"))
        }
        _ => Err(field(pointer, format!("{s:?} is not an IPv4 address or CIDR (e.g. 10.1.0.0/24)"))),
    }
}

/// A mount point: absolute, plain, not the root nor a system directory.
pub fn check_mount_point(pointer: &str, p: &str) -> Result<(), FieldError> {
    const SYSTEM: &[&str] =
        &["/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var"];
    let plain = p.starts_with('/')
        && p.len() > 1
        && p.len() <= 200
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if !plain {
        return Err(field(
            pointer,
            format!("{p:?}: an absolute path of letters, digits, '-', '_' and '.', e.g. /data"),
        ));
    }
    if SYSTEM.iter().any(|s| p == *s || p.starts_with(&format!("{s}/"))) {
        return Err(field(pointer, format!("{p}: mount shares outside the system's own directories")));
    }
    Ok(())
}

/// One mount as a node gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub read_only: bool,
    pub how: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// ceph-fuse with the rule's cephx ID and key.
    Ceph { share: String, ceph_id: String, key: String, monitors: Vec<String>, path: String },
    /// NFSv4 `server:/path` (`server` is `HOST` or `HOST:PORT`).
    Nfs { server: String, path: String },
    /// GlusterFS `server:/volume`.
    Gluster { server: String, volume: String },
}

/// A string as YAML: JSON's quoting is YAML's too.
/// A YAML scalar for cloud-config: the string as JSON (a YAML subset).
pub(crate) fn y(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The `/etc/fstab` line of a mount (what the mount bundle and cloud-init
/// write), with the files it needs besides: (path, mode, content).
pub fn fstab(m: &Mount) -> (String, Vec<(String, &'static str, String)>) {
    let (fields, files) = fstab_fields(m);
    (fields.join(" "), files)
}

/// The six fstab fields of a mount (device, mount point, type, options,
/// dump, pass) and the files it needs.
fn fstab_fields(m: &Mount) -> ([String; 6], Vec<(String, &'static str, String)>) {
    let ro = if m.read_only { ",ro" } else { "" };
    let (device, kind, options, files) = match &m.how {
        MountKind::Ceph { share, ceph_id, key, monitors, path } => {
            let conf = format!("/etc/ceph/tundra-{share}.conf");
            let keyring = format!("/etc/ceph/ceph.client.{ceph_id}.keyring");
            let options =
                format!("ceph.id={ceph_id},ceph.conf={conf},ceph.client_mountpoint={path},_netdev,defaults{ro}");
            let files = vec![
                (conf, "0644", format!("[global]\n\tmon_host = {}\n\tkeyring = {keyring}\n", monitors.join(","))),
                (keyring, "0600", format!("[client.{ceph_id}]\n\tkey = {key}\n")),
            ];
            ("none".to_string(), "fuse.ceph", options, files)
        }
        MountKind::Nfs { server, path } => {
            // A server on a port of its own: `HOST:PORT` in the type's settings.
            let (host, port) = match server.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => (h, format!(",port={p}")),
                _ => (server.as_str(), String::new()),
            };
            (format!("{host}:{path}"), "nfs4", format!("_netdev,defaults{port}{ro}"), Vec::new())
        }
        MountKind::Gluster { server, volume } => {
            (format!("{server}:/{volume}"), "glusterfs", format!("_netdev,defaults{ro}"), Vec::new())
        }
    };
    ([device, m.mount_point.clone(), kind.to_string(), options, "0".into(), "0".into()], files)
}

/// Where a node keeps its mounts up to date after boot: the metadata
/// service's mounts file, asked every `every_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updater {
    /// `http://…/openstack/latest/tundra_mounts.json`.
    pub url: String,
    pub every_secs: u64,
}

/// The mounts file the metadata service serves (and the updater keeps as
/// what it applied): per mount its point, fstab line and files.
pub fn mounts_json(mounts: &[Mount]) -> String {
    let list: Vec<serde_json::Value> = mounts
        .iter()
        .map(|m| {
            let (line, files) = fstab(m);
            let files: Vec<serde_json::Value> = files
                .into_iter()
                .map(|(path, mode, content)| serde_json::json!({"path": path, "mode": mode, "content": content}))
                .collect();
            serde_json::json!({"mount_point": m.mount_point, "fstab": line, "files": files})
        })
        .collect();
    serde_json::json!({ "mounts": list }).to_string()
}

/// The updater nodes run (python3, which cloud-init itself needs).
pub const UPDATER_SCRIPT: &str = include_str!("tundra-mounts.py");

/// tundrad's cloud-config for the mounts: the files each needs (keys
/// root-only), the fstab entries (`mounts`), and the mount points made;
/// with an updater, the script and timer that apply later changes, and
/// the mounts as applied at boot.
pub fn cloud_config(mounts: &[Mount], updater: Option<&Updater>) -> String {
    let mut files: Vec<(String, &'static str, String)> = Vec::new();
    let mut entries = String::new();
    for m in mounts {
        let (fields, extra) = fstab_fields(m);
        files.extend(extra);
        entries.push_str(&format!("  - [{}]\n", fields.iter().map(|x| y(x)).collect::<Vec<_>>().join(", ")));
    }
    let mut runcmd = String::new();
    if let Some(u) = updater {
        let about = "Description=Keep this node's share mounts as tundrad lists them";
        let service = format!(
            "[Unit]\n{about}\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nType=oneshot\n\
             TimeoutStartSec=300\nExecStart=/usr/bin/python3 /usr/local/sbin/tundra-mounts {}\n",
            u.url
        );
        let timer = format!(
            "[Unit]\n{about}\n\n[Timer]\nOnBootSec={e}s\nOnUnitActiveSec={e}s\nRandomizedDelaySec={j}s\n\n\
             [Install]\nWantedBy=timers.target\n",
            e = u.every_secs,
            j = (u.every_secs / 4).max(1)
        );
        files.push(("/usr/local/sbin/tundra-mounts".into(), "0755", UPDATER_SCRIPT.to_string()));
        files.push(("/etc/systemd/system/tundra-mounts.service".into(), "0644", service));
        files.push(("/etc/systemd/system/tundra-mounts.timer".into(), "0644", timer));
        files.push(("/var/lib/tundra/mounts.json".into(), "0600", mounts_json(mounts)));
        runcmd
            .push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, enable, --now, tundra-mounts.timer]\n");
    }
    let mut out = String::from(
        "#cloud-config\n# tundrad: the node's shares\nmerge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [no_replace, recurse_list]\n",
    );
    if !files.is_empty() {
        out.push_str("write_files:\n");
        for (path, mode, content) in &files {
            out.push_str(&format!(
                "  - path: {}\n    permissions: {}\n    owner: root:root\n    content: {}\n",
                y(path),
                y(mode),
                y(content)
            ));
        }
    }
    out.push_str(&runcmd);
    if !entries.is_empty() {
        out.push_str("mounts:\n");
        out.push_str(&entries);
        out.push_str("mount_default_fields: [null, null, \"auto\", \"defaults,nofail\", \"0\", \"2\"]\n");
    }
    out
}

/// The node's user data with tundrad's part: the user's kept whole (its
/// kind found by cloud-init from its first line), ours after it.
pub fn user_data_with(user: Option<&str>, ours: &str) -> String {
    let mut boundary = String::from("==tundra-share-mounts==");
    while user.is_some_and(|u| u.contains(&boundary)) || ours.contains(&boundary) {
        boundary.push('x');
    }
    let mut out = format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
    if let Some(u) = user {
        out.push_str(&format!(
            "--{boundary}\nContent-Type: text/plain; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"user-data\"\n\n{u}\n"
        ));
    }
    out.push_str(&format!(
        "--{boundary}\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"tundra-shares.cfg\"\n\n{ours}\n--{boundary}--\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_and_paths_are_checked_with_what_to_do() {
        assert!(check_size("/size_gib", 0).unwrap_err().detail.contains("from 1"));
        assert!(check_size("/size_gib", 1).is_ok());
        assert!(check_cephx_name("/access_to", "alice").is_ok());
        assert!(check_cephx_name("/access_to", "10.0.0.0/24").unwrap_err().detail.contains("ip"));
        assert!(check_cephx_name("/access_to", "node-x").is_err());
        assert_eq!(check_cidr("/access_to", "10.1.2.3").unwrap(), "10.1.2.3/32");
        assert!(check_cidr("/access_to", "10.1.2.3/24").unwrap_err().detail.contains("outside"));
        assert!(check_cidr("/access_to", "alice").is_err());
        for bad in ["data", "/", "/data/", "/a/../b", "/etc", "/usr/local", "/da ta"] {
            assert!(check_mount_point("/m", bad).is_err(), "{bad}");
        }
        assert!(check_mount_point("/m", "/data/scratch").is_ok());
    }

    #[test]
    fn mounts_become_fstab_lines_and_root_only_keys() {
        let m = Mount {
            mount_point: "/data".into(),
            read_only: false,
            how: MountKind::Ceph {
                share: "s1".into(),
                ceph_id: "tundra.p.node-1".into(),
                key: "AQB==".into(),
                monitors: vec!["10.0.0.1:6789".into(), "10.0.0.2:6789".into()],
                path: "/volumes/p/s1/uuid".into(),
            },
        };
        let (line, files) = fstab(&m);
        assert_eq!(
            line,
            "none /data fuse.ceph ceph.id=tundra.p.node-1,ceph.conf=/etc/ceph/tundra-s1.conf,ceph.client_mountpoint=/volumes/p/s1/uuid,_netdev,defaults 0 0"
        );
        assert_eq!(files[1].1, "0600");
        assert!(files[0].2.contains("mon_host = 10.0.0.1:6789,10.0.0.2:6789"));
        let cc = cloud_config(std::slice::from_ref(&m), None);
        assert!(cc.starts_with("#cloud-config\n"));
        assert!(cc.contains("\"fuse.ceph\""));
        let ud = user_data_with(Some("#!/bin/sh\necho hi\n"), &cc);
        assert!(ud.starts_with("Content-Type: multipart/mixed"));
        assert!(ud.contains("#!/bin/sh\necho hi"));
        assert!(ud.trim_end().ends_with("--==tundra-share-mounts==--"));
    }

    #[test]
    fn the_updater_comes_with_the_mounts_as_applied_at_boot() {
        let m = Mount {
            mount_point: "/data".into(),
            read_only: false,
            how: MountKind::Nfs { server: "10.0.0.9".into(), path: "/p/s".into() },
        };
        let u = Updater { url: "http://10.0.0.1:8080/openstack/latest/tundra_mounts.json".into(), every_secs: 60 };
        let cc = cloud_config(std::slice::from_ref(&m), Some(&u));
        assert!(cc.contains("\"/usr/local/sbin/tundra-mounts\""), "{cc}");
        assert!(cc.contains("tundra-mounts http://10.0.0.1:8080/openstack/latest/tundra_mounts.json"), "{cc}");
        assert!(cc.contains("OnUnitActiveSec=60s"), "{cc}");
        assert!(cc.contains("[systemctl, enable, --now, tundra-mounts.timer]"), "{cc}");
        assert_eq!(cc.matches("write_files:").count(), 1, "{cc}");
        // What the updater starts from is exactly what the metadata service lists.
        let state: serde_json::Value = serde_json::from_str(&mounts_json(std::slice::from_ref(&m))).unwrap();
        assert_eq!(state["mounts"][0]["fstab"], "10.0.0.9:/p/s /data nfs4 _netdev,defaults 0 0");
        assert!(cc.contains(&y(&mounts_json(std::slice::from_ref(&m)))), "{cc}");
        // No mounts yet, but the updater: a later mount arrives without a redeploy.
        let empty = cloud_config(&[], Some(&u));
        assert!(!empty.contains("mounts:\n"), "{empty}");
        assert!(empty.contains("{\\\"mounts\\\":[]}"), "{empty}");
    }

    #[test]
    fn nfs_and_glusterfs_mounts_need_no_files() {
        let nfs = |server: &str| Mount {
            mount_point: "/data".into(),
            read_only: true,
            how: MountKind::Nfs { server: server.into(), path: "/p/s".into() },
        };
        assert_eq!(fstab(&nfs("10.0.0.9")).0, "10.0.0.9:/p/s /data nfs4 _netdev,defaults,ro 0 0");
        assert_eq!(fstab(&nfs("10.0.0.9:2050")).0, "10.0.0.9:/p/s /data nfs4 _netdev,defaults,port=2050,ro 0 0");
        let g = Mount {
            mount_point: "/data".into(),
            read_only: false,
            how: MountKind::Gluster { server: "gs1".into(), volume: "tundra-p-s".into() },
        };
        let (line, files) = fstab(&g);
        assert_eq!(line, "gs1:/tundra-p-s /data glusterfs _netdev,defaults 0 0");
        assert!(files.is_empty());
    }
}
