# Share types (site admins).
variable "ceph_key" {
  type      = string
  sensitive = true
}

variable "nfs_ssh_key" {
  type        = string
  sensitive   = true
  description = "The SSH private key tundrad logs into the NFS server with (OpenSSH format)."
}

# CephFS: shares become subvolumes of the `cephfs` volume; tundrad manages
# them as client.tundra-manila.
resource "tundra_share_type" "cephfs" {
  name               = "cephfs"
  description        = "CephFS native, per-share cephx IDs"
  backend            = "cephfs"
  monitors           = ["10.0.0.11:6789", "10.0.0.12:6789", "10.0.0.13:6789"]
  fs_name            = "cephfs"
  client_id          = "tundra-manila"
  credential         = var.ceph_key
  credential_version = 1
}

# NFS through NFS-Ganesha on a file server tundrad manages over SSH; its
# ganesha.conf has `%include "/etc/ganesha/tundra.conf"`.
resource "tundra_share_type" "nfs" {
  name               = "nfs"
  description        = "NFSv4 exports for clients without Ceph keys"
  backend            = "nfs"
  ssh_address        = "10.0.0.20:22"
  host_key           = "SHA256:Xb1JY1qZtq2y1BNSmfLyzQ7eIwF9rE5dYvd2+H4RVe0"
  server             = "10.0.0.20"
  root               = "/srv/tundra"
  exports_file       = "/etc/ganesha/tundra.conf"
  credential         = var.nfs_ssh_key
  credential_version = 1
}
