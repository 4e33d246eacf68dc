variable "name" {
  type        = string
  description = "The cluster's name: the appliance's name and the first part of its nodes' host names."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name must be 2-40 lower-case letters, digits and inner '-', starting with a letter (it is part of host names)."
  }
}

variable "worker_count" {
  type        = number
  description = "How many workers: worker nodes, or with slurm worker jobs. Changed in place: new workers join the running scheduler; removed nodes are retired first (the scheduler moves their data to the others), removed jobs cancelled."
  default     = 3
  validation {
    condition     = var.worker_count >= 0 && var.worker_count <= 256 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 0 to 256."
  }
}

variable "scheduler_flavor_id" {
  type        = string
  description = "Flavor of the scheduler node."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.scheduler_flavor_id))
    error_message = "scheduler_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.small.id."
  }
}

variable "worker_flavor_id" {
  type        = string
  description = "Flavor of the worker nodes. Default: the scheduler's."
  default     = null
  validation {
    condition     = var.worker_flavor_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", coalesce(var.worker_flavor_id, "-")))
    error_message = "worker_flavor_id must be a flavor's ID (a UUID), e.g. data.tundra_flavor.compute.id."
  }
}

variable "worker_threads" {
  type        = number
  description = "Threads of each worker. Default: one per core of the worker's machine (what its flavor gives)."
  default     = null
  validation {
    condition     = var.worker_threads == null || (coalesce(var.worker_threads, 1) >= 1 && coalesce(var.worker_threads, 1) <= 1024 && floor(coalesce(var.worker_threads, 1)) == coalesce(var.worker_threads, 1))
    error_message = "worker_threads must be a whole number from 1 to 1024, or null for one per core."
  }
}

variable "worker_memory" {
  type        = string
  description = "Memory limit of each worker (Dask spills to disk, then pauses, as it nears it): \"auto\" for the machine's memory, or a size such as \"48GiB\"."
  default     = "auto"
  validation {
    condition     = can(regex("^(auto|[1-9][0-9]{0,5}(MB|MiB|GB|GiB))$", var.worker_memory))
    error_message = "worker_memory must be \"auto\" or a whole size in MB, MiB, GB or GiB, e.g. \"48GiB\"."
  }
}

variable "image_id" {
  type        = string
  description = "Image of every node: Debian 12 with python3-distributed, python3-numpy and bokeh 2.4 (see the module's README)."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.image_id))
    error_message = "image_id must be an image's ID (a UUID), e.g. tundra_image.dask.id."
  }
}

variable "networks" {
  type        = list(string)
  description = "Networks every node is on beyond provisioning, in order."
  validation {
    condition     = length(var.networks) >= 1
    error_message = "networks must name at least one network: Dask's traffic runs on one of them."
  }
  validation {
    condition     = alltrue([for n in var.networks : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", n))])
    error_message = "networks must be network IDs (UUIDs), e.g. tundra_network.dask.id."
  }
  validation {
    condition     = length(distinct(var.networks)) == length(var.networks)
    error_message = "networks lists a network twice."
  }
}

variable "dask_network_id" {
  type        = string
  description = "Which of networks carries Dask's traffic (the scheduler's address, workers, clients). Default: the first."
  default     = null
  validation {
    condition     = var.dask_network_id == null || contains(var.networks, coalesce(var.dask_network_id, "-"))
    error_message = "dask_network_id must be one of networks."
  }
}

variable "data_share_id" {
  type        = string
  description = "A share to mount as /data on every node (input and output the workers share). Default: none."
  default     = null
  validation {
    condition     = var.data_share_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", coalesce(var.data_share_id, "-")))
    error_message = "data_share_id must be a share's ID (a UUID), e.g. tundra_share.data.id."
  }
}

variable "slurm" {
  type = object({
    appliance_id  = string
    network_id    = string
    home_share_id = string
  })
  description = "An openhpc platform for the workers (its module's `platform` output): the workers are worker_count Slurm jobs of slurm_user on its compute nodes, started by the scheduler through dask-jobqueue, not nodes of this appliance. The scheduler answers on the Slurm network and mounts the platform's /home. Default: none (worker nodes)."
  default     = null
  validation {
    condition = var.slurm == null || alltrue([
      for v in [try(var.slurm.appliance_id, ""), try(var.slurm.network_id, ""), try(var.slurm.home_share_id, "")] :
      can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", v))
    ])
    error_message = "slurm takes an openhpc module's platform output: { appliance_id, network_id, home_share_id }, IDs (UUIDs)."
  }
  validation {
    condition     = var.slurm == null || contains(var.networks, try(var.slurm.network_id, "-"))
    error_message = "With slurm, networks must include the platform's Slurm network (slurm.network_id): the workers reach the scheduler there."
  }
}

variable "slurm_user" {
  type        = string
  description = "With slurm: the platform account (one of the openhpc module's users) whose Slurm jobs the workers are."
  default     = null
  validation {
    condition     = (var.slurm == null) == (var.slurm_user == null)
    error_message = "slurm_user is needed with slurm (the platform account the worker jobs run as), and only then."
  }
  validation {
    condition     = var.slurm_user == null || can(regex("^[a-z_][a-z0-9_-]{0,31}$", coalesce(var.slurm_user, "-")))
    error_message = "slurm_user must be an account name: lower-case letters, digits, '_' or '-', starting with a letter or '_'."
  }
}

variable "slurm_partition" {
  type        = string
  description = "With slurm: the workers' partition. Default: Slurm's default partition."
  default     = null
  validation {
    condition     = var.slurm_partition == null || can(regex("^[A-Za-z][A-Za-z0-9_-]{0,31}$", coalesce(var.slurm_partition, "-")))
    error_message = "slurm_partition must be a Slurm partition name: 1-32 letters, digits, '_' or '-', starting with a letter."
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
  default     = "dask"
}

variable "template_version" {
  type        = number
  description = "Which version of the template. Default: the highest."
  default     = null
}
