# /proc/PID/mem, environ and fds of every other process we can see
import os
found = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    for what in ("mem", "environ", "fd/0", "fd/3", "root/etc/hostname"):
        try:
            with open("/proc/%s/%s" % (pid, what), "rb") as f:
                data = f.read(4096)
            if what != "mem" or data:
                found.append("%s/%s" % (pid, what))
        except OSError:
            pass
if found:
    print("ESCAPE: opened", found)
raise SystemExit(42)
