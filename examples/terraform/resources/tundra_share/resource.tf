# A 100 GiB CephFS share; raise size_gib to extend it in place.
resource "tundra_share" "data" {
  name          = "sip-data"
  share_type_id = tundra_share_type.cephfs.id
  size_gib      = 100
}

# Nodes mount it: tundrad makes each node's rule and puts the mount on its config drive.
resource "tundra_node" "worker" {
  name      = "worker-0"
  flavor_id = data.tundra_flavor.compute.id
  image_id  = tundra_image.debian.id
  shares    = [{ share_id = tundra_share.data.id, mount_point = "/data" }]
}
