"""Claims that only a test knows: a fake experiment needs a claim in the claim list, as a real
one does, so tests add theirs for the time they run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stabletrain.lab import claims
from stabletrain.lab.claims import Claim, Group


def fake_claim(
    claim_id: str, title: str = "", text: str = "a fake claim", group: Group = "S"
) -> Claim:
    """A claim for a test's experiment; its title defaults to ``"fake <ID>"``."""
    return Claim(claim_id, group, title or f"fake {claim_id}", text, (), "a fake measurement")


@contextmanager
def known_claims(*found: Claim | str) -> Iterator[None]:
    """Within the block, :func:`~stabletrain.lab.claims.get_claim` also knows ``found`` (claims,
    or IDs made into :func:`fake_claim`). :data:`~stabletrain.lab.claims.CLAIM_IDS` is left as
    it is: the lab still orders and lists these IDs as outside the claim list."""
    with pytest.MonkeyPatch.context() as mp:
        for c in found:
            claim = fake_claim(c) if isinstance(c, str) else c
            mp.setitem(claims._BY_ID, claim.id, claim)
        yield
