"""Work in background processes: the classifier's warm worker (``classify_worker.py --serve``)
and pip installs.

As MONAIAuto3DSeg and TotalSegmentator run their networks: the CNN and pyradiomics hold the CPU
for seconds, a process can be stopped at once (Cancel), its memory and GPU memory are returned
when it ends, and a crash in a native library cannot take Slicer down. Unlike them, the
classifier's process is kept between classifications (:class:`ClassifierWorker`): importing
PyTorch, pyradiomics and scikit-learn and loading the model bundle take several seconds, which
only the session's first classification pays. It is restarted when it died, started again when
the device changes, and ended (its memory returned) when the scene is closed, a few minutes
after the module is left, and with Slicer. A thread reads each process's output and a QTimer
hands it to the GUI thread, so the GUI stays live and shows progress.
"""

import contextlib
import json
import logging
import os
import queue
import shutil
import subprocess
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
        _waitFor(self, self._poll, timeoutSeconds)


class ClassificationJob:
    """One classification: a job folder (``job.json`` and the images) handed to the worker.

    The worker's lines for it are events (``onProgress(fraction, message)``, an error, the
    result file); ``onCompleted(job)`` is called once on the GUI thread when it is over.
    ``returnCode``: 0 done, 2 refused (``errorMessage`` says why), 3 cancelled, anything else
    the worker process ended during the job. ``cancel`` asks the worker to stop the job (it
    does within a fraction of a second and stays warm); a worker that has not after
    :attr:`ClassifierWorker.CANCEL_GRACE_S` is killed. ``lesions``: the label image sent,
    kept to draw the probability overlay (:func:`readResult`).
    """

    def __init__(self, folder, segmentIds, lesions=None, onProgress=None, onCompleted=None):
        self.folder = folder
        self.segmentIds = segmentIds
        self.lesions = lesions
        self.onProgress = onProgress
        self.onCompleted = onCompleted
        self.worker = None
        self.returnCode = None
        self.cancelled = False
        self.finished = False
        self.errorMessage = ""
        self.resultFile = None
        self.log = []
        self.answer = None  # the worker's verdict: 0 result, 2 error, 3 cancelled
        self.cancelTime = None
        self.startTime = None

    def handle(self, kind: str, text: str, line: str) -> None:
        if kind == "BOM-PROGRESS":
            if self.startTime is None:
                self.startTime = time.monotonic()  # the worker took the job up
            fraction, _separator, message = text.partition(" ")
            if self.onProgress is not None and fraction.replace(".", "", 1).isdigit():
                self.onProgress(float(fraction), message)
        elif kind == "BOM-ERROR":
            self.errorMessage, self.answer = text, 2
        elif kind == "BOM-CANCELLED":
            self.cancelled, self.answer = True, 3
        elif kind == "BOM-RESULT":
            self.resultFile, self.answer = os.path.join(self.folder, text), 0
        else:
            self.log.append(line)
            logging.info(f"BoneOligoMet classifier: {line}")

    def finish(self, returnCode) -> None:
        self.returnCode = returnCode
        self.finished = True
        if self.onCompleted is not None:
            self.onCompleted(self)

    def cancel(self) -> None:
        if self.finished:
            return
        self.cancelled = True
        if self.cancelTime is None:
            self.cancelTime = time.monotonic()
            with open(os.path.join(self.folder, "cancel"), "w") as handle:
                handle.write("cancel\n")

    def wait(self, timeoutSeconds: Optional[float] = None) -> None:
        """Blocks until the job is over, keeping the GUI alive (self-test, scripts); past
        ``timeoutSeconds`` it is cancelled."""
        _waitFor(self, lambda: self.worker is not None and self.worker.poll(), timeoutSeconds)


