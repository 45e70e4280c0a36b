"""Plan and run `inpaint bids`: find the scans, skip the finished ones, fill the rest, write the scans table.

Scans are filled in this process (`jobs=1`), on a pool of `jobs` spawned processes, or on the
workers of a Dask distributed scheduler (`scheduler=ADDRESS`); every scan is written by the
worker that filled it, atomically, and only this process writes the scans' records and the
dataset's shared files. Several runs may write into one OUT_DIR at once: each scan is claimed
(`claims`) just before it is planned and released once its record is written, so a scan is
handled by one run at a time and a run leaves the scans another live run holds to it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, TextIO

from ..errors import InpaintError
from ..fill import FillSettings
from ..methods import METHODS, PLUGINS
from ..progress import ProgressBar
from ..threads import choose_threads, cpu_count
from .claims import LOGS, claim_scan, lock_path
from .derivatives import (COPY_DEPENDS, FAILED, FILLED, NO_LESION, NO_MASK, RUNNING, SKIPPED, TABLE, Row, changes,
                          check_dataset_links, check_out_dir, fingerprint, link_refusal, make_out_dir, output_name,
                          read_sidecar, sources, write_description)
from .layout import Found, Scan, find_scans
from .records import (SHARED_FILES, Record, files_problem, read_record, record_outcome, record_path, scan_files,
                      update_table, written_files)
from .worker import Task, end_with_parent, fill_scan, load_model, one_sentence, set_threads

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

    def counts(self, always: tuple[str, ...]) -> str:
        """'4 scans: 3 filled, 1 failed' for the statuses `always`, then every other status present."""
        present = sorted({row.status for row in self.rows} - set(always))
        counts = ", ".join(f"{self.count(s)} {s.replace('_', ' ')}" for s in (*always, *present))
        return f"{len(self.rows)} scan{'s' if len(self.rows) != 1 else ''}: {counts}"


def run_cohort(options: CohortOptions, stream: Optional[TextIO] = None) -> Summary:
    """Fill every scan that needs it; InpaintError (one sentence) for a problem with the run as a whole.

    Progress, failures and the summary go to `stream` (default: standard error).
    """
    stream = stream or sys.stderr
    began = time.monotonic()
    options = _absolute(options)
    found = find_scans(options.bids_dir, options.masks_dir, participants=options.participants,
                       sessions=options.sessions, mask_entities=options.mask_entities,
                       probabilities=options.threshold is not None)
    check_out_dir(options.out_dir, options.bids_dir, options.masks_dir)
    check_dataset_links(options.out_dir, SHARED_FILES)
    expected = _expected(options)
    client = _connect(options.scheduler) if options.scheduler else None  # before anything is written
    try:
        return _run(found, options, expected, client, stream, began)
    finally:
        if client is not None:
            client.close()


def _run(found: Found, options: CohortOptions, expected: dict, client, stream: TextIO, began: float) -> Summary:
    """Write the dataset: handle each scan under its claim, record each outcome, then rebuild the table."""
    out_dir = options.out_dir
    make_out_dir(out_dir)  # the description first: a run starting now sees an empty folder or one that is ours
    write_description(out_dir, options.bids_dir, options.masks_dir, _settings_text(options))
    make_out_dir(out_dir, LOGS)
    rows: dict[str, Row] = {}
    bar = _ScanBar(len(found.scans), stream) if not options.quiet else None

    def done(row: Row) -> None:
        rows[row.output] = row
        if row.status != RUNNING:
            record_outcome(out_dir, row)
        if bar:
            bar.advance(row)

    try:
        _execute(found.scans, options, expected, client, done)
    finally:
        if bar:
            bar.close()
        update_table(out_dir, list(rows.values()), found.sources)
    summary = Summary(rows=sorted(rows.values(), key=lambda row: row.source), table=out_dir / TABLE)
    _report(summary, time.monotonic() - began, options, stream)
    return summary


class _ScanBar:
    """A progress bar over the scans of the run, with the ETA from the scans handled so far; into a file or pipe
    (not a terminal: a SLURM .out file, a log) one plain line per scan instead."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.finished, self.start, self.stream = total, 0, time.monotonic(), stream
        self.bar = ProgressBar("bids", stream=stream) if _is_terminal(stream) else None
        if self.bar:
            self.bar.update(0.0, f"0/{total} scans", force=True)

    def advance(self, row: Row) -> None:
        self.finished += 1
        eta = (time.monotonic() - self.start) * (self.total - self.finished) / self.finished
        scan = Path(row.source).name.split(".", 1)[0]
        text = f"{self.finished}/{self.total} {scan} {row.status}"
        if self.bar:
            self.bar.update(self.finished / self.total, text, eta=eta, force=True)
        else:
            print(f"bids: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


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
    method = METHODS[options.settings.method]
    # a wrong --model is one error before any work, not one per scan
    model = load_model(options.model).checksum if method.needs_model else None
    return {"dilate": options.dilate, "threshold": options.threshold, "keep_dtype": options.keep_dtype,
            "parameters": json.loads(json.dumps(options.settings.used())), "model": model,
            "refine": method.needs_refiner, "plugin": PLUGINS.sources.get(method.name)}


def _refiner_checksum(image: Path) -> str:
    """The checksum of the shipped refiner that fills `image` (the grid nearest its voxels, from its header)."""
    from ..modelspace import voxel_sizes
    from ..refine3d import default_refiner
    from ..volume import read_grid

    return default_refiner(voxel_sizes(read_grid(image)[1])).checksum


def _settings_text(options: CohortOptions) -> str:
    values = ", ".join(f"{k}={v}" for k, v in options.settings.used().items())
    model = f", model={options.model or 'default'}" if METHODS[options.settings.method].needs_model else ""
    return (f"inpaint bids: lesion filling with {values}{model}, "
            f"dilate={options.dilate}, threshold={options.threshold}, keep_dtype={options.keep_dtype}, "
            f"mask entities {options.mask_entities}")


def _row(scan: Scan) -> Row:
    """The scan's row before anything is known about it (status failed until decided)."""
    return Row(participant_id=f"sub-{scan.subject}", session_id=f"ses-{scan.session}" if scan.session else "",
               source=scan.image, mask=scan.mask or "", brainmask=scan.brainmask or "",
               output=output_name(scan.image), status=FAILED)


def _withdraw_earlier_fill(out_dir: Path, output: str) -> str:
    """Remove the files of the scan's earlier fill (its mask has gone: a later pipeline must not take that fill for
    a current one) when they are as recorded; the sentence saying so ("" when there was none)."""
    try:
        earlier = read_record(out_dir, output)
    except ValueError:
        return ""
    if earlier is None or earlier.row.status not in (FILLED, NO_LESION) or not earlier.files:
        return ""
    if files_problem(out_dir, earlier.files, thorough=True) is not None:
        return (f" The files an earlier run wrote for it from {earlier.row.mask} were changed since and are left as "
                "they are; remove them if that fill no longer stands.")
    for name in earlier.files:
        (out_dir / name).unlink(missing_ok=True)
    return f" The fill an earlier run made from {earlier.row.mask} was removed."


def _plan(scan: Scan, row: Row, options: CohortOptions, common: dict) -> Row | Task:
    """A finished row (skipped, failed, no mask) or the task that fills the scan; run holding the scan's claim."""
    from ..jsonfiles import sha256_file

    if scan.problem:
        return dataclasses.replace(row, message=f"{scan.problem[0].upper()}{scan.problem[1:]}.")
    if scan.mask is None:
        return dataclasses.replace(row, status=NO_MASK, message=f"No mask with {options.mask_entities} was found "
                                                                f"for this scan in {options.masks_dir}."
                                                                + _withdraw_earlier_fill(options.out_dir, row.output))
    image, mask = options.bids_dir / scan.image, options.masks_dir / scan.mask
    brain = options.masks_dir / scan.brainmask if scan.brainmask else None
    try:
        expected = dict(common, image=sha256_file(image), mask=sha256_file(mask),
                        brainmask=sha256_file(brain) if brain else None,
                        refiner=_refiner_checksum(image) if common["refine"] else None)
    except (InpaintError, OSError) as exc:  # e.g. a broken link to data not fetched yet (DataLad)
        return dataclasses.replace(row, message=one_sentence(exc))
    row = dataclasses.replace(row, image_sha256=expected["image"], mask_sha256=expected["mask"])
    earlier = _earlier(options.out_dir, row.output, expected)
    if earlier.refusal:
        return dataclasses.replace(row, message=earlier.refusal)
    if earlier.intact is not None:
        done = earlier.intact.row
        what = ("copied unchanged from the same inputs (its lesion mask marks no voxel)" if done.status == NO_LESION
                else "filled from the same inputs with the same settings")
        return dataclasses.replace(row, status=SKIPPED, lesion_voxels=done.lesion_voxels, lesion_ml=done.lesion_ml,
                                   slices=done.slices, seconds=done.seconds, uncertainty=done.uncertainty,
                                   uncertainty_share=done.uncertainty_share, message=f"Already {what}.")
    output = options.out_dir / row.output
    output.parent.mkdir(parents=True, exist_ok=True)
    return Task(image=image, mask=mask, brainmask=brain, output=output, settings=options.settings,
                model=options.model, dilate=options.dilate, threshold=options.threshold,
                keep_dtype=options.keep_dtype, force=earlier.present,
                sources=tuple(sources(scan.image, scan.mask, scan.brainmask)), threads=options.threads,
                row=dataclasses.replace(row, message=f"Filled again: {earlier.why}." if earlier.why else ""))


@dataclass(frozen=True)
class _Earlier:
    """What an earlier fill left of a scan: intact and the same fill (skip it), refused, or to be replaced."""

    present: bool                    # some of its files (uncertainty map included) exist: the new fill replaces them
    intact: Optional[Record] = None  # its record, when its files match it and the fill would be the same
    refusal: str = ""                # why the scan is not filled (files that are not ours)
    why: str = ""                    # why it is filled again


def _earlier(out_dir: Path, output: str, expected: dict) -> _Earlier:
    """Check a scan's earlier files against its record (SHA-256 of each) and its sidecar against this fill (an
    unchanged copy only against what decides it)."""
    present = any(os.path.lexists(out_dir / name) for name in scan_files(output))
    image, sidecar = written_files(output, uncertainty=False)
    try:
        record = read_record(out_dir, output)
    except ValueError as exc:
        record, unreadable = None, f"the record {exc}"
    else:
        unreadable = ""
    if record is None or not record.files:
        if not present:
            return _Earlier(present=False, why=unreadable)
        pair = [name for name in (image, sidecar) if os.path.lexists(out_dir / name)]
        if pair and read_sidecar(out_dir / sidecar) is None:  # a leftover uncertainty map alone is replaced
            return _Earlier(present=True, refusal=f"{out_dir / pair[0]} exists but was not written by brain-inpaint; "
                                                  "move it away to fill this scan.")
        return _Earlier(present=True, why=unreadable or "no record of what was written was kept (a run was "
                                                        "stopped while writing it)")
    problem = files_problem(out_dir, record.files, thorough=True)
    if problem:
        return _Earlier(present=present, why=problem[1])
    keys = COPY_DEPENDS if record.row.status == NO_LESION else None
    differ = changes(fingerprint(read_sidecar(out_dir / sidecar) or {}), expected, keys)
    if differ:
        return _Earlier(present=True, why=", ".join(differ))
    return _Earlier(present=True, intact=record)


def _execute(scans: list[Scan], options: CohortOptions, expected: dict, client, done: OnDone) -> None:
    """Claim, plan and fill the scans, as many at once as the workers take; a scan held by another run is left to it."""
    waiting = list(reversed(scans))
    in_flight: dict = {}  # future -> (task, claim)
    with _workers(options, client, len(scans)) as workers:
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < workers.width:
                    started = _start(waiting.pop(), options, expected, workers, done)
                    if started:
                        in_flight[started[0]] = started[1:]
                for future in workers.finished(list(in_flight)) if in_flight else ():
                    task, claim = in_flight.pop(future)
                    try:
                        done(workers.result(future, task))
                    finally:
                        claim.release()
        finally:
            for _, claim in in_flight.values():
                claim.release()


def _start(scan: Scan, options: CohortOptions, expected: dict, workers: "_Workers", done: OnDone):
    """Claim the scan and plan it: (future, task, claim) when it is being filled, else None (its row is done)."""
    out_dir, row = options.out_dir, _row(scan)
    refusal = link_refusal(out_dir, [*scan_files(row.output), record_path(out_dir, row.output).relative_to(out_dir),
                                     lock_path(out_dir, row.output).relative_to(out_dir)])
    if refusal:
        done(dataclasses.replace(row, message=refusal))
        return None
    try:
        claim = claim_scan(out_dir, row.output)
    except OSError as exc:
        done(dataclasses.replace(row, message=f"Cannot lock {lock_path(out_dir, row.output)} ({exc.strerror or exc}); "
                                              "check that the output folder is writable."))
        return None
    if isinstance(claim, str):
        done(dataclasses.replace(row, status=RUNNING, message=f"Being filled by another run ({claim}); left to it."))
        return None
    try:
        item = _plan(scan, row, options, expected)
        if isinstance(item, Task):
            return workers.submit(item), item, claim
        done(item)
    except BaseException:
        claim.release()
        raise
    claim.release()
    return None


class _Workers:
    """Where scans are filled: `width` at once; `submit` a task, wait for `finished` ones, read each `result`."""

    width = 1

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, task: Task):
        raise NotImplementedError

    def finished(self, futures: list) -> Iterable:
        return concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED).done

    def result(self, future, task: Task) -> Row:
        return _result(future, task, "worker process")


