# UDP over IPv6 and IPv4 to the host's loopback (port on stdin)
import socket
port = int(input())
for fam, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.sendto(b"ESCAPE", (host, port))
print("sent")
