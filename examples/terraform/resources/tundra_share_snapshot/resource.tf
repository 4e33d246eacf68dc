variable "share_type_id" {
  type        = string
  description = "A CephFS or NFS share type of the site (GlusterFS shares take no snapshots)."
}

resource "tundra_share" "results" {
  name          = "results"
  share_type_id = var.share_type_id
  size_gib      = 50
}

# A snapshot before a risky run…
resource "tundra_share_snapshot" "before_run" {
  share_id = tundra_share.results.id
  name     = "before-run-42"
}

# …and a new share made from it, to compare against.
resource "tundra_share" "results_before" {
  name          = "results-before-run-42"
  share_type_id = var.share_type_id
  size_gib      = tundra_share_snapshot.before_run.size_gib
  snapshot_id   = tundra_share_snapshot.before_run.id
}
