"""Drives Kuvert with django-anymail (PyPI), a third client no one here wrote: its Mailgun
and Mailjet email backends send through Kuvert, and its Mailgun tracking webhook view takes
the posts Kuvert signs. `python3 anymail_py.py URL KEY DOMAIN STEP [ARG...]`; each step
prints one JSON object of what anymail made of the answers."""

import json
import sys
import warnings

import django
from django.conf import settings

url, key, domain, step, *args = sys.argv[1:]
signing_key = args[0] if step == "webhooks" else "unused"
settings.configure(
    INSTALLED_APPS=["anymail"],
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="test only",
    ANYMAIL={
        "MAILGUN_API_KEY": key,
        "MAILGUN_API_URL": url + "/v3",
        "MAILGUN_SENDER_DOMAIN": domain,
        "MAILGUN_WEBHOOK_SIGNING_KEY": signing_key,
        # Mailjet's pair: Kuvert's key's prefix and the key.
        "MAILJET_API_KEY": key[:10],
        "MAILJET_SECRET_KEY": key,
        "MAILJET_API_URL": url + "/v3.1/",
    },
)
django.setup()

from django.urls import include, path  # noqa: E402

urlpatterns = [path("anymail/", include("anymail.urls"))]

out = {}
if step == "send":
    from django.core.mail import EmailMultiAlternatives, get_connection

    esp, to = args
    backend = {"mailgun": "anymail.backends.mailgun.EmailBackend", "mailjet": "anymail.backends.mailjet.EmailBackend"}[esp]
    m = EmailMultiAlternatives(
        f"Sent by anymail's {esp} backend",
        "A text part.",
        f"Shop <news@{domain}>",
        [to],
        connection=get_connection(backend),
    )
    m.attach_alternative("<p>An <b>HTML</b> part.</p>", "text/html")
    m.attach("terms.txt", "The terms.\n", "text/plain")
    m.tags = ["anymail"]
    m.metadata = {"order": "9"}
    m.track_opens = True
    sent = m.send()
    status = m.anymail_status
    out = {
        "sent": sent,
        "status": sorted(status.status),
        "recipients": {a: {"status": r.status, "message_id": r.message_id} for a, r in status.recipients.items()},
    }
elif step in ("webhooks", "mailjet_webhooks"):
    # Kuvert's webhook posts (on stdin), each given to anymail's tracking view of that ESP.
    from anymail.signals import tracking
    from django.test import Client

    seen = []

    def receiver(sender, event, esp_name, **kwargs):
        seen.append(
            {
                "esp": esp_name,
                "event_type": event.event_type,
                "recipient": event.recipient,
                "message_id": event.message_id,
                "tags": event.tags,
                "metadata": event.metadata,
            }
        )

    tracking.connect(receiver, weak=False)
    client = Client()
    statuses = []
    with warnings.catch_warnings():
        # No WEBHOOK_SECRET (basic auth) is set: the signature is what is checked here.
        warnings.simplefilter("ignore")
        for body in json.loads(sys.stdin.read()):
            view = "mailgun" if step == "webhooks" else "mailjet"
            r = client.post(f"/anymail/{view}/tracking/", json.dumps(body), content_type="application/json")
            statuses.append(r.status_code)
    out = {"statuses": statuses, "events": seen}
else:
    raise SystemExit(f"unknown step {step}")

print(json.dumps(out))