class ClassifierWorker:
    """The warm classifier process, ``PythonSlicer classify_worker.py --serve``: one job at a
    time, each a line on its standard input (see the worker's docstring for the answers).

    Started by the first :meth:`submit` (and again after it died); :meth:`stop` ends it, and
    so does closing the scene (a running job then ends as cancelled). ``pid`` is the process's
    id once it said it is ready.
    """

    POLL_MS = 200
    CANCEL_GRACE_S = 5.0

    def __init__(self, command=None, environment=None):
        self.command = list(command or [pythonExecutable(), WORKER_SCRIPT, "--serve"])
        self.environment = dict(environment or {})
        self.process = None
        self.pid = None
        self.job = None
        self.started = 0  # processes started so far (a restart after a crash counts)
        self._lines = None
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self.poll)
        self._sceneObservation = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _start(self) -> None:
        environment = slicer.util.startupEnvironment()
        environment.update(self.environment)
        options = {}
        if os.name == "nt":  # no console window for the worker
            options["startupinfo"] = subprocess.STARTUPINFO()
            options["startupinfo"].dwFlags = subprocess.STARTF_USESHOWWINDOW
        logging.info(f"BoneOligoMet: starting {' '.join(self.command)}")
        self.process = subprocess.Popen(
            self.command,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            **options,
        )
        self.pid = None
        self.started += 1
        self._lines = queue.Queue()  # a dead process's reader may still end its own queue
        threading.Thread(target=_readLines, args=(self.process, self._lines), daemon=True).start()

    def submit(self, job: ClassificationJob) -> None:
        """Hands ``job`` to the worker, starting it first when it is not running."""
        if self.job is not None:
            raise RuntimeError("the classifier is busy with another job")
        if not self.alive():
            self._drop()
            self._start()
        self._observeScene(getattr(slicer, "mrmlScene", None))
        self.job, job.worker = job, self
        with contextlib.suppress(OSError):  # it died meanwhile: poll() says the job stopped
            self.process.stdin.write(job.folder + "\n")
            self.process.stdin.flush()
        self._timer.start()

    def poll(self) -> None:
        """Hands the worker's lines to the job (GUI thread); kills a worker that does not stop
        a cancelled job within the grace period."""
        while self._lines is not None:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:  # the process ended
                self._ended()
                break
            kind, _separator, text = line.partition(" ")
            if kind == "BOM-READY":
                self.pid = int(text) if text.isdigit() else self.pid
                if self.job is not None and self.job.answer is not None:
                    self._finishJob(self.job.answer)
            elif self.job is not None:
                self.job.handle(kind, text, line)
            else:
                logging.info(f"BoneOligoMet classifier: {line}")
        job = self.job
        if job is not None and job.cancelTime is not None and self.alive():
            # The grace counts from the job's start in the worker: one still importing the
            # library stops the job as soon as it takes it up.
            since = max(job.cancelTime, job.startTime or time.monotonic())
            if time.monotonic() - since > self.CANCEL_GRACE_S:
                self.process.kill()
        if self.job is None:
            self._timer.stop()

    def _finishJob(self, returnCode) -> None:
        job, self.job = self.job, None
        job.finish(returnCode)

    def _ended(self) -> None:
        """The process is gone: a job it was running ends with its exit status."""
        code = self.process.returncode if self.process is not None else None
        self._drop()
        if self.job is not None:
            self._finishJob(code if code not in (None, 0) else 1)

    def _drop(self) -> None:
        if self.process is not None:
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError, ValueError):  # a pipe the process broke
                    stream.close()
        self.process, self.pid, self._lines = None, None, None
        self._observeScene(None)

    def _observeScene(self, scene) -> None:
        """Closing ``scene`` (None: no scene) stops the worker: its jobs' nodes are gone."""
        if self._sceneObservation is not None:
            if self._sceneObservation[0] is scene:
                return
            old, tag = self._sceneObservation
            old.RemoveObserver(tag)
            self._sceneObservation = None
        if scene is not None:
            tag = scene.AddObserver(scene.StartCloseEvent, lambda caller, event: self.stop())
            self._sceneObservation = (scene, tag)

    def stop(self) -> None:
        """Ends the process now (its memory and GPU memory are returned). A running job ends
        as cancelled at the next poll."""
        if self.job is not None:
            self.job.cancelled = True
        if self.alive():
            self.process.kill()  # no clean-up to wait for: the job folder is the panel's
        if self.job is None:  # else the job's next poll sees the end and finishes it
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.process is not None:
                    self.process.wait(5)
            self._drop()


def _readLines(process, lines) -> None:
    """A worker's output lines into ``lines``, then None when it ended (a thread)."""
    try:
        while True:
            try:
                line = process.stdout.readline()
            except UnicodeDecodeError:  # a log line in another code page: skip it
                continue
            except (OSError, ValueError):  # the pipe was closed
                break
            if not line:
                break
            lines.put(line.rstrip())
        process.wait()
    finally:
        lines.put(None)


