# Repacks an MSF 7.00 file (PDB) with 512-byte blocks: the same streams, a file a few KB long.
import struct, sys
src = open(sys.argv[1], 'rb').read()
magic = src[:32]
bs, fpm, nblocks, ndirbytes, _, bmaddr = struct.unpack_from('<6I', src, 32)
def blk(i): return src[i*bs:(i+1)*bs]
ndirblocks = (ndirbytes + bs - 1)//bs
dirblocks = struct.unpack_from('<%dI' % ndirblocks, src, bmaddr*bs)
d = b''.join(blk(i) for i in dirblocks)[:ndirbytes]
n = struct.unpack_from('<I', d, 0)[0]
sizes = struct.unpack_from('<%dI' % n, d, 4)
off = 4 + 4*n
streams = []
for s in sizes:
    if s == 0xffffffff:
        streams.append(None); continue
    k = (s + bs - 1)//bs
    idx = struct.unpack_from('<%dI' % k, d, off); off += 4*k
    streams.append(b''.join(blk(i) for i in idx)[:s])
NB = 512
blocks = [b'', b'', b'']  # superblock, FPM1, FPM2 filled later
smap = []
for s in streams:
    ids = []
    if s:
        for j in range(0, len(s), NB):
            ids.append(len(blocks)); blocks.append(s[j:j+NB])
    smap.append(ids)
newdir = struct.pack('<I', n) + b''.join(struct.pack('<I', s) for s in sizes)
for ids in smap: newdir += b''.join(struct.pack('<I', i) for i in ids)
dirids = []
for j in range(0, len(newdir), NB):
    dirids.append(len(blocks)); blocks.append(newdir[j:j+NB])
bm = len(blocks); blocks.append(b''.join(struct.pack('<I', i) for i in dirids))
total = len(blocks)
fpmbits = bytearray(b'\xff' * NB)
for i in range(total): fpmbits[i//8] &= ~(1 << (i % 8)) & 0xff
blocks[1] = bytes(fpmbits); blocks[2] = b'\xff' * NB
blocks[0] = magic + struct.pack('<6I', NB, 1, total, len(newdir), 0, bm)
out = b''.join(b.ljust(NB, b'\0') for b in blocks)
open(sys.argv[2], 'wb').write(out)
print(len(out), 'bytes,', total, 'blocks')
