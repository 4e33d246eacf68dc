# Import an appliance by its ID.
terraform import tundra_appliance.dask 0190b3c4-0000-7000-8000-000000000006
