"""Run one query through its agent and turn the Strands event stream into frames.

The only module the WebSocket and HTTP layers call. Per container: one :class:`Orchestrator`
holding the settings, the model (and its Bedrock client) and the knowledge base. Per request: a
fresh Strands ``Agent`` (metrics and messages accumulate on an agent, so it is never reused) and a
:class:`~selador.agents.state.RunState` for the tools.

Frames, in order (the caller has already sent the ``accepted`` status):

``status(routed)`` → ``status(tool)`` per new tool use → ``status(composing)`` once → ``delta``…
→ ``message`` per completed assistant message with text → exactly one terminal frame, ``result``
or ``error``. ``composing`` goes out when the first tool results come back (the model turn that
reads them starts; posting it then keeps it off the first-token path), or at the latest with the
first answer text after a tool. A run whose model answers without any tool sends no
``composing`` (text before a first tool call cannot be told from a final answer).

Terminal frame rules:

- Normal end (``end_turn``), and also ``max_tokens`` and ``limit_turns``: a ``result`` with that
  ``stop_reason``, ``success`` true and whatever text the model produced; the client can tell a
  cut-short answer by the stop reason.
- Cancelled (``sink.cancel_signal``: a client sent ``cancel``, or the listener vanished and the run
  asked to end with it): a ``result`` with ``success`` false, ``stop_reason`` ``cancelled`` and the
  text streamed so far as ``content``.
- Deadline passed: ``error`` ``timeout``. The watchdog cancels the agent, not the sink's signal, so
  the sink still delivers the frame; if the agent has not stopped ``HARD_STOP_GRACE_S`` later (a tool
  or a non-streaming model call cannot be interrupted) the run's task is cancelled outright.
- Every knowledge-base search failed and nothing was cited: ``error`` ``knowledge_base_error``
  (the search tool returned the failure to the model, which may have answered anyway, but an
  answer with no grounding is not worth presenting as a result).
- Any exception: logged with its traceback, then ``error`` with a code and a fixed, safe sentence
  (no exception text, ARN, account id or stack trace reaches the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

from strands import Agent
from strands.types.exceptions import (
    ContextWindowOverflowException,
    MaxTokensReachedException,
    ModelThrottledException,
)

from selador.agents.models import build_model, build_retry_strategy, model_name
from selador.agents.specs import AgentSpec, spec_for_query_type
from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.agents.tools import TOOLS
from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError
from selador.protocol import (
    ErrorFrame,
    MessageFrame,
    QueryRequest,
    ResultData,
    ResultFrame,
    StatusFrame,
    Usage,
)
from selador.settings import Settings
from selador.sink import FrameSink

if TYPE_CHECKING:
    from strands.models import Model
    from strands.types.content import ContentBlock, Message

    from selador.sessions.conversation import Conversation

logger = logging.getLogger(__name__)
T = TypeVar("T")

HARD_STOP_GRACE_S = 2.0
"""Seconds between cancelling the agent at the deadline and cancelling the run's task."""

TIMEOUT_TEXT = "The query took too long and was stopped"

_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "throttlingException",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",
    }
)
_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)


