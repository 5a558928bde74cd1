# our environment and that of every process we can see
import os
print(dict(os.environ))
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            print(pid, open("/proc/%s/environ" % pid, "rb").read())
        except OSError:
            pass
raise SystemExit(42)
