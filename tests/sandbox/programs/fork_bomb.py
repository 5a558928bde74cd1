# fork bomb in Python (processes allowed for Python): bounded by RLIMIT_NPROC + pids cgroup
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
