"""Plan and run `inpaint bids`: find the scans, skip the finished ones, fill the rest, write the scans table.

Scans are filled in this process (`jobs=1`), on a pool of `jobs` spawned processes, or on the
workers of a Dask distributed scheduler (`scheduler=ADDRESS`); every scan is written by the
worker that filled it, atomically, and only this process writes the scans' records and the
dataset's shared files. Several runs (one per participant) may write into one OUT_DIR at once.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, TextIO

from ..errors import InpaintError
from ..fill import MODEL_FREE, FillSettings
from ..progress import ProgressBar
from ..threads import choose_threads, cpu_count
from .derivatives import (FAILED, NO_MASK, SKIPPED, TABLE, Row, changes, check_out_dir, fingerprint, output_name,
                          read_sidecar, sources, write_description)
from .records import record_outcome, update_table
from .layout import Scan, find_scans
from .worker import Task, fill_scan, load_model, one_sentence, set_threads

OnDone = Callable[[Row], None]


@dataclass(frozen=True)
class CohortOptions:
    """One `inpaint bids` run."""

    bids_dir: Path
    out_dir: Path
    masks_dir: Path
    settings: FillSettings
    participants: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    mask_entities: str = "label-lesion"
    model: Optional[str] = None
    dilate: int = 0
    threshold: Optional[float] = None
    keep_dtype: bool = False
    jobs: int = 1
    scheduler: Optional[str] = None
    threads: int = 0  # torch threads per scan; 0: chosen from the cores and the number of parallel scans
    quiet: bool = False


@dataclass(frozen=True)
class Summary:
    """What a run did: one row per scan, and the table it wrote."""

    rows: list[Row]
    table: Path

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)


def run_cohort(options: CohortOptions, stream: Optional[TextIO] = None) -> Summary:
    """Fill every scan that needs it; InpaintError (one sentence) for a problem with the run as a whole.

    Progress, failures and the summary go to `stream` (default: standard error).
    """
    stream = stream or sys.stderr
    began = time.monotonic()
    options = _absolute(options)
    scans = find_scans(options.bids_dir, options.masks_dir, participants=options.participants,
                       sessions=options.sessions, mask_entities=options.mask_entities,
                       probabilities=options.threshold is not None)
    check_out_dir(options.out_dir, options.bids_dir, options.masks_dir)
    expected = _expected(options)
    client = _connect(options.scheduler) if options.scheduler else None  # before anything is written
    try:
        return _run(scans, options, expected, client, stream, began)
    finally:
        if client is not None:
            client.close()


def _run(scans: list[Scan], options: CohortOptions, expected: dict, client, stream: TextIO,
         began: float) -> Summary:
    """Write the dataset: plan every scan, fill those that need it, record each outcome, then rebuild the table."""
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    write_description(out_dir, options.bids_dir, options.masks_dir, _settings_text(options))
    planned = [_plan(scan, options, expected) for scan in scans]
    tasks = [item for item in planned if isinstance(item, Task)]
    rows = {item.output: item for item in planned if isinstance(item, Row)}
    for row in rows.values():
        record_outcome(out_dir, row)
    bar = _ScanBar(len(tasks), len(rows), stream) if tasks and not options.quiet else None

    def done(row: Row) -> None:
        rows[row.output] = row
        record_outcome(out_dir, row)
        if bar:
            bar.advance(row)

    try:
        _execute(tasks, options, client, done)
    finally:
        if bar:
            bar.close()
        update_table(out_dir, list(rows.values()))
    summary = Summary(rows=sorted(rows.values(), key=lambda row: row.source), table=out_dir / TABLE)
    _report(summary, time.monotonic() - began, options.quiet, stream)
    return summary


class _ScanBar:
    """A progress bar over the scans to fill, with the ETA from the scans done so far."""

    def __init__(self, total: int, settled: int, stream: TextIO) -> None:
        self.total, self.finished, self.start = total, 0, time.monotonic()
        self.bar = ProgressBar("bids", stream=stream)
        self.bar.update(0.0, f"0/{total} scans to fill, {settled} skipped or not fillable", force=True)

    def advance(self, row: Row) -> None:
        self.finished += 1
        eta = (time.monotonic() - self.start) * (self.total - self.finished) / self.finished
        scan = Path(row.source).name.split(".", 1)[0]
        self.bar.update(self.finished / self.total, f"{self.finished}/{self.total} {scan} {row.status}", eta=eta,
                        force=True)

    def close(self) -> None:
        self.bar.close()


def _absolute(options: CohortOptions) -> CohortOptions:
    """The same options with absolute paths, so that workers in other folders (Dask) find the files."""
    from ..registry import MODELS_DIR

    model = options.model
    if model is not None and not (MODELS_DIR / model).is_dir() and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return dataclasses.replace(options, bids_dir=options.bids_dir.resolve(), out_dir=options.out_dir.resolve(),
                               masks_dir=options.masks_dir.resolve(), model=model)


def _expected(options: CohortOptions) -> dict:
    """The fingerprint parts that are the same for every scan (settings and model checksums)."""
    from ..refine3d import default_refiner

    model = load_model(options.model)  # a wrong --model is one error before any work, not one per scan
    refine = options.settings.method == "refine3d"
    return {"dilate": options.dilate, "threshold": options.threshold, "keep_dtype": options.keep_dtype,
            "parameters": json.loads(json.dumps(options.settings.to_dict())),
            "model": None if options.settings.method in MODEL_FREE else model.checksum,
            "refiner": default_refiner().checksum if refine else None}


def _settings_text(options: CohortOptions) -> str:
    values = ", ".join(f"{k}={v}" for k, v in options.settings.to_dict().items())
    return (f"inpaint bids: lesion filling with {values}, model={options.model or 'default'}, "
            f"dilate={options.dilate}, threshold={options.threshold}, keep_dtype={options.keep_dtype}, "
            f"mask entities {options.mask_entities}")


def _plan(scan: Scan, options: CohortOptions, common: dict) -> Row | Task:
    """A finished row (skipped, failed, no mask) or the task that fills the scan."""
    import nibabel

    from ..fill_file import voxel_ml
    from ..volume import sha256_file, sidecar_path

    row = Row(participant_id=f"sub-{scan.subject}", session_id=f"ses-{scan.session}" if scan.session else "",
              source=scan.image, mask=scan.mask or "", brainmask=scan.brainmask or "",
              output=output_name(scan.image), status=FAILED)
    if scan.problem:
        return dataclasses.replace(row, message=f"{scan.problem[0].upper()}{scan.problem[1:]}.")
    if scan.mask is None:
        return dataclasses.replace(row, status=NO_MASK, message=f"No mask with {options.mask_entities} was found "
                                                                f"for this scan in {options.masks_dir}.")
    image, mask = options.bids_dir / scan.image, options.masks_dir / scan.mask
    brain = options.masks_dir / scan.brainmask if scan.brainmask else None
    try:
        expected = dict(common, image=sha256_file(image), mask=sha256_file(mask),
                        brainmask=sha256_file(brain) if brain else None)
    except (InpaintError, OSError) as exc:  # e.g. a broken link to data not fetched yet (DataLad)
        return dataclasses.replace(row, message=one_sentence(exc))
    row = dataclasses.replace(row, image_sha256=expected["image"], mask_sha256=expected["mask"])
    output = options.out_dir / row.output
    sidecar = sidecar_path(output)
    force, note = False, ""
    if output.exists() or sidecar.exists():
        record = read_sidecar(sidecar)
        if record is None:
            return dataclasses.replace(row, message=f"{output if output.exists() else sidecar} exists but was not "
                                                    "written by brain-inpaint; move it away to fill this scan.")
        differ = changes(fingerprint(record), expected) if output.exists() else ["the filled image was missing"]
        if not differ:
            voxels = int(record.get("hole_voxels", 0))
            return dataclasses.replace(row, status=SKIPPED, lesion_voxels=str(voxels),
                                       lesion_ml=f"{voxels * voxel_ml(nibabel.load(image).affine):.3f}",
                                       slices=str(record.get("filled_slices", "")),
                                       seconds=f"{float(record.get('seconds', 0)):.2f}",
                                       message="Already filled from the same inputs with the same settings.")
        force, note = True, f"Filled again: {', '.join(differ)}."
    output.parent.mkdir(parents=True, exist_ok=True)
    return Task(image=image, mask=mask, brainmask=brain, output=output, settings=options.settings,
                model=options.model, dilate=options.dilate, threshold=options.threshold,
                keep_dtype=options.keep_dtype, force=force,
                sources=tuple(sources(scan.image, scan.mask, scan.brainmask)), threads=options.threads,
                row=dataclasses.replace(row, message=note))


def _execute(tasks: list[Task], options: CohortOptions, client, done: OnDone) -> None:
    if not tasks:
        return
    if client is not None:
        _run_dask(tasks, client, done)
        return
    jobs = min(options.jobs, len(tasks))
    threads = options.threads or max(1, min(cpu_count() // jobs, choose_threads() // jobs))
    tasks = [dataclasses.replace(task, threads=threads) for task in tasks]
    if jobs == 1:
        _run_here(tasks, done)
    else:
        _run_pool(tasks, jobs, done)


def _run_here(tasks: Iterable[Task], done: OnDone) -> None:
    """Fill the scans in this process, one after the other (torch threads restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    try:
        for task in tasks:
            done(fill_scan(task))
    finally:
        set_threads(previous)


def _run_pool(tasks: list[Task], jobs: int, done: OnDone) -> None:
    """Fill the scans on `jobs` fresh (spawned) processes; each loads the models once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fill_scan, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                done(_result(future, futures[future], "worker process"))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _connect(address: str):
    """A Dask distributed client of the scheduler at `address`."""
    from distributed import Client

    try:
        return Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InpaintError(f"Could not connect to the Dask scheduler at {address} ({exc}); start it first or "
                           "check the address.") from None


def _run_dask(tasks: list[Task], client, done: OnDone) -> None:
    """Fill the scans on the workers of the Dask scheduler `client` is connected to."""
    from distributed import as_completed

    slots = _slots_per_host(client.scheduler_info()["workers"].values())
    futures = client.map(_dask_fill, tasks, [slots] * len(tasks), pure=False)
    by_key = {future.key: task for future, task in zip(futures, tasks)}
    for future in as_completed(futures):
        done(_result(future, by_key[future.key], "Dask worker"))


def _slots_per_host(workers: Iterable[dict]) -> dict[str, int]:
    """How many scans may run at once on each host (the threads of all its Dask workers)."""
    slots: dict[str, int] = {}
    for worker in workers:
        slots[worker["host"]] = slots.get(worker["host"], 0) + int(worker["nthreads"])
    return slots


def _dask_fill(task: Task, slots: dict[str, int]) -> Row:
    """`fill_scan` on a Dask worker; by default its host's cores are shared by the scans that run there at once."""
    from distributed import get_worker

    if task.threads == 0:
        worker = get_worker()
        task = dataclasses.replace(task, threads=max(1, cpu_count() // slots.get(worker.ip, worker.state.nthreads)))
    return fill_scan(task)


def _result(future, task: Task, where: str) -> Row:
    try:
        return future.result()
    except Exception as exc:  # the worker itself died (killed, out of memory)
        lines = str(exc).strip().splitlines()
        detail = f" ({lines[0]})" if lines else ""
        return dataclasses.replace(task.row, status=FAILED,
                                   message=f"The {where} filling this scan stopped{detail}; run again to retry.")


def _report(summary: Summary, seconds: float, quiet: bool, stream: TextIO) -> None:
    for row in summary.rows:
        if row.status == FAILED:
            print(f"inpaint: {row.source}: {row.message}", file=stream)
    if quiet:
        return
    counts = ", ".join(f"{summary.count(s)} {s.replace('_', ' ')}" for s in ("filled", SKIPPED, FAILED, NO_MASK))
    scans = f"{len(summary.rows)} scan" + ("s" if len(summary.rows) != 1 else "")
    print(f"{scans}: {counts} in {seconds:.1f} s; wrote {summary.table}", file=stream)
