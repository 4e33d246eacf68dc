# Import by ID. Import records the key as tundrad stores it (no trailing
# newline): use trimspace(file(...)) in the configuration for an empty plan.
terraform import tundra_keypair.laptop 0190f1c2-7a4e-7d2b-9c1a-2f3e4d5c6b7a
