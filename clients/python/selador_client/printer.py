"""What the terminal client prints: status lines, the answer as it streams, the result."""

from __future__ import annotations

import logging
from typing import Any, TextIO


class Printer:
    """Human-readable output: status lines, inline deltas, then the result.

    Answer text goes to ``out`` exactly as the deltas carry it; notes and errors go to ``err``.
    A note in the middle of a streamed line starts with a line break on ``err`` (so a terminal
    showing both stays readable) and leaves ``out`` untouched.
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.streamed = ""
        self._out_mid_line = False  # what was written to ``out`` ends inside a line
        self._screen_mid_line = False  # the same, for a terminal showing ``out`` and ``err``

    def _write_out(self, text: str) -> None:
        if text:
            self.out.write(text)
            self._out_mid_line = self._screen_mid_line = not text.endswith("\n")

    def _end_stream_line(self) -> None:
        if self._out_mid_line:
            self._write_out("\n")

    def status(self, frame: dict[str, Any]) -> None:
        """Print a status frame on a line of its own."""
        self._end_stream_line()
        self._write_out(f"[status] {frame.get('message', '')}\n")
        if frame.get("stage") == "accepted" and frame.get("session_id"):
            token = frame.get("session_token")
            self.note(
                f"session {frame['session_id']}"
                + (
                    f" (continue with --session-id {frame['session_id']} --session-token {token})"
                    if token
                    else ""
                )
            )
        self.out.flush()

    def delta(self, frame: dict[str, Any]) -> None:
        """Append answer text to the current line, as it arrives."""
        text = str(frame.get("content", ""))
        self.streamed += text
        self._write_out(text)
        self.out.flush()

    def message(self, frame: dict[str, Any]) -> None:
        """Print a completed message, unless its text already streamed as deltas."""
        if not self.streamed:
            self._write_out(str(frame.get("content", "")) + "\n")

    def result(self, frame: dict[str, Any]) -> None:
        """Finish the answer and print the result's metadata and sources."""
        data = frame.get("data") or {}
        content = str(data.get("content", ""))
        if not self.streamed.strip():
            self._write_out(content)
        self._end_stream_line()
        if self.streamed and content and self.streamed.strip() != content.strip():
            self._write_out("\n[final answer]\n" + content + "\n")
        stop_reason = data.get("stop_reason")
        if stop_reason == "cancelled":
            self._write_out("[cancelled] the run was stopped before it finished; the answer is incomplete\n")
        elif stop_reason not in (None, "end_turn"):
            self._write_out(f"[stopped early] {stop_reason}\n")
        usage = data.get("usage") or {}
        self._write_out(
            f"\n[result] agent={data.get('agent')} query_type={data.get('query_type')} "
            f"tools_used={data.get('tools_used')}/{data.get('tools_available')} "
            f"tokens={usage.get('total_tokens', 0)} duration={data.get('duration_ms')} ms\n"
        )
        for source in data.get("sources") or []:
            section = f" §{source['section']}" if source.get("section") else ""
            self._write_out(f"  source: {source.get('title')} ({source.get('location')}){section}\n")
        self.out.flush()

    def raw(self, raw: str | bytes) -> None:
        """Print one frame as received (``--json``)."""
        self._write_out((raw if isinstance(raw, str) else raw.decode("utf-8", "replace")) + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """Print an error on stderr."""
        self._end_stream_line()
        self.err.write(f"[error] {text}\n")
        self.err.flush()

    def note(self, text: str) -> None:
        """Print a note on stderr: something ignored on purpose."""
        self.event(f"note: {text}")

    def event(self, text: str) -> None:
        """Print ``[text]`` on stderr: a drop, a reconnection, a cancel."""
        self.out.flush()
        if self._screen_mid_line:
            self.err.write("\n")
            self._screen_mid_line = False
        self.err.write(f"[{text}]\n")
        self.err.flush()


class NotePrinter(logging.Handler):
    """Prints the library's warnings (a message that is not JSON…) as ``[note: …]`` lines."""

    def __init__(self, printer: Printer) -> None:
        super().__init__(logging.WARNING)
        self.printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        """Print one record."""
        self.printer.note(record.getMessage())
