//! Shares through real Terraform, without a lab: a real single-node Ceph on
//! loopback and an NFS-Ganesha file server in a namespace of its own
//! (`scripts/peers/ceph.sh`, `scripts/peers/nas.sh`).
//!
//! A client outside Tundra mounts a CephFS share with what the
//! `tundra_share_access_secret` ephemeral resource gives it — here a
//! `local-exec` provisioner running ceph-fuse — and writes a file; a
//! `tundra_share_snapshot` taken after it, and a share made from that
//! snapshot, hold the file. Data sources find the share and the NFS share
//! type by name, an NFS share with an address rule is read by a real NFS
//! client, no key of any kind reaches the state, imports and plans are
//! empty, and destroy leaves nothing on Ceph or the file server.

use std::process::Command;

use crate::peers::{Ceph, Nas};
use crate::steps::Site;

const MAIN: &str = r#"
variable "ceph_key" {
  type      = string
  sensitive = true
}

variable "nfs_key" {
  type      = string
  sensitive = true
}

resource "tundra_share_type" "ceph" {
  name       = "ceph"
  backend    = "cephfs"
  monitors   = ["@MON@"]
  fs_name    = "tundra"
  credential = var.ceph_key
}

resource "tundra_share_type" "nfs" {
  name         = "nfs"
  backend      = "nfs"
  ssh_address  = "@NAS@:22"
  host_key     = "@HOST_KEY@"
  server       = "@NAS@"
  root         = "@NFS_ROOT@"
  exports_file = "@EXPORTS@"
  pid_file     = "@PID@"
  credential   = var.nfs_key
}

resource "tundra_share" "data" {
  name          = "data"
  share_type_id = tundra_share_type.ceph.id
  size_gib      = 1
}

resource "tundra_share_access" "csi" {
  share_id  = tundra_share.data.id
  kind      = "cephx"
  access_to = "k8s-csi"
}

# A client outside Tundra: its key comes from the ephemeral resource, during
# this run only.
ephemeral "tundra_share_access_secret" "csi" {
  access_id = tundra_share_access.csi.id
}

resource "terraform_data" "client" {
  input = tundra_share_access.csi.id
  provisioner "local-exec" {
    command = <<-EOT
      set -e
      d=$(mktemp -d)
      printf '[client.%s]\n\tkey = %s\n' "$CEPH_ID" "$KEY" > "$d/keyring"
      mkdir "$d/mnt"
      ceph-fuse --conf /dev/null -m "$MON" --id "$CEPH_ID" --keyring "$d/keyring" -r "$SHARE_PATH" "$d/mnt" >/dev/null 2>&1
      echo from-terraform > "$d/mnt/marker"
      umount "$d/mnt"
      rm -rf "$d"
    EOT
    environment = {
      KEY        = ephemeral.tundra_share_access_secret.csi.key
      CEPH_ID    = ephemeral.tundra_share_access_secret.csi.ceph_id
      MON        = ephemeral.tundra_share_access_secret.csi.monitors[0]
      SHARE_PATH = ephemeral.tundra_share_access_secret.csi.path
    }
  }
}

resource "tundra_share_snapshot" "after" {
  share_id   = tundra_share.data.id
  name       = "after-client"
  depends_on = [terraform_data.client]
}

resource "tundra_share" "copy" {
  name          = "copy"
  share_type_id = tundra_share_type.ceph.id
  size_gib      = tundra_share_snapshot.after.size_gib
  snapshot_id   = tundra_share_snapshot.after.id
}

data "tundra_share" "data" {
  name = tundra_share.data.name
}

data "tundra_share_type" "nfs" {
  name = tundra_share_type.nfs.name
}

resource "tundra_share" "home" {
  name          = "home"
  share_type_id = tundra_share_type.nfs.id
  size_gib      = 1
}

resource "tundra_share_access" "me" {
  share_id  = tundra_share.home.id
  kind      = "ip"
  access_to = "@CLIENT@/32"
}

output "data_export" {
  value = data.tundra_share.data.export_locations[0].path
}

output "copy_export" {
  value = tundra_share.copy.export_locations[0].path
}

output "home_export" {
  value = tundra_share.home.export_locations[0].path
}

output "home_ready" {
  value = tundra_share_access.me.state
}

output "nfs_type" {
  value = "${data.tundra_share_type.nfs.backend} ${data.tundra_share_type.nfs.server}"
}
"#;

/// The file `name` in a CephFS path, read through ceph-fuse as client.admin.
fn read_in_ceph(ceph: &Ceph, path: &str, name: &str) -> Result<String, String> {
    let dir = tempfile::Builder::new().prefix("tundra-ceph-read-").tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // (A PID file of its own: the cluster's conf names one per daemon type.)
    let out = Command::new("ceph-fuse")
        .arg("--conf")
        .arg(&ceph.conf)
        .arg("--pid-file")
        .arg(dir.path().join("client.pid"))
        .arg("-r")
        .arg(path)
        .arg(&mnt)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let got = std::fs::read_to_string(mnt.join(name)).map_err(|e| e.to_string());
    let _ = Command::new("umount").arg(&mnt).status();
    got
}

