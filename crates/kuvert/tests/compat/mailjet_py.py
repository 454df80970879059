"""Drives Kuvert with Mailjet's official Python library (PyPI `mailjet-rest`), as code
written for Mailjet would: `python3 mailjet_py.py URL KEY DOMAIN STEP [ARG...]`. The key
pair is Kuvert's key as the secret and its first ten characters as the API key. Each step
prints one JSON object of what the library returned, parsed by its own means
(`Response.json()`; an error answer raises, and its body is read from the exception)."""

import base64
import json
import sys

from mailjet_rest import Client

url, key, domain, step, *args = sys.argv[1:]
pair = (key[:10], key)
v31 = Client(auth=pair, version="v3.1", api_url=url)
v3 = Client(auth=pair, version="v3", api_url=url)
out = {}


def answer(call):
    """What a call answered: its status and JSON, whether the library returned or raised."""
    try:
        r = call()
        return {"status": r.status_code, "body": r.json() if r.content else None}
    except Exception as e:  # the library raises on every 4xx and 5xx
        body = getattr(e, "response_body", None)
        return {
            "status": getattr(e, "status_code", None),
            "error": type(e).__name__,
            "body": json.loads(body) if body else None,
        }


if step == "send":
    # A message with a campaign (Kuvert's tag), an event payload, a custom id and an
    # attachment; the From and subject come from Globals, as django-anymail sends them.
    to = args[0]
    out = answer(
        lambda: v31.send.create(
            data={
                "Globals": {"From": {"Email": f"news@{domain}", "Name": "Shop"}, "Subject": "Your order"},
                "Messages": [
                    {
                        "To": [{"Email": to, "Name": "Ann"}],
                        "TextPart": "Thank you for your order.",
                        "HTMLPart": '<p>Thank you for your <a href="https://shop.example/o/7">order</a>.</p>',
                        "CustomCampaign": "spring",
                        "CustomID": "order-7",
                        "EventPayload": "order=7",
                        "TrackOpens": "enabled",
                        "Headers": {"X-Shop": "spring"},
                        "Attachments": [
                            {
                                "ContentType": "text/plain",
                                "Filename": "invoice.txt",
                                "Base64Content": base64.b64encode(b"Invoice 7: 12.00 EUR\n").decode(),
                            }
                        ],
                    }
                ],
            }
        )
    )
elif step == "template":
    # A stored template made through the API, filled from Variables in a send.
    to = args[0]
    created = answer(lambda: v3.template.create(data={"Name": "receipt", "Description": "A receipt"}))
    tid = created["body"]["Data"][0]["ID"]
    content = answer(
        lambda: v3.template_detailcontent.create(
            id=tid,
            data={
                "Headers": {"Subject": "Receipt for {{name}}"},
                "Html-part": "<p>Thanks, {{name}}: {{total}} EUR.</p>",
                "Text-part": "Thanks, {{name}}: {{total}} EUR.",
            },
        )
    )
    got = answer(lambda: v3.template_detailcontent.get(id=tid))
    listed = answer(lambda: v3.template.get(filters={"Limit": 10}))
    sent = answer(
        lambda: v31.send.create(
            data={
                "Messages": [
                    {
                        "From": {"Email": f"news@{domain}"},
                        "To": [{"Email": to}],
                        "TemplateID": tid,
                        "TemplateLanguage": True,
                        "Variables": {"name": "Ann", "total": "12.00"},
                    }
                ]
            }
        )
    )
    missing = answer(
        lambda: v31.send.create(
            data={
                "Messages": [
                    {
                        "From": {"Email": f"news@{domain}"},
                        "To": [{"Email": to}],
                        "TemplateID": tid,
                        "TemplateLanguage": True,
                        "Variables": {"name": "Ann"},
                    }
                ]
            }
        )
    )
    mailjet_language = answer(
        lambda: v3.template_detailcontent.create(id=tid, data={"Html-part": "<p>{{var:name}}</p>"})
    )
    out = {
        "created": created,
        "content": content,
        "got": got,
        "listed": listed,
        "sent": sent,
        "missing": missing,
        "mailjet language": mailjet_language,
    }
