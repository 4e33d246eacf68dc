variable "share_type_id" {
  type        = string
  description = "A share type of the site (GET /v1/share-types), e.g. CephFS."
}

data "tundra_flavor" "compute" {
  name = "compute"
}

data "tundra_image" "debian" {
  name = "debian-12"
}

# A 100 GiB share; raise size_gib to extend it in place.
resource "tundra_share" "data" {
  name          = "sip-data"
  share_type_id = var.share_type_id
  size_gib      = 100
}

# Nodes mount it: tundrad makes each node's rule and puts the mount on its config drive.
resource "tundra_node" "worker" {
  name      = "worker-0"
  flavor_id = data.tundra_flavor.compute.id
  image_id  = data.tundra_image.debian.id
  shares    = [{ share_id = tundra_share.data.id, mount_point = "/data" }]
}
