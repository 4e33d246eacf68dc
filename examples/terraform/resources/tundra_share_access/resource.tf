variable "share_id" {
  type = string
}

# A read-only cephx rule for a client outside Tundra (e.g. a Kubernetes CSI
# static volume); its key comes from the tundra_share_access_secret
# ephemeral resource, never from state.
resource "tundra_share_access" "csi" {
  share_id     = var.share_id
  kind         = "cephx"
  access_to    = "k8s-csi"
  access_level = "ro"
}
