variable "name" {
  type        = string
  description = "The hub's name: the appliance's name and the first part of its node's host name."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name must be 2-40 lower-case letters, digits and inner '-', starting with a letter (it is part of host names)."
  }
}

variable "hub_flavor_id" {
  type        = string
  description = "Flavor of the hub node (users' servers run on it: size it for them)."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.hub_flavor_id))
    error_message = "hub_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.large.id."
  }
}

variable "image_id" {
  type        = string
  description = "Image of the hub node: Debian 12 with jupyterhub and python3-ipykernel (see the module's README)."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.image_id))
    error_message = "image_id must be an image's ID (a UUID), e.g. tundra_image.jupyter.id."
  }
}

variable "networks" {
  type        = list(string)
  description = "Networks the hub node is on beyond provisioning, in order."
  validation {
    condition     = length(var.networks) >= 1
    error_message = "networks must name at least one network: users reach the hub on one of them."
  }
  validation {
    condition     = alltrue([for n in var.networks : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", n))])
    error_message = "networks must be network IDs (UUIDs), e.g. tundra_network.users.id."
  }
  validation {
    condition     = length(distinct(var.networks)) == length(var.networks)
    error_message = "networks lists a network twice."
  }
}

variable "hub_network_id" {
  type        = string
  description = "Which of networks the hub answers on (http://ADDRESS:8000, its address there). Default: the first."
  default     = null
  validation {
    condition     = var.hub_network_id == null || contains(var.networks, coalesce(var.hub_network_id, "-"))
    error_message = "hub_network_id must be one of networks."
  }
}

variable "homes_share_id" {
  type        = string
  description = "A share mounted as /home on the hub node: users' homes outlive the node. Default: none (homes on the node's disk, lost with it)."
  default     = null
  validation {
    condition     = var.homes_share_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", coalesce(var.homes_share_id, "-")))
    error_message = "homes_share_id must be a share's ID (a UUID), e.g. tundra_share.home.id."
  }
}

variable "authenticator" {
  type        = string
  description = "Who may log in: \"pam\", the hub node's accounts (/etc/passwd, or the site's directory through sssd or LDAP in the image); \"dummy\", FOR TESTS ONLY: any user name with one password tundrad generates (root-only on the hub node), each given an account on first start."
  default     = "pam"
  validation {
    condition     = contains(["pam", "dummy"], var.authenticator)
    error_message = "authenticator must be \"pam\" or \"dummy\" (tests only)."
  }
}

variable "slurm" {
  type = object({
    appliance_id  = string
    network_id    = string
    home_share_id = optional(string)
  })
  description = "An openhpc platform to spawn onto (its module's `platform` output): each user's server runs as a Slurm job of theirs on its compute nodes. The hub joins the Slurm network and mounts the platform's /home (unless homes_share_id says otherwise: it must be the share the compute nodes mount). Default: none (servers on the hub node)."
  default     = null
  validation {
    condition = var.slurm == null || alltrue([
      for v in [try(var.slurm.appliance_id, ""), try(var.slurm.network_id, "")] :
      can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", v))
    ])
    error_message = "slurm takes an openhpc module's platform output: { appliance_id, network_id }, both IDs (UUIDs)."
  }
}

variable "slurm_partition" {
  type        = string
  description = "With slurm: the partition servers run in. Default: Slurm's default partition."
  default     = null
  validation {
    condition     = var.slurm_partition == null || can(regex("^[A-Za-z][A-Za-z0-9_-]{0,31}$", coalesce(var.slurm_partition, "-")))
    error_message = "slurm_partition must be a Slurm partition name: 1-32 letters, digits, '_' or '-', starting with a letter."
  }
}

variable "slurm_cpus" {
  type        = number
  description = "With slurm: CPUs of each server's job (its kernels and the Dask work they start locally)."
  default     = 1
  validation {
    condition     = var.slurm_cpus >= 1 && var.slurm_cpus <= 9999 && floor(var.slurm_cpus) == var.slurm_cpus
    error_message = "slurm_cpus must be a whole number from 1 to 9999."
  }
}

variable "slurm_time_limit" {
  type        = string
  description = "With slurm: the time limit of each server's job (Slurm's --time, e.g. 8:00:00 or 1-00:00:00). A server stops at it, and a hub that is gone leaves no job for longer."
  default     = "8:00:00"
  validation {
    condition     = can(regex("^[0-9]{1,4}(-[0-9]{1,2})?(:[0-9]{2}){0,2}$", var.slurm_time_limit))
    error_message = "slurm_time_limit must be a Slurm time: minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS."
  }
}

variable "keypair_id" {
  type        = string
  description = "SSH key for the hub node's default user."
  default     = null
}

variable "project_id" {
  type        = string
  description = "Project of the hub. Default: the provider's project."
  default     = null
}

variable "template_name" {
  type        = string
  description = "The appliance template the site published from this module's template/ (site admins apply it once)."
  default     = "jupyterhub"
}

variable "template_version" {
  type        = number
  description = "Which version of the template. Default: the highest."
  default     = null
}
