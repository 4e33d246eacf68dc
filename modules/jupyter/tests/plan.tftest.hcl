# Plan-level checks of the module with a mocked provider: what it asks
# tundrad for, and every validation refusing bad input.

mock_provider "tundra" {
  mock_data "tundra_appliance_template" {
    defaults = {
      id = "0190d6a0-0000-7000-8000-0000000000bb"
    }
  }
}

variables {
  name          = "hub"
  hub_flavor_id = "0190d6a0-0000-7000-8000-000000000001"
  image_id      = "0190d6a0-0000-7000-8000-000000000003"
  networks      = ["0190d6a0-0000-7000-8000-00000000000a", "0190d6a0-0000-7000-8000-00000000000b"]
}

run "defaults" {
  command = plan

  assert {
    condition     = tundra_appliance.jupyterhub.name == "hub" && tundra_appliance.jupyterhub.template_id == "0190d6a0-0000-7000-8000-0000000000bb"
    error_message = "the appliance is the module's name, from the site's template looked up by name"
  }
  assert {
    condition     = data.tundra_appliance_template.jupyterhub.name == "jupyterhub"
    error_message = "the site's jupyterhub template by default"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.hub_network == var.networks[0] && jsonencode(tundra_appliance.jupyterhub.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000b"])
    error_message = "the hub on the first network, the others after"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.authenticator == "pam"
    error_message = "the node's accounts (PAM) unless the dummy authenticator is asked for"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.homes == null
    error_message = "no homes share unless one is given"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.hub_flavor == var.hub_flavor_id && tundra_appliance.jupyterhub.parameters.image == var.image_id
    error_message = "the hub's flavor and image are passed on"
  }
}

run "chosen_network_homes_and_dummy" {
  command = plan

  variables {
    hub_network_id   = "0190d6a0-0000-7000-8000-00000000000b"
    homes_share_id   = "0190d6a0-0000-7000-8000-0000000000f1"
    authenticator    = "dummy"
    template_name    = "hub-site"
    template_version = 2
  }

  assert {
    condition     = tundra_appliance.jupyterhub.parameters.hub_network == "0190d6a0-0000-7000-8000-00000000000b" && jsonencode(tundra_appliance.jupyterhub.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000a"])
    error_message = "the chosen hub network first, the others after"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.homes == "0190d6a0-0000-7000-8000-0000000000f1"
    error_message = "the share is mounted as /home"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.authenticator == "dummy"
    error_message = "the dummy authenticator when asked for"
  }
  assert {
    condition     = data.tundra_appliance_template.jupyterhub.name == "hub-site" && data.tundra_appliance_template.jupyterhub.version == 2
    error_message = "the template named and versioned"
  }
}

run "spawns_onto_slurm" {
  command = plan

  variables {
    slurm = {
      appliance_id  = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id    = "0190d6a0-0000-7000-8000-00000000000c"
      home_share_id = "0190d6a0-0000-7000-8000-0000000000f1"
    }
    slurm_partition = "interactive"
    slurm_cpus      = 2
  }

  assert {
    condition     = tundra_appliance.jupyterhub.parameters.homes == "0190d6a0-0000-7000-8000-0000000000f1"
    error_message = "the hub mounts the platform's /home, where the jobs run in the users' homes"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.slurm_time == "8:00:00"
    error_message = "servers' jobs end after eight hours by default"
  }

  assert {
    condition     = tundra_appliance.jupyterhub.parameters.slurm == "0190d6a0-0000-7000-8000-0000000000c1"
    error_message = "the hub joins the Slurm appliance"
  }
  assert {
    condition     = jsonencode(tundra_appliance.jupyterhub.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000b", "0190d6a0-0000-7000-8000-00000000000c"])
    error_message = "the hub joins the Slurm network too, after its own"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.slurm_partition == "interactive" && tundra_appliance.jupyterhub.parameters.slurm_cpus == "2"
    error_message = "the servers' partition and CPUs are passed on"
  }
}

run "slurm_on_the_hub_network" {
  command = plan

  variables {
    slurm = {
      appliance_id = "0190d6a0-0000-7000-8000-0000000000c1"
      network_id   = "0190d6a0-0000-7000-8000-00000000000a"
    }
  }

  assert {
    condition     = jsonencode(tundra_appliance.jupyterhub.parameters.networks) == jsonencode(["0190d6a0-0000-7000-8000-00000000000b"])
    error_message = "no network twice when the hub answers on the Slurm network"
  }
  assert {
    condition     = tundra_appliance.jupyterhub.parameters.slurm_partition == "" && tundra_appliance.jupyterhub.parameters.slurm_cpus == "1"
    error_message = "Slurm's default partition, one CPU, by default"
  }
}

run "no_slurm_by_default" {
  command = plan

  assert {
    condition     = tundra_appliance.jupyterhub.parameters.slurm == null
    error_message = "servers on the hub node unless a platform is given"
  }
}

run "bad_slurm" {
  command = plan
  variables {
    slurm = { appliance_id = "hpc", network_id = "0190d6a0-0000-7000-8000-00000000000c" }
  }
  expect_failures = [var.slurm]
}

run "bad_slurm_partition" {
  command = plan
  variables {
    slurm_partition = "2fast"
  }
  expect_failures = [var.slurm_partition]
}

run "bad_slurm_cpus" {
  command = plan
  variables {
    slurm_cpus = 0
  }
  expect_failures = [var.slurm_cpus]
}

run "bad_slurm_time" {
  command = plan
  variables {
    slurm_time_limit = "forever"
  }
  expect_failures = [var.slurm_time_limit]
}

run "bad_name" {
  command = plan
  variables {
    name = "Hub_1"
  }
  expect_failures = [var.name]
}

run "bad_flavor" {
  command = plan
  variables {
    hub_flavor_id = "large"
  }
  expect_failures = [var.hub_flavor_id]
}

run "bad_image" {
  command = plan
  variables {
    image_id = "debian-12"
  }
  expect_failures = [var.image_id]
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
    networks = ["users"]
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

run "hub_network_not_in_networks" {
  command = plan
  variables {
    hub_network_id = "0190d6a0-0000-7000-8000-00000000000c"
  }
  expect_failures = [var.hub_network_id]
}

run "bad_homes_share" {
  command = plan
  variables {
    homes_share_id = "home"
  }
  expect_failures = [var.homes_share_id]
}

run "bad_authenticator" {
  command = plan
  variables {
    authenticator = "oauth"
  }
  expect_failures = [var.authenticator]
}
