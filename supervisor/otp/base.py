"""``SupervisedActor``: a pykka actor that tells its supervisor how it ended, exactly once.

pykka has no links or monitors, and it reports deaths unevenly: a crash in a told
message calls ``on_failure``, a graceful stop calls ``on_stop``, and a crash in
``on_start`` calls *neither*. This base closes those gaps so a supervisor can rely on
one ``ChildExited`` per incarnation, sent as the very last act (after ``cleanup()``
closed sockets and cancelled timers), so a replacement never overlaps the old one's
resources. A thread that dies outside pykka's reach (a zombie) sends nothing; the
supervisor's liveness monitor covers that case.

Lifecycle (subclasses override ``init``/``cleanup``/``on_receive``, not pykka's hooks)::

    start() ──> on_start: tell ChildStarted(thread)
                   │
                   ├── init() raises ──> cleanup() ──> ChildExited(START_FAILED) ──> dead
                   │
                   v
               on_receive(...) ... (Crash -> raise ChaosCrash)
                   │                              │
       stop() / stop_all()            exception in a told message
                   │                              │
                   v                              v
         on_stop: cleanup()           on_failure: cleanup()
         ChildExited(NORMAL)          ChildExited(CRASHED | GAVE_UP)
                   │                              │
                   └──────────────> dead <────────┘

A supervisor that stopped a child on purpose already knows it; it reads the child's
NORMAL as SHUTDOWN. Without a supervisor (``ctx=None``) nothing is reported.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
from loguru import logger

if TYPE_CHECKING:
    from loguru import Logger

from depthkeeper.supervisor.otp.dispatch import Dispatcher, Mailbox
from depthkeeper.supervisor.otp.errors import ChaosCrash, RestartIntensityExceeded, is_injected
from depthkeeper.supervisor.otp.messages import ChildExited, ChildStarted, Crash
from depthkeeper.supervisor.otp.spec import ChildContext, ExitReason
from depthkeeper.supervisor.otp.tell import tell


class SupervisedActor(pykka.ThreadingActor):
    """Base of every actor in our tree; see the module docstring for the lifecycle."""

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]  # pykka calls it on the instance
        # pykka's hook for the inbox type. On a dispatcher: a Mailbox (see dispatch.py). Else
        # queue.SimpleQueue, implemented in C without a Condition: waking an idle actor and a
        # tell both cost about half of queue.Queue's (bench: 3.1 -> 1.5 us per tell). It has
        # everything pykka uses: put, get, empty, qsize.
        if self._dispatcher is not None:
            return Mailbox(self, self._dispatcher)
        return queue.SimpleQueue()

    def _start_actor_loop(self) -> None:
        if isinstance(self.actor_inbox, Mailbox):
            self.actor_inbox.start()  # on_start runs on a dispatcher thread, then the messages
        else:
            super()._start_actor_loop()

    #: the ``actor=`` of every log line this actor writes
    log_name: ClassVar[str] = "actor"
    #: the actor's one logger: which actor, which child, which incarnation (subclasses add context)
    log: Logger

    def __init__(self, ctx: ChildContext | None, *, dispatcher: Dispatcher | None = None) -> None:
        #: run on this dispatcher's shared threads instead of a thread of our own
        self._dispatcher = dispatcher
        super().__init__()
        self.ctx = ctx
        self.child_id = ctx.child_id if ctx is not None else type(self).__name__
        self.generation = ctx.generation if ctx is not None else 0
        self._actor_thread: Any = None
        self._exit_reported = False
        self.log = logger.bind(actor=self.log_name, child_id=self.child_id, generation=self.generation)

    def bind_log(self, **context: Any) -> None:
        """Add context (a symbol, a supervisor's name) to every later line of this actor's logger."""
        self.log = self.log.bind(**context)

    # -- hooks for subclasses -----------------------------------------------------------

    def init(self) -> None:
        """Set up on the actor's thread before the first message. Raising = START_FAILED."""

    def cleanup(self) -> None:
        """Release resources on every exit path (also after a failed ``init``: be partial-safe)."""

    # -- pykka hooks --------------------------------------------------------------------

    def on_start(self) -> None:
        inbox = self.actor_inbox
        # what the liveness monitor watches: our thread, or on a dispatcher our Lane
        self._actor_thread = inbox.lane if isinstance(inbox, Mailbox) else threading.current_thread()
        self._tell_supervisor(ChildStarted(self.child_id, self.generation, self._actor_thread,
                                           self._cleanup_guarded))
        try:
            self.init()
        except Exception as exc:
            self.log.error("init failed: {!r}", exc)
            # What pykka does right after we re-raise, done first so that on every exit path
            # is_alive() is already False when the report goes out (a host callback that
            # stops us then cannot deadlock on our own thread).
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._cleanup_guarded()
            self._report_exit(ExitReason.START_FAILED, repr(exc))
            raise  # pykka logs it and stops us (calling neither on_failure nor on_stop)

    def on_stop(self) -> None:
        self._cleanup_guarded()
        self._report_exit(self.stop_reason(), None)

    def on_failure(self, exception_type: type[BaseException] | None, exception_value: BaseException | None,
                   traceback: TracebackType | None) -> None:
        self._cleanup_guarded()
        reason = ExitReason.GAVE_UP if isinstance(exception_value, RestartIntensityExceeded) else ExitReason.CRASHED
        injected = is_injected(exception_value)
        if reason is ExitReason.CRASHED:
            self.log.log("INFO" if injected else "ERROR", "crashed{}: {!r}", " (injected)" if injected else "",
                         exception_value)
        self._report_exit(reason, repr(exception_value), injected=injected)

    def _handle_failure(self, exception_type: type[BaseException] | None, exception_value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        # pykka's hook (both its loop and our dispatcher call it before on_failure): it logs every
        # crash at ERROR with a traceback, then unregisters and stops the actor. A fault injected
        # on purpose is no error: on_failure logs it at INFO; here only the unregister and stop.
        if not is_injected(exception_value):
            super()._handle_failure(exception_type, exception_value, traceback)
            return
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Crash(reason=reason, injected=injected):
                raise ChaosCrash(f"{self.child_id}: {reason}", injected=injected)
            case _:
                # A host's ActorRegistry.broadcast reaches us too: never raise on strangers.
                self.log.debug("ignoring unexpected message {!r}", message)
                return None

    # -- reporting ----------------------------------------------------------------------

    def stop_reason(self) -> ExitReason:
        """The reason a graceful stop reports; a supervisor that gave up overrides it."""
        return ExitReason.NORMAL

    def exit_without_supervisor(self, reason: ExitReason, error: str | None) -> None:
        """Called instead of telling ``ChildExited`` when there is no supervisor (ctx is None)."""

    def _report_exit(self, reason: ExitReason, error: str | None, *, injected: bool = False) -> None:
        if self._exit_reported:
            return
        self._exit_reported = True
        self.log.debug("exited: {}", reason.value)
        if self.ctx is None:
            self.exit_without_supervisor(reason, error)
        else:
            self._tell_supervisor(ChildExited(self.child_id, self.generation, reason, error, injected))

    def _tell_supervisor(self, message: Any) -> None:
        if self.ctx is not None:
            tell(self.ctx.supervisor, message)  # False: our supervisor is gone, nobody left to tell

    def _cleanup_guarded(self) -> None:
        try:
            self.cleanup()
        except Exception as exc:  # a failing cleanup must not cost the exit report
            self.log.opt(exception=exc).error("cleanup failed: {!r}", exc)
