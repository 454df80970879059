"""Drives Kuvert with Mailgun's official Python library (PyPI `mailgun`), as code written
for Mailgun would: `python3 mailgun_py.py URL KEY DOMAIN STEP [ARG...]`. Each step prints
one JSON object of what the library returned, parsed by the library's own means
(`Response.json()`, `stream()`); the Rust test asserts on it."""

import json
import sys

from mailgun.client import Client

url, key, domain, step, *args = sys.argv[1:]
client = Client(auth=("api", key), api_url=url)
out = {}

if step == "send":
    # A message with a tag, a variable and an attachment, as multipart/form-data.
    to = args[0]
    r = client.messages.create(
        domain=domain,
        data={
            "from": f"Shop <news@{domain}>",
            "to": [to],
            "subject": "Your order",
            "text": "Thank you for your order.",
            "html": "<p>Thank you for your <a href=\"https://shop.example/o/7\">order</a>.</p>",
            "o:tag": ["orders"],
            "o:tracking-opens": True,
            "v:order-id": "7",
            "h:X-Shop": "spring",
        },
        files=[("attachment", ("invoice.txt", b"Invoice 7: 12.00 EUR\n"))],
    )
    out = {"status": r.status_code, "body": r.json()}
elif step == "send_form":
    # Without files the library sends a urlencoded form; booleans as True/False.
    to = args[0]
    r = client.messages.create(
        domain=domain,
        data={
            "from": f"news@{domain}",
            "to": to,
            "subject": "Plain",
            "text": "A urlencoded send.",
            "o:tracking": False,
        },
    )
    out = {"status": r.status_code, "body": r.json()}
elif step == "send_template":
    to, template = args
    r = client.messages.create(
        domain=domain,
        data={
            "from": f"news@{domain}",
            "to": to,
            "subject": "From a template",
            "template": template,
            "t:variables": json.dumps({"name": "Ann"}),
        },
    )
    out = {"status": r.status_code, "body": r.json()}
elif step == "templates":
    # A template and a second version made through the library, read back, and sent.
    to = args[0]
    created = client.templates.create(
        domain=domain,
        data={
            "name": "order-shipped",
            "description": "Sent when an order ships",
            "template": "<p>Your order {{order}} is on its way, {{name}}.</p>",
            "tag": "v1",
            "comment": "first",
            "headers": json.dumps({"Subject": "Order {{order}} shipped"}),
        },
    )
    version = client.templates.create(
        domain=domain,
        template_name="order-shipped",
        versions=True,
        data={"template": "<p>Order {{order}} left us today, {{name}}.</p>", "tag": "v2", "active": "yes"},
    )
    listed = client.templates.get(domain=domain, filters={"limit": 10})
    active = client.templates.get(domain=domain, template_name="order-shipped", filters={"active": "yes"})
    versions = client.templates.get(domain=domain, template_name="order-shipped", versions=True)
    v1 = client.templates.get(domain=domain, template_name="order-shipped", versions=True, tag="v1")
    changed = client.templates.put(
        domain=domain, template_name="order-shipped", versions=True, tag="v1", data={"template": "<p>new</p>"}
    )
    sent = client.messages.create(
        domain=domain,
        data={
            "from": f"news@{domain}",
            "to": to,
            "template": "order-shipped",
            "t:version": "v1",
            "t:variables": json.dumps({"order": "42", "name": "Ann"}),
            "o:tag": ["shipping"],
        },
    )
    missing = client.templates.get(domain=domain, template_name="no-such-template")
    out = {
        "created": {"status": created.status_code, "body": created.json()},
        "version": {"status": version.status_code, "body": version.json()},
        "listed": listed.json(),
        "active": active.json(),
        "versions": versions.json(),
        "v1": v1.json(),
        "changed": {"status": changed.status_code, "body": changed.json()},
        "sent": {"status": sent.status_code, "body": sent.json()},
        "missing": {"status": missing.status_code, "body": missing.json()},
    }
