"""The welcome email's delivery contract: however its run is interrupted, the user gets exactly one email.

Its effect is an email, not a row: the harness's workers write their emails to files it counts
(``emails_sent``). The email is claimed and recorded around the send (services.send_welcome_email), so a run
killed before or after it, a deploy, a second delivery of the message, Redis restarting or stalling, and a
dropped database connection (retried, tasks.TRANSIENT_ERRORS) all end with one email.
"""

import uuid

from django.contrib.auth import get_user_model

from {{ cookiecutter.project_slug }}.examples.notifications.tasks import send_welcome_email
from {{ cookiecutter.project_slug }}.taskqueue.contracts import DeliveryContract
from tests.contracts.harness import contract_tests, emails_sent

User = get_user_model()


def new_user() -> list[int]:
    name = f"contract-{uuid.uuid4().hex[:12]}"
    return [User.objects.create_user(username=name, email=f"{name}@example.com").pk]


WELCOME_EMAIL = DeliveryContract(
    send_welcome_email,
    args=new_user,
    effect=lambda user_id: emails_sent(to=User.objects.get(pk=user_id).email),
)
test_welcome_email_contract = contract_tests(WELCOME_EMAIL)
