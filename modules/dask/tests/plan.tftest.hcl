# Plan-level checks of the module with a mocked provider: what it asks
# tundrad for, and every validation refusing bad input.

mock_provider "tundra" {
  mock_data "tundra_appliance_template" {
    defaults = {
      id = "0190d6a0-0000-7000-8000-0000000000aa"
    }
  }
}

variables {
  name                = "dask"
  scheduler_flavor_id = "0190d6a0-0000-7000-8000-000000000001"
  image_id            = "0190d6a0-0000-7000-8000-000000000003"
  networks            = ["0190d6a0-0000-7000-8000-00000000000a", "0190d6a0-0000-7000-8000-00000000000b"]
}

run "defaults" {
  command = plan

  assert {
    condition     = tundra_appliance.dask.name == "dask" && tundra_appliance.dask.template_id == "0190d6a0-0000-7000-8000-0000000000aa"
    error_message = "the appliance is the module's name, from the site's template looked up by name"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.worker_count == 3
    error_message = "three workers by default"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.worker_flavor == var.scheduler_flavor_id
    error_message = "workers take the scheduler's flavor when none is given"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.dask_network == var.networks[0] && jsonencode(tundra_appliance.dask.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000b"])
    error_message = "Dask's traffic on the first network, the others after"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.worker_threads == 0 && tundra_appliance.dask.parameters.worker_memory == "auto"
    error_message = "a thread per core and the machine's memory by default"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.data == null
    error_message = "no /data share unless one is given"
  }
}

run "chosen_network_flavors_share_and_sizes" {
  command = plan

  variables {
    worker_count     = 8
    worker_flavor_id = "0190d6a0-0000-7000-8000-000000000002"
    dask_network_id  = "0190d6a0-0000-7000-8000-00000000000b"
    data_share_id    = "0190d6a0-0000-7000-8000-0000000000f1"
    worker_threads   = 4
    worker_memory    = "48GiB"
  }

  assert {
    condition     = tundra_appliance.dask.parameters.dask_network == "0190d6a0-0000-7000-8000-00000000000b" && jsonencode(tundra_appliance.dask.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000a"])
    error_message = "the chosen Dask network first, the others after"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.worker_flavor == "0190d6a0-0000-7000-8000-000000000002" && tundra_appliance.dask.parameters.worker_count == 8
    error_message = "the workers' flavor and count are passed on"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.data == "0190d6a0-0000-7000-8000-0000000000f1"
    error_message = "the share is mounted as /data"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.worker_threads == 4 && tundra_appliance.dask.parameters.worker_memory == "48GiB"
    error_message = "threads and memory per worker are passed on"
  }
}

run "workers_as_slurm_jobs" {
  command = plan

  variables {
    worker_count = 4
    slurm = {
      appliance_id  = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id    = "0190d6a0-0000-7000-8000-00000000000b"
      home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
    }
    slurm_user      = "dask-jobs"
    slurm_partition = "batch"
  }

  assert {
    condition     = tundra_appliance.dask.parameters.worker_count == 0 && tundra_appliance.dask.parameters.slurm_workers == 4
    error_message = "no worker nodes: worker_count becomes the number of worker jobs"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.slurm == "0190d6a0-0000-7000-8000-0000000000c1" && tundra_appliance.dask.parameters.home == "0190d6a0-0000-7000-8000-0000000000f1"
    error_message = "the appliance joins the platform and mounts its /home"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.dask_network == "0190d6a0-0000-7000-8000-00000000000b"
    error_message = "Dask's traffic on the platform's Slurm network"
  }
  assert {
    condition     = tundra_appliance.dask.parameters.slurm_user == "dask-jobs" && tundra_appliance.dask.parameters.slurm_partition == "batch"
    error_message = "the jobs' account and partition are passed on"
  }
}

run "no_slurm_by_default" {
  command = plan

  assert {
    condition     = tundra_appliance.dask.parameters.slurm == null && tundra_appliance.dask.parameters.slurm_workers == 0 && tundra_appliance.dask.parameters.worker_count == 3
    error_message = "worker nodes unless a platform is given"
  }
}

run "slurm_without_user" {
  command = plan
  variables {
    slurm = {
      appliance_id  = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id    = "0190d6a0-0000-7000-8000-00000000000b"
      home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
    }
  }
  expect_failures = [var.slurm_user]
}

run "slurm_network_not_in_networks" {
  command = plan
  variables {
    slurm = {
      appliance_id  = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id    = "0190d6a0-0000-7000-8000-00000000000c"
      home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
    }
    slurm_user = "dask-jobs"
  }
  expect_failures = [var.slurm]
}

run "bad_slurm_user" {
  command = plan
  variables {
    slurm = {
      appliance_id  = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id    = "0190d6a0-0000-7000-8000-00000000000b"
      home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
    }
    slurm_user = "Dask Jobs"
  }
  expect_failures = [var.slurm_user]
}

run "bad_slurm_partition" {
  command = plan
  variables {
    slurm_partition = "2fast"
  }
  expect_failures = [var.slurm_partition]
}

run "bad_name" {
  command = plan
  variables {
    name = "Dask!"
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
    worker_count = -1
  }
  expect_failures = [var.worker_count]
}

run "fractional_count" {
  command = plan
  variables {
    worker_count = 1.5
  }
  expect_failures = [var.worker_count]
}

run "count_too_large" {
  command = plan
  variables {
    worker_count = 257
  }
  expect_failures = [var.worker_count]
}

run "scheduler_flavor_not_an_id" {
  command = plan
  variables {
    scheduler_flavor_id = "small"
  }
  expect_failures = [var.scheduler_flavor_id]
}

run "worker_flavor_not_an_id" {
  command = plan
  variables {
    worker_flavor_id = "compute"
  }
  expect_failures = [var.worker_flavor_id]
}

run "zero_threads" {
  command = plan
  variables {
    worker_threads = 0
  }
  expect_failures = [var.worker_threads]
}

run "fractional_threads" {
  command = plan
  variables {
    worker_threads = 2.5
  }
  expect_failures = [var.worker_threads]
}

run "memory_not_a_size" {
  command = plan
  variables {
    worker_memory = "lots"
  }
  expect_failures = [var.worker_memory]
}

run "memory_fraction" {
  command = plan
  variables {
    worker_memory = "0.5"
  }
  expect_failures = [var.worker_memory]
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
    networks = ["dask"]
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

run "dask_network_not_among_networks" {
  command = plan
  variables {
    dask_network_id = "0190d6a0-0000-7000-8000-00000000000c"
  }
  expect_failures = [var.dask_network_id]
}

run "share_not_an_id" {
  command = plan
  variables {
    data_share_id = "data"
  }
  expect_failures = [var.data_share_id]
}
