# Kubernetes (k3s, air-gapped from the site's bundle) as one tundra
# cluster: a control plane and worker groups, every node on the same
# networks with the cluster's traffic on one of them, shares mounted on
# every node and offered to pods as persistent volumes, and short-lived
# kubeconfigs that never reach state.

locals {
  cluster_network = var.cluster_network_id != null ? var.cluster_network_id : try(var.networks[0], "")
  # Every node mounts every share; a pod on any node sees the same files.
  mounts = [for s in var.shares : {
    share_id    = s.share_id
    mount_point = coalesce(s.mount_point, "/mnt/shares/${s.name}")
    access      = s.access
  }]
  common = {
    image_id           = var.image_id
    networks           = var.networks
    cluster_network_id = local.cluster_network
    shares             = local.mounts
  }
  control_plane = merge(local.common, {
    name      = "control-plane"
    role      = "control_plane"
    flavor_id = var.control_plane_flavor_id
    count     = var.control_plane_count
    placement = null
  })
  workers = [for g in var.worker_groups : merge(local.common, {
    name      = g.name
    role      = "worker"
    flavor_id = coalesce(g.flavor_id, var.control_plane_flavor_id)
    image_id  = coalesce(g.image_id, var.image_id)
    count     = g.count
    placement = g.rack == null && g.strategy == null ? null : { rack = g.rack, strategy = g.strategy, site = null, island = null }
  })]
}

data "tundra_cluster_template" "k3s" {
  name       = var.template_name
  version    = var.template_version
  project_id = var.project_id
}

resource "tundra_cluster" "k8s" {
  project_id  = var.project_id
  name        = var.name
  template_id = data.tundra_cluster_template.k3s.id
  keypair_id  = var.keypair_id
  node_groups = concat([local.control_plane], local.workers)
  labels      = var.labels
}

data "tundra_share" "offered" {
  for_each = { for s in var.shares : s.name => s.share_id }
  id       = each.value
}

locals {
  # The namespaces of the claims (default exists), then each share as a
  # persistent volume of the node's mount (hostPath: the same path on every
  # node holds the same share) and a claim bound to it. The claim asks for a
  # nominal 1Gi (the smallest share): a bound claim's request cannot grow
  # without an expandable storage class, and a share resized in place would
  # otherwise make every later apply fail. The volume carries the size.
  namespaces = [for ns in distinct([for s in var.shares : s.namespace]) : {
    apiVersion = "v1"
    kind       = "Namespace"
    metadata   = { name = ns }
  } if ns != "default"]
  volume_documents = concat(local.namespaces, flatten([for s in var.shares : [
    {
      apiVersion = "v1"
      kind       = "PersistentVolume"
      metadata = {
        name   = "${var.name}-${s.name}"
        labels = { "tundra.dev/share" = s.name }
      }
      spec = {
        capacity                      = { storage = "${data.tundra_share.offered[s.name].size_gib}Gi" }
        accessModes                   = [s.access == "ro" ? "ReadOnlyMany" : "ReadWriteMany"]
        persistentVolumeReclaimPolicy = "Retain"
        storageClassName              = "tundra-share"
        hostPath                      = { path = coalesce(s.mount_point, "/mnt/shares/${s.name}"), type = "Directory" }
        claimRef                      = { namespace = s.namespace, name = s.name }
      }
    },
    {
      apiVersion = "v1"
      kind       = "PersistentVolumeClaim"
      metadata   = { name = s.name, namespace = s.namespace }
      spec = {
        accessModes      = [s.access == "ro" ? "ReadOnlyMany" : "ReadWriteMany"]
        storageClassName = "tundra-share"
        volumeName       = "${var.name}-${s.name}"
        resources        = { requests = { storage = "1Gi" } }
      }
    },
  ]]))
}

# With `kubectl` set, the volumes are applied to the cluster at each
# change, with the kubeconfig the caller opened for this run (ephemeral:
# written 0600 to a temporary file and removed, never in state): pods can
# claim the shares as soon as apply returns.
resource "terraform_data" "volumes" {
  count            = var.kubectl != null && length(var.shares) > 0 ? 1 : 0
  triggers_replace = [tundra_cluster.k8s.id, local.volume_documents]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      umask 077
      kc=$(mktemp)
      trap 'rm -f "$kc"' EXIT
      if [ -z "$TUNDRA_KUBECONFIG" ]; then
        echo "kubectl is set but no kubeconfig was given: pass ephemeral.tundra_cluster_credentials.NAME.kubeconfig as kubeconfig" >&2
        exit 1
      fi
      printf '%s' "$TUNDRA_KUBECONFIG" > "$kc"
      printf '%s' "$TUNDRA_VOLUMES" | ${var.kubectl} --kubeconfig "$kc" apply -f -
    EOT
    environment = {
      TUNDRA_KUBECONFIG = var.kubeconfig == null ? "" : var.kubeconfig
      TUNDRA_VOLUMES    = join("", [for d in local.volume_documents : "---\n${yamlencode(d)}"])
    }
  }
}