pub fn shares_through_terraform() {
    let ceph = Ceph::start("127.0.0.1");
    let nas = Nas::start();
    let site = Site::start();
    let main = MAIN
        .replace("@MON@", &ceph.monitor)
        .replace("@NAS@", &nas.address)
        .replace("@HOST_KEY@", &nas.host_key)
        .replace("@NFS_ROOT@", &nas.nfs_root)
        .replace("@EXPORTS@", &nas.exports_file)
        .replace("@PID@", &nas.pid_file)
        .replace("@CLIENT@", &nas.client_address);
    let mut ws = site.workspace(&format!("{}{main}", crate::steps::header()));
    ws.env.push(("TF_VAR_ceph_key".into(), ceph.key.clone()));
    ws.env.push(("TF_VAR_nfs_key".into(), nas.key.clone()));
    let out = ws.apply();
    assert!(out.contains("Apply complete!"), "{out}");
    let state = ws.state();
    let output = |k: &str| state["values"]["outputs"][k]["value"].as_str().unwrap_or_default().to_string();
    assert_eq!(output("home_ready"), "active");
    assert_eq!(output("nfs_type"), format!("nfs {}", nas.address));

    // The client's file is in the share, and in the share made from the snapshot after it.
    let path_of = |export: &str| export.split_once(":/").map(|(_, p)| format!("/{p}")).unwrap();
    assert_eq!(read_in_ceph(&ceph, &path_of(&output("data_export")), "marker").unwrap(), "from-terraform\n");
    assert_eq!(read_in_ceph(&ceph, &path_of(&output("copy_export")), "marker").unwrap(), "from-terraform\n");

    // NFS: the address rule lets this host's client in.
    let (host, path) = output("home_export").split_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let ls = Command::new("nfs-ls").arg(format!("nfs://{host}{path}?version=4")).output().unwrap();
    assert!(ls.status.success() && ls.stderr.is_empty(), "{}", String::from_utf8_lossy(&ls.stderr));

    // No key in state: not the rule's, not Ceph's admin key, not the SSH key.
    let csi = ws.resource("tundra_share_access.csi");
    let (code, secret) = site.api("GET", &format!("/v1/share-access/{}/secret", csi["id"].as_str().unwrap()), None);
    assert_eq!(code, 200, "{secret}");
    let tfstate = ws.read("terraform.tfstate");
    for (what, key) in [
        ("the rule's key", secret["key"].as_str().unwrap()),
        ("Ceph's admin key", ceph.key.as_str()),
        ("the file server's SSH key", "PRIVATE KEY"),
    ] {
        assert!(!tfstate.contains(key), "{what} is in terraform.tfstate");
    }
    let (code, plan) = ws.plan();
    assert_eq!(code, 0, "a plan right after apply changes something:\n{plan}");

    // Imports come back as they were.
    for (address, id) in [
        ("tundra_share_snapshot.after", ws.resource("tundra_share_snapshot.after")["id"].clone()),
        ("tundra_share_access.csi", csi["id"].clone()),
        ("tundra_share_type.nfs", ws.resource("tundra_share_type.nfs")["id"].clone()),
    ] {
        ws.ok(&["state", "rm", address]);
        ws.ok(&["import", "-no-color", address, id.as_str().unwrap()]);
    }
    // Imported, the share type's credential is no longer marked sensitive in
    // state while the configuration's is: Terraform plans that mark alone as
    // an update (no value changes), and one apply settles it.
    let (code, plan) = ws.plan();
    assert!(code == 0 || plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "after imports:\n{plan}");
    ws.apply();
    let (code, plan) = ws.plan();
    assert_eq!(code, 0, "after imports and one apply:\n{plan}");

    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    let subvolumes = Command::new("ceph")
        .arg("--conf")
        .arg(&ceph.conf)
        .args(["fs", "subvolume", "ls", "tundra", "--group_name"])
        .arg(ws_project_group(&site))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&subvolumes.stdout);
    assert!(!listed.contains("\"name\""), "subvolumes left on Ceph: {listed}");
    let auth = Command::new("ceph").arg("--conf").arg(&ceph.conf).args(["auth", "ls"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&auth.stdout).contains("client.tundra."), "a rule's cephx ID is left on Ceph");
    let exports = std::fs::read_to_string(&nas.exports_file).unwrap();
    assert!(!exports.contains("tundra-share"), "an export is left: {exports}");
    eprintln!(
        "shares via Terraform: ephemeral key mounted by a client, snapshot + clone, NFS rule, imports, destroy clean"
    );
}

/// The project `astro`'s subvolume group (its ID without dashes).
fn ws_project_group(site: &Site) -> String {
    let (_, p) = site.api("GET", "/v1/projects/astro", None);
    p["id"].as_str().unwrap().replace('-', "")
}
