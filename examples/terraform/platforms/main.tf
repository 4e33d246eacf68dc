# A site's science platform, composed from the modules the way a site would
# run it: one Slurm cluster (modules/openhpc) and a JupyterHub
# (modules/jupyter) that spawns each user's server as a Slurm job of theirs,
# every node sharing one CephFS /home, and a Dask cluster (modules/dask)
# whose workers are Slurm jobs too. The users are the platform's accounts,
# the same uid on every node.
#
# Dask on Slurm two ways: the team's Dask cluster (`dask_scheduler_address`,
# its workers `dask-worker-science-dask` jobs of `dask_user`), and a user's
# own from a notebook: the image's dask set carries dask-jobqueue, so a
# kernel (itself in a Slurm job) starts a scheduler beside it and asks
# Slurm for workers:
#
#   from dask_jobqueue import SLURMCluster
#   from dask.distributed import Client
#   node = "scontrol show node \"$SLURMD_NODENAME\" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2"
#   cluster = SLURMCluster(
#       cores=1, memory="1GB", job_directives_skip=["--mem"],
#       # TLS with a throwaway CA, its files 0600 in your home: other users
#       # on the Slurm network cannot reach your scheduler.
#       security=True, shared_temp_directory="~",
#       scheduler_options={"host": ADDRESS},  # $(node) in your kernel's job
#       job_script_prologue=[f"DASK_HOST=$({node})"],
#       worker_extra_args=["--host", "$DASK_HOST"],  # each on its Slurm address
#   )
#   cluster.scale(jobs=2)          # two more jobs in `squeue`: dask-worker
#   client = Client(cluster)
#
# (tests/acceptance/dask-on-slurm.py is this cell, run on the lab.)
#
# Needs the modules' templates published (modules/openhpc, jupyter and
# dask's template/, once, by a site admin), a fabric, a share type and an
# image with the slurm, jupyterhub, dask and ceph-client package sets
# (tundra-lab's platform image).

terraform {
  required_version = ">= 1.9"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

provider "tundra" {}

variable "physical_network" {
  type        = string
  description = "The fabric the platform's network is made on."
  default     = "fabric"
}

variable "flavor" {
  type    = string
  default = "compute"
}

variable "image_id" {
  type        = string
  description = "Debian 12 with the slurm, jupyterhub, dask and ceph-client package sets."
}

variable "share_type_id" {
  type        = string
  description = "The site's CephFS share type (for /home)."
}

variable "compute_count" {
  type    = number
  default = 2
}

variable "users" {
  type        = map(number)
  description = "The platform's accounts (name = uid, 2000 or more), the same on every node: whose jobs servers can be. They have no password, so they log in through the site's authenticator (the dummy one, in tests). Where the image joins the site's directory, leave this empty."
  default     = {}
}

variable "dask_user" {
  type        = string
  description = "The account whose Slurm jobs the Dask cluster's workers are (made with dask_uid)."
  default     = "dask-jobs"
}

variable "dask_uid" {
  type    = number
  default = 2990
}

variable "dask_workers" {
  type    = number
  default = 1
}

variable "authenticator" {
  type        = string
  description = "pam (the hub node's accounts), or dummy to try it out (tests only: one generated password)."
  default     = "pam"
}

variable "public_key" {
  type = string
}

data "tundra_physical_network" "fabric" {
  name = var.physical_network
}

data "tundra_flavor" "node" {
  name = var.flavor
}

# Slurm, the hub and the users' servers on one network: users reach the
# hub there, and the hub its users' servers.
resource "tundra_network" "platform" {
  name                = "platform"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "platform" {
  network_id = tundra_network.platform.id
  name       = "platform-v4"
  cidr       = "10.85.0.0/24"
}

resource "tundra_keypair" "admin" {
  name       = "platform"
  public_key = var.public_key
}

module "slurm" {
  source = "../../../modules/openhpc"

  name              = "science"
  compute_count     = var.compute_count
  login_flavor_id   = data.tundra_flavor.node.id
  compute_flavor_id = data.tundra_flavor.node.id
  image_id          = var.image_id
  networks          = [tundra_network.platform.id]
  # One /home for the login node, the compute nodes and the hub: the
  # module makes it ("science-home"), the hub mounts it too.
  home_share_type_id = var.share_type_id
  home_size_gib      = 10
  users              = merge(var.users, { (var.dask_user) = var.dask_uid })
  keypair_id         = tundra_keypair.admin.id

  depends_on = [tundra_subnet.platform]
}

module "jupyter" {
  source = "../../../modules/jupyter"

  name           = "science-hub"
  hub_flavor_id  = data.tundra_flavor.node.id
  image_id       = var.image_id
  networks       = [tundra_network.platform.id]
  homes_share_id = module.slurm.home_share_id
  authenticator  = var.authenticator
  keypair_id     = tundra_keypair.admin.id
  slurm          = module.slurm.platform
}

module "dask" {
  source = "../../../modules/dask"

  name                = "science-dask"
  worker_count        = var.dask_workers
  scheduler_flavor_id = data.tundra_flavor.node.id
  image_id            = var.image_id
  networks            = [tundra_network.platform.id]
  slurm               = module.slurm.platform
  slurm_user          = var.dask_user
  keypair_id          = tundra_keypair.admin.id
}

output "hub_url" {
  value = module.jupyter.hub_url
}

output "dask_scheduler_address" {
  value = module.dask.scheduler_address
}

output "dask_ssh_command" {
  value = module.dask.ssh_command
}

output "login_ssh_command" {
  value = module.slurm.ssh_command
}

output "compute_nodes" {
  value = module.slurm.compute_nodes
}

output "usage" {
  value = "${module.slurm.usage}\n${module.jupyter.usage}\n${module.dask.usage}"
}