elif step == "lists":
    # A mailing list and its members: Kuvert's list and contacts.
    list_address = f"news@{domain}"
    created = client.lists.create(domain=domain, data={"address": list_address})
    ann = client.lists_members.create(
        domain=domain,
        address=list_address,
        data={"address": "ann@example.com", "name": "Ann", "vars": json.dumps({"city": "Oslo"}), "subscribed": True},
    )
    bob = client.lists_members.create(domain=domain, address=list_address, data={"address": "bob@example.com"})
    never = client.lists_members.create(
        domain=domain, address=list_address, data={"address": "dan@example.com", "subscribed": False}
    )
    twice = client.lists_members.create(domain=domain, address=list_address, data={"address": "ann@example.com"})
    upserted = client.lists_members.create(
        domain=domain, address=list_address, data={"address": "ann@example.com", "name": "Ann B", "upsert": True}
    )
    got = client.lists.get(domain=domain, address=list_address)
    member = client.lists_members.get(domain=domain, address=list_address, member_address="ann@example.com")
    # Every member, a page of one at a time, following each page's last address.
    listed, last = [], ""
    for _ in range(10):
        page = client.lists_members_pages.get(
            domain=domain, address=list_address, filters={"limit": 1, "page": "next", "address": last}
        ).json()
        if not page["items"]:
            break
        listed.extend(m["address"] for m in page["items"])
        last = page["items"][-1]["address"]
    bob_out = client.lists_members.put(
        domain=domain, address=list_address, member_address="bob@example.com", data={"subscribed": False}
    )
    left = client.lists_members.delete(domain=domain, address=list_address, member_address="ann@example.com")
    after = client.lists_members.get(domain=domain, address=list_address, member_address="ann@example.com")
    undefined = client.lists_members.create(
        domain=domain, address=list_address, data={"address": "cy@example.com", "vars": json.dumps({"shoe": 42})}
    )
    pages = client.lists_pages.get()
    out = {
        "created": {"status": created.status_code, "body": created.json()},
        "ann": ann.json(),
        "bob": bob.json(),
        "twice": {"status": twice.status_code, "body": twice.json()},
        "upserted": upserted.json(),
        "got": got.json(),
        "member": member.json(),
        "listed": listed,
        "bob out": bob_out.json(),
        "never": {"status": never.status_code, "body": never.json()},
        "left": left.json(),
        "after": after.json(),
        "undefined": {"status": undefined.status_code, "body": undefined.json()},
        "pages": pages.json(),
    }
elif step == "tags":
    # The tags counted so far, one tag's counters, and a tag forgotten.
    listed = client.tags.get(domain=domain)
    one = client.tags.get(domain=domain, tag_name=args[0])
    stats = client.tags_stats.get(
        domain=domain, tag_name=args[0], filters={"event": ["accepted", "delivered"], "duration": "1d"}
    )
    described = client.tags.put(domain=domain, tag_name=args[0], data={"description": "x"})
    deleted = client.tags.delete(domain=domain, tag_name=args[0])
    gone = client.tags.get(domain=domain, tag_name=args[0])
    out = {
        "listed": listed.json(),
        "one": one.json(),
        "stats": {"status": stats.status_code, "body": stats.json()},
        "described": {"status": described.status_code, "body": described.json()},
        "deleted": deleted.json(),
        "gone": gone.status_code,
    }
elif step == "validate":
    answers = {}
    for address in args:
        r = client.addressvalidate.get(filters={"address": address, "provider_lookup": "false"})
        answers[address] = {"status": r.status_code, "body": r.json()}
    out = answers
elif step == "send_batch":
    # A batch: each address gets its own message, filled from recipient-variables.
    r = client.messages.create(
        domain=domain,
        data={
            "from": f"news@{domain}",
            "to": args,
            "subject": "Hi %recipient.first%",
            "text": "Hello %recipient.first%, this is for %recipient% alone.",
            "recipient-variables": json.dumps(
                {a: {"first": a.split("@")[0].title()} for a in args}
            ),
        },
    )
    out = {"status": r.status_code, "body": r.json()}
elif step == "send_mime":
    to = args[0]
    # As Python's email package writes it: LF line ends, which Kuvert makes CRLF.
    mime = (
        f"From: news@{domain}\nTo: {to}\nSubject: Whole\n"
        "Content-Type: text/plain\n\nSent whole.\n"
    ).encode()
    r = client.mimemessage.create(domain=domain, data={"to": to}, files={"message": mime})
    out = {"status": r.status_code, "body": r.json()}
elif step == "events":
    # Every event of the last hour, oldest first, two a page: the library follows `paging`.
    import time

    items = list(
        client.events.stream(
            domain=domain,
            filters={"begin": str(time.time() - 3600), "ascending": "yes", "limit": 2},
        )
    )
    delivered = client.events.get(domain=domain, filters={"event": "delivered", "limit": 300})
    out = {
        "items": items,
        "delivered": delivered.json()["items"],
        "status": delivered.status_code,
    }
elif step == "stats":
    r = client.stats_total.get(
        domain=domain,
        filters={"event": ["accepted", "delivered", "failed"], "duration": "1m", "resolution": "day"},
    )
    out = {"status": r.status_code, "body": r.json()}
