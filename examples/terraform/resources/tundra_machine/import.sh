# By ID or name. The BMC password is write-only and cannot be imported; it
# stays as tundrad has it until bmc_password_version changes.
terraform import tundra_machine.gpu01 gpu01
