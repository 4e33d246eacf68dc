# Import a switch by its ID (the password stays unset until credentials_version changes).
terraform import tundra_switch.leaf1 0b6d5a4e-3f0c-4c7e-9c55-6a1f2b3c4d5e