elif step == "suppressions":
    # Add, get, list (paged by stream()) and delete a bounce and an unsubscribe.
    addresses = args
    out["added"] = [
        client.bounces.create(domain=domain, data={"address": a}).json() for a in addresses
    ]
    out["unsubscribed"] = client.unsubscribes.create(
        domain=domain, data={"address": "unsub@example.com", "tag": "*"}
    ).json()
    got = client.bounces.get(domain=domain, bounce_address=addresses[0])
    out["got"] = {"status": got.status_code, "body": got.json()}
    out["listed"] = [
        b["address"] for b in client.bounces.stream(domain=domain, filters={"limit": 2})
    ]
    out["unsubscribes"] = client.unsubscribes.get(domain=domain).json()["items"]
    missing = client.complaints.get(domain=domain, complaint_address=addresses[0])
    out["not a complaint"] = {"status": missing.status_code, "body": missing.json()}
    deleted = client.bounces.delete(domain=domain, bounce_address=addresses[0])
    out["deleted"] = {"status": deleted.status_code, "body": deleted.json()}
    gone = client.bounces.get(domain=domain, bounce_address=addresses[0])
    out["gone"] = {"status": gone.status_code, "body": gone.json()}
    deleted = client.unsubscribes.delete(domain=domain, unsubscribe_address="unsub@example.com")
    out["unsubscribe deleted"] = {"status": deleted.status_code, "body": deleted.json()}
    refused = client.bounces.create(
        domain=domain, data={"address": "x@example.com", "code": "421", "error": "full"}
    )
    out["refused"] = {"status": refused.status_code, "body": refused.json()}
    # A CSV file of bounces, as Mailgun's import takes it.
    csv = b"address,code,error\nimp1@example.com,550,\n\"imp2@example.com\",,\n"
    imported = client.bounces_import.create(domain=domain, files={"file": csv})
    out["imported"] = {"status": imported.status_code, "body": imported.json()}
    out["import listed"] = [
        b["address"] for b in client.bounces.stream(domain=domain, filters={"limit": 100})
    ]
    refused_csv = client.unsubscribes_import.create(
        domain=domain, files={"file": b"address,created_at\nx@example.com,yesterday\n"}
    )
    out["import refused"] = {"status": refused_csv.status_code, "body": refused_csv.json()}
    whitelist = client.whitelists.get(domain=domain)
    out["whitelists"] = {"status": whitelist.status_code, "body": whitelist.json()}
elif step == "domain_create":
    r = client.domains.create(data={"name": args[0]})
    out = {"status": r.status_code, "body": r.json()}
elif step == "domain_verify":
    listed = client.domainlist.get()
    got = client.domains.get(domain=args[0])
    verified = client.domains.put(domain=args[0], verify=True)
    deleted = client.domains.delete(domain=args[0])
    gone = client.domains.get(domain=args[0])
    out = {
        "listed": listed.json(),
        "got": got.json(),
        "verified": {"status": verified.status_code, "body": verified.json()},
        "deleted": deleted.json(),
        "gone": gone.status_code,
    }
elif step == "webhooks":
    # Registers the receiver for delivered and permanent_fail, lists, reads, updates.
    hook = args[0]
    created = client.domains_webhooks.create(domain=domain, data={"id": "delivered", "url": [hook]})
    twice = client.domains_webhooks.create(domain=domain, data={"id": "delivered", "url": [hook]})
    failed = client.domains_webhooks.create(
        domain=domain, data={"id": "permanent_fail", "url": [hook + "?fail"]}
    )
    listed = client.domains_webhooks.get(domain=domain)
    got = client.domains_webhooks.get(domain=domain, webhook_name="delivered")
    # The permanent_fail endpoint moves: the old URL goes, the new one gets the events.
    updated = client.domains_webhooks.put(
        domain=domain, webhook_name="permanent_fail", data=[("url", hook + "?moved")]
    )
    out = {
        "updated": updated.json(),
        "created": {"status": created.status_code, "body": created.json()},
        "twice": {"status": twice.status_code, "body": twice.json()},
        "failed": failed.json(),
        "listed": listed.json(),
        "got": got.json(),
    }
elif step == "webhook_delete":
    deleted = client.domains_webhooks.delete(domain=domain, webhook_name=args[0])
    gone = client.domains_webhooks.get(domain=domain, webhook_name=args[0])
    out = {"deleted": deleted.json(), "gone": gone.status_code}
elif step == "verify_signatures":
    # Each body's signature as Mailgun documents the check: HMAC-SHA256 of timestamp and
    # token under the signing key, in hex.
    import hashlib
    import hmac

    signing_key, bodies = args[0], json.loads(sys.stdin.read())
    out = {
        "valid": [
            hmac.compare_digest(
                b["signature"]["signature"],
                hmac.new(
                    signing_key.encode(),
                    (b["signature"]["timestamp"] + b["signature"]["token"]).encode(),
                    hashlib.sha256,
                ).hexdigest(),
            )
            for b in bodies
        ]
    }
elif step == "refused":
    # Options Kuvert does not carry out: each answered 400 in Mailgun's shape.
    to = args[0]
    answers = {}
    for name, value in [("o:testmode", "yes"), ("o:sending-ip", "192.0.2.1"), ("amp-html", "<html></html>")]:
        r = client.messages.create(
            domain=domain,
            data={"from": f"news@{domain}", "to": to, "subject": "x", "text": "x", name: value},
        )
        answers[name] = {"status": r.status_code, "body": r.json()}
    r = client.messages.create(
        domain="unknown.example",
        data={"from": "a@unknown.example", "to": to, "subject": "x", "text": "x"},
    )
    answers["unknown domain"] = {"status": r.status_code, "body": r.json()}
    bad = Client(auth=("api", "wrong-key"), api_url=url)
    r = bad.messages.create(
        domain=domain, data={"from": f"news@{domain}", "to": to, "subject": "x", "text": "x"}
    )
    answers["wrong key"] = {"status": r.status_code, "body": r.json()}
    out = answers
else:
    raise SystemExit(f"unknown step {step}")

print(json.dumps(out))
