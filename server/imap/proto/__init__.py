"""The sans-I/O IMAP protocol core: parse client commands, format server responses.

It owns no socket and no event loop (design §1, style "Protocol code is sans-I/O"): the
asyncio session (``server/imap/session.py``) feeds it bytes and sends the bytes it makes.

Specifications: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501), LITERAL+/LITERAL- (RFC 7888),
SASL-IR (RFC 4959), IDLE (RFC 2177), ENABLE (RFC 5161), LIST-EXTENDED (RFC 5258), LIST-STATUS
(RFC 5819), MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315), CONDSTORE/QRESYNC (RFC 7162), MOVE
(RFC 6851), ID (RFC 2971), NAMESPACE (RFC 2342), ESEARCH (RFC 4731), SORT/THREAD (RFC 5256),
BINARY (RFC 3516), SPECIAL-USE CREATE (RFC 6154), QUOTA (RFC 9208, GETQUOTA/GETQUOTAROOT).

Modules: :mod:`.parser` (framing, literals, limits), :mod:`.grammar` (ABNF rules),
:mod:`.commands` (command types), :mod:`.events`, :mod:`.errors`, :mod:`.limits`,
:mod:`.response` (responses and codes), :mod:`.message` (ENVELOPE, BODYSTRUCTURE, sections),
:mod:`.mailbox` (modified UTF-7, INBOX), :mod:`.sequence`, :mod:`.states` (state table).

Example, as the session uses it::

    from server.imap.proto import (
        CommandParser, Limits, NeedData, ContinuationRequest, ContinuationLine,
        ProtocolErrorEvent, Command, Continuation, TaggedResponse, Code, error_response,
    )

    parser = CommandParser(Limits(max_literal=50 * 2**20))
    parser.receive_data(await reader.read(65536))
    while not isinstance(event := parser.next_event(), NeedData):
        if isinstance(event, ContinuationRequest):
            writer.write(Continuation(event.text).to_bytes())
        elif isinstance(event, ProtocolErrorEvent):
            writer.write(error_response(event).to_bytes())
            if event.close_connection:
                writer.close()
        elif isinstance(event, Command):
            ...  # check states.is_allowed(state, event), run it, then e.g.
            writer.write(TaggedResponse(event.tag, "OK", "done", Code.READ_WRITE).to_bytes())

    # AUTHENTICATE and IDLE read raw lines: after sending "+ ..." call
    parser.expect_line()  # the next event is ContinuationLine(data=b"DONE") (or an error)
"""

from .commands import Command
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    ContinuationLine,
    ContinuationRequest,
    NeedData,
    ProtocolErrorEvent,
)
from .grammar import decode_sasl_response
from .limits import Limits
from .parser import CommandParser, Event
from .response import (
    Code,
    Continuation,
    FetchResponse,
    ResponseCode,
    TaggedResponse,
    UntaggedData,
    UntaggedStatus,
    error_response,
)
from .sequence import SequenceSet
from .states import State, is_allowed, requires_tls

__all__ = [
    "NEED_DATA",
    "Code",
    "Command",
    "CommandParser",
    "Continuation",
    "ContinuationLine",
    "ContinuationRequest",
    "Event",
    "FetchResponse",
    "Limits",
    "LocalProtocolError",
    "NeedData",
    "ProtocolError",
    "ProtocolErrorEvent",
    "RemoteProtocolError",
    "ResponseCode",
    "SequenceSet",
    "State",
    "TaggedResponse",
    "UntaggedData",
    "UntaggedStatus",
    "decode_sasl_response",
    "error_response",
    "is_allowed",
    "requires_tls",
]
