"""The sync protocol's messages (DESIGN §4), as strict msgspec structs.

Versioned: every request and response carries `protocol`. A hub answers an edge that is
one version behind in that version's shape as long as it can, and anything it cannot serve
with 426 and a clear "upgrade" problem, never with data the edge might misread. Unknown
fields are refused (`forbid_unknown_fields`), so a message from a newer peer fails loudly
instead of being half-understood.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# 2: requests sign their time and version and are refused when replayed; bodies are sealed
# (core/sync/auth.py, core/sync/sealed.py). A version-1 edge gets 426 upgrade-edge.
PROTOCOL = 2
OLDEST_SUPPORTED = 2
MAX_OPS_PER_PUSH = 5000
MAX_PAGE = 5000

Kind = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z]+(\.[a-z_]+)+$")]
# No text of the envelope may hold U+0000: PostgreSQL's text refuses it (a 500 for the whole push
# where SQLite stored it), so both backends refuse such a push as malformed (op bodies: core.sync.ops)
NO_NUL = r"^[^\x00]*$"


class Message(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Op(Message):
    """One state change on a node, as it sits in the node's outbox."""

    node_seq: Annotated[int, Meta(ge=1, le=2**63 - 1)]  # a SQLite integer
    id: Annotated[str, Meta(max_length=40, pattern=NO_NUL)]
    kind: Kind
    body: object  # checked per op against its kind (core/sync/ops.py): one bad body is one conflict,
    #               not a refused push that would hold back every op behind it
    wall_time: Annotated[str, Meta(max_length=40, pattern=NO_NUL)]
    mono_ns: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
    boot_id: Annotated[str, Meta(max_length=64, pattern=NO_NUL)]


class PushRequest(Message):
    protocol: int
    node_id: Annotated[str, Meta(pattern=NO_NUL)]
    ops: Annotated[list[Op], Meta(max_length=MAX_OPS_PER_PUSH)]
    # the hub epoch the edge last saw (docs/sync.md "Backups and restore"): a hub restored since
    # applies nothing and answers with its new epoch, so the edge first pushes what it kept
    hub_epoch: Annotated[str, Meta(max_length=64, pattern=NO_NUL)] | None = None


class OpResult(Message):
    node_seq: int
    status: Literal["applied", "duplicate", "rejected"]
    reason: str | None = None


class PushResponse(Message):
    protocol: int
    hub_time: str
    results: list[OpResult]
    hub_epoch: str | None = None  # new at every restore of the hub
    durable_through: int = 0  # the node's ops up to this node_seq are in the hub's latest backup


class Change(Message):
    """A row as the hub holds it now (`row`), or its deletion (`row` is None)."""

    seq: int
    table: str
    key: list
    row: dict | None


class PullResponse(Message):
    protocol: int
    hub_time: str
    changes: list[Change]
    next_after: int
    more: bool
    hub_epoch: str | None = None  # as in PushResponse
    durable_through: int = 0


class EnrollStart(Message):
    """Enrollment step 1 (core/sync/enroll.py): nothing in it lets anyone check a guess of
    the code's secret offline."""

    protocol: int
    code_id: Annotated[str, Meta(pattern=r"^[0-9A-HJ-NP-X]{2}$")]
    node_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    public_key: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    spake: Annotated[str, Meta(pattern=r"^[0-9a-f]{66}$")]


class EnrollChallenge(Message):
    """The hub's answer to step 1: its SPAKE2 message and its proof that it knows the code."""

    protocol: int
    handshake_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
    spake: Annotated[str, Meta(pattern=r"^[0-9a-f]{66}$")]
    hub_confirm: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    root_public_key: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    hub_certificate: Annotated[str, Meta(max_length=4000)]
    attempts_left: int


class EnrollFinish(Message):
    """Enrollment step 2: the device's proof. The answer is an EnrollResponse."""

    protocol: int
    handshake_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
    edge_confirm: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


class EnrollResponse(Message):
    protocol: int
    hub_time: str
    node_id: str
    name: str
    role: str
    venue_ids: list[str]
    root_public_key: str
    node_certificate: str
    hub_certificate: str


encoder = msgspec.json.Encoder()


def decode(data: bytes, kind: type) -> msgspec.Struct:
    """Decode and validate; raises msgspec.ValidationError / DecodeError."""
    return msgspec.json.decode(data, type=kind)
