"""Sending summary notes exactly once: claims, intents, look-ups and the CRM's answers (DESIGN §7).

``NoteSender.send`` takes the notes the stage (``worker.pipeline.notes``)
decided must go to one connection and follows the ledger's protocol
(``worker.ledger.notes``):

1. **claim** each note (``Ledger.claim_note``) and decide again from the state
   under the claim: another run may have written it since the stage read it;
   a note another run holds is ``failed``, ``busy``, and retried later;
2. **look up** (``Connector.find_note``) a note whose earlier intent has no
   answer (a worker killed, an answer lost): on its linked records in turn,
   never a note the ledger or this pass gives to another recording; one found
   is kept at once (``Ledger.adopt_note``) and changed in place;
3. **mark the intent** just before each call (``Ledger.mark_note_intent``),
   which also renews the claim or finds it lost (nothing is sent then);
4. **send** all of them in one ``Connector.write_notes`` call; a transient
   failure settles what the CRM had answered (``exc.partial``) and is retried
   after looking up what the lost answer may have created;
5. **settle** each answer (``Ledger.settle_note``), or release the claim and
   keep the intent when there is none: only an answer ever clears an intent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.base import Connector
from connectors.notes import NoteResult, NoteTarget
from worker.errors import SoftTimeLimit, TransientError, WritebackError
from worker.limits.backoff import RetryPolicy
from worker.report import NoteOutcome

if TYPE_CHECKING:  # the stage imports this module
    from worker.ledger.notes import NoteState
    from worker.pipeline.notes import NoteJob

log = logging.getLogger(__name__)

#: How far before a note intent a CRM's clock may put the note's creation.
CLOCK_SKEW = timedelta(minutes=5)
#: The records a look-up asks for the note on, at most (one request each, a rare path).
MAX_LOOKUPS = 3
#: Notes of other recordings with the same title a look-up steps over on one record, at most.
MAX_STEPS = 5

Decide = Callable[["NoteJob", "NoteState | None"], bool]  # True: the note must be sent


class NoteSender:
    """Sends one connection's notes; see the module docstring."""

    def __init__(self, connector: Connector, ledger: Any, retry: RetryPolicy, lease_s: float) -> None:
        self.connector = connector
        self.ledger = ledger  # worker.ledger.Ledger | None
        self.retry = retry
        self.lease_s = lease_s

    def send(self, jobs: list[NoteJob], decide: Decide) -> None:
        """Claim, decide again (``decide``: the stage's rule), look up, send and settle ``jobs``."""
        jobs = self._claim(jobs, decide)
        attempt, started = 0, datetime.now(UTC)
        while jobs:
            try:
                self._recover(jobs)
                jobs = self._mark_intents(jobs)
                results = self.connector.write_notes([job.write for job in jobs]) if jobs else []
            except SoftTimeLimit:
                raise  # the claims lapse and the intents stay: the task's retry looks the notes up
            except WritebackError as exc:
                jobs = self._take_partial(jobs, exc)
                if not isinstance(exc, TransientError) or attempt >= self.retry.max_retries:
                    self._fail(jobs, exc)
                    return
                wait = self.retry.delay(attempt, exc.retry_after)
                log.warning("notes failed (%s); retry %d/%d in %.1fs", exc, attempt + 1, self.retry.max_retries,
                            wait)
                self.retry.sleep(wait)
                attempt += 1
                for job in jobs:  # whatever the lost answer created or re-created is looked up first
                    job.intent_at = job.intent_at or started
                continue
            for job, result in zip(jobs, results, strict=True):
                self._settle(job, result)
            return

    # -- the protocol's steps -------------------------------------------------------

    def _claim(self, jobs: list[NoteJob], decide: Decide) -> list[NoteJob]:
        if self.ledger is None:
            return [job for job in jobs if decide(job, None)]
        held = []
        for job in jobs:
            claim = self.ledger.claim_note(job.write.key, job.connection.display_name, self.connector.note_object,
                                           self.lease_s)
            if claim is None:
                self._busy(job)
                continue
            job.token = claim.token
            if not decide(job, claim.state):  # written by another run meanwhile: nothing to send now
                self.ledger.release_note(job.write.key, job.connection.display_name, claim.token)
                continue
            job.intent_at = claim.state.intent_at if claim.state else None
            held.append(job)
        return held

    def _recover(self, jobs: list[NoteJob]) -> None:
        """Look up each note whose create may have happened unseen, before anything is created."""
        taken = {job.write.note_id for job in jobs if job.write.note_id and job.intent_at is None}
        for job in jobs:
            if job.intent_at is None:
                continue
            found = self._find(job, taken)
            if found is not None:
                taken.add(found)
                if found != job.write.note_id:
                    log.info("note of recording %s was created before its answer was stored: %s",
                             job.write.key, found)
                    if self.ledger is not None:
                        self.ledger.adopt_note(job.write.key, job.connection.display_name, found)
                    # Its content and links are not known for sure: send both again, in place.
                    job.write = replace(job.write, note_id=found, attached=frozenset(), html=job.full_html)
            job.intent_at = None

    def _find(self, job: NoteJob, taken: set[str]) -> str | None:
        since = job.intent_at - CLOCK_SKEW  # type: ignore[operator]
        skip = set(taken) - {job.write.note_id}
        for first in job.write.targets[:MAX_LOOKUPS]:
            targets = (first, *(target for target in job.write.targets if target != first))
            for _ in range(MAX_STEPS):
                found = self.connector.find_note(replace(job.write, targets=targets), since, frozenset(skip))
                if found is None or found in skip:  # none, or a connector that ignores ``exclude``
                    break
                owner = self.ledger.note_owner(job.connection.display_name, found) if self.ledger else None
                if owner in (None, job.write.key):
                    return found
                skip.add(found)  # another recording's note with the same title
        return None

    def _mark_intents(self, jobs: list[NoteJob]) -> list[NoteJob]:
        if self.ledger is None:
            return jobs
        kept = []
        for job in jobs:
            if self.ledger.mark_note_intent(job.write.key, job.connection.display_name, job.token, self.lease_s):
                kept.append(job)
            else:  # our claim lapsed and another run took the note: it is that run's now
                self._busy(job)
        return kept

    def _take_partial(self, jobs: list[NoteJob], exc: WritebackError) -> list[NoteJob]:
        """Settle the notes a failed call had answered (``exc.partial``); the jobs still to send."""
        answered = {result.key: result for result in exc.partial if isinstance(result, NoteResult)}
        for job in jobs:
            if job.write.key in answered:
                self._settle(job, answered[job.write.key])
        return [job for job in jobs if job.write.key not in answered]

    def _settle(self, job: NoteJob, result: NoteResult) -> None:
        failed = result.outcome == "failed"
        if failed:
            job.decide(NoteOutcome.FAILED, result.reason or "the CRM refused the note", result.note_id,
                       result.attached)
        else:
            refused = "; ".join(f"{target.object} {target.record_id}: {why}"
                                for target, why in sorted(result.refused.items()))
            job.decide(NoteOutcome(result.outcome), f"not attached to {refused}" if refused else None,
                       result.note_id, result.attached)
        if self.ledger is None:
            return
        name = job.connection.display_name
        if result.note_id is None:  # no note the CRM confirmed (it may have made one): the intent stays
            self.ledger.release_note(job.write.key, name, job.token)
            return
        # A failed change stores no hash: the content is sent again next time.
        self.ledger.settle_note(job.write.key, name, self.connector.note_object, result.note_id,
                                None if failed else job.content_hash, _pairs(result.attached),
                                _pairs(result.refused), token=job.token)

    def _fail(self, jobs: list[NoteJob], exc: WritebackError) -> None:
        transient = isinstance(exc, TransientError)
        what = "unavailable" if transient else type(exc).__name__
        for job in jobs:
            job.decide(NoteOutcome.FAILED, f"{what}: {exc}")
            job.transient = transient
            if self.ledger is not None:  # the intent stays: the call may have created the note
                self.ledger.release_note(job.write.key, job.connection.display_name, job.token)

    @staticmethod
    def _busy(job: NoteJob) -> None:
        job.decide(NoteOutcome.FAILED, "busy: another run is writing this note now; retried later")
        job.transient = True


def _pairs(targets: Any) -> list[tuple[str, str]]:
    return [(target.object, target.record_id) for target in targets if isinstance(target, NoteTarget)]
