# A notebook cell (run by jupyter-client.py in a user's kernel, itself a
# Slurm job). First the kernel tries batchspawner's API with its server's
# token, asking the hub to take an exec_prefix (which the hub would run as
# root); prints the status. Then Dask workers as Slurm jobs through
# dask-jobqueue, over TLS with a throwaway CA, the scheduler in the kernel
# at its node's Slurm address and each worker at its own. Prints the
# scheduler's address, the sum of 0..10^7 computed in ten chunks, the
# workers the scheduler has, the kernel's node, and the user's jobs as
# Slurm lists them while they run.
import json
import os
import pwd
import re
import subprocess
import urllib.error
import urllib.request

import dask.array as da
from dask.distributed import Client
from dask_jobqueue import SLURMCluster

asked = urllib.request.Request(
    os.environ["JUPYTERHUB_API_URL"] + "/batchspawner",
    data=json.dumps({"exec_prefix": "touch /tmp/tundra-batchspawner-injected;"}).encode(),
    method="POST",
    headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"], "Content-Type": "application/json"},
)
try:
    with urllib.request.urlopen(asked, timeout=30) as r:
        print("batchspawner-api", r.status)
except urllib.error.HTTPError as e:
    print("batchspawner-api", e.code)

node = os.environ["SLURMD_NODENAME"]
shown = subprocess.check_output(["scontrol", "show", "node", node], text=True)
address = re.search(r"NodeAddr=(\S+)", shown).group(1)
cluster = SLURMCluster(
    cores=1,
    processes=1,
    memory="1GB",
    job_directives_skip=["--mem"],
    walltime="00:30:00",
    job_name="dask-worker",
    security=True,
    shared_temp_directory=os.path.expanduser("~"),
    scheduler_options={"host": address},
    job_script_prologue=["DASK_HOST=$(scontrol show node \"$SLURMD_NODENAME\" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)"],
    worker_extra_args=["--host", "$DASK_HOST"],
    log_directory=os.path.expanduser("~/dask-jobs"),
)
cluster.scale(jobs=2)
client = Client(cluster)
client.wait_for_workers(2, timeout=300)
total = da.arange(10**7, chunks=10**6).sum().compute()
workers = sorted(w.split("://")[1].rsplit(":", 1)[0] for w in client.scheduler_info()["workers"])
user = pwd.getpwuid(os.getuid()).pw_name
jobs = subprocess.check_output(["squeue", "-h", "-u", user, "-o", "%j %u %T %N"], text=True)
print("scheduler", cluster.scheduler_address)
print("sum", int(total))
print("kernel-on", node, address)
for w in workers:
    print("worker", w)
for line in sorted(jobs.splitlines()):
    print("job", line.strip())
client.close()
cluster.close()