elif step == "history":
    # The copy's events one a page (Limit=1), Offset after Offset, to the delivery.
    message_id = args[0]
    message = answer(lambda: v3.message.get(id=message_id))
    events, offset = [], 0
    while offset < 50:
        page = v3.messagehistory.get(id=message_id, filters={"Limit": 1, "Offset": offset}).json()
        events.extend(page["Data"])
        if not page["Data"] or page["Data"][0]["EventType"] == "sent":
            break
        offset += 1
    listed = answer(lambda: v3.message.get(filters={"ContactAlt": args[1], "Limit": 10, "ShowSubject": True}))
    out = {"message": message, "events": events, "pages": offset + 1, "listed": listed}
elif step == "contacts":
    # A property, a list, a contact added to it with a value, read back, listed, left.
    address = args[0]
    prop = answer(lambda: v3.contactmetadata.create(data={"Name": "first_name", "Datatype": "str", "NameSpace": "static"}))
    lst = answer(lambda: v3.contactslist.create(data={"Name": "Newsletter"}))
    list_id = lst["body"]["Data"][0]["ID"]
    managed = answer(
        lambda: v3.contactslist_managecontact.create(
            id=list_id,
            data={"Email": address, "Name": "Ann", "Action": "addnoforce", "Properties": {"first_name": "Ann"}},
        )
    )
    contact = answer(lambda: v3.contact.get(id=address))
    contact_id = contact["body"]["Data"][0]["ID"]
    data = answer(lambda: v3.contactdata.get(id=contact_id))
    updated = answer(lambda: v3.contactdata.update(id=contact_id, data={"Data": [{"Name": "first_name", "Value": "Anna"}]}))
    in_list = answer(lambda: v3.contact.get(filters={"ContactsList": list_id, "Limit": 10}))
    lists = answer(lambda: v3.contact_getcontactslists.get(id=contact_id))
    metadata = answer(lambda: v3.contactmetadata.get())
    undefined = answer(
        lambda: v3.contactslist_managecontact.create(
            id=list_id, data={"Email": address, "Action": "addforce", "Properties": {"shoe_size": "42"}}
        )
    )
    unsub = answer(
        lambda: v3.contactslist_managecontact.create(id=list_id, data={"Email": address, "Action": "unsub"})
    )
    after = answer(lambda: v3.contact_getcontactslists.get(id=contact_id))
    readded = answer(
        lambda: v3.contactslist_managecontact.create(id=list_id, data={"Email": address, "Action": "addnoforce"})
    )
    still = answer(lambda: v3.contact_getcontactslists.get(id=contact_id))
    list_got = answer(lambda: v3.contactslist.get(id=list_id))
    out = {
        "property": prop,
        "list": lst,
        "managed": managed,
        "contact": contact,
        "data": data,
        "updated": updated,
        "in list": in_list,
        "lists": lists,
        "metadata": metadata,
        "undefined": undefined,
        "unsub": unsub,
        "after": after,
        "readded": readded,
        "still": still,
        "list got": list_got,
    }
elif step == "callbacks":
    # `sent` to the receiver as version 2 (arrays) with credentials in its URL, `open` as
    # version 1; listed, read, moved, and a second `sent` refused.
    hook = args[0]
    with_credentials = hook.replace("http://", "http://hookuser:hookpass@")
    sent = answer(lambda: v3.eventcallbackurl.create(data={"EventType": "sent", "Url": with_credentials, "Version": 2}))
    opened = answer(lambda: v3.eventcallbackurl.create(data={"EventType": "open", "Url": hook + "?first", "Version": 1}))
    open_id = opened["body"]["Data"][0]["ID"]
    moved = answer(lambda: v3.eventcallbackurl.update(id=open_id, data={"Url": hook + "?open"}))
    twice = answer(lambda: v3.eventcallbackurl.create(data={"EventType": "sent", "Url": hook}))
    backup = answer(lambda: v3.eventcallbackurl.create(data={"EventType": "click", "Url": hook, "IsBackup": True}))
    listed = answer(lambda: v3.eventcallbackurl.get())
    got = answer(lambda: v3.eventcallbackurl.get(id=open_id))
    out = {"sent": sent, "opened": opened, "moved": moved, "twice": twice, "backup": backup, "listed": listed, "got": got}
