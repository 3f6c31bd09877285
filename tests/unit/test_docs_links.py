"""docs/ and the README stand on their own (SPEC 14): every reference to a page of the
repository is a link that resolves inside it; no file outside the repository and no work
item is named. `.venv/bin/python -m tests.docs_links --fix` links plain mentions."""

from __future__ import annotations

from tests.docs_links import problems


def test_every_cross_reference_is_a_link_inside_the_repository():
    assert problems() == []
