"""emails_sent(): a contract's effect when the task's work is an email, counted in the files its workers write."""

import pytest
from django.core.mail import EmailMessage
from django.core.mail.backends.filebased import EmailBackend

from tests.contracts import harness


def test_emails_sent_counts_every_email_to_the_address_in_every_workers_file(tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    monkeypatch.setattr(harness, "_outbox", outbox)
    # Two connections (two workers, or two runs): a file each, one or more messages per file.
    for recipients in ([["a@example.com"], ["b@example.com"]], [["Ann <a@example.com>", "c@example.com"]]):
        with EmailBackend(file_path=str(outbox)) as backend:
            backend.send_messages([EmailMessage("Welcome", "Hello", to=to) for to in recipients])

    assert len(list(outbox.glob("*.log"))) == 2
    counts = {address: harness.emails_sent(to=address) for address in ("a@example.com", "b@example.com")}
    assert counts == {"a@example.com": 2, "b@example.com": 1}
    assert harness.emails_sent(to="nobody@example.com") == 0


def test_emails_sent_outside_a_contract_test_says_what_it_needs():
    with pytest.raises(RuntimeError, match="running contract test"):
        harness.emails_sent(to="a@example.com")
