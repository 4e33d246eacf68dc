# A CephFS share type (site admins): shares become subvolumes of the
# `cephfs` volume; tundrad manages them as client.tundra-manila.
variable "ceph_key" {
  type      = string
  sensitive = true
}

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