def message_text(message: Message) -> str:
    """A message's text blocks joined by newlines (``str(AgentResult)`` without its last newline)."""
    return "\n".join(block["text"] for block in message.get("content", []) if "text" in block)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify_error(exc: BaseException) -> tuple[str, str]:
    """Map an exception to an error frame's ``(code, safe text)``.

    The text is fixed per kind, never the exception's message (which may carry ARNs, account ids
    or request ids), except for :class:`KnowledgeBaseError`, whose message is safe by contract.
    Bedrock's errors are told apart by their code; an Ollama or OpenAI-compatible server's by its
    HTTP status, or as unreachable when it could not be connected to or went silent.

    Args:
        exc: What the run raised (wrapped exceptions are unwrapped through their causes).

    Returns:
        The code and the sentence for the client.
    """
    import sys

    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    from selador.agents.models import ModelProviderNotInstalledError

    # The local providers' libraries are optional extras: one not imported cannot have raised.
    httpx, ollama, openai = (sys.modules.get(name) for name in ("httpx", "ollama", "openai"))
    unreachable = ("model_error", "The model service could not be reached; please try again")
    for cause in _causes(exc):
        if isinstance(cause, ModelThrottledException):
            return "throttled", "The model service is busy right now; please try again in a moment"
        if isinstance(cause, ContextWindowOverflowException):
            return "too_long", "The question and the material found for it are too long for the model"
        if isinstance(cause, KnowledgeBaseError):
            return "knowledge_base_error", str(cause) or "The knowledge base could not answer"
        if isinstance(cause, ReadTimeoutError | ConnectTimeoutError | EndpointConnectionError):
            return "model_error", "The model service could not be reached; please try again"
        if isinstance(cause, ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            if code in _THROTTLING_CODES:
                return "throttled", "The model service is busy right now; please try again in a moment"
            if code in _ACCESS_CODES:
                return "model_error", "This service is not allowed to use the configured model"
            if code in _UNAVAILABLE_CODES:
                return "model_error", "The model service is temporarily unavailable; please try again"
            if code == "ResourceNotFoundException":
                return "model_error", "The configured model was not found"
            if code == "ValidationException":
                return "model_error", "The model rejected the request"
            return "model_error", "The model service returned an error"
        if isinstance(cause, ModelProviderNotInstalledError):
            return "model_error", "The configured model provider is not installed on this server"
        status: int | None = None
        if ollama is not None and isinstance(cause, ollama.ResponseError):
            status = cause.status_code  # -1: an error line inside a streamed answer
        elif openai is not None and isinstance(cause, openai.APIStatusError):
            status = cause.status_code
        elif openai is not None and isinstance(cause, openai.APIConnectionError):  # timeouts too
            return unreachable
        elif httpx is not None and isinstance(cause, httpx.TimeoutException | httpx.NetworkError):
            return unreachable  # Ollama's streamed requests raise httpx's own errors
        elif (openai is not None and isinstance(cause, openai.APIError)) or (
            httpx is not None and isinstance(cause, httpx.HTTPError)
        ):
            return "model_error", "The model service returned an error"
        if status is not None:
            if status == 429:
                return "throttled", "The model service is busy right now; please try again in a moment"
            if status in (401, 403):
                return "model_error", "This service is not allowed to use the configured model"
            if status == 404:
                return "model_error", "The configured model was not found"
            if status in (400, 413, 422):
                return "model_error", "The model rejected the request"
            if status in (502, 503, 504):
                return "model_error", "The model service is temporarily unavailable; please try again"
            return "model_error", "The model service returned an error"
    return "internal_error", "Something went wrong while answering; please try again"


def _prompt(request: QueryRequest) -> list[ContentBlock]:
    blocks: list[ContentBlock] = [{"text": request.question}]
    if request.context:
        blocks.append({"text": f"Context from the user:\n{request.context}"})
    return blocks


class _FrameTracker:
    """Turns the Strands events of one run into progress frames; remembers what the result needs."""

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self.tool_ids: set[str] = set()
        self.steps = 0
        self.composing_sent = False
        self.last_text = ""
        self.streamed: list[str] = []
        self.suppress_messages = False

    def _tool(self, tool_use_id: str | None, name: str | None) -> None:
        if not tool_use_id or not name or tool_use_id in self.tool_ids:
            return
        self.tool_ids.add(tool_use_id)
        self.steps += 1
        logger.debug("agent step %d: tool %s (%s)", self.steps, name, tool_use_id)
        self.sink.send(
            StatusFrame(
                stage="tool", tool=name, step=self.steps, message=f"Calling {name} (step {self.steps})"
            )
        )

    def on_event(self, event: dict[str, Any]) -> None:
        # Read only the fields needed: events also carry the agent, spans and invocation state.
        if "current_tool_use" in event:
            current = event["current_tool_use"] or {}
            self._tool(current.get("toolUseId"), current.get("name"))
        elif "data" in event:
            text = event["data"]
            if not isinstance(text, str) or not text:
                return
            if self.steps and not self.composing_sent:
                self.composing_sent = True
                self.sink.send(StatusFrame(stage="composing", message="Composing the answer"))
            self.streamed.append(text)
            self.sink.delta(text)
        elif "message" in event:
            message = event["message"]
            if not isinstance(message, dict):
                return
            if message.get("role") == "user":
                # Tool results are back and the model turn that reads them starts now: say so here,
                # not with the first text, so this post is not on the first-token path.
                has_results = any("toolResult" in block for block in message.get("content", []))
                if has_results and self.steps and not self.composing_sent:
                    self.composing_sent = True
                    self.sink.send(StatusFrame(stage="composing", message="Composing the answer"))
                return
            if message.get("role") != "assistant":
                return
            for block in message.get("content", []):
                if "toolUse" in block:
                    self._tool(block["toolUse"].get("toolUseId"), block["toolUse"].get("name"))
            text = message_text(cast("Message", message))
            logger.debug(
                "agent message completed: %d content block(s), %d chars of text",
                len(message.get("content", [])),
                len(text or ""),
            )
            if text and not self.suppress_messages:
                self.last_text = text
                self.sink.send(MessageFrame(content=text))


class Orchestrator:
    """Routes a query to its agent, runs it, and streams its frames to a sink.

    Args:
        settings: The container's settings.
        model: The shared Strands model (the offline responder or Bedrock).
        knowledge_base: The shared knowledge base the search tool queries.
    """

    def __init__(self, *, settings: Settings, model: Model, knowledge_base: KnowledgeBase) -> None:
        self.settings = settings
        self.model = model
        self.knowledge_base = knowledge_base
        self.model_name = model_name(model)

    def spec_for(self, query_type: str) -> AgentSpec:
        """The agent spec for a ``query_type`` (see :data:`selador.agents.specs.QUERY_ROUTES`)."""
        return spec_for_query_type(query_type)

    def build_agent(self, spec: AgentSpec, conversation: Conversation | None = None) -> Agent:
        """A fresh agent for one request: shared model, the spec's tools, no printing, tight retries.

        In a conversation the agent also gets the session's history (Strands restores it while
        the agent is built) and stores each new message as it is added.
        """
        return Agent(
            model=self.model,
            tools=[TOOLS[name] for name in spec.tool_names],
            system_prompt=spec.system_prompt,
            callback_handler=None,
            retry_strategy=build_retry_strategy(self.settings),
            name=spec.name,
            description=spec.description,
            **(conversation.agent_options() if conversation is not None else {}),
        )

    async def run(
        self,
        request: QueryRequest,
        sink: FrameSink,
        *,
        deadline: float | None = None,
        conversation: Conversation | None = None,
    ) -> ResultData | None:
        """Answer one query, streaming frames to ``sink``; always ends with exactly one terminal frame.

        Args:
            request: The validated query.
            sink: Where the frames go; its ``cancel_signal`` stops the run when the client is gone.
            deadline: ``time.monotonic()`` value after which the run is stopped with a ``timeout`` error.
            conversation: The session the question belongs to, if any: its history is the agent's,
                and a completed answer is committed to it before the ``result`` frame.

        Returns:
            The result data sent in the ``result`` frame, or ``None`` when an ``error`` frame ended the run.
        """
        started = time.monotonic()
        tracker = _FrameTracker(sink)
        state = RunState(knowledge_base=self.knowledge_base, max_results=self.settings.knowledge_base_results)
        timed_out = asyncio.Event()
        watchdog: asyncio.Task[None] | None = None
        try:
            spec = self.spec_for(request.query_type)
            sink.send(
                StatusFrame(stage="routed", agent=spec.name, message=f"Routed to the {spec.name} agent")
            )
            if conversation is not None:
                # Off the event loop: the store calls block (DynamoDB, or SQLite's lock).
                await asyncio.to_thread(conversation.open, request.question)
            agent = self.build_agent(spec, conversation)
            drive = asyncio.ensure_future(self._drive(agent, request, sink, state, tracker))
            if deadline is not None:
                watchdog = asyncio.create_task(self._watchdog(deadline, agent, drive, timed_out, tracker))
            try:
                stop_reason, content = await drive
            except MaxTokensReachedException:
                # Strands raises instead of returning; the partial message is what we have.
                stop_reason, content = "max_tokens", tracker.last_text
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if timed_out.is_set() and (current is None or current.cancelling() == 0):
                logger.warning("query %s: hard-stopped after the deadline", request.request_id)
                return self._fail(sink, "timeout", TIMEOUT_TEXT)
            raise
        except Exception as exc:
            if timed_out.is_set():
                logger.warning("query %s: failed after the deadline", request.request_id, exc_info=True)
                return self._fail(sink, "timeout", TIMEOUT_TEXT)
            logger.exception("query %s failed", request.request_id)
            code, text = classify_error(exc)
            return self._fail(sink, code, text)
        finally:
            if watchdog is not None:
                watchdog.cancel()

        if stop_reason == "cancelled":
            if timed_out.is_set():
                return self._fail(sink, "timeout", TIMEOUT_TEXT)
            cancelled = self._result_data(
                agent, spec, request, state, "cancelled", "".join(tracker.streamed), started
            ).model_copy(update={"success": False})
            sink.send(ResultFrame(data=cancelled))
            return cancelled
        if state.knowledge_base_errors and not state.sources:
            logger.warning(
                "query %s: knowledge base failed %d time(s), nothing cited",
                request.request_id,
                len(state.knowledge_base_errors),
            )
            return self._fail(
                sink,
                "knowledge_base_error",
                f"The knowledge base could not be searched: {state.knowledge_base_errors[0]}",
            )

        data = self._result_data(agent, spec, request, state, stop_reason, content, started)
        if conversation is not None:
            await self._commit(conversation, request, data)
        sink.send(ResultFrame(data=data))
        return data

    @staticmethod
    async def _commit(conversation: Conversation, request: QueryRequest, data: ResultData) -> None:
        """Commit the turn; a failure is logged, and the answer still goes out (it was streamed)."""
        try:
            committed = await asyncio.to_thread(conversation.commit, request.question, data)
        except Exception:
            logger.exception("query %s: the turn could not be saved to its session", request.request_id)
            committed = False
        if not committed:
            logger.warning("query %s: the turn is not part of its session", request.request_id)

    async def _drive(
        self, agent: Agent, request: QueryRequest, sink: FrameSink, state: RunState, tracker: _FrameTracker
    ) -> tuple[str, str]:
        result = None
        stream = cast(
            AsyncGenerator[Any, None],
            agent.stream_async(
                _prompt(request),
                invocation_state={INVOCATION_STATE_KEY: state},
                limits={"turns": self.settings.agent_max_turns},
                cancel_signal=sink.cancel_signal,
            ),
        )
        # Drain to the end (aclosing covers exceptions): leaving early strands OTel contexts.
        async with contextlib.aclosing(stream):
            async for event in stream:
                if sink.cancel_signal.is_set() and not tracker.suppress_messages:
                    # Strands polls the caller's signal every 50 ms; cancelling here stops the model
                    # at its very next chunk instead.
                    agent.cancel()
                if sink.cancel_signal.is_set() or agent.cancel_signal.is_set():
                    tracker.suppress_messages = True
                if "result" in event:
                    result = event["result"]
                else:
                    tracker.on_event(event)
        if result is None:
            raise RuntimeError("the agent stream ended without a result")
        return str(result.stop_reason), message_text(result.message)

    @staticmethod
    async def _watchdog(
        deadline: float,
        agent: Agent,
        drive: asyncio.Future[tuple[str, str]],
        timed_out: asyncio.Event,
        tracker: _FrameTracker,
    ) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        timed_out.set()
        tracker.suppress_messages = True
        agent.cancel()
        await asyncio.sleep(HARD_STOP_GRACE_S)
        drive.cancel()

    @staticmethod
    def _fail(sink: FrameSink, code: str, text: str) -> None:
        sink.send(ErrorFrame(code=code, error=text))
        return None

    def _result_data(
        self,
        agent: Agent,
        spec: AgentSpec,
        request: QueryRequest,
        state: RunState,
        stop_reason: str,
        content: str,
        started: float,
    ) -> ResultData:
        metrics = agent.event_loop_metrics
        tool_calls = {name: m.call_count for name, m in metrics.tool_metrics.items() if m.call_count}
        usage = metrics.accumulated_usage
        return ResultData(
            success=True,
            content=content,
            agent=spec.name,
            query_type=request.query_type,
            tools_available=len(spec.tool_names),
            tools_used=sum(tool_calls.values()),
            tool_calls=tool_calls,
            sources=list(state.sources),
            usage=Usage(
                input_tokens=usage.get("inputTokens", 0),
                output_tokens=usage.get("outputTokens", 0),
                total_tokens=usage.get("totalTokens", 0),
            ),
            duration_ms=int((time.monotonic() - started) * 1000),
            stop_reason=stop_reason,
            model=self.model_name,
        )


@functools.cache
def get_orchestrator(settings: Settings) -> Orchestrator:
    """The container's orchestrator: model and knowledge base built once per settings.

    Tests call ``get_orchestrator.cache_clear()``.
    """
    from selador.knowledge.factory import build_knowledge_base

    return Orchestrator(
        settings=settings, model=build_model(settings), knowledge_base=build_knowledge_base(settings)
    )


def run_query(
    request: QueryRequest,
    sink: FrameSink,
    *,
    settings: Settings,
    deadline: float | None = None,
    conversation: Conversation | None = None,
) -> ResultData | None:
    """Answer a query synchronously (one event loop per invocation); see :meth:`Orchestrator.run`.

    A failure to build the orchestrator (a bad model configuration, an unreachable knowledge base)
    also ends in one ``error`` frame rather than an exception.

    Args:
        request: The validated query.
        sink: Where the frames go.
        settings: The container's settings.
        deadline: ``time.monotonic()`` value after which the run is stopped.
        conversation: The session the question belongs to, if any.

    Returns:
        The result data, or ``None`` when the run ended with an error frame.
    """
    try:
        orchestrator = get_orchestrator(settings)
    except Exception as exc:
        logger.exception("could not build the orchestrator")
        code, text = classify_error(exc)
        sink.send(ErrorFrame(code=code, error=text))
        return None
    return run_coroutine(orchestrator.run(request, sink, deadline=deadline, conversation=conversation))


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop and close it without waiting for worker threads.

    Not ``asyncio.run``: on shutdown it joins the default executor with no time limit, and Strands
    runs Bedrock streaming and sync tools there. After the deadline's hard stop, a stalled model
    read or a hung tool would hold the invocation past Lambda's timeout (and past the ``finally``
    blocks that release claims); the abandoned thread is left to finish or die with the sandbox.

    Args:
        coro: The coroutine to run.

    Returns:
        Its result.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # shuts the default executor down with wait=False
