#!/bin/sh
# Reproduce a bundled model:  tools/train/train.sh llama   (then: olmoe, then: llama-2k)
# Needs Debian packages: python3-torch bible-kjv bible-kjv-text libopenblas0-openmp
set -e
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONHASHSEED=0
# keep freed T x T attention buffers in the heap instead of an mmap + page faults per step
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
exec /usr/bin/python3 "$(dirname "$0")/train.py" "$@"
