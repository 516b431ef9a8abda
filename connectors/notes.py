"""Notes: the optional connector capability that puts a recording's summary in the CRM (DESIGN §7).

A connector that can write notes sets ``Connector.notes_supported`` and
implements ``write_notes`` and ``find_note``; one that cannot keeps the
defaults (``worker.pipeline.notes`` reports ``unsupported`` and sends nothing).

The pipeline decides, from the ledger, what each note needs and hands the
connector one ``NoteWrite`` per (recording, connection):

* ``note_id`` None: create the note (``title``, ``html``, ``timestamp``) and
  attach it to every ``targets`` record;
* ``note_id`` set and ``html`` not None: change the note's content in place,
  then attach it to ``targets`` not in ``attached``;
* ``note_id`` set and ``html`` None: the content is unchanged, only attach
  it to the new ``targets``. A note the CRM no longer has cannot be created
  again without its content: answer ``failed`` with ``note_id`` None, and the
  pipeline sends it whole next time.

The answer is one ``NoteResult`` per ``NoteWrite``, in order. A note the CRM
no longer has (deleted by a person) is created again and reported
``created`` with its new id. A target the CRM refuses (deleted record) is left
out of ``attached`` with its reason in ``refused``; it never sinks the note.
Failures of a whole call raise the errors of ``connectors.base`` (auth,
transient, permanent) like ``write`` does.

``find_note`` is the crash guard: the pipeline records its intent before a
call that may create a note, and when it finds that intent still pending (a
worker died between the CRM's answer and the ledger write, or the answer was
lost) it asks the CRM for a note with this title on the first target created
since the intent (``exclude``: notes the ledger gives to other recordings),
instead of creating a second one.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True, order=True)
class NoteTarget:
    """A record the note is attached to: its CRM object and id."""

    object: str
    record_id: str


@dataclass(frozen=True)
class NoteWrite:
    """What to do with one recording's note on one connection (see the module docstring)."""

    key: str  # the recording id: the note's identity for results and logs
    title: str  # plain text, e.g. "Siro: Discovery call"
    html: str | None  # the body as safe HTML (``render_html``); None: content unchanged
    timestamp: dt.datetime  # when the conversation happened (aware, UTC)
    targets: tuple[NoteTarget, ...]  # every record the note must be attached to
    note_id: str | None = None  # the CRM id the ledger knows; None: create
    attached: frozenset[NoteTarget] = frozenset()  # targets the ledger knows are attached


@dataclass(frozen=True)
class NoteResult:
    """What the CRM answered for one ``NoteWrite``.

    ``outcome``: ``created`` (a new note, also after the old one was deleted
    in the CRM), ``updated`` (content changed or a target attached) or
    ``failed`` (``reason`` says why; ``note_id`` is set when the note exists
    but could not be changed).
    """

    key: str
    outcome: str
    note_id: str | None = None
    attached: frozenset[NoteTarget] = frozenset()  # every target the note is attached to now
    refused: Mapping[NoteTarget, str] = field(default_factory=dict)  # targets the CRM refused, why
    reason: str | None = None


class NotesUnsupported(NotImplementedError):
    """Raised by the default ``write_notes``: this connector does not write notes."""


def render_html(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """The note body: each section's name as a heading and its content as paragraphs.

    A summary is untrusted text (what a model heard in a conversation), so
    everything is escaped; line breaks in a section become paragraphs.
    """
    parts = []
    for name, content in sections:
        if name:
            parts.append(f"<p><b>{html_lib.escape(name)}</b></p>")
        for paragraph in (line.strip() for line in (content or "").splitlines()):
            if paragraph:
                parts.append(f"<p>{html_lib.escape(paragraph)}</p>")
    return "".join(parts) or f"<p>{html_lib.escape(title)}</p>"
