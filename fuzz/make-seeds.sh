#!/usr/bin/env bash
# Writes the seed corpora (fuzz/seeds/<target>/) from testdata/ and kuvert.example.toml, and
# a few hand-made inputs. Run from anywhere; the files it writes are committed. The
# regress-* files (inputs that once failed, copied from fuzz/artifacts/) are kept.
set -euo pipefail
cd "$(dirname "$0")"
root=..
seeds=seeds
mkdir -p "$seeds"
# header_fields/, mailgun_form/ and mailjet_send/ hold hand-made inputs this script does not
# write.
find "$seeds" -type f ! -name 'regress-*' ! -path '*/header_fields/*' \
    ! -path '*/mailgun_form/*' ! -path '*/mailjet_send/*' -delete
mkdir -p "$seeds"/{smtp_command,smtp_data,report,message_headers,tracking_token,send_json,config,contact_csv,segment_filter,template,mta_sts}

verp='b-rcp_01jd3k9m2n4p6q8r0s2t4v6w8x-0f1e2d3c4b5a6978@bounces.sandbox.kuvert.test'
rcpt='ann@example.com'
message_id='msg_01jd3k9m2n4p6q8r0s2t4v6w8x@sandbox.kuvert.test'
# The report samples as the inbound MX gets them: placeholders filled, CRLF line ends.
fill() {
    sed -e "s/{{VERP}}/$verp/g" -e "s/{{RCPT}}/$rcpt/g" -e "s/{{MESSAGE_ID}}/$message_id/g" \
        -e 's/{{FROM}}/Demo <demo@sandbox.kuvert.test>/g' \
        -e 's/{{RETURN_PATH_HOST}}/bounces.sandbox.kuvert.test/g' -e 's/\r$//' -e 's/$/\r/' "$1"
}
for f in "$root"/testdata/reports/*.eml; do
    name=$(basename "$f" .eml)
    fill "$f" >"$seeds/report/$name.eml"
done

# SMTP command lines, one conversation per file (CRLF), and odd single lines.
crlf() { printf '%s\r\n' "$@"; }
crlf 'EHLO client.example' 'AUTH PLAIN AGFwaQBrdl9saXZlX3NlY3JldA==' \
    'MAIL FROM:<news@shop.example> SIZE=1234 BODY=8BITMIME' 'RCPT TO:<ann@example.com>' \
    'RCPT TO:<Bob@Example.COM> NOTIFY=NEVER' 'DATA' 'RSET' 'NOOP' 'QUIT' \
    >"$seeds/smtp_command/submission.txt"
crlf 'HELO mx.example.net' 'MAIL FROM:<>' "RCPT TO:<$verp>" 'RCPT TO:<postmaster@bounces.sandbox.kuvert.test>' \
    'DATA' 'QUIT' >"$seeds/smtp_command/inbound.txt"
crlf 'ehlo x' 'starttls' 'auth login' 'mail from: <a@b.example> size=99999999999999999999' \
    'rcpt to:<>' 'vrfy x' 'help' 'MAIL TO:<a@b.c>' 'RCPT FROM:<x>' 'FRéé' >"$seeds/smtp_command/odd.txt"
printf 'MAIL FROM:<a@b.example>\nRCPT TO:<c@d.example>\r\n' >"$seeds/smtp_command/bare-lf.txt"

# DATA: three bytes of settings (line limit 3+4*a, message limit 64*b, pieces), then the data.
data_seed() { { printf "\\x$1\\x$2\\x$3"; cat; } >"$seeds/smtp_data/$4"; }
fill "$root/testdata/reports/dsn-postfix.eml" | sed -e 's/^\./../' | { cat; printf '.\r\nQUIT\r\n'; } \
    | data_seed f9 ff 07 dsn-postfix.txt
printf 'Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\n' | data_seed f9 ff 01 dots.txt
printf 'a\n.\r\nb\r\n.\nc\r.\r\r\n.\r\nQUIT\r\n' | data_seed f9 ff 02 smuggling.txt
printf 'short limit line that is too long\r\nx\0y\r\n.\r\n' | data_seed 02 01 03 limits.txt

# Received messages: the envelope's recipients on the first line, then the message.
{
    printf 'ann@example.com BOB@example.com secret@example.com\n'
    crlf 'From: "Shop" <news@shop.example>' 'To: Ann <ann@example.com>' 'Cc: bob@example.com' \
        'Bcc: secret@example.com' 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=' \
        'X-Kuvert-Tag: spring, sale' 'X-Kuvert-Track-Opens: yes' 'X-Kuvert-Track-Clicks: no' \
        'X-Kuvert-Require-TLS: on' 'X-Kuvert-Send-At: 2026-11-23T10:00:00Z' \
        'X-Kuvert-Metadata: {"order":' ' 7}' '' 'Hello' '.'
} >"$seeds/message_headers/options.txt"
{
    printf 'ann@example.com\n'
    crlf 'From: a@shop.example' 'From: victim@bank.example' 'To: ann@example.com' '' 'x'
} >"$seeds/message_headers/two-froms.txt"
for f in "$root"/testdata/reports/auto-reply.eml "$root"/testdata/reports/arf-yahoo.eml; do
    { printf '%s %s\n' "$rcpt" "$verp"; fill "$f"; } >"$seeds/message_headers/$(basename "$f" .eml).txt"
done

# Tracking: HTML with links, and strings shaped like tokens.
cat >"$seeds/tracking_token/links.html" <<'HTML'
<p><a href="https://a.example/x?y=1&amp;z=2">A</a> <A class=b HREF='http://b.example'>B</A>
<a href="mailto:x@y.z">M</a> <a data-kuvert-notrack href="https://c.example">C</a>
<abbr>x</abbr> <a href=https://d.example/unquoted>D</a> <a href="https://e.example/&#10;">E</a>
<a href="{{unsubscribe_url}}">unsubscribe</a></body>
HTML
printf 'YnxhY2NfMDFqZDNrOW0ybjRwNnE4cjBzMnQ0djZ3OHh8cmNwXzAxamQzazltMm40cDZxOHIwczJ0NHY2dzh4.0123456789abcdef01234567' \
    >"$seeds/tracking_token/token-shaped.txt"
printf '<a<a <a href="https://x.example/"' >"$seeds/tracking_token/unclosed.html"

# The send API's JSON.
cat >"$seeds/send_json/full.json" <<'JSON'
{"from": "Shop <news@shop.example>", "to": ["Ann <ann@example.com>", "bob@example.com"],
 "cc": "carol@example.org", "bcc": ["dave@example.net"], "reply_to": "help@shop.example",
 "subject": "Spring sale", "text": "Hi Ann\nUnsubscribe: {{unsubscribe_url}}",
 "html": "<p>Hi <a href=\"https://shop.example/sale?a=1&amp;b=2\">sale</a></p>",
 "headers": {"X-Campaign": "spring", "List-Id": "news.shop.example"},
 "attachments": [{"filename": "a.txt", "content_type": "text/plain; charset=utf-8", "content": "aGVsbG8="}],
 "tags": ["spring", "sale"], "metadata": {"order": 7, "nested": {"a": [1, 2]}},
 "send_at": "2027-01-15T10:00:00Z", "tracking": {"opens": true, "clicks": true, "unsubscribe": true},
 "require_tls": true}
JSON
printf '{"from": "a@shop.example", "to": "b@example.com", "subject": "Hi", "text": "x"}' \
    >"$seeds/send_json/minimal.json"
printf '{"from": "\\"Evil\\r\\nBcc: x@y.example\\" <a@shop.example>", "to": "b@example.com", "subject": "x\\r\\nBcc: y@z.example", "headers": {"X-A": "b\\nc"}, "text": "x"}' \
    >"$seeds/send_json/injection.json"

# The configuration sections, from the example file.
awk '/^\[/ { keep = ($0 ~ /^\[(delivery|smtp|webhooks)[].]/) } keep' "$root/kuvert.example.toml" \
    >"$seeds/config/example.toml"
cat >"$seeds/config/routes.toml" <<'TOML'
[delivery]
mode = "relay"
retry_schedule = ["1h30m", "0s", "3d"]
[delivery.relay]
host = "[2001:db8::1]:587"
ca_file = "/nonexistent.pem"
[delivery.routes]
"*.example.com" = "127.0.0.1:2525"
"example.org" = "no-port"
[delivery.destinations."*.example.com"]
connections = 0
[delivery.pools.a]
addresses = [{ ip = "192.0.2.1", ehlo = "out.example.com" }, { ip = "::1", ehlo = "bad_name" }]
[smtp]
max_line_length = 511
data_timeout = "18446744073709551615s"
TOML

# Contact imports: the first byte chooses where the file is cut in two.
printf '\x40email,name,city,age\r\nann@example.com,"Ann, ""A""",Berlin,41\r\nbob@example.com,Bob,,x\r\n' \
    >"$seeds/contact_csv/plain.csv"
printf '\x10\xef\xbb\xbfemail;name;card\nann@example.com;=HYPERLINK("x");4111 1111 1111 1111\n\n\xc3,\xa9\n' \
    >"$seeds/contact_csv/semicolons.csv"

# Segment filters.
printf '{"all": [{"property": {"name": "age", "op": "gte", "value": 30}}, {"property": {"name": "city", "op": "eq", "value": "Berlin"}}, {"not": {"engagement": {"kind": "clicked", "never": true}}}, {"list": {"list": "lst_x", "status": "pending"}}]}' \
    >"$seeds/segment_filter/all.json"
printf '{"any": [{"property": {"name": "born", "op": "lt", "value": "2000-01-01"}}, {"property": {"name": "vip", "op": "eq", "value": true}}, {"engagement": {"kind": "opened", "days": 30}}, {"status": "active"}]}' \
    >"$seeds/segment_filter/any.json"

# Templates: first byte's low bit chooses MJML (1) or HTML (0); a NUL ends the source and
# JSON data follows.
printf '\x01<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{name}} {{#each items}}<b>{{this}}</b>{{/each}}</mj-text><mj-button href="{{url}}">Go</mj-button></mj-column></mj-section></mj-body></mjml>\x00{"name": "Ann", "items": [1, 2], "url": "https://a.example/?a=1&b=2"}' \
    >"$seeds/template/mjml.bin"
printf '\x00<!doctype html><html><head><style>p{}</style></head><body><!--[if mso]>x<![endif]--><p>Hi {{name}}, <a href="{{unsubscribe_url}}">leave</a></p><ul>{{#each items}}<li>{{#if (gt this 1)}}{{this}}{{else}}-{{/if}}</li>{{/each}}</ul>&amp; &#x263A;</body></html>\x00{"name": "<Ann>", "items": [1, 2, 3]}' \
    >"$seeds/template/html.bin"

# MTA-STS policies and the TXT records of MTA-STS and TLS reporting.
printf 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n' \
    >"$seeds/mta_sts/enforce.txt"
printf 'version: STSv1\nmode: testing\nmx: mx1.example.org\nmax_age: 86400\nfuture: 1\n' >"$seeds/mta_sts/testing-lf.txt"
printf 'version: STSv1\nmode: none\nmax_age: 0\n' >"$seeds/mta_sts/none.txt"
printf 'v=STSv1; id=20160831085700Z;\nv=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/v1\n' \
    >"$seeds/mta_sts/records.txt"
