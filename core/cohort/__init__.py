"""Filling a whole cohort: a BIDS dataset in, a BIDS derivatives dataset out (`inpaint bids`).

- `layout`: finds each T1w scan, its lesion mask and brain mask (pybids).
- `derivatives`: the output dataset: names, dataset_description.json, resume checks, the scans table.
- `records`: each scan's outcome and the SHA-256 of its files as a file of its own, and the table of every scan
  rebuilt from them under a lock.
- `claims`: the table's lock and each scan's claim, so that runs into one OUT_DIR can overlap.
- `worker`: fills one scan in a worker process, loading the models once per process.
- `unfilled`: a lesion-free scan (its mask marks no voxel): the image copied unchanged, with its sidecar.
- `run`: plans a run and executes it in-process, on a local process pool or on a Dask cluster.
- `group`: the group level: rebuilds the scans table from OUT_DIR and summarises it.
"""
