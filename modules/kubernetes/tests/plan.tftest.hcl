# Plan-level checks of the module with a mocked provider: the groups,
# networks and shares it asks tundrad for, the volumes it offers pods, and
# every validation refusing bad input.

mock_provider "tundra" {
  mock_data "tundra_cluster_template" {
    defaults = {
      id = "0190d6a0-0000-7000-8000-0000000000cc"
    }
  }
  mock_data "tundra_share" {
    defaults = {
      size_gib = 100
    }
  }
}

variables {
  name                    = "k8s"
  image_id                = "0190d6a0-0000-7000-8000-000000000003"
  control_plane_flavor_id = "0190d6a0-0000-7000-8000-000000000001"
  networks                = ["0190d6a0-0000-7000-8000-00000000000a", "0190d6a0-0000-7000-8000-00000000000b"]
}

run "defaults" {
  command = plan

  assert {
    condition     = tundra_cluster.k8s.name == "k8s" && tundra_cluster.k8s.template_id == "0190d6a0-0000-7000-8000-0000000000cc" && data.tundra_cluster_template.k3s.name == "k3s"
    error_message = "the cluster is the module's name, from the site's k3s template"
  }
  assert {
    condition     = length(tundra_cluster.k8s.node_groups) == 2 && tundra_cluster.k8s.node_groups[0].name == "control-plane" && tundra_cluster.k8s.node_groups[0].role == "control_plane" && tundra_cluster.k8s.node_groups[0].count == 1
    error_message = "one k3s server by default, in the group control-plane"
  }
  assert {
    condition     = tundra_cluster.k8s.node_groups[1].name == "workers" && tundra_cluster.k8s.node_groups[1].role == "worker" && tundra_cluster.k8s.node_groups[1].count == 2
    error_message = "two agents by default, in the group workers"
  }
  assert {
    condition     = tundra_cluster.k8s.node_groups[1].flavor_id == var.control_plane_flavor_id && tundra_cluster.k8s.node_groups[1].image_id == var.image_id
    error_message = "workers take the control plane's flavor and the image when their group names none"
  }
  assert {
    condition     = alltrue([for g in tundra_cluster.k8s.node_groups : jsonencode(g.networks) == jsonencode(var.networks) && g.cluster_network_id == var.networks[0]])
    error_message = "every node on every network, the cluster's traffic on the first"
  }
  assert {
    condition     = alltrue([for g in tundra_cluster.k8s.node_groups : length(g.shares) == 0])
    error_message = "no share mounted unless one is offered"
  }
  assert {
    condition     = output.volumes_manifest == ""
    error_message = "no volumes without shares"
  }
  assert {
    condition     = length(terraform_data.volumes) == 0
    error_message = "nothing applied to the cluster without kubectl"
  }
}