# The session's warm worker, and when it is let go after the module was left (seconds).
_worker = None
RELEASE_AFTER_LEAVING_S = 300.0
_releaseTimer = None


def classifierWorker(device: str) -> ClassifierWorker:
    """The session's worker for ``device`` ("cpu" hides the GPUs from it: a worker started for
    another device is replaced)."""
    global _worker
    environment = {"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" else {}
    if _worker is not None and _worker.environment != environment and _worker.job is None:
        _worker.stop()
        _worker = None
    if _worker is None:
        _worker = ClassifierWorker(environment=environment)
    return _worker


def stopWorker() -> None:
    """Ends the session's worker now (a running job is cancelled): its memory is returned."""
    global _worker
    holdWorker()
    if _worker is not None:
        _worker.stop()
        if _worker.job is None:
            _worker = None


def releaseWorker(afterSeconds: Optional[float] = None) -> None:
    """Ends the session's worker once it has been idle for ``afterSeconds`` (default
    :data:`RELEASE_AFTER_LEAVING_S`; 0: now if idle): the module was left, and a reader who went
    to the Segment Editor and comes back keeps a warm classifier. :func:`holdWorker` keeps it."""
    global _releaseTimer
    delay = RELEASE_AFTER_LEAVING_S if afterSeconds is None else afterSeconds
    if _worker is None:
        return
    if delay <= 0:
        if _worker.job is None:
            stopWorker()
        return
    if _releaseTimer is None:
        _releaseTimer = qt.QTimer()
        _releaseTimer.connect("timeout()", lambda: releaseWorker(0))
    _releaseTimer.setInterval(int(delay * 1000))
    _releaseTimer.start()


def holdWorker() -> None:
    """Cancels a pending :func:`releaseWorker` (the module was entered again)."""
    if _releaseTimer is not None:
        _releaseTimer.stop()


def startClassification(images, job, segmentIds, onProgress=None, onCompleted=None):
    """Writes a job folder (``images``: role -> SimpleITK image, as NRRD; ``job.json``) and
    hands it to the session's warm worker; returns the :class:`ClassificationJob`."""
    from BoneOligoMetLib.io.images import write_image

    folder = tempfile.mkdtemp(prefix="BoneOligoMet-classify-", dir=slicer.app.temporaryPath)
    job = dict(job)
    for role, image in images.items():
        write_image(image, os.path.join(folder, f"{role}.nrrd"), compress=False)
        job[role] = f"{role}.nrrd"
    with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=1)
    running = ClassificationJob(folder, segmentIds, images.get("lesions"), onProgress, onCompleted)
    classifierWorker(job.get("device", "auto")).submit(running)
    return running


def readResult(job):
    """A finished job's (summary, probability overlay on the lesions' grid); None when it was
    cancelled.

    Raises RuntimeError with the worker's message when it failed. The job folder is deleted.
    """
    from BoneOligoMetLib.classify import probability_overlay

    try:
        summary = readJobResult(job, "The classifier")
        if summary is None:
            return None
        probabilities = {int(k): float(v) for k, v in summary["probabilities"].items()}
        return summary, probability_overlay(job.lesions, job.lesions, probabilities)
    finally:
        job.lesions = None
        shutil.rmtree(job.folder, ignore_errors=True)


def readJobResult(job, what: str):
    """A finished job's result file (JSON), None when it was cancelled; a RuntimeError naming
    ``what`` stopped, with the worker's message (or the last lines of its log), when it failed."""
    if job.cancelled:
        return None
    if job.returnCode != 0 or job.resultFile is None:
        detail = job.errorMessage or "\n".join(job.log[-10:])
        raise RuntimeError(f"{what} stopped (status {job.returnCode}): {detail}")
    with open(job.resultFile, encoding="utf-8") as handle:
        return json.load(handle)


def _waitFor(job, poll, timeoutSeconds: Optional[float]) -> None:
    """Until ``job.finished``: ``poll()``, Qt events, and ``job.cancel()`` once past
    ``timeoutSeconds`` (the cancel then finishes the job)."""
    started = time.monotonic()
    while not job.finished:
        poll()
        slicer.app.processEvents()
        if timeoutSeconds is not None and time.monotonic() - started > timeoutSeconds:
            job.cancel()
            timeoutSeconds = None
        time.sleep(0.05)