elif step == "erase":
    # Mailjet's GDPR deletion: the library has no name for /v4/contacts, only its raw call.
    address = args[0]
    lst = v3.contactslist.create(data={"Name": "Erasure"}).json()["Data"][0]["ID"]
    v3.contactslist_managecontact.create(id=lst, data={"Email": address, "Action": "addforce"})
    contact_id = v3.contact.get(id=address).json()["Data"][0]["ID"]
    erased = answer(lambda: v3.api_call("DELETE", url.rstrip("/") + f"/v4/contacts/{contact_id}"))
    gone = answer(lambda: v3.contact.get(id=address))
    readded = answer(
        lambda: v3.contactslist_managecontact.create(id=lst, data={"Email": address, "Action": "addforce"})
    )
    out = {"erased": erased, "gone": gone, "readded": readded}
elif step == "many":
    # managemanycontacts: a job, polled until it is done, as code written for Mailjet does.
    import time

    lst = v3.contactslist.create(data={"Name": "Bulk"}).json()["Data"][0]["ID"]
    contacts = [
        {"Email": f"bulk{i}@example.com", "Name": f"Bulk {i}", "Properties": {"first_name": f"B{i}"}}
        for i in range(3)
    ] + [{"Email": "-dash@example.com", "Name": "@alice", "Properties": {"first_name": "+44 20 7946 0958"}}]
    created = answer(
        lambda: v3.contactslist_managemanycontacts.create(id=lst, data={"Action": "addnoforce", "Contacts": contacts})
    )
    job = created["body"]["Data"][0]["JobID"]
    polled = None
    for _ in range(100):
        polled = answer(lambda: v3.contactslist_managemanycontacts.get(id=lst, action_id=job))
        if polled["body"]["Data"][0]["Status"] != "In Progress":
            break
        time.sleep(0.1)
    in_list = answer(lambda: v3.contact.get(filters={"ContactsList": lst, "Limit": 10}))
    out = {"created": created, "polled": polled, "in list": in_list, "list": lst}
elif step == "stats":
    out = answer(
        lambda: v3.statcounters.get(
            filters={"CounterSource": "APIKey", "CounterTiming": "Event", "CounterResolution": "Lifetime"}
        )
    )
elif step == "refused":
    # What Kuvert does not do, each answered in Mailjet's error shape.
    to = args[0]
    msg = {"From": {"Email": f"news@{domain}"}, "To": [{"Email": to}], "Subject": "x", "TextPart": "x"}
    out["sandbox"] = answer(lambda: v31.send.create(data={"SandboxMode": True, "Messages": [msg]}))
    inline = dict(msg, InlinedAttachments=[{"ContentType": "image/png", "Filename": "a.png", "ContentID": "a", "Base64Content": "AA=="}])
    # One message refused, the other sent: Mailjet's partial answer.
    out["partial"] = answer(lambda: v31.send.create(data={"Messages": [inline, dict(msg, To=[{"Email": "pat@example.com"}])]}))
    out["no body"] = answer(lambda: v31.send.create(data={"Messages": [{"From": msg["From"], "To": msg["To"]}]}))
    out["foreign sender"] = answer(lambda: v31.send.create(data={"Messages": [dict(msg, From={"Email": "a@unknown.example"})]}))
    out["counter source"] = answer(
        lambda: v3.statcounters.get(filters={"CounterSource": "Campaign", "CounterTiming": "Event", "CounterResolution": "Lifetime"})
    )
    out["not found"] = answer(lambda: v3.contactslist.get(id="lst_none"))
    wrong = Client(auth=("kv_wrongpu", key), version="v3.1", api_url=url)
    out["wrong pair"] = answer(lambda: wrong.send.create(data={"Messages": [msg]}))
else:
    raise SystemExit(f"unknown step {step}")

print(json.dumps(out))
