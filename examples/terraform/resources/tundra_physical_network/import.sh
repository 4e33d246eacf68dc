# Import a physical network by its ID.
terraform import tundra_physical_network.fabric 0b6d5a4e-3f0c-4c7e-9c55-6a1f2b3c4d5e
