# A site template: a Dask scheduler and a count of workers, each worker told
# the scheduler's address. The spec is data: `jsonencode` here, or
# `file("dask.json")`.
resource "tundra_appliance_template" "dask" {
  name        = "dask"
  version     = 1
  description = "Dask on Debian's python3-distributed"
  spec = jsonencode({
    parameters = [
      { name = "worker_count", kind = "count", default = 2, maximum = 64 },
      { name = "flavor", kind = "flavor" },
      { name = "image", kind = "image", description = "Debian with python3-distributed" },
      { name = "network", kind = "network", description = "where the workers reach the scheduler" },
    ]
    roles = [
      {
        name                      = "scheduler"
        flavor_parameter          = "flavor"
        image_parameter           = "image"
        network_parameters        = ["network"]
        traffic_network_parameter = "network"
        reload                    = "systemctl restart dask-scheduler"
        ready                     = "systemctl is-active dask-scheduler"
      },
      {
        name                      = "worker"
        count_parameter           = "worker_count"
        flavor_parameter          = "flavor"
        image_parameter           = "image"
        network_parameters        = ["network"]
        traffic_network_parameter = "network"
        files = [{
          path    = "/etc/default/dask-worker"
          content = "SCHEDULER=tcp://{{ roles.scheduler.nodes[0].address }}:8786\n"
        }]
        reload = "systemctl restart dask-worker"
        ready  = "systemctl is-active dask-worker"
      },
    ]
    outputs = [
      { name = "scheduler", value = "tcp://{{ roles.scheduler.nodes[0].address }}:8786" },
    ]
    usage = "Connect with `distributed.Client(\"{{ outputs.scheduler }}\")`."
  })
}
