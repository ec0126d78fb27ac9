"""*Find candidate lesions* in a background process (``Resources/Scripts/candidates_worker.py``).

Like the classification: the search holds the CPU for seconds on a whole-body study, a process
can be stopped at once (Cancel) and gives its memory back when it ends. The job follows
``background.BackgroundProcess`` (output lines read on a thread, handed to the GUI thread by a
QTimer); its lines are the worker's events (progress, error, cancelled, result).
"""

import json
import os
import shutil
import tempfile
import time

import slicer

from BoneOligoMetSlicer import background

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER_SCRIPT = os.path.join(MODULE_DIR, "Resources", "Scripts", "candidates_worker.py")


class CandidatesJob(background.BackgroundProcess):
    """One background search: ``PythonSlicer candidates_worker.py FOLDER``.

    ``onProgress(fraction, message)`` follows the worker; ``cancel`` asks it to stop (it exits
    within a fraction of a second) and kills it if it has not after a grace period. Closing the
    scene cancels it: the point list it would fill is gone.
    """

    CANCEL_GRACE_S = 5.0
    CANCEL_WITH_SCENE = True

    def __init__(self, folder, command, onProgress=None, onCompleted=None):
        super().__init__(command, None, onProgress, onCompleted)
        self.folder = folder
        self.errorMessage = ""
        self.resultFile = None
        self._cancelTime = None

    def _poll(self) -> None:
        super()._poll()
        if (
            not self.finished
            and self._cancelTime is not None
            and time.monotonic() - self._cancelTime > self.CANCEL_GRACE_S
            and self.process.poll() is None
        ):
            self.process.kill()

    def _handle(self, line: str) -> None:
        kind, _separator, text = line.partition(" ")
        if kind == "BOM-PROGRESS":
            fraction, _separator, message = text.partition(" ")
            if self.onProgress is not None and fraction.replace(".", "", 1).isdigit():
                self.onProgress(float(fraction), message)
        elif kind == "BOM-ERROR":
            self.errorMessage = text
        elif kind == "BOM-CANCELLED":
            self.cancelled = True
        elif kind == "BOM-RESULT":
            self.resultFile = os.path.join(self.folder, text)
        else:
            self.log.append(line)

    def cancel(self) -> None:
        if self.finished or self.process is None:
            return
        self.cancelled = True
        self._cancelTime = time.monotonic()
        with open(os.path.join(self.folder, "cancel"), "w") as handle:
            handle.write("cancel\n")


def startCandidates(ct, suv, maxCandidates, onProgress=None, onCompleted=None):
    """Writes a job folder (the CT and SUV as NRRD, ``job.json``) and starts the worker on it;
    returns the job."""
    from BoneOligoMetLib.io.images import write_image

    folder = tempfile.mkdtemp(prefix="BoneOligoMet-candidates-", dir=slicer.app.temporaryPath)
    job = {"ct": "ct.nrrd", "suv": "suv.nrrd", "max_candidates": maxCandidates}
    write_image(ct, os.path.join(folder, job["ct"]), compress=False)
    write_image(suv, os.path.join(folder, job["suv"]), compress=False)
    with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=1)
    command = [background.pythonExecutable(), WORKER_SCRIPT, folder]
    running = CandidatesJob(folder, command, onProgress, onCompleted)
    running.start()
    return running


def readCandidates(job):
    """A finished job's candidates (dicts, best first; see the worker); None when it was
    cancelled. Raises RuntimeError with the worker's message when it failed. The job folder is
    deleted."""
    try:
        result = background.readJobResult(job, "The candidate search")
        return None if result is None else result["candidates"]
    finally:
        shutil.rmtree(job.folder, ignore_errors=True)