run "groups_networks_and_shares" {
  command = plan

  variables {
    control_plane_count = 3
    cluster_network_id  = "0190d6a0-0000-7000-8000-00000000000b"
    worker_groups = [
      { name = "cpu", count = 4 },
      { name = "gpu", count = 2, flavor_id = "0190d6a0-0000-7000-8000-000000000002", image_id = "0190d6a0-0000-7000-8000-000000000004", rack = "r2", strategy = "spread" },
    ]
    shares = [
      { name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f1" },
      { name = "refs", share_id = "0190d6a0-0000-7000-8000-0000000000f2", mount_point = "/refs", access = "ro", namespace = "science" },
    ]
    kubectl = "k3s kubectl"
  }

  assert {
    condition     = tundra_cluster.k8s.node_groups[0].count == 3 && length(tundra_cluster.k8s.node_groups) == 3
    error_message = "three servers and both worker groups"
  }
  assert {
    condition     = tundra_cluster.k8s.node_groups[2].flavor_id == "0190d6a0-0000-7000-8000-000000000002" && tundra_cluster.k8s.node_groups[2].image_id == "0190d6a0-0000-7000-8000-000000000004"
    error_message = "a group's own flavor and image"
  }
  assert {
    condition     = tundra_cluster.k8s.node_groups[2].placement.rack == "r2" && tundra_cluster.k8s.node_groups[2].placement.strategy == "spread" && tundra_cluster.k8s.node_groups[1].placement == null
    error_message = "a group's placement when it names one"
  }
  assert {
    condition     = alltrue([for g in tundra_cluster.k8s.node_groups : g.cluster_network_id == "0190d6a0-0000-7000-8000-00000000000b"])
    error_message = "the cluster's traffic on the chosen network"
  }
  assert {
    condition = alltrue([for g in tundra_cluster.k8s.node_groups : jsonencode(g.shares) == jsonencode([
      { share_id = "0190d6a0-0000-7000-8000-0000000000f1", mount_point = "/mnt/shares/data", access = "rw" },
      { share_id = "0190d6a0-0000-7000-8000-0000000000f2", mount_point = "/refs", access = "ro" },
    ])])
    error_message = "every node mounts every share, at /mnt/shares/NAME unless told"
  }
  assert {
    condition = output.volumes_manifest == join("", [for d in [
      { apiVersion = "v1", kind = "Namespace", metadata = { name = "science" } },
      { apiVersion = "v1", kind = "PersistentVolume", metadata = { name = "k8s-data", labels = { "tundra.dev/share" = "data" } }, spec = { capacity = { storage = "100Gi" }, accessModes = ["ReadWriteMany"], persistentVolumeReclaimPolicy = "Retain", storageClassName = "tundra-share", hostPath = { path = "/mnt/shares/data", type = "Directory" }, claimRef = { namespace = "default", name = "data" } } },
      { apiVersion = "v1", kind = "PersistentVolumeClaim", metadata = { name = "data", namespace = "default" }, spec = { accessModes = ["ReadWriteMany"], storageClassName = "tundra-share", volumeName = "k8s-data", resources = { requests = { storage = "1Gi" } } } },
      { apiVersion = "v1", kind = "PersistentVolume", metadata = { name = "k8s-refs", labels = { "tundra.dev/share" = "refs" } }, spec = { capacity = { storage = "100Gi" }, accessModes = ["ReadOnlyMany"], persistentVolumeReclaimPolicy = "Retain", storageClassName = "tundra-share", hostPath = { path = "/refs", type = "Directory" }, claimRef = { namespace = "science", name = "refs" } } },
      { apiVersion = "v1", kind = "PersistentVolumeClaim", metadata = { name = "refs", namespace = "science" }, spec = { accessModes = ["ReadOnlyMany"], storageClassName = "tundra-share", volumeName = "k8s-refs", resources = { requests = { storage = "1Gi" } } } },
    ] : "---\n${yamlencode(d)}"])
    error_message = "a namespace for the claims outside default, then each share a volume of its mount sized as the share and a claim bound to it"
  }
  assert {
    condition     = length(terraform_data.volumes) == 1
    error_message = "the volumes are applied with kubectl when it is given"
  }
}

run "bad_name" {
  command = plan
  variables {
    name = "K8s"
  }
  expect_failures = [var.name]
}

run "bad_image" {
  command = plan
  variables {
    image_id = "debian"
  }
  expect_failures = [var.image_id]
}

run "even_control_plane" {
  command = plan
  variables {
    control_plane_count = 2
  }
  expect_failures = [var.control_plane_count]
}

run "bad_flavor" {
  command = plan
  variables {
    control_plane_flavor_id = "small"
  }
  expect_failures = [var.control_plane_flavor_id]
}

run "bad_group_name" {
  command = plan
  variables {
    worker_groups = [{ name = "control-plane", count = 1 }]
  }
  expect_failures = [var.worker_groups]
}

run "group_twice" {
  command = plan
  variables {
    worker_groups = [{ name = "cpu", count = 1 }, { name = "cpu", count = 2 }]
  }
  expect_failures = [var.worker_groups]
}

run "bad_group_count" {
  command = plan
  variables {
    worker_groups = [{ name = "cpu", count = 1.5 }]
  }
  expect_failures = [var.worker_groups]
}

run "bad_group_flavor" {
  command = plan
  variables {
    worker_groups = [{ name = "cpu", count = 1, flavor_id = "big" }]
  }
  expect_failures = [var.worker_groups]
}

run "bad_group_strategy" {
  command = plan
  variables {
    worker_groups = [{ name = "cpu", count = 1, strategy = "random" }]
  }
  expect_failures = [var.worker_groups]
}

run "no_network" {
  command = plan
  variables {
    networks = []
  }
  expect_failures = [var.networks]
}

run "bad_network" {
  command = plan
  variables {
    networks = ["k8s"]
  }
  expect_failures = [var.networks]
}

run "network_twice" {
  command = plan
  variables {
    networks = ["0190d6a0-0000-7000-8000-00000000000a", "0190d6a0-0000-7000-8000-00000000000a"]
  }
  expect_failures = [var.networks]
}

run "cluster_network_not_in_networks" {
  command = plan
  variables {
    cluster_network_id = "0190d6a0-0000-7000-8000-00000000000c"
  }
  expect_failures = [var.cluster_network_id]
}

run "bad_share_name" {
  command = plan
  variables {
    shares = [{ name = "Data", share_id = "0190d6a0-0000-7000-8000-0000000000f1" }]
  }
  expect_failures = [var.shares]
}

run "share_twice" {
  command = plan
  variables {
    shares = [{ name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f1" }, { name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f2" }]
  }
  expect_failures = [var.shares]
}

run "bad_share_id" {
  command = plan
  variables {
    shares = [{ name = "data", share_id = "data" }]
  }
  expect_failures = [var.shares]
}

run "relative_mount_point" {
  command = plan
  variables {
    shares = [{ name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f1", mount_point = "data" }]
  }
  expect_failures = [var.shares]
}

run "bad_share_access" {
  command = plan
  variables {
    shares = [{ name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f1", access = "wo" }]
  }
  expect_failures = [var.shares]
}

run "bad_namespace" {
  command = plan
  variables {
    shares = [{ name = "data", share_id = "0190d6a0-0000-7000-8000-0000000000f1", namespace = "Science" }]
  }
  expect_failures = [var.shares]
}

run "bad_kubectl" {
  command = plan
  variables {
    kubectl = "kubectl; rm -rf /"
  }
  expect_failures = [var.kubectl]
}
