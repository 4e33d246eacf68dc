# Plan-level checks of the module with a mocked provider: what it asks
# tundrad for, and every validation refusing bad input.

mock_provider "tundra" {
  mock_data "tundra_appliance_template" {
    defaults = {
      id = "0190d6a0-0000-7000-8000-0000000000aa"
    }
  }
  mock_resource "tundra_share" {
    defaults = {
      id = "0190d6a0-0000-7000-8000-0000000000f0"
    }
  }
}

variables {
  name               = "astro"
  login_flavor_id    = "0190d6a0-0000-7000-8000-000000000001"
  compute_flavor_id  = "0190d6a0-0000-7000-8000-000000000002"
  image_id           = "0190d6a0-0000-7000-8000-000000000003"
  networks           = ["0190d6a0-0000-7000-8000-00000000000a", "0190d6a0-0000-7000-8000-00000000000b"]
  home_share_type_id = "0190d6a0-0000-7000-8000-0000000000e0"
}

run "defaults" {
  command = plan

  assert {
    condition     = tundra_appliance.slurm.name == "astro" && tundra_appliance.slurm.parameters.cluster_name == "astro"
    error_message = "the appliance and Slurm's ClusterName are the module's name"
  }
  assert {
    condition     = tundra_appliance.slurm.parameters.compute_count == 2
    error_message = "two compute nodes by default"
  }
  assert {
    condition     = tundra_appliance.slurm.parameters.slurm_network == var.networks[0]
    error_message = "Slurm's traffic on the first network by default"
  }
  assert {
    condition     = jsonencode(tundra_appliance.slurm.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000b"])
    error_message = "the other networks follow, without the Slurm one"
  }
  assert {
    condition     = length(tundra_share.home) == 1 && tundra_share.home[0].name == "astro-home" && tundra_share.home[0].size_gib == 100
    error_message = "a /home share of 100 GiB is made"
  }
  assert {
    condition     = tundra_appliance.slurm.parameters.partitions == "PartitionName=compute Nodes=compute Default=YES MaxTime=INFINITE State=UP\n"
    error_message = "one default partition over every compute node"
  }
  assert {
    condition     = tundra_appliance.slurm.template_id == "0190d6a0-0000-7000-8000-0000000000aa"
    error_message = "the site's template, looked up by name"
  }
}

run "chosen_network_existing_home_and_partitions" {
  command = plan

  variables {
    compute_count      = 4
    slurm_network_id   = "0190d6a0-0000-7000-8000-00000000000b"
    home_share_id      = "0190d6a0-0000-7000-8000-0000000000f1"
    home_share_type_id = null
    partitions = [
      { name = "compute", default = true },
      { name = "short", max_time = "30:00" },
    ]
  }

  assert {
    condition     = tundra_appliance.slurm.parameters.slurm_network == "0190d6a0-0000-7000-8000-00000000000b" && jsonencode(tundra_appliance.slurm.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000a"])
    error_message = "the chosen Slurm network first, the others after"
  }
  assert {
    condition     = length(tundra_share.home) == 0 && tundra_appliance.slurm.parameters.home == "0190d6a0-0000-7000-8000-0000000000f1"
    error_message = "a share passed in is mounted, none made"
  }
  assert {
    condition     = tundra_appliance.slurm.parameters.compute_count == 4
    error_message = "compute_count is passed on"
  }
  assert {
    condition     = tundra_appliance.slurm.parameters.partitions == "PartitionName=compute Nodes=compute Default=YES MaxTime=INFINITE State=UP\nPartitionName=short Nodes=compute Default=NO MaxTime=30:00 State=UP\n"
    error_message = "each partition a PartitionName line"
  }
}

run "users_and_platform" {
  command = plan

  variables {
    users = { alice = 2001, bob = 2002 }
  }

  assert {
    condition     = tundra_appliance.slurm.parameters.users == "alice:2001\nbob:2002\n"
    error_message = "users become NAME:UID lines"
  }
  assert {
    condition     = output.platform.network_id == var.networks[0]
    error_message = "the platform output names the Slurm network, for a hub joining it"
  }
}

run "no_users_by_default" {
  command = plan

  assert {
    condition     = tundra_appliance.slurm.parameters.users == ""
    error_message = "no accounts unless asked for"
  }
}

run "bad_user_name" {
  command = plan
  variables {
    users = { "Alice" = 2001 }
  }
  expect_failures = [var.users]
}

run "system_uid" {
  command = plan
  variables {
    users = { alice = 1000 }
  }
  expect_failures = [var.users]
}

run "shared_uid" {
  command = plan
  variables {
    users = { alice = 2001, bob = 2001 }
  }
  expect_failures = [var.users]
}

run "home_share_and_type_both" {
  command = plan
  variables {
    home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
  }
  expect_failures = [var.home_share_type_id]
}

run "bad_name" {
  command = plan
  variables {
    name = "Astro!"
  }
  expect_failures = [var.name]
}

run "name_too_long" {
  command = plan
  variables {
    name = "a23456789012345678901234567890123456789012"
  }
  expect_failures = [var.name]
}

run "negative_count" {
  command = plan
  variables {
    compute_count = -1
  }
  expect_failures = [var.compute_count]
}

run "fractional_count" {
  command = plan
  variables {
    compute_count = 2.5
  }
  expect_failures = [var.compute_count]
}

run "count_too_large" {
  command = plan
  variables {
    compute_count = 257
  }
  expect_failures = [var.compute_count]
}

run "login_flavor_not_an_id" {
  command = plan
  variables {
    login_flavor_id = "compute"
  }
  expect_failures = [var.login_flavor_id]
}

run "compute_flavor_not_an_id" {
  command = plan
  variables {
    compute_flavor_id = "compute"
  }
  expect_failures = [var.compute_flavor_id]
}

run "image_not_an_id" {
  command = plan
  variables {
    image_id = "debian-12"
  }
  expect_failures = [var.image_id]
}

run "no_networks" {
  command = plan
  variables {
    networks = []
  }
  expect_failures = [var.networks]
}

run "network_not_an_id" {
  command = plan
  variables {
    networks = ["hpc"]
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

run "slurm_network_not_among_networks" {
  command = plan
  variables {
    slurm_network_id = "0190d6a0-0000-7000-8000-00000000000c"
  }
  expect_failures = [var.slurm_network_id]
}

run "no_home_at_all" {
  command = plan
  variables {
    home_share_type_id = null
  }
  expect_failures = [var.home_share_type_id]
}

run "home_size_zero" {
  command = plan
  variables {
    home_size_gib = 0
  }
  expect_failures = [var.home_size_gib]
}

run "bad_partition_name" {
  command = plan
  variables {
    partitions = [{ name = "all nodes", default = true }]
  }
  expect_failures = [var.partitions]
}

run "partition_twice" {
  command = plan
  variables {
    partitions = [{ name = "compute", default = true }, { name = "compute" }]
  }
  expect_failures = [var.partitions]
}

run "two_default_partitions" {
  command = plan
  variables {
    partitions = [{ name = "compute", default = true }, { name = "short", default = true }]
  }
  expect_failures = [var.partitions]
}

run "no_default_partition" {
  command = plan
  variables {
    partitions = [{ name = "compute" }]
  }
  expect_failures = [var.partitions]
}

run "bad_max_time" {
  command = plan
  variables {
    partitions = [{ name = "compute", default = true, max_time = "1 hour" }]
  }
  expect_failures = [var.partitions]
}
