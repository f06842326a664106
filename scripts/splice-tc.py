#!/usr/bin/env python3
"""Splices a calibration artifact: OUT = OLD with the transform code's tensors
(names holding "_tc_") and the kv_policy_tc metadata taken from NEW.

Used when the transform code's calibration changes but the other tensors
should stay bit for bit those of the committed artifact (calibrate's last
bits depend on the CPU it runs on; docs/fidelity.md, "The transform code").
NEW must hold every tensor of OLD with the same dtype and shape.

usage: scripts/splice-tc.py OLD NEW OUT
"""
import json
import os
import struct
import sys


def load(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    return b[8 + n:], json.loads(b[8:8 + n])


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    old_b, old_h = load(sys.argv[1])
    new_b, new_h = load(sys.argv[2])
    missing = set(old_h) - set(new_h)
    if missing:
        sys.exit(f'{sys.argv[2]}: lacks {sorted(missing)[0]} (and {len(missing) - 1} more)')
    meta = dict(old_h['__metadata__'])
    meta['kv_policy_tc'] = new_h['__metadata__']['kv_policy_tc']
    header, blobs, off = {'__metadata__': meta}, [], 0
    for k, v in new_h.items():
        if k == '__metadata__':
            continue
        src_b, src_h = (new_b, new_h) if '_tc_' in k else (old_b, old_h)
        s = src_h[k]
        if s['dtype'] != v['dtype'] or s['shape'] != v['shape']:
            sys.exit(f'{k}: {s["dtype"]} {s["shape"]} in the old artifact, {v["dtype"]} {v["shape"]} in the new')
        d = src_b[s['data_offsets'][0]:s['data_offsets'][1]]
        header[k] = {'dtype': v['dtype'], 'shape': v['shape'], 'data_offsets': [off, off + len(d)]}
        blobs.append(d)
        off += len(d)
    hj = json.dumps(header, separators=(',', ':')).encode()
    hj += b' ' * ((8 - len(hj) % 8) % 8)
    tmp = sys.argv[3] + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(hj)) + hj + b''.join(blobs))
    os.replace(tmp, sys.argv[3])


if __name__ == '__main__':
    main()
