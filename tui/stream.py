"""A generation's stream into a Transcript, as messages a screen handles (every screen that streams uses it)."""
from __future__ import annotations

import asyncio
from typing import Optional

from tokint_local.client import AsyncGeneration
from tokint_local.errors import DaemonUnavailable, TokintError
from tokint_local.events import Loading, Queued, Started, Summary, TokenEvent

from .link import DaemonLink
from .messages import TranscriptFinished, TranscriptUpdated
from .transcript import Transcript

FRAME_S = 1 / 30  # streamed tokens reach the screen in batches at most this far apart


async def stream_transcript(owner, link: DaemonLink, transcript: Transcript, on_stream=None) -> None:
    """Fill ``transcript`` from a generation stream, posting TranscriptUpdated at most every
    FRAME_S and TranscriptFinished at the end. Used by every screen that streams."""
    pending: list[TokenEvent] = []

    def flush() -> None:
        if pending or transcript.state:
            owner.post_message(TranscriptUpdated(transcript, list(pending)))
            pending.clear()

    timer = owner.set_interval(FRAME_S, lambda: flush() if pending else None)
    stream: Optional[AsyncGeneration] = None
    try:
        stream = link.generate(transcript.request)
        transcript.id = stream.id
        if on_stream is not None:
            on_stream(stream)
        async for event in stream:
            if isinstance(event, TokenEvent):
                transcript.tokens.append(event)
                pending.append(event)
                continue
            if isinstance(event, Queued):
                transcript.state = f"queued ({event.place})"
            elif isinstance(event, Loading):
                transcript.state = "loading pair"
            elif isinstance(event, Started):
                transcript.state = "running"
            elif isinstance(event, Summary):
                transcript.summary = event
                transcript.state = "done" if event.finish_reason in ("stop", "length") else event.finish_reason
            flush()
    except DaemonUnavailable as exc:
        transcript.state, transcript.error = "failed", f"{exc}; what was generated is kept"
    except TokintError as exc:
        transcript.state, transcript.error = "failed", str(exc)
    except asyncio.CancelledError:
        if stream is not None:
            await asyncio.shield(stream.cancel())
        transcript.state = "cancelled"
        raise
    finally:
        timer.stop()
        flush()
        owner.post_message(TranscriptFinished(transcript))
