# By ID or by name.
terraform import tundra_project.astro astro
