# The site's NFS share type, by name.
data "tundra_share_type" "nfs" {
  name = "nfs"
}

resource "tundra_share" "home" {
  name          = "home"
  share_type_id = data.tundra_share_type.nfs.id
  size_gib      = 200
}
