// amqplib (promise API) against a running flotillad.
// Run through test_amqplib.py, which starts the broker and sets AMQP_URL.
// By hand: AMQP_URL=amqp://guest:guest@127.0.0.1:PORT node --test amqplib.test.js

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const amqp = require('amqplib');

const URL = process.env.AMQP_URL;
const T = { timeout: 30000 };

let conn;

before(async () => {
  assert.ok(URL, 'AMQP_URL must be set');
  conn = await amqp.connect(URL);
});

after(async () => {
  if (conn) await conn.close().catch(() => {});
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function uniq(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

// Resolve once `n` messages have been consumed; reject after `ms`.
function collect(ch, queue, n, opts = {}, ms = 10000) {
  const got = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${n} messages`)), ms);
    ch.consume(
      queue,
      (msg) => {
        got.push(msg);
        if (got.length === n) {
          clearTimeout(timer);
          resolve(got);
        }
      },
      opts,
    ).catch(reject);
  });
}

async function getOne(ch, queue, opts = {}, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await ch.get(queue, opts);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no message in ${queue}`);
    await sleep(20);
  }
}

test('connect, open and close a channel', T, async () => {
  const c = await amqp.connect(URL);
  const ch = await c.createChannel();
  await ch.close();
  await c.close();
});

test('assertQueue, assertExchange, bindQueue', T, async () => {
  const ch = await conn.createChannel();
  const x = uniq('js.topic');
  const ok = await ch.assertExchange(x, 'topic', { durable: false, autoDelete: true });
  assert.equal(ok.exchange, x);
  const q = await ch.assertQueue('', { exclusive: true });
  assert.match(q.queue, /^amq\.gen-/);
  assert.equal(q.messageCount, 0);
  assert.equal(q.consumerCount, 0);
  await ch.bindQueue(q.queue, x, 'js.*');
  assert.ok(ch.publish(x, 'js.one', Buffer.from('routed')));
  ch.publish(x, 'other', Buffer.from('dropped'));
  const m = await getOne(ch, q.queue, { noAck: true });
  assert.equal(m.content.toString(), 'routed');
  assert.equal(m.fields.exchange, x);
  assert.equal(m.fields.routingKey, 'js.one');
  await sleep(100);
  assert.equal(await ch.get(q.queue), false);
  await ch.unbindQueue(q.queue, x, 'js.*');
  const named = uniq('js.q');
  const q2 = await ch.assertQueue(named, { durable: false, arguments: { 'x-max-length': 5 } });
  assert.equal(q2.queue, named);
  const check = await ch.checkQueue(named);
  assert.equal(check.queue, named);
  await ch.deleteQueue(named);
  await ch.deleteExchange(x);
  await ch.close();
});

test('publish, consume and ack', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  for (let i = 0; i < 5; i++) {
    ch.sendToQueue(queue, Buffer.from(`m${i}`), {
      contentType: 'text/plain',
      headers: { i },
      messageId: `id${i}`,
      persistent: true,
    });
  }
  const msgs = await collect(ch, queue, 5);
  assert.deepEqual(
    msgs.map((m) => m.content.toString()),
    ['m0', 'm1', 'm2', 'm3', 'm4'],
  );
  msgs.forEach((m, i) => {
    assert.equal(m.properties.contentType, 'text/plain');
    assert.equal(m.properties.headers.i, i);
    assert.equal(m.properties.messageId, `id${i}`);
    assert.equal(m.properties.deliveryMode, 2);
    assert.equal(m.fields.redelivered, false);
    ch.ack(m);
  });
  const q = await ch.checkQueue(queue);
  assert.equal(q.messageCount, 0);
  await ch.close();
});

test('consume and cancel', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const got = [];
  const { consumerTag } = await ch.consume(queue, (m) => got.push(m), { noAck: true });
  assert.ok(consumerTag);
  ch.sendToQueue(queue, Buffer.from('before'));
  const deadline = Date.now() + 5000;
  while (got.length < 1 && Date.now() < deadline) await sleep(20);
  assert.equal(got.length, 1);
  await ch.cancel(consumerTag);
  ch.sendToQueue(queue, Buffer.from('after'));
  await sleep(300);
  assert.equal(got.length, 1);
  const m = await getOne(ch, queue, { noAck: true });
  assert.equal(m.content.toString(), 'after');
  await ch.close();
});

test('confirm channel: waitForConfirms and per-message callbacks', T, async () => {
  const ch = await conn.createConfirmChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const acks = [];
  for (let i = 0; i < 100; i++) {
    ch.sendToQueue(queue, Buffer.from(`c${i}`), {}, (err) => acks.push(err));
  }
  await ch.waitForConfirms();
  assert.equal(acks.length, 100);
  assert.ok(acks.every((e) => e === null || e === undefined), 'some publishes were nacked');
  const q = await ch.checkQueue(queue);
  assert.equal(q.messageCount, 100);
  // unroutable mandatory message: returned, and still confirmed
  const returned = [];
  ch.on('return', (m) => returned.push(m));
  let confirmErr = 'not called';
  ch.publish('amq.direct', uniq('nowhere'), Buffer.from('bounce'), { mandatory: true }, (err) => {
    confirmErr = err;
  });
  await ch.waitForConfirms();
  assert.ok(confirmErr === null || confirmErr === undefined, `nacked: ${confirmErr}`);
  const deadline = Date.now() + 5000;
  while (returned.length < 1 && Date.now() < deadline) await sleep(20);
  assert.equal(returned.length, 1);
  assert.equal(returned[0].content.toString(), 'bounce');
  assert.equal(returned[0].fields.replyCode, 312);
  await ch.close();
});

