// Drives Kuvert with Mailjet's official Node library (npm `node-mailjet`), as code written
// for Mailjet would: `node mailjet_js.mjs HOST KEY DOMAIN STEP [ARG...]`. The library speaks
// only https: HOST is a TLS front (`localhost:PORT`) whose CA is given to node through
// NODE_EXTRA_CA_CERTS. Each step prints one JSON object of what the library returned.
import Mailjet from 'node-mailjet';

const [host, key, domain, step, ...args] = process.argv.slice(2);
// Mailjet's pair: the Kuvert key's prefix and the key.
const mj = Mailjet.apiConnect(key.slice(0, 10), key, { config: { host } });

const caught = async (f) => {
  try {
    const r = await f();
    return { status: r.response.status, body: r.body };
  } catch (e) {
    return { status: e.statusCode, message: e.message, body: e.response?.data ?? null };
  }
};

let out;
if (step === 'send') {
  out = await caught(() =>
    mj.post('send', { version: 'v3.1' }).request({
      Messages: [
        {
          From: { Email: `news@${domain}`, Name: 'Shop' },
          To: [{ Email: args[0] }],
          Subject: 'From Node',
          TextPart: 'Sent by node-mailjet.',
          CustomCampaign: 'node',
          EventPayload: 'order=8',
          Attachments: [
            {
              ContentType: 'text/plain',
              Filename: 'note.txt',
              Base64Content: Buffer.from('A note from Node\n').toString('base64'),
            },
          ],
        },
      ],
    }),
  );
} else if (step === 'history') {
  // The copy's events one a page, Offset after Offset, to the delivery.
  const [id] = args;
  const events = [];
  for (let offset = 0; offset < 50; offset += 1) {
    const page = await mj.get('messagehistory').id(id).request({}, { Limit: 1, Offset: offset });
    events.push(...page.body.Data);
    if (page.body.Data.length === 0 || page.body.Data[0].EventType === 'sent') break;
  }
  out = { events };
} else if (step === 'contacts') {
  const [address] = args;
  const prop = await caught(() =>
    mj.post('contactmetadata').request({ Name: 'city', Datatype: 'str', NameSpace: 'static' }),
  );
  const list = await caught(() => mj.post('contactslist').request({ Name: 'Node list' }));
  const listId = list.body.Data[0].ID;
  const managed = await caught(() =>
    mj
      .post('contactslist')
      .id(listId)
      .action('managecontact')
      .request({ Email: address, Action: 'addforce', Properties: { city: 'Lyon' } }),
  );
  const data = await caught(() => mj.get('contactdata').id(address).request());
  const inList = await caught(() => mj.get('contact').request({}, { ContactsList: listId }));
  const contactId = managed.body.Data[0].ContactID;
  // Mailjet's GDPR deletion, as node-mailjet names it (/v4/REST/contacts/{id}).
  const erased = await caught(() => mj.delete('contacts', { version: 'v4' }).id(contactId).request());
  const gone = await caught(() => mj.get('contact').id(address).request());
  out = { prop, list, managed, data, inList, erased, gone };
} else if (step === 'template') {
  const [to] = args;
  const created = await caught(() => mj.post('template').request({ Name: 'node-note' }));
  const id = created.body.Data[0].ID;
  const content = await caught(() =>
    mj
      .post('template')
      .id(id)
      .action('detailcontent')
      .request({ Headers: { Subject: 'Note for {{name}}' }, 'Html-part': '<p>Hi {{name}}, from Node.</p>' }),
  );
  const sent = await caught(() =>
    mj.post('send', { version: 'v3.1' }).request({
      Messages: [
        {
          From: { Email: `news@${domain}` },
          To: [{ Email: to }],
          TemplateID: id,
          TemplateLanguage: true,
          Variables: { name: 'Ola' },
        },
      ],
    }),
  );
  out = { created, content, sent };
} else if (step === 'stats') {
  out = await caught(() =>
    mj
      .get('statcounters')
      .request({}, { CounterSource: 'APIKey', CounterTiming: 'Event', CounterResolution: 'Lifetime' }),
  );
} else if (step === 'refused') {
  out = await caught(() =>
    mj.post('send', { version: 'v3.1' }).request({
      SandboxMode: true,
      Messages: [{ From: { Email: `news@${domain}` }, To: [{ Email: args[0] }], TextPart: 'x' }],
    }),
  );
} else {
  throw new Error(`unknown step ${step}`);
}
console.log(JSON.stringify(out));
