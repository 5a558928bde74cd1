# a daemon that outlives the run and then writes a marker
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        open("/tmp/CRUCIBLE_DAEMON", "w").write("alive")
        print("ESCAPE: daemon survived", flush=True)
        time.sleep(60)
    os._exit(0)
print("parent done")