test('confirm channel: reject-publish overflow is nacked', T, async () => {
  const ch = await conn.createConfirmChannel();
  const { queue } = await ch.assertQueue('', {
    exclusive: true,
    arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
  });
  const results = [];
  ch.sendToQueue(queue, Buffer.from('fits'), {}, (err) => results.push(err));
  ch.sendToQueue(queue, Buffer.from('overflows'), {}, (err) => results.push(err));
  await assert.rejects(ch.waitForConfirms());
  assert.equal(results.length, 2);
  assert.ok(results[0] === null || results[0] === undefined);
  assert.ok(results[1] instanceof Error, 'second publish should be nacked');
  await ch.close();
});

test('prefetch 1: one unacked message at a time', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  for (let i = 0; i < 3; i++) ch.sendToQueue(queue, Buffer.from(`p${i}`));
  await ch.prefetch(1);
  const got = [];
  await ch.consume(queue, (m) => got.push(m));
  const wait = async (n) => {
    const deadline = Date.now() + 5000;
    while (got.length < n && Date.now() < deadline) await sleep(20);
    assert.equal(got.length, n);
  };
  await wait(1);
  await sleep(400);
  assert.equal(got.length, 1, 'prefetch 1 delivered more than one unacked message');
  ch.ack(got[0]);
  await wait(2);
  await sleep(200);
  assert.equal(got.length, 2);
  ch.ack(got[1]);
  await wait(3);
  ch.ack(got[2]);
  assert.deepEqual(
    got.map((m) => m.content.toString()),
    ['p0', 'p1', 'p2'],
  );
  await ch.close();
});

test('nack with requeue redelivers', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('again'));
  const first = await getOne(ch, queue);
  assert.equal(first.fields.redelivered, false);
  ch.nack(first, false, true);
  const second = await getOne(ch, queue);
  assert.equal(second.content.toString(), 'again');
  assert.equal(second.fields.redelivered, true);
  ch.nack(second, false, false); // dropped
  await sleep(200);
  assert.equal(await ch.get(queue), false);
  await ch.close();
});

test('1 MiB message round trip', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const body = crypto.randomBytes(1024 * 1024);
  ch.sendToQueue(queue, body);
  const [m] = await collect(ch, queue, 1, { noAck: true }, 20000);
  assert.equal(m.content.length, body.length);
  assert.ok(m.content.equals(body), '1 MiB body differs');
  await ch.close();
});

test('get and get-empty', T, async () => {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  assert.equal(await ch.get(queue), false);
  ch.sendToQueue(queue, Buffer.from('g1'));
  ch.sendToQueue(queue, Buffer.from('g2'));
  const m = await getOne(ch, queue, { noAck: true });
  assert.equal(m.content.toString(), 'g1');
  const m2 = await getOne(ch, queue, { noAck: false });
  assert.equal(m2.content.toString(), 'g2');
  assert.equal(m2.fields.messageCount, 0);
  ch.ack(m2);
  assert.equal(await ch.get(queue), false);
  await ch.close();
});

test('deleteQueue reports the message count', T, async () => {
  const ch = await conn.createChannel();
  const name = uniq('js.del');
  await ch.assertQueue(name);
  for (let i = 0; i < 3; i++) ch.sendToQueue(name, Buffer.from(`d${i}`));
  const deadline = Date.now() + 5000;
  while ((await ch.checkQueue(name)).messageCount < 3 && Date.now() < deadline) await sleep(20);
  const res = await ch.deleteQueue(name);
  assert.equal(res.messageCount, 3);
  await ch.close();
  const ch2 = await conn.createChannel();
  ch2.on('error', () => {});
  await assert.rejects(ch2.checkQueue(name), (err) => err.code === 404);
});

test('404 on a missing queue closes the channel, not the connection', T, async () => {
  const ch = await conn.createChannel();
  const errors = [];
  ch.on('error', (e) => errors.push(e));
  const closed = new Promise((resolve) => ch.once('close', resolve));
  await assert.rejects(ch.checkQueue(uniq('js.missing')), (err) => {
    assert.equal(err.code, 404);
    assert.match(err.message, /NOT_FOUND/);
    return true;
  });
  await closed;
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 404);
  // the connection is still fine
  const ch2 = await conn.createChannel();
  const { queue } = await ch2.assertQueue('', { exclusive: true });
  ch2.sendToQueue(queue, Buffer.from('still ok'));
  const m = await getOne(ch2, queue, { noAck: true });
  assert.equal(m.content.toString(), 'still ok');
  await ch2.close();
});

test('publishing to a missing exchange closes the channel with 404', T, async () => {
  const ch = await conn.createChannel();
  const closed = new Promise((resolve) => ch.once('error', resolve));
  ch.publish(uniq('js.nox'), 'k', Buffer.from('x'));
  const err = await closed;
  assert.equal(err.code, 404);
});
