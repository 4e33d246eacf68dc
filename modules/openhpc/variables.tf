variable "name" {
  type        = string
  description = "The cluster's name: Slurm's ClusterName, the appliance's name and the first part of its nodes' host names. Cannot change (Slurm keeps state under it)."
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,39}$", var.name))
    error_message = "name must be 1-40 lower-case letters and digits, starting with a letter (it becomes Slurm's ClusterName and part of host names)."
  }
}

variable "compute_count" {
  type        = number
  description = "How many compute nodes (slurmd). Changed in place: new nodes join without restarting slurmctld; removed ones are drained first."
  default     = 2
  validation {
    condition     = var.compute_count >= 0 && var.compute_count <= 256 && floor(var.compute_count) == var.compute_count
    error_message = "compute_count must be a whole number from 0 to 256."
  }
}

variable "login_flavor_id" {
  type        = string
  description = "Flavor of the login node, which runs slurmctld."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.login_flavor_id))
    error_message = "login_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.login.id."
  }
}

variable "compute_flavor_id" {
  type        = string
  description = "Flavor of the compute nodes."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.compute_flavor_id))
    error_message = "compute_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.compute.id."
  }
}

variable "image_id" {
  type        = string
  description = "Image of every node: Debian 12 with slurm-wlm and munge (see the module's README)."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.image_id))
    error_message = "image_id must be an image's ID (a UUID), e.g. tundra_image.slurm.id."
  }
}

variable "networks" {
  type        = list(string)
  description = "Networks every node is on beyond provisioning, in order."
  validation {
    condition     = length(var.networks) >= 1
    error_message = "networks must name at least one network: Slurm's traffic runs on one of them."
  }
  validation {
    condition     = alltrue([for n in var.networks : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", n))])
    error_message = "networks must be network IDs (UUIDs), e.g. tundra_network.hpc.id."
  }
  validation {
    condition     = length(distinct(var.networks)) == length(var.networks)
    error_message = "networks lists a network twice."
  }
}

variable "slurm_network_id" {
  type        = string
  description = "Which of networks carries Slurm's traffic (slurmctld's address, slurmd registration). Default: the first."
  default     = null
  validation {
    condition     = var.slurm_network_id == null || contains(var.networks, coalesce(var.slurm_network_id, "-"))
    error_message = "slurm_network_id must be one of networks."
  }
}

variable "home_share_id" {
  type        = string
  description = "A share to mount as /home on every node (it may be made in the same configuration). Give this or home_share_type_id."
  default     = null
}

variable "home_share_type_id" {
  type        = string
  description = "Share type of a /home the module makes (e.g. the site's CephFS). Give this or home_share_id."
  default     = null
  validation {
    condition     = (var.home_share_id != null) != (var.home_share_type_id != null)
    error_message = "Give one of home_share_id (a share to mount as /home) and home_share_type_id (for the module to make one)."
  }
}

variable "home_size_gib" {
  type        = number
  description = "Size of the /home the module makes."
  default     = 100
  validation {
    condition     = var.home_size_gib >= 1 && floor(var.home_size_gib) == var.home_size_gib
    error_message = "home_size_gib must be a whole number of GiB, at least 1."
  }
}

variable "partitions" {
  type = list(object({
    name     = string
    default  = optional(bool, false)
    max_time = optional(string, "INFINITE")
  }))
  description = "Slurm partitions, each over every compute node; exactly one is the default."
  default     = [{ name = "compute", default = true }]
  validation {
    condition     = alltrue([for p in var.partitions : can(regex("^[A-Za-z][A-Za-z0-9_-]{0,31}$", p.name))])
    error_message = "Partition names are 1-32 letters, digits, '_' or '-', starting with a letter."
  }
  validation {
    condition     = length(distinct([for p in var.partitions : p.name])) == length(var.partitions)
    error_message = "Partition names must be unique."
  }
  validation {
    condition     = length([for p in var.partitions : p if p.default]) == 1
    error_message = "Exactly one partition must be the default (default = true)."
  }
  validation {
    condition     = alltrue([for p in var.partitions : can(regex("^(INFINITE|UNLIMITED|[0-9]+(-[0-9]+)?(:[0-9]+){0,2})$", p.max_time))])
    error_message = "max_time is INFINITE or a Slurm time: minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS."
  }
}

variable "users" {
  type        = map(number)
  description = "Accounts made on every node with the same uid, as name = uid: who JupyterHub (modules/jupyter joined to this platform) spawns servers as. They have no password or key. A site's directory (sssd, LDAP in the image) is better where there is one."
  default     = {}
  validation {
    condition     = alltrue([for n, u in var.users : can(regex("^[a-z_][a-z0-9_-]{0,31}$", n)) && u >= 2000 && u <= 999999999 && floor(u) == u])
    error_message = "users maps account names (lower-case letters, digits, '_' or '-', starting with a letter or '_') to uids from 2000 to 999999999 (below 2000 are the image's own accounts, such as its default user, 1000)."
  }
  validation {
    condition     = length(distinct(values(var.users))) == length(var.users)
    error_message = "Each user needs a uid of their own."
  }
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
  description = "The appliance template the site published from this module's template/ (site admins apply it once)."
  default     = "openhpc-slurm"
}

variable "template_version" {
  type        = number
  description = "Which version of the template. Default: the highest."
  default     = null
}
