# positive control (Python): threads, 100 MB, stdlib, 200 KB on both streams
import collections, hashlib, heapq, itertools, json, math, re, sys, threading
acc = [0] * 8
def work(i):
    acc[i] = sum(k % 7 for k in range(100000))
ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
big = bytearray(100 << 20)
big[-1] = 7
c = collections.Counter("abracadabra")
h = hashlib.sha256(b"x").hexdigest()
line = "1" * 63 + "\n"
sys.stdout.write(line * (200 * 1024 // 64))
sys.stderr.write(line * (200 * 1024 // 64))
print(acc[7], big[-1], c.most_common(1)[0][0], h[:8], json.dumps({"a": math.sqrt(4)}), heapq.nlargest(1, [3, 1, 2]))