class _Here(_Workers):
    """Fills each scan in this process as it is submitted (torch threads restored afterwards)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> "_Here":
        import torch

        self.previous = torch.get_num_threads()
        return self

    def __exit__(self, *exc) -> None:
        set_threads(self.previous)

    def submit(self, task: Task) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fill_scan(dataclasses.replace(task, threads=self.threads)))
        return future


class _Pool(_Workers):
    """Fills scans on `jobs` fresh (spawned) processes, started with the first scan to fill; each loads the models
    once."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.width, self.threads, self.pool = jobs, threads, None

    def __exit__(self, kind, *exc) -> None:
        if self.pool is None:
            return
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            # interrupted (Ctrl+C, or SIGTERM from `kill` or SLURM): stop the scans being filled, whose writes are
            # atomic and unrecorded (a rerun fills them), rather than wait for them; a terminal's Ctrl+C reached
            # the workers already, a `kill` of this process alone did not
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=kind is not None)

    def submit(self, task: Task) -> concurrent.futures.Future:
        import multiprocessing

        if self.pool is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.width,
                                                               mp_context=multiprocessing.get_context("spawn"),
                                                               initializer=end_with_parent,
                                                               initargs=(os.getpid(),))
        return self.pool.submit(fill_scan, dataclasses.replace(task, threads=self.threads))


