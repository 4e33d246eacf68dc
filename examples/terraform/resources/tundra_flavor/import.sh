terraform import tundra_flavor.gpu_ib 0190f1c2-7a4e-7d2b-9c1a-2f3e4d5c6b7a
