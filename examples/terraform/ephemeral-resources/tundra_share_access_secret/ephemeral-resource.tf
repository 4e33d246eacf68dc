variable "access_id" {
  type        = string
  description = "An active access rule (tundra_share_access.id)."
}

# The rule's key and mount bundle, for this run only (never in state).
ephemeral "tundra_share_access_secret" "csi" {
  access_id = var.access_id
}

# e.g. handed to the Kubernetes provider's write-only secret data:
#   data_wo = { userID = ephemeral.tundra_share_access_secret.csi.ceph_id,
#               userKey = ephemeral.tundra_share_access_secret.csi.key }