class _Dask(_Workers):
    """Fills scans on the workers of the Dask scheduler `client` is connected to, one per worker thread."""

    def __init__(self, client) -> None:
        self.client = client
        self.slots = _slots_per_host(client.scheduler_info()["workers"].values())
        self.width = max(1, sum(self.slots.values()))

    def submit(self, task: Task):
        return self.client.submit(_dask_fill, task, self.slots, pure=False)

    def finished(self, futures: list) -> Iterable:
        from distributed import wait

        return wait(futures, return_when="FIRST_COMPLETED").done

    def result(self, future, task: Task) -> Row:
        return _result(future, task, "Dask worker")


def _workers(options: CohortOptions, client, scans: int) -> _Workers:
    """The workers of this run: a Dask cluster, a pool of `--jobs` processes, or this process."""
    if client is not None:
        return _Dask(client)
    jobs = max(1, min(options.jobs, scans))
    threads = options.threads or max(1, min(cpu_count() // jobs, choose_threads() // jobs))
    return _Here(threads) if jobs == 1 else _Pool(jobs, threads)


def _connect(address: str):
    """A Dask distributed client of the scheduler at `address`."""
    from distributed import Client

    try:
        return Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InpaintError(f"Could not connect to the Dask scheduler at {address} ({exc}); start it first or "
                           "check the address.") from None


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


def _report(summary: Summary, seconds: float, options: CohortOptions, stream: TextIO) -> None:
    for row in summary.rows:
        if row.status == FAILED or (row.status == RUNNING and not options.quiet):
            print(f"inpaint: {row.source}: {row.message}", file=stream)
    if summary.rows and all(row.status == NO_MASK for row in summary.rows):   # said even with --quiet
        print(f"inpaint: note: No mask with {options.mask_entities} was found for any scan: check --masks "
              f"({options.masks_dir}, the lesion masks' derivatives folder) and --mask-entity.", file=stream)
    if not options.quiet:
        print(f"{summary.counts((FILLED, SKIPPED, FAILED, NO_MASK))} in {seconds:.1f} s; wrote {summary.table}",
              file=stream)
