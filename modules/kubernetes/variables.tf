variable "name" {
  type        = string
  description = "The cluster's name: the first part of its nodes' host names (NAME-GROUP-N) and of its volumes' names."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name must be 2-40 lower-case letters, digits and inner '-', starting with a letter (it is part of host names)."
  }
}

variable "image_id" {
  type        = string
  description = "Image of every node (a group may name its own): Debian 12; k3s comes from the template's bundle."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.image_id))
    error_message = "image_id must be an image's ID (a UUID), e.g. tundra_image.debian.id."
  }
}

variable "control_plane_count" {
  type        = number
  description = "How many k3s servers (embedded etcd): 1, 3 or 5. Changed in place."
  default     = 1
  validation {
    condition     = contains([1, 3, 5], var.control_plane_count)
    error_message = "control_plane_count must be 1, 3 or 5: a quorum must survive the loss of one server (with 3 or 5)."
  }
}

variable "control_plane_flavor_id" {
  type        = string
  description = "Flavor of the k3s servers (and of worker groups that name none)."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.control_plane_flavor_id))
    error_message = "control_plane_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.small.id."
  }
}

variable "worker_groups" {
  type = list(object({
    name      = string
    count     = number
    flavor_id = optional(string)
    image_id  = optional(string)
    rack      = optional(string)
    strategy  = optional(string)
  }))
  description = "Groups of k3s agents, each of `count` alike nodes (NAME-GROUP-N): a flavor (default: the control plane's), an image (default: image_id), a rack to stay in and a strategy (pack or spread). Counts change in place; a new group is added in place, a removed one drained and cleaned."
  default     = [{ name = "workers", count = 2 }]
  validation {
    condition     = alltrue([for g in var.worker_groups : can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", g.name)) && g.name != "control-plane"])
    error_message = "worker_groups: each name must be 1-20 lower-case letters, digits and inner '-', starting with a letter, and not \"control-plane\"."
  }
  validation {
    condition     = length(distinct([for g in var.worker_groups : g.name])) == length(var.worker_groups)
    error_message = "worker_groups: two groups have the same name."
  }
  validation {
    condition     = alltrue([for g in var.worker_groups : g.count >= 0 && g.count <= 999 && floor(g.count) == g.count])
    error_message = "worker_groups: each count must be a whole number from 0 to 999."
  }
  validation {
    condition     = alltrue([for g in var.worker_groups : alltrue([for id in compact([g.flavor_id, g.image_id]) : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", id))])])
    error_message = "worker_groups: flavor_id and image_id must be IDs (UUIDs) when given."
  }
  validation {
    condition     = alltrue([for g in var.worker_groups : g.strategy == null || contains(["pack", "spread"], coalesce(g.strategy, "pack"))])
    error_message = "worker_groups: strategy must be \"pack\" or \"spread\"."
  }
}

variable "networks" {
  type        = list(string)
  description = "Networks every node is on beyond provisioning, in order (e.g. a 25G and a 100G one)."
  validation {
    condition     = length(var.networks) >= 1
    error_message = "networks must name at least one network: the cluster's traffic runs on one of them."
  }
  validation {
    condition     = alltrue([for n in var.networks : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", n))])
    error_message = "networks must be network IDs (UUIDs), e.g. tundra_network.k8s.id."
  }
  validation {
    condition     = length(distinct(var.networks)) == length(var.networks)
    error_message = "networks lists a network twice."
  }
}

variable "cluster_network_id" {
  type        = string
  description = "Which of networks carries Kubernetes' traffic (k3s --node-ip, the API server's address, pod-to-pod). Default: the first."
  default     = null
  validation {
    condition     = var.cluster_network_id == null || contains(var.networks, coalesce(var.cluster_network_id, "-"))
    error_message = "cluster_network_id must be one of networks."
  }
}

variable "shares" {
  type = list(object({
    name        = string
    share_id    = string
    mount_point = optional(string)
    access      = optional(string, "rw")
    namespace   = optional(string, "default")
  }))
  description = "Shares offered to pods: each is mounted on every node (at mount_point, default /mnt/shares/NAME; tundrad gives the nodes its key) and becomes a persistent volume NAME-SHARE with a claim SHARE in namespace (made unless default), bound to each other (volumes_manifest)."
  default     = []
  validation {
    condition     = alltrue([for s in var.shares : can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", s.name))])
    error_message = "shares: each name must be 1-32 lower-case letters, digits and inner '-', starting with a letter (it names the claim)."
  }
  validation {
    condition     = length(distinct([for s in var.shares : s.name])) == length(var.shares)
    error_message = "shares: two shares have the same name."
  }
  validation {
    condition     = alltrue([for s in var.shares : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", s.share_id))])
    error_message = "shares: share_id must be a share's ID (a UUID), e.g. tundra_share.data.id."
  }
  validation {
    condition     = alltrue([for s in var.shares : s.mount_point == null || can(regex("^/[A-Za-z0-9._/-]+$", coalesce(s.mount_point, "/")))])
    error_message = "shares: mount_point must be an absolute path, e.g. /data."
  }
  validation {
    condition     = alltrue([for s in var.shares : contains(["rw", "ro"], s.access)])
    error_message = "shares: access must be \"rw\" or \"ro\"."
  }
  validation {
    condition     = alltrue([for s in var.shares : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", s.namespace))])
    error_message = "shares: namespace must be a Kubernetes namespace name."
  }
}

variable "kubeconfig" {
  type        = string
  description = "A kubeconfig for this run, from the credentials ephemeral resource (ephemeral.tundra_cluster_credentials.NAME.kubeconfig with cluster_id = this module's cluster_id): what kubectl applies the volumes with. Ephemeral: never in state or plan."
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "kubectl" {
  type        = string
  description = "A kubectl command on the machine running Terraform (e.g. \"kubectl\" or \"k3s kubectl\"): with it and kubeconfig, the shares' volumes are applied to the cluster at each change. Default: none; apply volumes_manifest yourself."
  default     = null
  validation {
    condition     = var.kubectl == null || can(regex("^[A-Za-z0-9_./ -]+$", coalesce(var.kubectl, "-")))
    error_message = "kubectl must be a command: letters, digits, '_', '.', '/', '-' and spaces."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels of the cluster (tundrad's, and every node's Kubernetes labels)."
  default     = {}
}

variable "keypair_id" {
  type        = string
  description = "SSH key for the nodes' default user."
  default     = null
}

variable "project_id" {
  type        = string
  description = "Project of the cluster. Default: the provider's project."
  default     = null
}

variable "template_name" {
  type        = string
  description = "The site's Kubernetes cluster template (k3s with its air-gap bundle)."
  default     = "k3s"
}

variable "template_version" {
  type        = number
  description = "Which version of the template. Default: the highest."
  default     = null
}
