"""Work in a background process: classification (``classify_worker.py``) and pip installs.

As MONAIAuto3DSeg and TotalSegmentator run their networks: the CNN and pyradiomics hold the CPU
for tens of seconds, a process can be stopped at once (Cancel), its memory and GPU memory are
returned when it ends, and a crash in a native library cannot take Slicer down. The blocking form
of ``slicer.util.launchConsoleProcess`` exists in every supported Slicer (5.8+); a thread reads
the output and a QTimer hands it to the GUI thread, so the GUI stays live and shows progress.
"""

import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from typing import Optional

import qt
import slicer

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER_SCRIPT = os.path.join(MODULE_DIR, "Resources", "Scripts", "classify_worker.py")


def pythonExecutable() -> str:
    """Slicer's Python (PythonSlicer); the plain interpreter outside Slicer."""
    return shutil.which("PythonSlicer") or sys.executable


class BackgroundProcess:
    """A process whose output lines reach the GUI thread while it runs.

    ``start`` launches it; a reader thread queues its output lines and a QTimer hands them to
    the GUI thread (``_handle(line)``; by default ``onProgress(None, line)``), then
    ``onCompleted(job)`` once. ``cancel`` stops it. ``wait`` blocks while keeping the GUI alive
    (self-test, scripts).
    """

    POLL_MS = 200
    CANCEL_WITH_SCENE = False  # True: closing the scene cancels the job (its nodes are gone)

    def __init__(self, command, environment=None, onProgress=None, onCompleted=None):
        self.command = command
        self.environment = environment
        self.onProgress = onProgress
        self.onCompleted = onCompleted
        self.process = None
        self.returnCode = None
        self.cancelled = False
        self.finished = False
        self.log = []
        self._lines = queue.Queue()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self._poll)
        self._sceneObservation = None

    def start(self) -> None:
        logging.info(f"BoneOligoMet: starting {' '.join(self.command)}")
        self.process = slicer.util.launchConsoleProcess(
            self.command, updateEnvironment=self.environment
        )
        scene = getattr(slicer, "mrmlScene", None)
        if self.CANCEL_WITH_SCENE and scene is not None:
            tag = scene.AddObserver(scene.StartCloseEvent, lambda caller, event: self.cancel())
            self._sceneObservation = (scene, tag)
        threading.Thread(target=self._read, daemon=True).start()
        self._timer.start()

    def _read(self) -> None:
        try:
            while True:
                try:
                    line = self.process.stdout.readline()
                except UnicodeDecodeError:  # a log line in another code page: skip it
                    continue
                if not line:
                    break
                self._lines.put(line.rstrip())
            self.process.wait()
        finally:
            self._lines.put(None)

    def _poll(self) -> None:
        while not self.finished:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._finish()
            else:
                self._handle(line)

    def _handle(self, line: str) -> None:
        self.log.append(line)
        logging.info(f"BoneOligoMet: {line}")
        if self.onProgress is not None:
            self.onProgress(None, line)

    def _finish(self) -> None:
        self.finished = True
        self._timer.stop()
        if self._sceneObservation is not None:
            scene, tag = self._sceneObservation
            scene.RemoveObserver(tag)
            self._sceneObservation = None
        self.returnCode = self.process.returncode
        if self.onCompleted is not None:
            self.onCompleted(self)

    def cancel(self) -> None:
        if self.finished or self.process is None:
            return
        self.cancelled = True
        self.process.terminate()

    def wait(self, timeoutSeconds: Optional[float] = None) -> None:
        started = time.monotonic()
        while not self.finished:
            self._poll()
            slicer.app.processEvents()
            if timeoutSeconds is not None and time.monotonic() - started > timeoutSeconds:
                self.cancel()
                timeoutSeconds = None  # let the cancel finish the job
            time.sleep(0.05)


class ClassificationJob(BackgroundProcess):
    """One background classification: ``PythonSlicer classify_worker.py FOLDER``.

    Its output lines are events (``onProgress(fraction, message)``, an error, the result file);
    ``cancel`` asks the worker to stop (it exits within a fraction of a second) and kills it if
    it has not after a grace period. Closing the scene cancels it: the nodes it would fill are
    gone.
    """

    CANCEL_GRACE_S = 5.0
    CANCEL_WITH_SCENE = True

    def __init__(self, folder, command, environment, segmentIds, onProgress=None, onCompleted=None):
        super().__init__(command, environment, onProgress, onCompleted)
        self.folder = folder
        self.segmentIds = segmentIds
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
            logging.info(f"BoneOligoMet classifier: {line}")

    def cancel(self) -> None:
        if self.finished or self.process is None:
            return
        self.cancelled = True
        self._cancelTime = time.monotonic()
        with open(os.path.join(self.folder, "cancel"), "w") as handle:
            handle.write("cancel\n")


def startWorker(folder, segmentIds, device, onProgress=None, onCompleted=None):
    """Starts the worker on a job folder (``job.json`` and images written); returns the job.

    PythonSlicer runs it (the plain interpreter outside Slicer); ``device`` "cpu" hides the GPUs.
    """
    python = pythonExecutable()
    environment = {"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" else None
    job = ClassificationJob(
        folder, [python, WORKER_SCRIPT, folder], environment, segmentIds, onProgress, onCompleted
    )
    job.start()
    return job


def startClassification(images, job, segmentIds, onProgress=None, onCompleted=None):
    """Writes a job folder (``images``: role -> SimpleITK image, as NRRD; ``job.json``) and
    starts the worker on it; returns the job."""
    from BoneOligoMetLib.io.images import write_image

    folder = tempfile.mkdtemp(prefix="BoneOligoMet-classify-", dir=slicer.app.temporaryPath)
    job = dict(job)
    for role, image in images.items():
        write_image(image, os.path.join(folder, f"{role}.nrrd"), compress=False)
        job[role] = f"{role}.nrrd"
    with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=1)
    return startWorker(folder, segmentIds, job["device"], onProgress, onCompleted)


def readResult(job):
    """A finished job's (summary, overlay image); None when it was cancelled.

    Raises RuntimeError with the worker's message when it failed. The job folder is deleted.
    """
    from BoneOligoMetLib.io.images import read_image

    try:
        if job.cancelled:
            return None
        if job.returnCode != 0 or job.resultFile is None:
            detail = job.errorMessage or "\n".join(job.log[-10:])
            raise RuntimeError(f"The classifier stopped (status {job.returnCode}): {detail}")
        with open(job.resultFile, encoding="utf-8") as handle:
            summary = json.load(handle)
        return summary, read_image(os.path.join(job.folder, summary["overlay"]))
    finally:
        shutil.rmtree(job.folder, ignore_errors=True)
