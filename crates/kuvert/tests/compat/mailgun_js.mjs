// Drives Kuvert with Mailgun's official Node library (npm `mailgun.js`), as code written for
// Mailgun would: `node mailgun_js.mjs URL KEY DOMAIN STEP [ARG...]`. Each step prints one JSON
// object of what the library returned (its own parsing); the Rust test asserts on it.
import FormData from 'form-data';
import Mailgun from 'mailgun.js';

const [url, key, domain, step, ...args] = process.argv.slice(2);
const mg = new Mailgun(FormData).client({ username: 'api', key, url });
// events.get warns that it is deprecated; the warning is not part of the answer.
console.warn = () => {};

const caught = async (f) => {
  try {
    return { ok: await f() };
  } catch (e) {
    return { status: e.status, message: e.message, details: e.details };
  }
};

let out;
if (step === 'send') {
  out = await mg.messages.create(domain, {
    from: `Shop <news@${domain}>`,
    to: [args[0]],
    subject: 'From Node',
    text: 'Sent by mailgun.js.',
    'o:tag': ['node'],
    'o:tracking-opens': true,
    'v:order-id': '8',
    attachment: [{ filename: 'note.txt', data: Buffer.from('A note from Node\n') }],
  });
} else if (step === 'events') {
  // Every page of the last hour, oldest first, following `pages.next.page` to an empty page.
  const items = [];
  let page = await mg.events.get(domain, {
    begin: String(Date.now() / 1000 - 3600),
    ascending: 'yes',
    limit: 2,
  });
  let pages = 1;
  while (page.items.length > 0 && pages < 100) {
    items.push(...page.items);
    page = await mg.events.get(domain, { page: page.pages.next.page });
    pages += 1;
  }
  out = { items, pages };
} else if (step === 'suppressions') {
  const [a, b] = args;
  const added = await mg.suppressions.create(domain, 'bounces', [{ address: a }, { address: b }]);
  const got = await mg.suppressions.get(domain, 'bounces', a);
  const listed = [];
  let page = await mg.suppressions.list(domain, 'bounces', { limit: 1 });
  while (page.items.length > 0 && listed.length < 100) {
    listed.push(...page.items.map((i) => i.address));
    page = await mg.suppressions.list(domain, 'bounces', { page: page.pages.next.page, limit: 1 });
  }
  const unsub = await mg.suppressions.create(domain, 'unsubscribes', { address: 'node-unsub@example.com', tag: '*' });
  const unsubGot = await mg.suppressions.get(domain, 'unsubscribes', 'node-unsub@example.com');
  const unsubListed = (await mg.suppressions.list(domain, 'unsubscribes')).items.map((i) => i.address);
  const unsubDeleted = await mg.suppressions.destroy(domain, 'unsubscribes', 'node-unsub@example.com');
  const unsubGone = await caught(() => mg.suppressions.get(domain, 'unsubscribes', 'node-unsub@example.com'));
  const deleted = await mg.suppressions.destroy(domain, 'bounces', a);
  const gone = await caught(() => mg.suppressions.get(domain, 'bounces', a));
  out = {
    added, got: { address: got.address, code: got.code }, listed, unsub, deleted, gone,
    unsubGot: { address: unsubGot.address, tags: unsubGot.tags }, unsubListed, unsubDeleted, unsubGone,
  };
} else if (step === 'templates') {
  // A stored template made through the library, and a send that renders it.
  const created = await mg.domains.domainTemplates.create(domain, {
    name: 'node-welcome',
    description: 'Made by mailgun.js',
    template: '<p>Welcome aboard, {{name}}!</p>',
    tag: 'first',
    headers: JSON.stringify({ Subject: 'Welcome, {{name}}' }),
  });
  const got = await mg.domains.domainTemplates.get(domain, 'node-welcome', { active: 'yes' });
  const sent = await mg.messages.create(domain, {
    from: `news@${domain}`,
    to: [args[0]],
    template: 'node-welcome',
    't:variables': JSON.stringify({ name: 'Nia' }),
  });
  out = { created, got, sent };
} else if (step === 'stats') {
  const stats = await mg.stats.getDomain(domain, { event: ['accepted', 'delivered'], duration: '1m' });
  out = stats;
} else {
  throw new Error(`unknown step ${step}`);
}
console.log(JSON.stringify(out));
